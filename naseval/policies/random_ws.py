"""`random_ws`: random search with weight sharing (Li & Talwalkar 2019; Yu et al. 2020).

The supernet is trained with one cell drawn uniformly per minibatch; candidates (every cell of
an enumerable space) are then scored by validation perplexity under the shared weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from naseval.model import ModelConfig
from naseval.params import require
from naseval.policies.base import SearchPolicy, SearchResult, SearchTask, register
from naseval.runtime import seed_everything
from naseval.train import TrainConfig, build_model_and_data, evaluate, fit
from naseval.weight_sharing import RankingHistory, ranked_candidates, score_cells


@dataclass(frozen=True)
class RandomWSConfig:
    """params.yaml `search.random_ws`."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the supernet
    train: TrainConfig = field(default_factory=TrainConfig)  # the supernet's training recipe
    score_all_up_to: int = 64  # spaces this small are ranked whole
    num_candidates: int = 100  # distinct cells scored in larger spaces
    validation_cells: int = 4  # cells whose mean validation loss tracks the supernet
    ranking_every: int = 2  # epochs between rankings of the whole space during training; 0: none

    def __post_init__(self) -> None:
        for key in ("score_all_up_to", "num_candidates", "validation_cells"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


@register
class RandomWSPolicy(SearchPolicy):
    name = "random_ws"
    Config = RandomWSConfig

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng = seed_everything(task.seed)
        model, (train_data, valid_data, _) = build_model_and_data(task.corpus, space.nodes, config.model,
                                                                  config.train, output=space.cell_output)
        probes = space.sample_distinct(config.validation_cells, rng)

        def validate() -> float:
            return float(np.mean([evaluate(model, valid_data, g, config.train.bptt) for g in probes]))

        score_all = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if score_all else 0, lambda: {
            "shared_weights_valid_ppl": score_cells(model, valid_data, space.enumerate(), space, config.train.bptt)})
        fitted = fit(model, train_data, config.train, rng, lambda step: space.sample(rng), validate, "supernet",
                     after_epoch=history, checkpoint=task.tracking(history=history))
        model.load_state_dict(fitted.best_state)

        cells = list(space.enumerate()) if score_all else space.sample_distinct(config.num_candidates, rng)
        scores = score_cells(model, valid_data, cells, space, config.train.bptt)
        rankings = {"shared_weights_valid_ppl": scores} if score_all else {}
        return SearchResult(ranked_candidates(cells, scores, space), fitted.history, rankings,
                            ranking_history=history.snapshots)
