"""`random_search`: the best of `budget` cells drawn uniformly (Lindauer & Hutter 2020's baseline).

Unlike `random`, which keeps its one drawn cell unscored, it scores each drawn cell and keeps the
best: with the oracle (the default) each cell as if trained from scratch, so it is the
multi-trial baseline that a policy without weight sharing must beat at equal cost; with shared
weights, under a supernet trained as random_ws's.
"""

from __future__ import annotations

from dataclasses import dataclass

from naseval.evaluators import EVALUATORS, start_multi_trial
from naseval.policies.base import MultiTrialConfig, SearchPolicy, SearchResult, SearchTask, best_so_far_trace, register
from naseval.weight_sharing import ranked_candidates


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
        cells = space.sample_distinct(config.budget, rng)
        scores = evaluator.score(cells)
        rankings = evaluator.rank_all(scores) if space.size <= config.score_all_up_to else {}
        return SearchResult(ranked_candidates(cells, scores, space), best_so_far_trace(cells, scores, space),
                            rankings, evaluator=evaluator.facts())
