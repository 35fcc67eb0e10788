"""Worker processes that a stage watches, so that it never waits for a result that cannot come.

`multiprocessing.Pool` replaces a worker that dies (the kernel's out-of-memory killer, a signal
to the whole process group) with a new one and waits for ever for the jobs the dead one held.
Here the stage hands each worker one job at a time over its own pipe and waits on the pipes and
on the workers' sentinels at once, so it knows at every moment which job each worker holds and
notices a death at once:

- a worker that dies while no stop was requested ends the run: the others are asked to stop
  (they save their checkpoints), their results still reach the caller, then `WorkerExit` names
  the dead worker's job and how it ended;
- once a stop was requested (`preemption`), no new job starts; a worker ended by the stop's own
  signal (SIGTERM or SIGINT to the whole process group, or SIGUSR1 forwarded, before it could
  listen) is part of the stop.

Workers start with `spawn`, not `fork`: a forked child inherits the parent's OpenMP state and
can hang.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import TypeVar

from naseval.core import preemption

J = TypeVar("J")
R = TypeVar("R")

PR_SET_PDEATHSIG = 1  # linux/prctl.h
STOP_WAIT_SECONDS = 25.0  # for the others to save once one died: within Slurm's default grace (KillWait 30 s)
# a worker ended by a stop request's own signal before it listened for it (while it started)
_STOP_DEATHS = {-number for number in preemption.STOP_SIGNALS}


class WorkerExit(Exception):
    """A worker ended while it held `job` and no stop was requested (`exitcode` as multiprocessing's)."""

    def __init__(self, job, exitcode: int | None):
        super().__init__(f"a worker {describe_exit(exitcode)}")
        self.job, self.exitcode = job, exitcode

    @property
    def killed(self) -> bool:
        """SIGKILL, which most often comes from the kernel's out-of-memory killer."""
        return self.exitcode == -signal.SIGKILL


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"was killed by {signal.Signals(-exitcode).name}"
    return f"exited with code {exitcode}"


def _stop_when_the_stage_dies() -> None:
    """Linux: the kernel sends this worker a stop request (SIGUSR1) when the stage dies, say of
    SIGKILL, so that it saves and ends instead of training its batch on for nobody."""
    try:
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGUSR1)
    except (OSError, AttributeError):
        pass
    stage = multiprocessing.parent_process()
    if stage is not None and os.getppid() != stage.pid:  # it died before the request was in place
        os.kill(os.getpid(), signal.SIGUSR1)


def _serve(connection: Connection, work: Callable[[J], R]) -> None:
    """A worker's life: one job at a time until the stage sends None or goes away."""
    preemption.listen_as_worker()
    _stop_when_the_stage_dies()
    try:
        while (job := connection.recv()) is not None:
            try:
                answer = (True, work(job))
            except Exception as error:  # the stage raises it: a worker's error is the stage's
                answer = (False, error)
            connection.send(answer)
    except (EOFError, OSError):  # the stage is gone: what this worker trained is in its checkpoint
        return


def run_watched(work: Callable[[J], R], jobs: Sequence[J], workers: int) -> Iterator[R]:
    """`work(job)` for each job, in `workers` processes, yielded as they finish (in any order).

    `work` must be picklable (a module-level function) and answer a stop request itself, as the
    training loops do (preemption.requested). Jobs not begun when a stop is requested are not
    begun at all; the caller counts what it received. Raises `WorkerExit` after the other
    workers' results, or the error a job raised.
    """
    context = multiprocessing.get_context("spawn")
    pending: deque[J] = deque(jobs)
    held: dict[multiprocessing.process.BaseProcess, tuple[Connection, J | None]] = {}
    for _ in range(min(workers, len(pending))):
        ours, theirs = context.Pipe()
        process = context.Process(target=_serve, args=(theirs, work), daemon=True)
        process.start()
        theirs.close()
        held[process] = (ours, None)
    died: WorkerExit | None = None

    def hand_out(process) -> None:
        connection, _ = held[process]
        job = pending.popleft() if pending and died is None and not preemption.requested() else None
        held[process] = (connection, job)
        if job is not None:
            with contextlib.suppress(OSError):  # it died meanwhile: its sentinel says so next
                connection.send(job)

    def ask_all_to_stop() -> None:
        for process in held:
            if process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGUSR1)  # a worker's warning: save, then return

    try:
        for process in held:
            hand_out(process)
        while any(job is not None for _, job in held.values()):
            busy = [p for p, (_, job) in held.items() if job is not None]
            ready = wait([held[p][0] for p in busy] + [p.sentinel for p in busy],
                         timeout=STOP_WAIT_SECONDS if died else None)
            if not ready:  # the others did not stop in time: what they hold stays in their checkpoints
                break
            for process in busy:
                connection, job = held[process]
                if connection in ready or connection.poll():
                    try:
                        ok, value = connection.recv()
                    except (EOFError, OSError):  # it died before, or after, its last word
                        ok, value = None, None
                    if ok is False:
                        raise value
                    if ok:
                        hand_out(process)
                        yield value
                        continue
                if process.sentinel in ready or not process.is_alive():
                    process.join()
                    held[process] = (connection, None)
                    if preemption.requested() and process.exitcode in _STOP_DEATHS:
                        continue  # part of the stop: its job stays where its checkpoint left it
                    if died is None:
                        died = WorkerExit(job, process.exitcode)
                        ask_all_to_stop()
    finally:  # every worker ends here: idle ones on None, busy ones (an error above) after a save
        ask_all_to_stop()
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        for process, (connection, _) in held.items():
            with contextlib.suppress(OSError):
                connection.send(None)
            process.join(timeout=max(0.0, deadline - time.monotonic()))
            if process.is_alive():  # a worker that does not answer cannot be allowed to hold the stage
                process.kill()
                process.join()
            connection.close()
    if died is not None:
        raise died
