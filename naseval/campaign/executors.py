"""Where jobs run: Slurm (through sbatch, squeue and scancel) or this machine's processes.

An executor submits a job and says which of its jobs are still queued or running; a job that is
neither and left no successful outcome failed, unless it was interrupted: warned and stopped
after saving (its outcome says so), or preempted or out of time (where Slurm keeps accounting).
Job ids carry their executor's name (`slurm:1234`, `local:5678`), so the ledger can be read by
either.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from naseval.campaign.config import GPU_KINDS, LaunchConfig, stage_kind
from naseval.core.errors import NasevalError


@dataclass(frozen=True)
class JobSpec:
    stage: str
    key: str
    commit: str
    workspace: Path
    campaign: Path
    storage: str  # the shared DVC cache folder, or remote:<name>
    work_dir: str | None = None  # where the job clones (launch.yaml work_dir); None: its default
    hardlink_lock: bool = False
    checkpoint_seconds: float = 0.0  # 0: training saves at every epoch's end

    @property
    def name(self) -> str:
        return f"naseval-{self.key}"  # the Slurm job name a second launch looks for

    def command(self) -> list[str]:
        options = ["--workspace", str(self.workspace), "--campaign", str(self.campaign), "--stage", self.stage,
                   "--key", self.key, "--commit", self.commit, "--storage", self.storage,
                   "--checkpoint-seconds", f"{self.checkpoint_seconds:g}"]
        if self.work_dir:
            options += ["--work-dir", self.work_dir]
        if self.hardlink_lock:
            options.append("--hardlink-lock")
        return [sys.executable, "-m", "naseval.campaign.job", *options]

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

    def observe(self) -> None:
        """Look at the executor's jobs once; `alive`, `queued_as` and `placements` answer from that
        look until the next."""

    def placements(self, stages: list[str], busy: list[str | None]) -> list[tuple[str, str | None]]:
        """Which of the ready `stages` may start now, each with its device; `busy`: the devices of
        this executor's active jobs. All of them by default (the scheduler queues)."""
        return [(stage, None) for stage in stages]

    def queued_as(self, job: JobSpec) -> str | None:
        """The id of a job for `job`'s key the executor already has, the ledger aside."""
        return None

    def end_state(self, job_id: str) -> str | None:
        """How the scheduler says an ended job ended (TIMEOUT, PREEMPTED, FAILED...), where it keeps
        a record; None where it keeps none."""
        return None


class LocalExecutor(Executor):
    """Jobs as processes of this machine: each job of a GPU kind on an entry of `local.gpus`, the
    others (and all of them without GPUs) `local.jobs` at once."""

    name = "local"

    def __init__(self, config: LaunchConfig):
        self.gpus, self.jobs = config.local.gpus, config.local.jobs
        self.children: dict[str, subprocess.Popen] = {}

    def submit(self, job: JobSpec, device: str | None) -> str:
        env = dict(os.environ)
        if self.gpus:  # a job without a device sees no GPU: it must not take one from the GPU jobs
            env["CUDA_VISIBLE_DEVICES"] = visible_device(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
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

    def placements(self, stages: list[str], busy: list[str | None]) -> list[tuple[str, str | None]]:
        free_gpus = list(self.gpus)  # an id listed twice runs two jobs at once
        for device in busy:
            if device is not None and device in free_gpus:
                free_gpus.remove(device)
        free_cpus = self.jobs - busy.count(None)
        placed = []
        for stage in stages:
            if self.gpus and stage_kind(stage) in GPU_KINDS:
                if free_gpus:
                    placed.append((stage, free_gpus.pop(0)))
            elif free_cpus > 0:
                free_cpus -= 1
                placed.append((stage, None))
        return placed


def visible_device(device: str | None, inherited: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for a job on `device` (an entry of `local.gpus`), or on none. Inside an
    allocation that set CUDA_VISIBLE_DEVICES, a numeric `device` indexes into its list."""
    if device is None:
        return ""
    if inherited and device.isdigit():
        given = [d for d in inherited.split(",") if d]
        if int(device) >= len(given):
            raise NasevalError(f"local.gpus: {device} is not among the {len(given)} GPUs this allocation gives "
                               f"(CUDA_VISIBLE_DEVICES={inherited})")
        return given[int(device)]
    return device


LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
               "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}


class SlurmExecutor(Executor):
    """One sbatch job per stage, requeued by Slurm on preemption (`--requeue`) and warned
    `slurm.signal_seconds` before its time limit, so that it saves and ends in time."""

    name = "slurm"

    def __init__(self, config: LaunchConfig):
        self.config, self.resources = config.slurm, config.resources
        self.queue: dict[str, tuple[str, str]] | None = None  # job id -> (state, name), from one squeue

    def submit(self, job: JobSpec, device: str | None) -> str:
        folder = job.log_folder()
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "job.sh"
        script.write_text(self.script(job))
        output = slurm("sbatch", "--parsable", str(script))
        job_id = output.split(";")[0].strip()
        if self.queue is not None:
            self.queue[job_id] = ("PENDING", job.name)
        return f"slurm:{job_id}"

    def script(self, job: JobSpec) -> str:
        asked = self.config.for_stage(job.stage, self.resources)
        options = [f"--job-name={job.name}", f"--output={job.log_folder()}/slurm-%j.log", "--open-mode=append",
                   "--requeue", f"--cpus-per-task={asked.cpus_per_task}", f"--time={asked.time}",
                   f"--chdir={job.workspace}"]
        if self.config.signal_seconds:  # B: to the batch shell, which is the job itself (exec), which forwards it
            options.append(f"--signal=B:USR1@{self.config.signal_seconds}")
        options += [f"--{name}={value}" for name, value in
                    (("partition", asked.partition), ("gres", asked.gres), ("mem", asked.mem)) if value]
        options += list(self.config.extra)
        lines = ["#!/bin/bash", *(f"#SBATCH {option}" for option in options), *self.config.setup,
                 "exec " + shlex.join(job.command())]
        return "\n".join(lines) + "\n"

    def observe(self) -> None:
        # All of the user's jobs, since squeue refuses a list of ids that holds one it has forgotten;
        # finished jobs leave it (after MinJobAge) or show a final state, neither of them alive.
        output = slurm("squeue", "--noheader", "--me", "--states=all", "--format=%i|%T|%j")
        self.queue = {}
        for line in output.splitlines():
            if line.count("|") >= 2:
                job_id, state, name = line.strip().split("|", 2)
                self.queue[job_id] = (state, name)

    def alive(self, job_ids: list[str]) -> set[str]:
        if not job_ids:
            return set()
        if self.queue is None:
            self.observe()
        return {job_id for job_id in job_ids
                if self.queue.get(job_id.removeprefix("slurm:"), ("",))[0] in LIVE_STATES}

    def cancel(self, job_id: str) -> None:
        slurm("scancel", job_id.removeprefix("slurm:"), check=False)

    def queued_as(self, job: JobSpec) -> str | None:
        if self.queue is None:
            self.observe()
        ids = [job_id for job_id, (state, name) in self.queue.items() if name == job.name and state in LIVE_STATES]
        return f"slurm:{ids[0]}" if ids else None

    def placements(self, stages: list[str], busy: list[str | None]) -> list[tuple[str, str | None]]:
        room = len(stages) if self.config.max_jobs is None else max(self.config.max_jobs - len(busy), 0)
        return [(stage, None) for stage in stages[:room]]

    def end_state(self, job_id: str) -> str | None:
        """sacct's state of the job's last run; None without accounting (a cluster may have none)."""
        try:
            output = slurm("sacct", "--noheader", "--allocations", "--parsable2", "--format=State",
                           f"--jobs={job_id.removeprefix('slurm:')}", retries=0)
        except NasevalError:
            return None
        states = [line.split()[0] for line in output.splitlines() if line.strip()]
        return states[-1] if states else None


RETRY_SECONDS = (2.0, 8.0, 30.0)  # a busy slurmctld times out now and then: wait, then ask again


class SlurmError(NasevalError):
    """A Slurm command failed, also after its retries."""


def slurm(*command: str, check: bool = True, retries: int = len(RETRY_SECONDS)) -> str:
    """Run a Slurm command, retrying a failure with growing waits; its output."""
    for attempt in range(retries + 1):
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError:
            raise NasevalError(f"{command[0]} not found: --executor slurm needs Slurm's commands on PATH") from None
        if result.returncode == 0 or not check:
            return result.stdout
        if attempt < retries:
            time.sleep(RETRY_SECONDS[attempt])
    message = result.stderr.strip() or result.stdout.strip()
    raise SlurmError(f"{' '.join(command[:2])} failed{f' {retries + 1} times' if retries else ''}: {message}")


def make_executor(name: str, config: LaunchConfig) -> Executor:
    executors = {"slurm": SlurmExecutor, "local": LocalExecutor}
    if name not in executors:
        raise NasevalError(f"executor: expected one of {', '.join(executors)}, got {name!r}")
    return executors[name](config)
