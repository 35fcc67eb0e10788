"""compare: Table 1 over every DVC experiment present (not a pipeline stage; run after the experiments)."""

import json
import subprocess
import sys
from pathlib import Path

import typer

from naseval.compare import TABLE_COLUMNS, experiment_summaries, table_markdown, table_one
from naseval.errors import NasevalError
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
    markdown: Path = typer.Option(None, help="Also write the table as Markdown here."),
    csv: Path = typer.Option(None, help="Also write the table as CSV here."),
    all_commits: bool = typer.Option(False, help="Include every commit's experiments, not only HEAD's."),
) -> None:
    """Print the paper's Table 1 over the experiments: each policy vs its baseline."""
    rows = table_one(experiment_summaries(exp_show(repo, all_commits), metrics))
    if not rows:
        raise NasevalError(f"no experiment in {repo} has {metrics}: run `dvc repro` or `dvc exp run` first")
    table = table_markdown(rows)
    typer.echo(table)
    if markdown:
        write_atomic(markdown, table + "\n")
    if csv:
        write_csv(csv, rows, TABLE_COLUMNS)


if __name__ == "__main__":
    run_stage(main)
