"""One campaign job: one stage, run by `dvc repro` in a fresh clone of the launch's commit.

The clone shares the workspace's DVC cache (or, with a remote, pulls the run-cache from it and
pushes its own back), so the stages it needs are restored from DVC's run-cache instead of being
rerun, and its own stage lands in the run-cache for the workspace's `dvc repro` to collect. Its
checkpoints live in the campaign's resume folder for the stage's key, outside the clone, so a
requeued or resubmitted job continues where the killed one stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import typer

from naseval.campaign.ledger import Campaign, now
from naseval.core.runtime import SHARED_RESUME_ENV

DVC = (sys.executable, "-m", "dvc")


def job_id() -> str:
    """Slurm's job id inside a Slurm job (the same across its requeues), else the process id."""
    return f"slurm:{os.environ['SLURM_JOB_ID']}" if "SLURM_JOB_ID" in os.environ else f"local:{os.getpid()}"


def run_job(workspace: Path, campaign: Campaign, stage: str, key: str, commit: str, storage: str) -> int:
    """Run `stage` and write its outcome; the return code is `dvc repro`'s. `storage`: the shared
    DVC cache folder, or `remote:<name>` for a DVC remote."""
    remote = storage.removeprefix("remote:") if storage.startswith("remote:") else None
    this_job = job_id()
    clone = campaign.clone_folder(key, this_job)
    campaign.remove_clone(key, this_job)  # a requeued Slurm job starts again in the same place
    started = time.perf_counter()
    # This environment's python and dvc, for the stage commands too, even where it is not activated.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1",
           SHARED_RESUME_ENV: str(campaign.resume_folder(key))}
    print(f"[naseval job {this_job}] {now()} {stage} (key {key}) at {commit[:12]} in {clone}", flush=True)

    def step(*command: str) -> None:
        subprocess.run(command, cwd=clone, env=env, check=True)

    try:
        subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(workspace), str(clone)], check=True)
        step("git", "checkout", "--quiet", commit)
        if remote:  # --pull: the stages it needs come from the remote's run-cache and objects
            step(*DVC, "config", "--local", "core.remote", remote)
            step(*DVC, "repro", "--pull", stage)
            step(*DVC, "push", "--quiet", "--run-cache")
        else:  # as `dvc cache dir --local` would, without starting DVC once more
            (clone / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {storage}\n")
            step(*DVC, "repro", stage)
        returncode = 0
    except subprocess.CalledProcessError as error:
        returncode = error.returncode
    seconds = round(time.perf_counter() - started, 1)
    campaign.write_outcome(key, {"stage": stage, "key": key, "commit": commit, "job_id": this_job,
                                 "succeeded": returncode == 0, "returncode": returncode, "seconds": seconds,
                                 "ended": now()})
    print(f"[naseval job {this_job}] {now()} {stage}: {'done' if returncode == 0 else 'failed'} "
          f"in {seconds} s", flush=True)
    campaign.remove_clone(key, this_job)
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
) -> None:
    sys.exit(run_job(workspace, Campaign(campaign), stage, key, commit, storage))


if __name__ == "__main__":
    typer.run(main)
