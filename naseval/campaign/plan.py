"""Which stages a launch submits now: those whose needs are met, one wave at a time.

Pure functions of the pipeline and of what the ledger and the executor know, so the planning is
tested without a cluster. A stage is `done` when the workspace has it up to date or a job of its
key succeeded; `active` while its job is queued or running; `failed` once its jobs failed more
than `retries` times (or were interrupted more than `interruptions` times); `ready` when every
stage it needs is done; `waiting` otherwise, or `blocked` when a stage it needs failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from naseval.campaign.pipeline import Pipeline


class State(str, Enum):
    DONE = "done"
    ACTIVE = "active"
    READY = "ready"
    WAITING = "waiting"
    FAILED = "failed"
    BLOCKED = "blocked"


@dataclass(frozen=True)
class JobFacts:
    """What the ledger and the executor say about one stage key."""

    succeeded: bool = False
    active: bool = False
    failures: int = 0  # jobs for the key that failed; interrupted ones (preempted, out of time) aside
    interruptions: int = 0  # jobs for the key that were interrupted


@dataclass(frozen=True)
class Plan:
    states: dict[str, State]  # every stage the targets need, needs first

    def having(self, state: State) -> list[str]:
        return [name for name, s in self.states.items() if s == state]

    @property
    def finished(self) -> bool:
        """Nothing is running and nothing more can start."""
        return not any(s in (State.ACTIVE, State.READY, State.WAITING) for s in self.states.values())


def plan(pipeline: Pipeline, targets: list[str], facts: dict[str, JobFacts], retries: int,
         interruptions: int = 50) -> Plan:
    """The state of every stage `targets` need; `facts` by stage key. A stage whose job ended
    without success is ready again while it has failed no more than `retries` times and been
    interrupted no more than `interruptions` times."""
    states: dict[str, State] = {}
    for name in pipeline.closure(targets):
        stage = pipeline.stages[name]
        job = facts.get(stage.key, JobFacts())
        needs = [states[need] for need in stage.needs]
        if name not in pipeline.stale or job.succeeded:
            states[name] = State.DONE
        elif job.active:
            states[name] = State.ACTIVE
        elif job.failures > retries or job.interruptions > interruptions:
            states[name] = State.FAILED
        elif any(s in (State.FAILED, State.BLOCKED) for s in needs):
            states[name] = State.BLOCKED
        elif all(s == State.DONE for s in needs):
            states[name] = State.READY
        else:
            states[name] = State.WAITING
    return Plan(states)
