"""A campaign's shared folder: the ledger of submitted jobs, each key's outcome, logs, resume
folders and the jobs' clones.

The ledger is what makes a launch safe to repeat: every submission is written there under the
stage's key while an exclusive lock is held, so a second launch, or a new one after the driver
was killed, sees what is already queued or running and submits nothing twice. Each job writes
its own outcome when it ends; a job that ends without one (cancelled, preempted, timed out,
killed) counts as an attempt that did not succeed.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from naseval.core.runtime import write_json

FORMAT = "naseval-ledger-1"


class Campaign:
    def __init__(self, folder: Path):
        self.folder = folder.resolve()

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
        """The ledger's entries by key, under an exclusive lock; changes are written on exit."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "ledger.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = self.folder / "ledger.json"
            entries = json.loads(path.read_text())["jobs"] if path.is_file() else {}
            yield entries
            write_json(path, {"format": FORMAT, "jobs": entries})

    def remove_clone(self, key: str, job_id: str) -> None:
        shutil.rmtree(self.clone_folder(key, job_id), ignore_errors=True)


def record_attempt(entries: dict[str, Any], key: str, stage: str, job_id: str, executor: str,
                   commit: str, device: str | None = None) -> None:
    entry = entries.setdefault(key, {"stage": stage, "attempts": []})
    entry["attempts"].append({"job_id": job_id, "executor": executor, "commit": commit, "device": device,
                              "submitted": now()})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
