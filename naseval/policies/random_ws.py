"""`random_ws`: random search with weight sharing (Li & Talwalkar 2019; Yu et al. 2020).

The supernet (`search.supernet`) is trained with one cell drawn uniformly per minibatch and keeps
its final weights; candidates (every cell of an enumerable space, else `num_candidates` drawn
uniformly) are then scored by validation perplexity on the whole validation split under the
shared weights, read `score_batch_size` sequences wide. randomNAS (liamcli/randomNAS_release,
darts_wrapper_discrete.py:37,72,200-218; random_weight_share.py:84-93) scores 1,000 candidates at
batch 1,024, and Yu et al. score every cell at batch 256
(weight_sharing_ranking_random_on_batch.py:268-275).

`evaluator` picks the supernet: plain `shared_weights`, or a remedy of its ranking (`few_shot`,
`fair_sampling`, `landmark`; docs/evaluators.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from naseval.core.params import require
from naseval.core.records import without_seconds
from naseval.core.runtime import seed_everything
from naseval.policies.base import SearchPolicy, SearchTask, check_evaluator, register
from naseval.policies.result import SearchResult, Trace, ranked_candidates
from naseval.search.evaluators import train_on_random_cells
from naseval.search.family import SUPERNETS
from naseval.search.supernet import RankingHistory


@dataclass(frozen=True)
class RandomWSConfig:
    """params.yaml `search.random_ws`."""

    evaluator: str = "shared_weights"  # or another supernet: few_shot, fair_sampling, landmark
    score_all_up_to: int = 64  # spaces this small are ranked whole
    num_candidates: int = 100  # distinct cells scored in larger spaces
    validation_cells: int = 4  # cells whose mean validation loss tracks the supernet
    ranking_every: int = 2  # epochs between rankings of the whole space during training; 0: none
    score_batch_size: int | None = None  # sequences side by side when scoring; None: the supernet's eval_batch_size

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, SUPERNETS, " (without a supernet it is random_search)")
        for key in ("score_all_up_to", "num_candidates", "validation_cells"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        if self.score_batch_size is not None:
            require(self.score_batch_size >= 1, "score_batch_size", self.score_batch_size, "an integer >= 1, or null")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


@register
class RandomWSPolicy(SearchPolicy):
    name = "random_ws"
    Config = RandomWSConfig
    evaluators = SUPERNETS  # without weight sharing it is random_search

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng = seed_everything(task.seed)
        evaluator = task.evaluator(self.evaluator_name, rng, score_batch_size=config.score_batch_size)
        score_all = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if score_all else 0, evaluator.rank_all)
        rows = train_on_random_cells(evaluator, space, rng, config.validation_cells, after_epoch=history,
                                     checkpoint=task.tracking(history=history, **evaluator.stateful()))
        rankings = evaluator.rank_all() if score_all else {}
        cells = list(space.enumerate()) if score_all else space.sample_distinct(config.num_candidates, rng)
        scores = rankings.get(evaluator.ranking_name) or evaluator.score(cells)
        trace = Trace(space)
        # Its pick over search time: the best cell of each ranking made during training, then the pick.
        for snapshot in history.snapshots:
            ranking = snapshot["rankings"][evaluator.ranking_name]
            best = min(ranking, key=ranking.get)
            trace.add(space.from_id(best), ranking[best], cost=snapshot["epoch"])
        candidates = ranked_candidates(cells, scores, space)
        trace.add(candidates[0].genotype, candidates[0].score, cost=evaluator.cost)
        details = {"supernet_history": [without_seconds(row) for row in rows]}
        return SearchResult(candidates, trace.rows, rankings, details=details,
                            ranking_history=history.snapshots, evaluator=evaluator.facts())
