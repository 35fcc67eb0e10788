"""The `naseval` command: one sub-command per pipeline stage, the same code dvc.yaml runs."""

import typer

from stages import analyze, compare, extract, ground_truth, launch, oracle, prepare, search, train
from stages.common import guarded

app = typer.Typer(help="Evaluate the search phase of NAS (Yu et al., ICLR 2020) as a DVC pipeline.",
                  no_args_is_help=True, add_completion=False)
for name, module in [("prepare", prepare), ("search", search), ("extract", extract),
                     ("train", train), ("ground-truth", ground_truth), ("oracle", oracle), ("analyze", analyze),
                     ("compare", compare)]:
    app.command(name)(guarded(module.main))
for command in (launch.launch, launch.status, launch.cancel):
    app.command()(guarded(command))

if __name__ == "__main__":
    app()
