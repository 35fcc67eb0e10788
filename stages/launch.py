"""launch, status, cancel: the pipeline's stale stages as Slurm or local jobs (docs/cluster.md)."""

from pathlib import Path

import typer

from naseval.campaign.config import read_launch_config
from naseval.campaign.driver import Launch
from naseval.campaign.executors import make_executor
from naseval.campaign.plan import State
from naseval.errors import NasevalError
from naseval.runtime import setup_logging

EXECUTOR = typer.Option("slurm", "--executor", help="slurm, or local: this machine's GPUs or CPUs.")
CONFIG = typer.Option(None, "--config", help="Executor settings (default: ./launch.yaml if present).")


def _launch(targets: list[str] | None, executor: str, config: Path | None) -> Launch:
    workspace = Path.cwd()
    settings = read_launch_config(config, workspace)
    launch = Launch(workspace, targets or [], settings, make_executor(executor, settings))
    setup_logging(launch.campaign.folder / "launch.log")
    return launch


def launch(
    targets: list[str] = typer.Argument(None, help="Stages to reach (default: all), e.g. ground_truth@0-0."),
    executor: str = EXECUTOR,
    config: Path = CONFIG,
    wait: bool = typer.Option(False, "--wait", help="Follow the campaign to its end, submitting each wave."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be submitted; submit nothing."),
) -> None:
    """Submit the stale stages whose inputs are ready, one job each; collect with `dvc repro`."""
    final = _launch(targets, executor, config).run(wait=wait, dry_run=dry_run)
    failed = final.having(State.FAILED)
    if wait and failed:
        raise NasevalError(f"{len(failed)} stage(s) failed after all retries: {', '.join(failed)} "
                           f"(logs in the campaign's jobs/<key>/)")
    if wait and not dry_run:
        typer.echo("campaign done: run `dvc repro` to collect it from the run-cache")


def status(
    targets: list[str] = typer.Argument(None, help="Stages to show (default: all)."),
    executor: str = EXECUTOR,
    config: Path = CONFIG,
) -> None:
    """Each stage's state in the campaign: done, active, ready, waiting, failed or blocked."""
    for row in _launch(targets, executor, config).status_rows():
        typer.echo(f"{row['stage']:<28} {row['state']:<8} attempts {row['attempts']}  {row['job']}  "
                   f"{row['seconds']}{' s' if row['seconds'] != '' else ''}")


def cancel(executor: str = EXECUTOR, config: Path = CONFIG) -> None:
    """Cancel the campaign's queued and running jobs (their checkpoints stay: a new launch resumes)."""
    cancelled = _launch(None, executor, config).cancel()
    typer.echo(f"cancelled {len(cancelled)}: {', '.join(cancelled)}" if cancelled else "nothing to cancel")
