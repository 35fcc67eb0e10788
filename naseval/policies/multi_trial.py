"""What the policies that score cell after cell (random search, evolution) share: their config's
common fields and their first steps. Registers no policy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from naseval.core.params import require
from naseval.core.runtime import seed_everything
from naseval.policies.base import SearchTask, check_evaluator
from naseval.search.evaluators import Evaluator, train_on_random_cells
from naseval.search.family import EVALUATORS


@dataclass(frozen=True)
class MultiTrialConfig:
    """Its evaluator, its budget, and under shared weights random_ws's supernet training."""

    evaluator: str = "oracle"  # or any other (naseval/search/family.py)
    budget: int = 16  # distinct cells scored: under the oracle and short training, cells trained
    validation_cells: int = 4  # under a supernet, cells whose mean validation loss tracks it
    score_all_up_to: int = 64  # under a supernet or a proxy, spaces this small are also ranked whole

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, EVALUATORS)
        for key in ("budget", "validation_cells", "score_all_up_to"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")


def start_multi_trial(config: MultiTrialConfig, task: SearchTask) -> tuple[np.random.Generator, Evaluator]:
    """Seed everything, build the evaluator, and train its supernet if it has one."""
    rng = seed_everything(task.seed)
    evaluator = task.evaluator(config.evaluator, rng, config.budget)
    train_on_random_cells(evaluator, task.space, rng, config.validation_cells,
                          checkpoint=task.tracking(**evaluator.stateful()))
    return rng, evaluator
