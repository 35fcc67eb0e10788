"""`random`: the paper's baseline. Cells drawn uniformly at random, no search, no scores."""

from __future__ import annotations

from dataclasses import dataclass

from naseval.params import require
from naseval.policies.base import Candidate, SearchPolicy, SearchResult, SearchTask, register
from naseval.runtime import seed_everything
from naseval.space import format_genotype


@dataclass(frozen=True)
class RandomConfig:
    """params.yaml `search.random`."""

    num_candidates: int = 1  # cells drawn; the first one is the policy's pick

    def __post_init__(self) -> None:
        require(self.num_candidates >= 1, "num_candidates", self.num_candidates, "an integer >= 1")


@register
class RandomPolicy(SearchPolicy):
    name = "random"
    Config = RandomConfig

    def search(self, task: SearchTask) -> SearchResult:
        rng = seed_everything(task.seed)
        draws = [task.space.sample(rng) for _ in range(self.config.num_candidates)]
        trace = [{"step": step, "best_genotype": format_genotype(draws[0]), "best_score": None}
                 for step in range(1, len(draws) + 1)]
        return SearchResult([Candidate(g, None) for g in draws], trace)
