"""One evaluator on its own over the space: the `rank` stage's work (params.yaml `rank`).

Each evaluator ranks the same cells the same way a policy would use it: a supernet trains with a
cell drawn uniformly per minibatch (exactly as `random_ws`, so that `shared_weights` here gives
random_ws's ranking for the same seed), then scores every cell; the oracle's kin and the proxies
train nothing. A space too large to rank whole is ranked on `sample_cells` cells, the same ones
for every evaluator and seed (drawn with `sample_seed`), so that rankings compare cell for cell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from naseval.core.data import Corpus
from naseval.core.params import require
from naseval.core.records import without_seconds
from naseval.core.runtime import seed_everything
from naseval.core.space import Genotype, SearchSpace
from naseval.search.evaluators import train_on_random_cells
from naseval.search.family import EVALUATORS, EvaluatorSettings, make_evaluator
from naseval.search.oracle import OracleTable
from naseval.search.supernet import SupernetConfig
from naseval.training.checkpoint import Checkpoint


@dataclass(frozen=True)
class RankConfig:
    """params.yaml `rank`: which evaluators rank the space on their own, and how."""

    evaluators: tuple[str, ...] = EVALUATORS
    validation_cells: int = 4  # as random_ws: cells whose mean validation loss tracks a supernet
    score_all_up_to: int = 64  # spaces this small are ranked whole
    sample_cells: int = 100  # else this many cells, the same for every evaluator and seed
    sample_seed: int = 0

    def __post_init__(self) -> None:
        for name in self.evaluators:
            require(name in EVALUATORS, "evaluators", name, f"one of {', '.join(EVALUATORS)}")
        require(len(set(self.evaluators)) == len(self.evaluators), "evaluators", list(self.evaluators),
                "distinct names")
        for key in ("validation_cells", "score_all_up_to", "sample_cells"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")


def ranked_cells(space: SearchSpace, config: RankConfig) -> list[Genotype]:
    """Every cell of an enumerable space, else the same sample for every evaluator and seed."""
    if space.size <= config.score_all_up_to:
        return list(space.enumerate())
    return space.sample_distinct(config.sample_cells, np.random.default_rng(config.sample_seed))


def rank_space(name: str, seed: int, space: SearchSpace, corpus: Corpus, supernet: SupernetConfig,
               settings: EvaluatorSettings, config: RankConfig, oracle: OracleTable | None,
               checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """The record of evaluator `name`'s ranking with `seed`: its scores (lower is better), its cost
    (in its own unit, in training epochs and in seconds) and what it states about itself."""
    started = time.perf_counter()
    rng = seed_everything(seed)
    cells = ranked_cells(space, config)
    evaluator = make_evaluator(name, space, corpus, supernet, rng, oracle, len(cells), settings=settings)
    history = train_on_random_cells(evaluator, space, rng, config.validation_cells,
                                    checkpoint=checkpoint.tracking(**evaluator.stateful()) if checkpoint else None)
    scores = evaluator.score(cells)
    return {
        "evaluator": name, "seed": seed, "status": "ok", "reason": None,
        "space_size": space.size, "cell_output": space.cell_output,
        "ranking": evaluator.ranking_name, "enumerated": len(cells) == space.size,
        "scores": {str(cell): score for cell, score in sorted(scores.items())},
        "cost": evaluator.cost, "cost_unit": evaluator.cost_unit, "training_epochs": evaluator.training_epochs,
        "seconds": round(time.perf_counter() - started, 3), "facts": evaluator.facts(),
        "history": [without_seconds(row) for row in history],
    }


def failed_ranking(name: str, seed: int, space: SearchSpace, reason: str) -> dict[str, Any]:
    """The record of a ranking whose supernet diverged: no scores, and why."""
    return {"evaluator": name, "seed": seed, "status": "failed", "reason": reason, "space_size": space.size,
            "cell_output": space.cell_output, "scores": {}, "cost": None, "cost_unit": None,
            "training_epochs": None, "seconds": None, "facts": {}, "history": []}
