"""How a search policy learns what its cells are worth, chosen per policy by `search.<policy>.evaluator`.

- `shared_weights`: one supernet, trained on the cells the policy asks for; a cell's score is its
  validation perplexity under the shared weights (ENAS, DARTS, NAO, random search with weight
  sharing).
- `oracle`: the cell's result trained from scratch, looked up in held-out ground-truth seeds
  (naseval/oracle.py): the same policy without weight sharing, at a cost in cells trained.

A policy trains the evaluator, asks it for scores and checks what it may still score; it never
asks which evaluator answers. Scores are perplexities: lower is better.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from naseval.checkpoint import Checkpoint
from naseval.data import Corpus, batchify
from naseval.errors import NasevalError
from naseval.model import ModelConfig
from naseval.oracle import Oracle, OracleTable
from naseval.policies.base import EVALUATORS, MultiTrialConfig, SearchTask
from naseval.runtime import seed_everything
from naseval.space import Genotype, SearchSpace
from naseval.train import TrainConfig, build_model_and_data, evaluate, fit, perplexity
from naseval.weight_sharing import Chunks, score_cells

SHARED_WEIGHTS_RANKING = "shared_weights_valid_ppl"  # the name of the supernet's ranking of all cells

TrainCell = Callable[[int], Genotype]  # training step -> the cell to train on


class Evaluator(ABC):
    name: ClassVar[str]

    @abstractmethod
    def train(self, train_cell: TrainCell, validation_cells: Callable[[], Sequence[Genotype]], label: str,
              after_epoch: Callable[[int], dict[str, Any]] | None = None, checkpoint: Checkpoint | None = None,
              restore_best: bool = False) -> list[dict[str, Any]]:
        """One training phase of `train.epochs` epochs, `after_epoch(epoch)` ending each; one trace row
        per epoch, with `valid_ppl`: the mean score of `validation_cells()`."""

    @abstractmethod
    def score(self, cells: Sequence[Genotype]) -> dict[int, float]:
        """Cell id -> validation perplexity of each cell."""

    @abstractmethod
    def quick_score(self, cell: Genotype) -> float:
        """One cheap look at one cell (ENAS's reward)."""

    @abstractmethod
    def rank_all(self, already: dict[int, float] | None = None) -> dict[str, dict[int, float]]:
        """Named rankings of every cell of the space that this evaluator can give for free;
        `already` holds current scores it need not recompute."""

    def affordable(self, cells: Sequence[Genotype]) -> list[Genotype]:
        """The cells it can score now: all of them, without a budget."""
        return list(cells)

    @property
    def remaining(self) -> int | None:
        """How many more new cells it may score; None: no limit."""
        return None

    @property
    def device(self) -> torch.device:
        """Where the policy's own models (a controller) should live."""
        return torch.device("cpu")

    def stateful(self) -> dict[str, Any]:
        """Its state that a search's checkpoint must save between training phases."""
        return {}

    def facts(self) -> dict[str, Any]:
        """What the search's record keeps about it."""
        return {"name": self.name}


class SharedWeights(Evaluator):
    name = "shared_weights"

    def __init__(self, space: SearchSpace, corpus: Corpus, model_config: ModelConfig, train_config: TrainConfig,
                 rng: np.random.Generator, **cell_options):
        self.space, self.config, self.rng = space, train_config, rng
        self.model, (self.train_data, self.valid_data, _) = build_model_and_data(
            corpus, space.nodes, model_config, train_config, output=space.cell_output, **cell_options)
        # Quick looks read validation minibatches as wide as the training ones, as ENAS's rewards
        # (carpedm20 trainer.py batchifies them at batch_size, not at the evaluation's).
        self.quick_batches = Chunks(batchify(corpus.splits["valid"], train_config.batch_size, self.valid_data.device),
                                    train_config.bptt)

    def train(self, train_cell, validation_cells, label, after_epoch=None, checkpoint=None, restore_best=False):
        def validate() -> float:
            return float(np.mean([evaluate(self.model, self.valid_data, g, self.config.bptt)
                                  for g in validation_cells()]))

        fitted = fit(self.model, self.train_data, self.config, self.rng, train_cell, validate, label,
                     after_epoch=after_epoch, checkpoint=checkpoint)
        if restore_best:
            self.model.load_state_dict(fitted.best_state)
        return fitted.history

    def score(self, cells):
        return score_cells(self.model, self.valid_data, cells, self.space, self.config.bptt)

    def quick_score(self, cell):
        self.model.eval()
        x, y = self.quick_batches.next()
        with torch.no_grad():
            return perplexity(self.model.loss(x, y, self.model.init_hidden(x.size(1)), cell)[0].item())

    def rank_all(self, already=None):
        already = already or {}
        unscored = [g for g in self.space.enumerate() if self.space.to_id(g) not in already]
        return {SHARED_WEIGHTS_RANKING: already | self.score(unscored)}

    @property
    def device(self):
        return self.valid_data.device

    def stateful(self):
        return {"model": self.model, "quick_batches": self.quick_batches}


class OracleEvaluator(Evaluator):
    """Nothing to train: a training phase only runs the policy's `after_epoch` (none: the phase is
    empty), and ends after the epoch in which the oracle refused a cell past the budget. It
    validates with the cells it has already trained, never training one for validation."""

    name = "oracle"

    def __init__(self, oracle: Oracle, train_config: TrainConfig):
        self.oracle, self.config = oracle, train_config
        torch.set_num_threads(train_config.threads)  # the policy's own models (controller, predictor) run on CPU
        self.stopped: str | None = None

    def train(self, train_cell, validation_cells, label, after_epoch=None, checkpoint=None, restore_best=False):
        rows = []
        for epoch in range(1, self.config.epochs + 1 if after_epoch else 1):
            extra = after_epoch(epoch)
            known = [self.oracle.score(g) for g in validation_cells() if self.oracle.knows(g)]
            rows.append({"epoch": epoch, "valid_ppl": float(np.mean(known)) if known else None, **extra})
            if self.oracle.refused:
                self.stopped = f"{label}: the budget of {self.oracle.budget} cells was spent in epoch {epoch}"
                break
        return rows

    def score(self, cells):
        return {self.oracle.space.to_id(g): self.oracle.score(g) for g in cells}

    def quick_score(self, cell):
        return self.oracle.score(cell)

    def rank_all(self, already=None):
        return {}  # ranking every cell would train every cell

    def affordable(self, cells):
        """The cells it has trained, and the first new ones the budget still pays for."""
        room, kept, new = self.remaining, [], set()
        for cell in cells:
            if not self.oracle.knows(cell) and cell not in new:
                if room == 0:
                    continue
                new.add(cell)
                room -= 1
            kept.append(cell)
        return kept

    @property
    def remaining(self):
        return self.oracle.budget - self.oracle.spent

    def stateful(self):
        return {"oracle": self.oracle}

    def facts(self):
        return {"name": self.name, **self.oracle.facts(), "stopped": self.stopped}


def make_evaluator(name: str, space: SearchSpace, corpus: Corpus, model_config: ModelConfig, train_config: TrainConfig,
                   rng: np.random.Generator, oracle: OracleTable | None, budget: int, **cell_options) -> Evaluator:
    """The evaluator `name` for a search; `cell_options` shape the supernet (its weight sharing)."""
    if name == "shared_weights":
        return SharedWeights(space, corpus, model_config, train_config, rng, **cell_options)
    if name == "oracle":
        if oracle is None:
            raise NasevalError("the oracle evaluator needs the oracle stage's table (search --oracle)")
        return OracleEvaluator(Oracle(oracle, budget, rng, space), train_config)
    raise NasevalError(f"evaluator: expected one of {', '.join(EVALUATORS)}, got {name!r}")



def warm_up(evaluator: Evaluator, space: SearchSpace, rng: np.random.Generator, validation_cells: int,
            after_epoch: Callable[[int], dict[str, Any]] | None = None,
            checkpoint: Checkpoint | None = None) -> list[dict[str, Any]]:
    """Random search with weight sharing's training phase (Li & Talwalkar 2019): the supernet
    trains on a cell drawn uniformly per minibatch, validated on `validation_cells` cells drawn
    once, and keeps its best state. The oracle has nothing to train."""
    probes = space.sample_distinct(validation_cells, rng)
    return evaluator.train(lambda step: space.sample(rng), lambda: probes, "supernet", after_epoch=after_epoch,
                           checkpoint=checkpoint, restore_best=True)


def start_multi_trial(config: MultiTrialConfig, task: SearchTask) -> tuple[np.random.Generator, Evaluator]:
    """A multi-trial search's first steps (policies.base.MultiTrialConfig): seed everything, build
    its evaluator, and under shared weights train the supernet."""
    rng = seed_everything(task.seed)
    evaluator = make_evaluator(config.evaluator, task.space, task.corpus, config.model, config.train, rng,
                               task.oracle, config.budget)
    warm_up(evaluator, task.space, rng, config.validation_cells, checkpoint=task.tracking(**evaluator.stateful()))
    return rng, evaluator
