"""The `naseval` command: what is run beside the pipeline. `compare` reads every DVC experiment;
`launch`, `status` and `cancel` run the pipeline's stages as a campaign (docs/cluster.md); `profile`
writes a paper-scale params.yaml. The pipeline's stages themselves are `dvc repro` (or
`python -m stages <stage>`)."""

import json
import subprocess
import sys
from pathlib import Path

import typer

from naseval.analysis.ablation import (
    CSV_COLUMNS,
    ablation_csv_rows,
    ablation_markdown,
    ablation_rows,
    adjust_family,
    collect,
    cost_sentences,
    costs,
)
from naseval.analysis.compare import TABLE_COLUMNS, experiment_summaries, table_markdown, table_one
from naseval.analysis.figures import ablation_figure, png
from naseval.analysis.report import calibration_note
from naseval.analysis.summary import AnalysisConfig
from naseval.campaign.config import read_launch_config
from naseval.campaign.driver import Launch
from naseval.campaign.executors import make_executor
from naseval.campaign.plan import State
from naseval.core.command import guarded
from naseval.core.errors import NasevalError
from naseval.core.params import load, read_params
from naseval.core.profile import apply_profile, profile_path
from naseval.core.runtime import setup_logging, write_atomic, write_csv


def exp_show(repo: Path, all_commits: bool) -> list[dict]:
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    shown = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if shown.returncode != 0:
        last_line = (shown.stderr.strip().splitlines() or ["no message"])[-1]
        raise NasevalError(f"dvc exp show failed in {repo}: {last_line}")
    return json.loads(shown.stdout)


def compare(
    repo: Path = typer.Option(Path("."), help="The DVC repository whose experiments to compare."),
    metrics: str = typer.Option("metrics/summary.json", help="The analyze stage's metrics file, as in dvc.yaml."),
    markdown: Path = typer.Option(None, help="Also write the tables and the sentences as Markdown here."),
    csv: Path = typer.Option(None, help="Also write Table 1 as CSV here."),
    ablation_csv: Path = typer.Option(None, help="Also write the weight-sharing ablation as CSV here."),
    figure: Path = typer.Option(None, help="Also draw the ablation's found-cell ranks as a PNG here."),
    all_commits: bool = typer.Option(False, help="Include every commit's experiments, not only HEAD's."),
) -> None:
    """Print the paper's Table 1 over the experiments (each policy vs its baseline), then each policy
    with and without weight sharing against random sampling and random search."""
    summaries = experiment_summaries(exp_show(repo, all_commits), metrics)
    rows = table_one(summaries)
    if not rows:
        raise NasevalError(f"no experiment in {repo} has {metrics}: run `dvc repro` or `dvc exp run` first")
    params = repo / "params.yaml"
    config = load(AnalysisConfig, read_params(params), "analysis") if params.is_file() else AnalysisConfig()
    ablation = ablation_rows(collect(summaries), config.confidence, config.bootstrap_seed)
    cost_rows = costs(ablation, config.confidence, config.bootstrap_seed)
    tests = adjust_family(ablation, cost_rows)
    sections = [table_markdown(rows), "Table 1's verdicts are one family of tests, Holm-adjusted (Holm p). "
                + calibration_note()]
    if ablation:
        sections += [f"Found cells by ground truth, with and without weight sharing. P(beats …) is exact against "
                     f"the ground truth of every cell, with its {config.confidence:.0%} score interval; the measured "
                     f"random search is the experiment at the row's budget; p: Holm-adjusted over the table's and "
                     f"the sentences' {tests} tests. Rows without weight sharing are conditional on the one oracle "
                     f"table they answered from.", ablation_markdown(ablation),
                     *(f"- {sentence}" for sentence in cost_sentences(cost_rows, config.significance))]
    text = "\n\n".join(sections)
    typer.echo(text)
    if markdown:
        write_atomic(markdown, text + "\n")
    if csv:
        write_csv(csv, rows, TABLE_COLUMNS)
    if ablation_csv:
        write_csv(ablation_csv, ablation_csv_rows(ablation), CSV_COLUMNS)
    if figure and ablation:
        write_atomic(figure, png(ablation_figure(ablation)))


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
        typer.echo(f"{row['stage']:<28} {row['state']:<8} attempts {row['attempts']} "
                   f"({row['interrupted']} interrupted, {row['failed']} failed)  {row['job']}  "
                   f"{row['seconds']}{' s' if row['seconds'] != '' else ''}")


def cancel(executor: str = EXECUTOR, config: Path = CONFIG) -> None:
    """Cancel the campaign's queued and running jobs (their checkpoints stay: a new launch resumes)."""
    cancelled = _launch(None, executor, config).cancel()
    typer.echo(f"cancelled {len(cancelled)}: {', '.join(cancelled)}" if cancelled else "nothing to cancel")


def profile(
    name: str = typer.Argument(..., help="A profile in profiles/, e.g. paper-2node."),
    base: Path = typer.Option(Path("params.yaml"), help="The default params to merge onto (git checkout params.yaml)."),
    out: Path = typer.Option(Path("params.yaml"), help="Where to write the merged params."),
    folder: Path = typer.Option(Path("profiles"), help="The profiles' folder."),
) -> None:
    """Write the default params with a profile's changes merged in (docs/profiles.md)."""
    path = profile_path(name, folder)
    if not base.is_file():
        raise NasevalError(f"params file not found: {base}")
    write_atomic(out, apply_profile(base.read_text(), path.read_text(), str(path)))
    typer.echo(f"{out}: {base} with {path} merged in")


app = typer.Typer(help="Evaluate the search phase of NAS (Yu et al., ICLR 2020): compare experiments, run "
                       "campaigns, write profiles. The pipeline itself is `dvc repro`.",
                  no_args_is_help=True, add_completion=False)
app.command("compare")(guarded(compare))
for command in (launch, status, cancel, profile):
    app.command()(guarded(command))

if __name__ == "__main__":
    app()
