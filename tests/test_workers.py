"""The watched worker processes: results arrive, a job's error is raised, and a worker that dies
ends the run at once, after the other workers' results, naming the job it held."""

import os
import signal
import time

import pytest

from naseval.core import preemption
from naseval.core.workers import WorkerExit, run_watched


def square_or_die(job: int) -> int | None:
    """Job -1 kills its own worker as the out-of-memory killer would; job -2 raises; the others
    wait a little (so a death meets them mid-job) and square, or stop when asked."""
    if job == -1:
        os.kill(os.getpid(), signal.SIGKILL)
    if job == -2:
        raise ValueError("a job's own error")
    for _ in range(20):
        if preemption.requested():
            return None
        time.sleep(0.01)
    return job * job


def test_every_job_runs_once_in_the_workers():
    assert sorted(run_watched(square_or_die, list(range(7)), workers=3)) == [n * n for n in range(7)]


def test_a_worker_killed_mid_job_ends_the_run_after_the_others_results():
    received = []
    started = time.monotonic()
    with pytest.raises(WorkerExit, match="a worker was killed by SIGKILL") as lost:
        for result in run_watched(square_or_die, [3, -1, 4, 5, 6, 7, 8], workers=2):
            received.append(result)
    assert lost.value.job == -1 and lost.value.killed
    assert time.monotonic() - started < 30  # noticed, not waited for
    # the other worker was asked to stop: it answered (a square, or None for a stop), and no job
    # after the death began
    assert len(received) <= 3 and set(received) <= {9, 16, None}


def test_a_jobs_error_is_raised_in_the_stage():
    with pytest.raises(ValueError, match="a job's own error"):
        list(run_watched(square_or_die, [1, -2, 3], workers=2))
