"""Stop requests: a cluster's warning before it preempts a job or its time runs out, turned into a
saved checkpoint and a clean exit instead of lost work.

Slurm sends the warning as a signal (`sbatch --signal=B:USR1@<seconds>` to the job, which forwards
it to the stage; SIGTERM when it preempts or cancels). Training loops that can save listen for
these signals, and Ctrl-C's SIGINT, while they run and look at `requested()` at their safe
points: the batched from-scratch training after every step, the other loops at their epochs' or
rounds' ends. A signal sent to the whole process group (`timeout`, `docker stop`, Ctrl-C, Slurm
without `--signal`) reaches a stage's worker processes too: for them it is the same request, and
a second signal changes nothing, so none dies in the middle of its save (a second Ctrl-C ends the
stage itself at once, its workers still saving: a user at a terminal need not wait for an epoch).
Outside those loops the signals keep their default effect, so a stage that trains nothing still
ends at once. A timer (NASEVAL_CHECKPOINT_SECONDS, set by a campaign's jobs from launch.yaml)
spaces the checkpoints out in time instead of writing one per epoch; it changes no result, since
a resumed run continues exactly where the checkpoint was taken.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from naseval.core.errors import Preempted

SIGNALS = (signal.SIGUSR1, signal.SIGTERM)  # the warning before preemption or the time limit; a cancel
STOP_SIGNALS = (*SIGNALS, signal.SIGINT)  # what a training loop answers with a checkpoint: those, and Ctrl-C
STAGE_PID_ENV = "NASEVAL_STAGE_PID_FILE"  # where a campaign's job learns whom to forward signals to
CHECKPOINT_SECONDS_ENV = "NASEVAL_CHECKPOINT_SECONDS"

_requested: str | None = None  # the name of the signal that asked this process to stop


def requested() -> str | None:
    """The signal that asked this process to stop ("SIGUSR1", "SIGTERM"), or None."""
    return _requested


def _on_signal(number: int, frame) -> None:
    global _requested
    in_stage = multiprocessing.parent_process() is None
    if number == signal.SIGINT and in_stage:
        if _requested == "SIGINT":  # Ctrl-C twice: now; every checkpoint is written atomically, none breaks
            raise KeyboardInterrupt
        if _requested is None:  # os.write: a print here could interrupt a print to stderr (progress bars)
            os.write(2, b"\nstop requested (SIGINT): the stage saves at its next safe point; Ctrl-C again to "
                        b"end it at once\n")
    _requested = _requested or signal.Signals(number).name  # one request, named by what asked first
    for child in multiprocessing.active_children():  # a ground truth's worker processes: warned, not terminated
        try:
            os.kill(child.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass


def listen_as_worker() -> None:
    """Turn the stop signals into a request for the rest of this worker process's life: the
    warning the stage forwards (SIGUSR1), and SIGTERM or SIGINT sent to the whole process group.
    The stage ends its workers by telling them, or with SIGKILL (core/workers.py)."""
    for number in STOP_SIGNALS:
        signal.signal(number, _on_signal)


@contextmanager
def listening() -> Iterator[None]:
    """Turn the stop signals into requests while the block runs; where a campaign's job asked
    for it, say so in its pid file, so that the job forwards its warnings here."""
    if multiprocessing.parent_process() is not None:
        yield  # a pool worker: it listens for its whole life already
        return
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, _on_signal)
    pid_file = os.environ.get(STAGE_PID_ENV)
    if pid_file:
        Path(pid_file).write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop(what: str) -> Preempted:
    """The error that ends a run which saved its checkpoint (`what`) on request."""
    return Preempted(f"stopped by {_requested}: {what}; run the stage again to continue from it")


def stop_if_requested(what: str) -> None:
    """After a save (`what`): end the run if a stop was requested."""
    if _requested:
        raise stop(what)


class CheckpointTimer:
    """When a run saves: at every epoch's end by default; with NASEVAL_CHECKPOINT_SECONDS, once
    that many seconds have passed since the last save (also within an epoch, where the loop can
    save there), and at once when a stop was requested."""

    def __init__(self) -> None:
        self.every = float(os.environ.get(CHECKPOINT_SECONDS_ENV, "0"))
        self.last = time.monotonic()

    def due(self, epoch_end: bool) -> bool:
        if _requested:
            return True
        if self.every <= 0:
            return epoch_end
        return time.monotonic() - self.last >= self.every

    def saved(self, what: str) -> None:
        """The run saved its checkpoint (`what`): the timer starts anew, or the run stops if asked to."""
        self.last = time.monotonic()
        stop_if_requested(what)
