"""What every command shares: one-line errors and a non-zero exit instead of a traceback."""

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import typer

from naseval.core.errors import NasevalError
from naseval.core.runtime import keep_freed_memory, write_atomic

# Where a campaign's job learns how its stage ended (naseval/campaign/job.py): the error's kind
# tells a dead worker, which another try would meet again, from a stop that saved its checkpoint.
ERROR_FILE_ENV = "NASEVAL_STAGE_ERROR_FILE"
INTERRUPTED_EXIT = 130  # the shell's code for Ctrl-C (128 + SIGINT)


def guarded(main: Callable[..., None]) -> Callable[..., None]:
    """Wrap a command (a stage's main, or a `naseval` sub-command) so bad input ends in
    `error: <message>` and exit code 1, and Ctrl-C outside a training loop in one line and 130."""

    @functools.wraps(main)  # typer reads the options from main's signature through __wrapped__
    def run(*args, **kwargs) -> None:
        keep_freed_memory()
        try:
            main(*args, **kwargs)
        except NasevalError as error:
            report_error(error)
            typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            typer.secho("error: interrupted (SIGINT)", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=INTERRUPTED_EXIT) from None

    return run


def report_error(error: NasevalError) -> None:
    """Tell a campaign's job what ended its stage, where it asked (ERROR_FILE_ENV)."""
    path = os.environ.get(ERROR_FILE_ENV)
    if path:
        write_atomic(Path(path), json.dumps({"error": type(error).__name__, "message": str(error)}).encode())


def run_stage(main: Callable[..., None]) -> None:
    typer.run(guarded(main))
