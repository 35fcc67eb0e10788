"""`random_search`: the best of `budget` cells drawn uniformly (Lindauer & Hutter 2020's baseline).

Unlike `random`, which keeps its one drawn cell unscored, it scores each drawn cell and keeps the
best: with the oracle (the default) each cell as if trained from scratch, so it is the
multi-trial baseline that a policy without weight sharing must beat at equal cost; with shared
weights, under a supernet trained as random_ws's.
"""

from __future__ import annotations

from dataclasses import dataclass

from naseval.policies.base import SearchPolicy, SearchTask, register
from naseval.policies.multi_trial import MultiTrialConfig, start_multi_trial
from naseval.policies.result import SearchResult, Trace, ranked_candidates
from naseval.search.family import EVALUATORS


@dataclass(frozen=True)
class RandomSearchConfig(MultiTrialConfig):
    """params.yaml `search.random_search`: the fields of MultiTrialConfig."""


@register
class RandomSearchPolicy(SearchPolicy):
    name = "random_search"
    Config = RandomSearchConfig
    evaluators = EVALUATORS

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng, evaluator = start_multi_trial(config, task)
        cells, trace, scores = space.sample_distinct(config.budget, rng), Trace(space), {}
        for cell in cells:  # one at a time, so that the trace has each cell's cost
            scores |= evaluator.score([cell])
            trace.add(cell, scores[space.to_id(cell)], evaluator.cost)
        rankings = evaluator.rank_all(scores) if space.size <= config.score_all_up_to else {}
        return SearchResult(ranked_candidates(cells, scores, space), trace.rows, rankings,
                            evaluator=evaluator.facts())
