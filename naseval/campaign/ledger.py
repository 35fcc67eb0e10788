"""A campaign's shared folder: the ledger of submitted jobs, each key's outcome, logs, resume
folders and the jobs' clones.

The ledger is what makes a launch safe to repeat: every submission is written there under the
stage's key while an exclusive lock is held, so a second launch, or a new one after the driver
was killed, sees what is already queued or running and submits nothing twice. Each job writes
its own outcome when it ends. An attempt that ended without success is classified once, and
only a failed one spends a retry: one warned before preemption or its time limit stops after
saving and says so in its outcome, and Slurm's accounting, where there is one, names the
preempted and the timed-out.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from naseval.campaign.config import absolute
from naseval.core.errors import WorkerDied
from naseval.core.runtime import write_json

FORMAT = "naseval-ledger-1"


class Campaign:
    def __init__(self, folder: Path):
        self.folder = absolute(folder)

    def job_folder(self, key: str) -> Path:
        return self.folder / "jobs" / key

    def outcome_file(self, key: str) -> Path:
        return self.job_folder(key) / "outcome.json"

    def resume_folder(self, key: str) -> Path:
        return self.folder / "resume" / key

    def clone_folder(self, key: str, job_id: str) -> Path:
        return self.folder / "work" / f"{key}-{job_id.replace(':', '-')}"

    def outcome(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.outcome_file(key).read_text())
        except (OSError, json.JSONDecodeError):  # none yet, or one being replaced
            return None

    def succeeded(self, key: str) -> bool:
        outcome = self.outcome(key)
        return bool(outcome and outcome["succeeded"])

    def write_outcome(self, key: str, outcome: dict[str, Any]) -> None:
        write_json(self.outcome_file(key), outcome)

    @contextmanager
    def ledger(self) -> Iterator[dict[str, Any]]:
        """The ledger's entries by key, under an exclusive lock; changes are written on exit, also
        when the block raises, so that a failing sbatch loses none of the submissions before it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "ledger.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.folder / "ledger.json"
            entries = json.loads(path.read_text())["jobs"] if path.is_file() else {}
            try:
                yield entries
            finally:
                self.save(entries)

    def save(self, entries: dict[str, Any]) -> None:
        """Write the ledger now (under the lock `ledger` holds): after every submission."""
        write_json(self.folder / "ledger.json", {"format": FORMAT, "jobs": entries})

    def remove_dead_clones(self, living: set[str], executor: str) -> list[str]:
        """Remove the shared work folder's clones of `executor`'s jobs that are not in `living`
        (killed jobs leave theirs); the folders removed."""
        removed = []
        for clone in sorted((self.folder / "work").glob(f"*-{executor}-*")):
            job_id = f"{executor}:{clone.name.rsplit('-', 1)[1]}"
            if job_id not in living:
                shutil.rmtree(clone, ignore_errors=True)
                removed.append(clone.name)
        return removed


INTERRUPTED, FAILED = "interrupted", "failed"  # how an attempt without success ended
# Slurm's states for a job ended by the cluster, not by its own fault: none of them spends a retry.
INTERRUPTING_STATES = {"PREEMPTED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


def classify_end(attempt: dict[str, Any], outcome: dict[str, Any] | None,
                 end_state: Callable[[], str | None]) -> str:
    """How an attempt that is no longer queued or running ended: succeeded, interrupted (warned
    and saved, as its outcome says, or preempted or out of time, as Slurm's accounting says) or
    failed (anything else, a cancellation included). A stage that reported a dead worker failed
    whatever else happened: a batch too large for the node's memory would die again, and as an
    interruption it would be resubmitted without end."""
    own = outcome if outcome and outcome.get("job_id") == attempt["job_id"] else None
    if own and own["succeeded"]:
        return "succeeded"
    if own and (own.get("stage_error") or {}).get("error") == WorkerDied.__name__:
        return FAILED
    if own and own.get("stopped_by") == "SIGUSR1":
        return INTERRUPTED
    state = end_state()  # asked only here: sacct is slow, and most ends are told by the outcome
    if state and state.split()[0] in INTERRUPTING_STATES:
        return INTERRUPTED
    return FAILED


def record_attempt(entries: dict[str, Any], key: str, stage: str, job_id: str, executor: str,
                   commit: str, device: str | None = None) -> None:
    entry = entries.setdefault(key, {"stage": stage, "attempts": []})
    entry["attempts"].append({"job_id": job_id, "executor": executor, "commit": commit, "device": device,
                              "submitted": now()})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
