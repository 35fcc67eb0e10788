"""compare: Table 1 and the weight-sharing ablation over every DVC experiment present (not a pipeline
stage; run after the experiments)."""

import json
import subprocess
import sys
from pathlib import Path

import typer

from naseval.ablation import CSV_COLUMNS, ablation_csv_rows, ablation_markdown, ablation_rows, collect, cost_sentences
from naseval.analysis import AnalysisConfig
from naseval.compare import TABLE_COLUMNS, experiment_summaries, table_markdown, table_one
from naseval.errors import NasevalError
from naseval.figures import ablation_figure, png
from naseval.params import load, read_params
from naseval.runtime import write_atomic, write_csv
from stages.common import run_stage


def exp_show(repo: Path, all_commits: bool) -> list[dict]:
    command = [sys.executable, "-m", "dvc", "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    shown = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    if shown.returncode != 0:
        last_line = (shown.stderr.strip().splitlines() or ["no message"])[-1]
        raise NasevalError(f"dvc exp show failed in {repo}: {last_line}")
    return json.loads(shown.stdout)


def main(
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
    statistics = (config.bootstrap_resamples, config.confidence, config.bootstrap_seed)
    ablation = ablation_rows(collect(summaries), *statistics)
    sections = [table_markdown(rows)]
    if ablation:
        sentences = cost_sentences(ablation, *statistics, config.significance)
        sections += ["Found cells by ground truth, with and without weight sharing:", ablation_markdown(ablation),
                     *(f"- {sentence}" for sentence in sentences)]
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


if __name__ == "__main__":
    run_stage(main)
