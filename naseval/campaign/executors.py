"""Where jobs run: Slurm (through sbatch, squeue and scancel) or this machine's processes.

An executor submits a job and says which of its jobs are still queued or running; a job that is
neither and left no successful outcome has failed, whatever ended it. Job ids carry their
executor's name (`slurm:1234`, `local:5678`), so the ledger can be read by either.
"""

from __future__ import annotations

import itertools
import os
import shlex
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from naseval.campaign.config import LaunchConfig
from naseval.core.errors import NasevalError


@dataclass(frozen=True)
class JobSpec:
    stage: str
    key: str
    commit: str
    workspace: Path
    campaign: Path
    storage: str  # the shared DVC cache folder, or remote:<name>

    @property
    def name(self) -> str:
        return f"naseval-{self.key}"  # the Slurm job name a second launch looks for

    def command(self) -> list[str]:
        return [sys.executable, "-m", "naseval.campaign.job", "--workspace", str(self.workspace),
                "--campaign", str(self.campaign), "--stage", self.stage, "--key", self.key,
                "--commit", self.commit, "--storage", self.storage]

    def log_folder(self) -> Path:
        return self.campaign / "jobs" / self.key


class Executor(ABC):
    name: str

    @abstractmethod
    def submit(self, job: JobSpec, device: str | None) -> str:
        """Queue `job` (on `device`, where the executor hands out devices); its job id."""

    @abstractmethod
    def alive(self, job_ids: list[str]) -> set[str]:
        """Those of `job_ids` that are queued or running."""

    @abstractmethod
    def cancel(self, job_id: str) -> None: ...

    def free_devices(self, busy: list[str | None]) -> Iterable[str | None]:
        """What new jobs may start on, one entry per job that may start now; `busy`: the
        devices of this executor's active jobs. Unlimited (the scheduler queues) by default."""
        return itertools.repeat(None)

    def queued_as(self, job: JobSpec) -> str | None:
        """The id of a job for `job`'s key the executor already has, the ledger aside."""
        return None


class LocalExecutor(Executor):
    """Jobs as processes of this machine, `local.jobs` at once, or one per GPU of `local.gpus`."""

    name = "local"

    def __init__(self, config: LaunchConfig):
        self.gpus, self.jobs = config.local.gpus, config.local.jobs
        self.children: dict[str, subprocess.Popen] = {}

    def submit(self, job: JobSpec, device: str | None) -> str:
        env = dict(os.environ)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        folder = job.log_folder()
        folder.mkdir(parents=True, exist_ok=True)
        log = open(folder / "local.log", "a")  # the child keeps its own copy
        child = subprocess.Popen(job.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, cwd=job.workspace, start_new_session=True)  # outlives the driver
        log.close()
        job_id = f"local:{child.pid}"
        self.children[job_id] = child
        return job_id

    def alive(self, job_ids: list[str]) -> set[str]:
        return {job_id for job_id in job_ids if self._running(job_id)}

    def _running(self, job_id: str) -> bool:
        if job_id in self.children:  # ours: poll, which also reaps it
            return self.children[job_id].poll() is None
        pid = int(job_id.removeprefix("local:"))
        try:  # a previous driver's: alive, not a zombie, and still one of our jobs
            status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return status != "Z" and b"naseval.campaign.job" in command

    def cancel(self, job_id: str) -> None:
        try:
            os.killpg(int(job_id.removeprefix("local:")), 15)  # the job and its dvc and stage
        except ProcessLookupError:
            pass

    def free_devices(self, busy: list[str | None]) -> list[str | None]:
        if self.gpus:
            return [gpu for gpu in self.gpus if gpu not in busy]
        return [None] * max(self.jobs - len(busy), 0)


class SlurmExecutor(Executor):
    """One sbatch job per stage, requeued by Slurm on preemption (`--requeue`)."""

    name = "slurm"

    def __init__(self, config: LaunchConfig):
        self.config = config.slurm

    def submit(self, job: JobSpec, device: str | None) -> str:
        folder = job.log_folder()
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "job.sh"
        script.write_text(self.script(job))
        output = slurm("sbatch", "--parsable", str(script))
        return f"slurm:{output.split(';')[0].strip()}"

    def script(self, job: JobSpec) -> str:
        options = [f"--job-name={job.name}", f"--output={job.log_folder()}/slurm-%j.log", "--open-mode=append",
                   "--requeue", f"--cpus-per-task={self.config.cpus_per_task}",
                   f"--time={self.time_limit(job.stage)}", f"--chdir={job.workspace}"]
        options += [f"--{name}={value}" for name, value in
                    (("partition", self.config.partition), ("gres", self.config.gres), ("mem", self.config.mem))
                    if value]
        options += list(self.config.extra)
        lines = ["#!/bin/bash", *(f"#SBATCH {option}" for option in options),
                 "exec " + shlex.join(job.command())]
        return "\n".join(lines) + "\n"

    def time_limit(self, stage: str) -> str:
        if stage.startswith("ground_truth") and self.config.ground_truth_time:
            return self.config.ground_truth_time
        return self.config.time

    def alive(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        # Finished jobs leave squeue (after MinJobAge) or show a final state; neither is alive. All
        # of the user's jobs, since squeue refuses a list of ids that holds one it has forgotten.
        output = slurm("squeue", "--noheader", "--me", "--states=all", "--format=%i %T")
        live = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}
        states = dict(line.split()[:2] for line in output.splitlines() if line.strip())
        return {job_id for job_id in job_ids if states.get(job_id.removeprefix("slurm:")) in live}

    def cancel(self, job_id: str) -> None:
        slurm("scancel", job_id.removeprefix("slurm:"), check=False)

    def queued_as(self, job: JobSpec) -> str | None:
        output = slurm("squeue", "--noheader", "--me", "--format=%i", f"--name={job.name}")
        ids = output.split()
        return f"slurm:{ids[0]}" if ids else None


def slurm(*command: str, check: bool = True) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise NasevalError(f"{command[0]} not found: --executor slurm needs Slurm's commands on PATH") from None
    if check and result.returncode != 0:
        raise NasevalError(f"{' '.join(command[:2])} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def make_executor(name: str, config: LaunchConfig) -> Executor:
    executors = {"slurm": SlurmExecutor, "local": LocalExecutor}
    if name not in executors:
        raise NasevalError(f"executor: expected one of {', '.join(executors)}, got {name!r}")
    return executors[name](config)
