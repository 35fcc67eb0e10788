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
from dataclasses import dataclass, field

import numpy as np

from naseval.evaluators import EVALUATORS, make_evaluator, warm_up
from naseval.model import ModelConfig
from naseval.params import require
from naseval.policies.base import (
    SearchPolicy,
    SearchResult,
    SearchTask,
    best_so_far_trace,
    check_evaluator,
    register,
)
from naseval.runtime import seed_everything
from naseval.space import Genotype, SearchSpace
from naseval.train import TrainConfig
from naseval.weight_sharing import ranked_candidates


@dataclass(frozen=True)
class EvolutionConfig:
    """params.yaml `search.evolution`."""

    evaluator: str = "oracle"  # or shared_weights
    budget: int = 16  # distinct cells scored: under the oracle, cells trained
    population_size: int = 8  # Real et al.: 100 on NASBench-101, in a space of 423k cells
    sample_size: int = 4  # the tournament; Real et al.: 10 to 25
    max_cycles: int = 200
    model: ModelConfig = field(default_factory=ModelConfig)  # the supernet, under shared weights
    train: TrainConfig = field(default_factory=TrainConfig)  # its recipe
    validation_cells: int = 4  # cells whose mean validation loss tracks the supernet
    score_all_up_to: int = 64  # under shared weights, spaces this small are also ranked whole

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, EVALUATORS)
        for key in ("budget", "population_size", "sample_size", "max_cycles", "validation_cells", "score_all_up_to"):
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
        rng = seed_everything(task.seed)
        evaluator = make_evaluator(config.evaluator, space, task.corpus, config.model, config.train, rng,
                                   task.oracle, config.budget)
        warm_up(evaluator, space, rng, config.validation_cells, checkpoint=task.tracking(**evaluator.stateful()))
        budget = min(config.budget, space.size)
        first = space.sample_distinct(min(config.population_size, space.size), rng)
        scores = evaluator.score(first)
        population, scored, cycles = deque(first), list(first), 0  # oldest first
        while len(scores) < budget and cycles < config.max_cycles:
            cycles += 1
            members = [population[int(i)] for i in rng.choice(len(population), config.sample_size, replace=False)]
            parent = min(members, key=lambda g: scores[space.to_id(g)])
            child = mutate(parent, space, rng)
            scores |= evaluator.score([child])
            population.append(child)
            population.popleft()
            scored.append(child)
        distinct = list(dict.fromkeys(scored))
        rankings = evaluator.rank_all(scores) if space.size <= config.score_all_up_to else {}
        return SearchResult(ranked_candidates(distinct, scores, space), best_so_far_trace(scored, scores, space),
                            rankings, details={"cycles": cycles, "distinct_scored": len(distinct)},
                            evaluator=evaluator.facts())
