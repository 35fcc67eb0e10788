"""`random_ws`: random search with weight sharing (Li & Talwalkar 2019; Yu et al. 2020).

The supernet is trained with one cell drawn uniformly per minibatch; candidates (every cell of
an enumerable space) are then scored by validation perplexity under the shared weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from naseval.evaluators import SHARED_WEIGHTS_RANKING, SharedWeights, warm_up
from naseval.model import ModelConfig
from naseval.params import require
from naseval.policies.base import SearchPolicy, SearchResult, SearchTask, check_evaluator, register
from naseval.runtime import seed_everything
from naseval.train import TrainConfig
from naseval.weight_sharing import RankingHistory, ranked_candidates


@dataclass(frozen=True)
class RandomWSConfig:
    """params.yaml `search.random_ws`."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the supernet
    train: TrainConfig = field(default_factory=TrainConfig)  # the supernet's training recipe
    score_all_up_to: int = 64  # spaces this small are ranked whole
    num_candidates: int = 100  # distinct cells scored in larger spaces
    validation_cells: int = 4  # cells whose mean validation loss tracks the supernet
    ranking_every: int = 2  # epochs between rankings of the whole space during training; 0: none
    evaluator: str = "shared_weights"

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, ("shared_weights",), " (without weight sharing this is random_search)")
        for key in ("score_all_up_to", "num_candidates", "validation_cells"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


@register
class RandomWSPolicy(SearchPolicy):
    name = "random_ws"
    Config = RandomWSConfig
    evaluators = ("shared_weights",)

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng = seed_everything(task.seed)
        evaluator = SharedWeights(space, task.corpus, config.model, config.train, rng)
        score_all = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if score_all else 0, evaluator.rank_all)
        rows = warm_up(evaluator, space, rng, config.validation_cells, after_epoch=history,
                       checkpoint=task.tracking(history=history, **evaluator.stateful()))
        rankings = evaluator.rank_all() if score_all else {}
        cells = list(space.enumerate()) if score_all else space.sample_distinct(config.num_candidates, rng)
        scores = rankings.get(SHARED_WEIGHTS_RANKING) or evaluator.score(cells)
        return SearchResult(ranked_candidates(cells, scores, space), rows, rankings,
                            ranking_history=history.snapshots, evaluator=evaluator.facts())
