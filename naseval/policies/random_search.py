"""`random_search`: the best of `budget` cells drawn uniformly (Lindauer & Hutter 2020's baseline).

Unlike `random`, which keeps its one drawn cell unscored, it scores each drawn cell and keeps the
best: with the oracle (the default) each cell as if trained from scratch, so it is the
multi-trial baseline that a policy without weight sharing must beat at equal cost; with shared
weights, under a supernet trained as random_ws's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
from naseval.train import TrainConfig
from naseval.weight_sharing import ranked_candidates


@dataclass(frozen=True)
class RandomSearchConfig:
    """params.yaml `search.random_search`."""

    evaluator: str = "oracle"  # or shared_weights
    budget: int = 16  # distinct cells drawn and scored: under the oracle, cells trained
    model: ModelConfig = field(default_factory=ModelConfig)  # the supernet, under shared weights
    train: TrainConfig = field(default_factory=TrainConfig)  # its recipe
    validation_cells: int = 4  # cells whose mean validation loss tracks the supernet
    score_all_up_to: int = 64  # under shared weights, spaces this small are also ranked whole

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, EVALUATORS)
        for key in ("budget", "validation_cells", "score_all_up_to"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")


@register
class RandomSearchPolicy(SearchPolicy):
    name = "random_search"
    Config = RandomSearchConfig
    evaluators = EVALUATORS

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng = seed_everything(task.seed)
        evaluator = make_evaluator(config.evaluator, space, task.corpus, config.model, config.train, rng,
                                   task.oracle, config.budget)
        warm_up(evaluator, space, rng, config.validation_cells, checkpoint=task.tracking(**evaluator.stateful()))
        cells = space.sample_distinct(config.budget, rng)
        scores = evaluator.score(cells)
        rankings = evaluator.rank_all(scores) if space.size <= config.score_all_up_to else {}
        return SearchResult(ranked_candidates(cells, scores, space), best_so_far_trace(cells, scores, space),
                            rankings, evaluator=evaluator.facts())
