"""What every command shares: one-line errors and a non-zero exit instead of a traceback."""

import functools
from collections.abc import Callable

import typer

from naseval.core.errors import NasevalError
from naseval.core.runtime import keep_freed_memory


def guarded(main: Callable[..., None]) -> Callable[..., None]:
    """Wrap a command (a stage's main, or a `naseval` sub-command) so bad input ends in
    `error: <message>` and exit code 1."""

    @functools.wraps(main)  # typer reads the options from main's signature through __wrapped__
    def run(*args, **kwargs) -> None:
        keep_freed_memory()
        try:
            main(*args, **kwargs)
        except NasevalError as error:
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1) from None

    return run


def run_stage(main: Callable[..., None]) -> None:
    typer.run(guarded(main))
