"""launch.yaml: where and how a campaign's jobs run. Kept out of params.yaml on purpose: these
settings change no number, so they must not invalidate a stage."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from naseval.core.params import build, read_params, require

EXECUTORS = ("slurm", "local")
# Stage kinds (a stage's name before its @) whose jobs train on a GPU when the profile says so; the
# others (prepare, extract, analyze) read and write files, and ask for no GPU unless told to.
GPU_KINDS = ("search", "train", "ground_truth", "oracle", "rank")
NO_GPU = "none"  # a `resources` entry's gres that asks for no GPU where slurm.gres would give one


def stage_kind(stage: str) -> str:
    """'ground_truth' for 'ground_truth@0-1': what `resources` is keyed by."""
    return stage.split("@", 1)[0]


@dataclass(frozen=True)
class Resources:
    """What one kind of stage asks Slurm for; null keeps the `slurm` section's value."""

    partition: str | None = None
    gres: str | None = None  # "none": no GPU
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None

    def __post_init__(self) -> None:
        if self.cpus_per_task is not None:
            require(self.cpus_per_task >= 1, "cpus_per_task", self.cpus_per_task, "an integer >= 1")


@dataclass(frozen=True)
class ResourcesByKind:
    """`resources:` in launch.yaml, one entry per kind of stage."""

    prepare: Resources = field(default_factory=Resources)
    search: Resources = field(default_factory=Resources)
    extract: Resources = field(default_factory=Resources)
    train: Resources = field(default_factory=Resources)
    ground_truth: Resources = field(default_factory=Resources)
    oracle: Resources = field(default_factory=Resources)
    rank: Resources = field(default_factory=Resources)
    analyze: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class SlurmConfig:
    """What every job asks for, unless its kind's `resources` entry says otherwise."""

    partition: str | None = None
    gres: str | None = None  # e.g. gpu:1; given to the GPU kinds only
    time: str = "24:00:00"  # at its end a job is warned, saves, and is resubmitted without spending a retry
    cpus_per_task: int = 2
    mem: str | None = None  # e.g. 32G
    extra: tuple[str, ...] = ()  # more sbatch options, e.g. --account=nas
    # The warning before the time limit (sbatch --signal=B:USR1@<seconds>): time to save a checkpoint.
    signal_seconds: int = 300
    max_jobs: int | None = None  # most of this campaign's jobs queued or running at once (a per-user limit)
    setup: tuple[str, ...] = ()  # shell lines run before the job, e.g. "module load cuda/12.4"

    def __post_init__(self) -> None:
        require(self.cpus_per_task >= 1, "slurm.cpus_per_task", self.cpus_per_task, "an integer >= 1")
        require(self.signal_seconds >= 0, "slurm.signal_seconds", self.signal_seconds, "an integer >= 0")
        if self.max_jobs is not None:
            require(self.max_jobs >= 1, "slurm.max_jobs", self.max_jobs, "an integer >= 1, or null")

    def for_stage(self, stage: str, resources: ResourcesByKind) -> Resources:
        """What `stage`'s job asks for: this section's values under its kind's overrides."""
        kind = stage_kind(stage)
        override = getattr(resources, kind, Resources())
        gres = override.gres or (self.gres if kind in GPU_KINDS else None)
        return Resources(partition=override.partition or self.partition, gres=None if gres == NO_GPU else gres,
                         cpus_per_task=override.cpus_per_task or self.cpus_per_task, mem=override.mem or self.mem,
                         time=override.time or self.time)


@dataclass(frozen=True)
class LocalConfig:
    # GPU ids handed out to the GPU kinds' jobs, one job per entry: list an id twice to run two jobs
    # on it. Inside an allocation (CUDA_VISIBLE_DEVICES set) they index into the GPUs it gave.
    gpus: tuple[str, ...] = ()
    jobs: int = 2  # jobs at once without a GPU (all of them where `gpus` is empty)

    def __post_init__(self) -> None:
        require(self.jobs >= 1, "local.jobs", self.jobs, "an integer >= 1")


@dataclass(frozen=True)
class LaunchConfig:
    campaign_dir: str = ".naseval/campaign"  # ledger, logs, outcomes and resume folders: shared storage
    # Where a job clones the commit it runs: null for $SLURM_TMPDIR under Slurm (node-local), else
    # campaign_dir/work; environment variables are expanded on the node, e.g. /tmp/$USER/naseval.
    work_dir: str | None = None
    hardlink_lock: bool = False  # DVC's core.hardlink_lock in each clone: for clones on NFS or Lustre
    checkpoint_minutes: float = 10.0  # training saves at most this often (and at once when warned)
    remote: str | None = None  # a DVC remote instead of a shared cache (docs/cluster.md)
    retries: int = 2  # resubmissions of a job that failed; preemptions and time limits do not count
    # resubmissions after interruptions: a job that never reaches a checkpoint within its time
    # limit would otherwise be resubmitted for ever
    interruptions: int = 50
    poll_seconds: float = 60.0
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    local: LocalConfig = field(default_factory=LocalConfig)
    resources: ResourcesByKind = field(default_factory=ResourcesByKind)

    def __post_init__(self) -> None:
        require(self.retries >= 0, "retries", self.retries, "an integer >= 0")
        require(self.interruptions >= 0, "interruptions", self.interruptions, "an integer >= 0")
        require(self.poll_seconds > 0, "poll_seconds", self.poll_seconds, "a number > 0")
        require(self.checkpoint_minutes >= 0, "checkpoint_minutes", self.checkpoint_minutes,
                "a number >= 0 (0: every epoch)")

    def campaign_folder(self, workspace: Path) -> Path:
        return absolute(workspace / self.campaign_dir)


def absolute(path: Path) -> Path:
    """`path` made absolute without resolving links: a resolved /home link can name an automount
    path that compute nodes do not see."""
    return Path(os.path.normpath(os.path.abspath(path)))


def read_launch_config(path: Path | None, workspace: Path) -> LaunchConfig:
    """`path`, else the workspace's launch.yaml if there is one, else the defaults."""
    if path is None:
        path = workspace / "launch.yaml"
        if not path.is_file():
            return LaunchConfig()
    return build(LaunchConfig, read_params(path), "", str(path))

