"""check_params: the whole params file, checked before any stage trains (naseval/params_check.py)."""

from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.params import read_params
from naseval.core.runtime import write_json
from naseval.params_check import check_params


def main(
    out: Path = typer.Option(..., help="JSON file naming the sections checked (the same for every valid file)."),
    params: Path = typer.Option(Path("params.yaml"), help="Reads every section."),
) -> None:
    """Load every section of PARAMS as the stages will; the first bad value ends it in one line."""
    write_json(out, {"checked": check_params(read_params(params), str(params))})


if __name__ == "__main__":
    run_stage(main)
