"""`evolution`: regularized evolution (Real et al. 2019, "aging evolution").

A population of `population_size` cells drawn at random is scored; then each cycle samples
`sample_size` members, mutates the best of them in one decision (one node's op, or one node's
predecessor) into a child, scores the child, adds it and removes the oldest member. The pick is
the best cell scored over the whole run. The search ends when `budget` distinct cells have been
scored (under the oracle: trained) or after `max_cycles` cycles, since in a small space the
children soon repeat cells already scored, which cost nothing more.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from naseval.core.params import require
from naseval.core.space import Genotype, SearchSpace
from naseval.policies.base import SearchPolicy, SearchTask, register
from naseval.policies.multi_trial import MultiTrialConfig, start_multi_trial
from naseval.policies.result import SearchResult, Trace, ranked_candidates
from naseval.search.family import EVALUATORS


@dataclass(frozen=True)
class EvolutionConfig(MultiTrialConfig):
    """params.yaml `search.evolution`: the fields of MultiTrialConfig and the evolution's own."""

    population_size: int = 8  # Real et al.: 100 on NASBench-101, in a space of 423k cells
    sample_size: int = 4  # the tournament; Real et al.: 10 to 25
    max_cycles: int = 200

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("population_size", "sample_size", "max_cycles"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(self.population_size <= self.budget, "population_size", self.population_size,
                f"at most budget ({self.budget}): the first population is scored whole")
        require(self.sample_size <= self.population_size, "sample_size", self.sample_size,
                f"at most population_size ({self.population_size})")


def mutate(genotype: Genotype, space: SearchSpace, rng: np.random.Generator) -> Genotype:
    """The cell with one decision changed: a node drawn uniformly, then its op or (for a node with
    a choice) its predecessor, changed to another value drawn uniformly."""
    node = int(rng.integers(space.nodes))
    op, pred = genotype[node]
    if node > 0 and rng.random() < 0.5:
        pred = int(rng.choice([p for p in range(node + 1) if p != pred]))
    elif len(space.ops) > 1:
        op = str(rng.choice([o for o in space.ops if o != op]))
    return genotype[:node] + ((op, pred),) + genotype[node + 1:]


@register
class EvolutionPolicy(SearchPolicy):
    name = "evolution"
    Config = EvolutionConfig
    evaluators = EVALUATORS

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng, evaluator = start_multi_trial(config, task)
        budget = min(config.budget, space.size)
        trace, scores = Trace(space), {}

        def score(cell: Genotype) -> None:
            scores.update(evaluator.score([cell]))
            trace.add(cell, scores[space.to_id(cell)], evaluator.cost)

        first = space.sample_distinct(min(config.population_size, space.size), rng)
        for cell in first:
            score(cell)
        population, scored, cycles = deque(first), list(first), 0  # oldest first
        while len(scores) < budget and cycles < config.max_cycles:
            cycles += 1
            members = [population[int(i)] for i in rng.choice(len(population), config.sample_size, replace=False)]
            parent = min(members, key=lambda g: scores[space.to_id(g)])
            child = mutate(parent, space, rng)
            score(child)
            population.append(child)
            population.popleft()
            scored.append(child)
        distinct = list(dict.fromkeys(scored))
        rankings = evaluator.rank_all(scores) if space.size <= config.score_all_up_to else {}
        return SearchResult(ranked_candidates(distinct, scores, space), trace.rows, rankings,
                            details={"cycles": cycles, "distinct_scored": len(distinct)}, evaluator=evaluator.facts())
