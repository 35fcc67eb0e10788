"""One campaign job: one stage, run by `dvc repro` in a fresh clone of the launch's commit.

The clone shares the workspace's DVC cache (or, with a remote, pulls the run-cache from it and
pushes its own back), so the stages it needs are restored from DVC's run-cache instead of being
rerun, and its own stage lands in the run-cache for the workspace's `dvc repro` to collect. The
clone is the job's own: node-local where it can be ($SLURM_TMPDIR, or launch.yaml's work_dir), so
its DVC lock and its many small files stay off the shared file system. Its checkpoints live in
the campaign's resume folder for the stage's key, on shared storage, so a requeued or
resubmitted job continues where the stopped one did.

A warning before preemption or the time limit (SIGUSR1, from `sbatch --signal=B:USR1@...`) or a
SIGTERM reaches this process, which forwards it to the stage's process (DVC would die of it):
the stage saves its checkpoint at its next safe point and ends, and the outcome says it was
stopped, so the driver resubmits it without spending a retry. The outcome also holds the error
that ended the stage, where it had one: a dead worker (most often out of memory) would die again
in a job like this one, so it spends a retry whatever stopped the job (ledger.classify_end).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from naseval.campaign.ledger import Campaign, now
from naseval.core.command import ERROR_FILE_ENV
from naseval.core.preemption import CHECKPOINT_SECONDS_ENV, SIGNALS, STAGE_PID_ENV
from naseval.core.runtime import SHARED_RESUME_ENV, read_json

DVC = (sys.executable, "-m", "dvc")


def job_id() -> str:
    """Slurm's job id inside a Slurm job (the same across its requeues), else the process id."""
    return f"slurm:{os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ else f"local:{os.getpid()}"


def clone_folder(campaign: Campaign, key: str, this_job: str, work_dir: str | None) -> Path:
    """Where this job clones: `work_dir` (its variables expanded here, on the node), else Slurm's
    node-local $SLURM_TMPDIR, else the campaign's shared work folder."""
    root = os.path.expandvars(work_dir) if work_dir else os.environ.get("SLURM_TMPDIR")
    if not root:
        return campaign.clone_folder(key, this_job)
    return Path(root) / "naseval" / campaign.clone_folder(key, this_job).name


class Forwarder:
    """Passes the stop signals this job receives on to its stage, once the stage has said where
    it listens; before that, there is nothing to save, and the job ends its `dvc repro`."""

    def __init__(self, pid_file: Path):
        self.pid_file, self.received, self.repro = pid_file, None, None

    def __call__(self, number: int, frame) -> None:
        self.received = signal.Signals(number).name
        try:
            os.kill(int(self.pid_file.read_text()), number)
            done = "forwarded to the stage"
        except (OSError, ValueError):  # no stage listening (yet, or any more)
            done = "no stage listens: ending the job"
            if self.repro and self.repro.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.repro.pid, signal.SIGTERM)
        print(f"[naseval job {job_id()}] {now()} {self.received}: {done}", flush=True)


def run_job(workspace: Path, campaign: Campaign, stage: str, key: str, commit: str, storage: str,
            work_dir: str | None = None, hardlink_lock: bool = False, checkpoint_seconds: float = 0.0) -> int:
    """Run `stage` and write its outcome; the return code is `dvc repro`'s. `storage`: the shared
    DVC cache folder, or `remote:<name>` for a DVC remote."""
    remote = storage.removeprefix("remote:") if storage.startswith("remote:") else None
    this_job = job_id()
    clone = clone_folder(campaign, key, this_job, work_dir)
    shutil.rmtree(clone, ignore_errors=True)  # a requeued Slurm job starts again in the same place
    clone.parent.mkdir(parents=True, exist_ok=True)
    forward = Forwarder(clone / ".git" / "naseval-stage.pid")  # where git and DVC look at nothing
    stage_error = clone / ".git" / "naseval-stage-error.json"
    for number in SIGNALS:
        signal.signal(number, forward)
    started = time.perf_counter()
    # This environment's python and dvc, for the stage commands too, even where it is not activated.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", SHARED_RESUME_ENV: str(campaign.resume_folder(key)),
           STAGE_PID_ENV: str(forward.pid_file), ERROR_FILE_ENV: str(stage_error),
           CHECKPOINT_SECONDS_ENV: f"{checkpoint_seconds:g}"}
    print(f"[naseval job {this_job}] {now()} {stage} (key {key}) at {commit[:12]} in {clone}", flush=True)

    def step(*command: str) -> None:
        # its own session: a signal meant for the stage must not reach DVC, which it would end
        forward.repro = subprocess.Popen(command, cwd=clone, env=env, start_new_session=True)
        if returncode := forward.repro.wait():
            raise subprocess.CalledProcessError(returncode, command)

    try:
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(workspace), str(clone)], check=True)
        step("git", "checkout", "--quiet", commit)
        # as `dvc config --local` would write them, without starting DVC once more
        core = ["hardlink_lock = true"] * hardlink_lock + [f"remote = {remote}"] * bool(remote)
        sections = {"core": core, "cache": [] if remote else [f"dir = {storage}"]}
        (clone / ".dvc" / "config.local").write_text("".join(
            f"[{name}]\n" + "".join(f"    {line}\n" for line in lines) for name, lines in sections.items() if lines))
        if remote:  # --pull: the stages it needs come from the remote's run-cache and objects
            step(*DVC, "repro", "--pull", stage)
            step(*DVC, "push", "--quiet", "--run-cache")
        else:  # the shared cache: objects and run-cache
            step(*DVC, "repro", stage)
        returncode = 0
    except subprocess.CalledProcessError as error:
        returncode = error.returncode
    seconds = round(time.perf_counter() - started, 1)
    campaign.write_outcome(key, {"stage": stage, "key": key, "commit": commit, "job_id": this_job,
                                 "succeeded": returncode == 0, "returncode": returncode, "seconds": seconds,
                                 "stopped_by": None if returncode == 0 else forward.received,
                                 "stage_error": read_json(stage_error) if stage_error.is_file() else None,
                                 "ended": now()})
    ending = "done" if returncode == 0 else f"stopped by {forward.received}" if forward.received else "failed"
    print(f"[naseval job {this_job}] {now()} {stage}: {ending} in {seconds} s", flush=True)
    shutil.rmtree(clone, ignore_errors=True)
    if returncode == 0:
        shutil.rmtree(campaign.resume_folder(key), ignore_errors=True)
    return returncode


def main(
    workspace: Path = typer.Option(..., help="The launching workspace (a git repository)."),
    campaign: Path = typer.Option(..., help="The campaign's shared folder."),
    stage: str = typer.Option(..., help="The DVC stage to run."),
    key: str = typer.Option(..., help="The stage's key."),
    commit: str = typer.Option(..., help="The launch's commit."),
    storage: str = typer.Option(..., help="The shared DVC cache folder, or remote:<name> for a DVC remote."),
    work_dir: str = typer.Option(None, help="Where to clone (default: $SLURM_TMPDIR, else the campaign's work/)."),
    hardlink_lock: bool = typer.Option(False, help="Set DVC's core.hardlink_lock in the clone (NFS, Lustre)."),
    checkpoint_seconds: float = typer.Option(0.0, help="Training saves at most this often; 0: every epoch."),
) -> None:
    sys.exit(run_job(workspace, Campaign(campaign), stage, key, commit, storage, work_dir, hardlink_lock,
                     checkpoint_seconds))


if __name__ == "__main__":
    typer.run(main)
