"""`random`: the paper's baseline. One cell drawn uniformly at random, no search, no score."""

from __future__ import annotations

from dataclasses import dataclass

from naseval.core.runtime import seed_everything
from naseval.policies.base import SearchPolicy, SearchTask, register
from naseval.policies.result import Candidate, SearchResult, Trace


@dataclass(frozen=True)
class RandomConfig:
    """params.yaml `search.random`: nothing to set; the seed draws the cell."""


@register
class RandomPolicy(SearchPolicy):
    name = "random"
    Config = RandomConfig

    def search(self, task: SearchTask) -> SearchResult:
        rng = seed_everything(task.seed)
        pick = task.space.sample(rng)
        trace = Trace(task.space)
        trace.add(pick, None, cost=0)
        return SearchResult([Candidate(pick, None)], trace.rows)
