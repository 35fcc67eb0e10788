"""extract: the top cell of one search run, the one to train from scratch."""

from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.params import load, read_params
from naseval.core.records import SEARCH_RESULT, top_candidate
from naseval.core.runtime import environment, read_json, write_json
from naseval.core.space import SearchSpace, parse_genotype


def main(
    search: Path = typer.Option(..., help="Output folder of a search stage."),
    out: Path = typer.Option(..., help="JSON file for the top cell."),
    params: Path = typer.Option(Path("params.yaml"), help="Reads `space` to validate the cell."),
) -> None:
    """Write the first-ranked candidate of a search run."""
    top = top_candidate(read_json(search / SEARCH_RESULT))
    if top["status"] == "ok":
        parse_genotype(top["genotype"], load(SearchSpace, read_params(params), "space"))
    write_json(out, top | {"environment": environment()})


if __name__ == "__main__":
    run_stage(main)
