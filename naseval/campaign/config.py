"""launch.yaml: where and how a campaign's jobs run. Kept out of params.yaml on purpose: these
settings change no number, so they must not invalidate a stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from naseval.core.params import build, read_params, require

EXECUTORS = ("slurm", "local")


@dataclass(frozen=True)
class SlurmConfig:
    partition: str | None = None
    gres: str | None = None  # e.g. gpu:1
    time: str = "24:00:00"  # a job that runs past it is resubmitted and resumes from its checkpoint
    cpus_per_task: int = 2
    mem: str | None = None  # e.g. 32G
    extra: tuple[str, ...] = ()  # more sbatch options, e.g. --account=nas
    ground_truth_time: str | None = None  # the ground truth's jobs are the longest: their own limit

    def __post_init__(self) -> None:
        require(self.cpus_per_task >= 1, "slurm.cpus_per_task", self.cpus_per_task, "an integer >= 1")


@dataclass(frozen=True)
class LocalConfig:
    gpus: tuple[str, ...] = ()  # GPU ids handed out one per job (CUDA_VISIBLE_DEVICES); empty: CPU jobs
    jobs: int = 2  # jobs at once without GPUs

    def __post_init__(self) -> None:
        require(self.jobs >= 1, "local.jobs", self.jobs, "an integer >= 1")


@dataclass(frozen=True)
class LaunchConfig:
    campaign_dir: str = ".naseval/campaign"  # ledger, logs, resume folders, clones: shared storage
    remote: str | None = None  # a DVC remote instead of a shared cache (docs/cluster.md)
    retries: int = 2  # resubmissions of a job that ended without success
    poll_seconds: float = 10.0
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    local: LocalConfig = field(default_factory=LocalConfig)

    def __post_init__(self) -> None:
        require(self.retries >= 0, "retries", self.retries, "an integer >= 0")
        require(self.poll_seconds > 0, "poll_seconds", self.poll_seconds, "a number > 0")

    def campaign_folder(self, workspace: Path) -> Path:
        return (workspace / self.campaign_dir).resolve()


def read_launch_config(path: Path | None, workspace: Path) -> LaunchConfig:
    """`path`, else the workspace's launch.yaml if there is one, else the defaults."""
    if path is None:
        path = workspace / "launch.yaml"
        if not path.is_file():
            return LaunchConfig()
    return build(LaunchConfig, read_params(path), "", str(path))
