"""`python -m stages <stage> ...`: any pipeline stage by name, with the options dvc.yaml passes it."""

import typer

from naseval.core.command import guarded
from stages import analyze, check_params, extract, ground_truth, oracle, prepare, rank, search, train

app = typer.Typer(help="The pipeline's stages, as dvc.yaml runs them (`dvc repro` is the usual way).",
                  no_args_is_help=True, add_completion=False)
for name, module in [("check-params", check_params), ("prepare", prepare), ("search", search),
                     ("extract", extract), ("train", train), ("ground-truth", ground_truth), ("oracle", oracle),
                     ("rank", rank), ("analyze", analyze)]:
    app.command(name)(guarded(module.main))

if __name__ == "__main__":
    app()
