"""How a search policy learns what its cells are worth, chosen per policy by `search.<policy>.evaluator`.

- `shared_weights`: one supernet, trained on the cells the policy asks for; a cell's score is its
  validation perplexity under the shared weights (ENAS, DARTS, NAO, random search with weight
  sharing).
- `oracle`: the cell's result trained from scratch, looked up in held-out ground-truth seeds
  (naseval/search/oracle.py): the same policy without weight sharing, at a cost in cells trained.

The rest of the family (weight-sharing remedies, short training, zero-cost proxies) lives in
modules of its own; `naseval/search/family.py` names them all and builds one by name.

A policy gets its evaluator from `make_evaluator` (through SearchTask.evaluator), trains it,
asks it for scores and checks what it may still score; it never asks which evaluator answers.
Scores are lower-is-better (perplexities; a proxy's negated value). Each states its cost so far
(`cost`, in `cost_unit`), which every search trace carries, and in `training_epochs`, one unit for
all: passes of one cell over the training split, forward and backward.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from naseval.core.data import Corpus, batchify
from naseval.core.space import Genotype, SearchSpace
from naseval.nn.model import LanguageModel
from naseval.search.oracle import Oracle
from naseval.search.supernet import SupernetConfig, ValidationStream, score_cells
from naseval.training.checkpoint import Checkpoint
from naseval.training.recipe import Step, TrainConfig, build_model_and_data, cell_loss, evaluate, fit, perplexity

SHARED_WEIGHTS_RANKING = "shared_weights_valid_ppl"  # the name of the supernet's ranking of all cells

CellForStep = Callable[[Any], Any]  # the training step (recipe.Step) -> what the supernet's cell takes


class Evaluator(ABC):
    name: ClassVar[str]

    @abstractmethod
    def train(self, cell_for_step: CellForStep, validation_cells: Callable[[], Sequence[Any]], label: str,
              after_epoch: Callable[[int], dict[str, Any]] | None = None,
              checkpoint: Checkpoint | None = None) -> list[dict[str, Any]]:
        """One training phase of `train.epochs` epochs, `after_epoch(epoch)` ending each; one history
        row per epoch, with `valid_ppl`: the mean score of `validation_cells()`. `cell_for_step` gets the
        training step (recipe.Step) and returns what the supernet's cell takes: a genotype, or DARTS's
        mixing weights."""

    @abstractmethod
    def score(self, cells: Sequence[Genotype]) -> dict[int, float]:
        """Cell id -> validation perplexity of each cell."""

    @abstractmethod
    def quick_score(self, cell: Genotype) -> float:
        """One cheap look at one cell (ENAS's reward)."""

    def restart_quick_scores(self) -> None:
        """The next quick look starts a new phase of them (ENAS's controller phase); nothing to do
        without a supernet."""

    @abstractmethod
    def rank_all(self, already: dict[int, float] | None = None) -> dict[str, dict[int, float]]:
        """Named rankings of every cell of the space that this evaluator can give for free;
        `already` holds current scores it need not recompute."""

    @property
    @abstractmethod
    def cost(self) -> float:
        """What it has spent so far, in `cost_unit`."""

    cost_unit: ClassVar[str]

    @property
    def training_epochs(self) -> float:
        """Its cost in passes of one cell over the training split (forward and backward)."""
        return float(self.cost)

    @property
    def ranking_name(self) -> str:
        """The name of its ranking of every cell (`rank_all`)."""
        return f"{self.name}_valid_ppl"

    def affordable(self, cells: Sequence[Genotype]) -> list[Genotype]:
        """The cells it can score now: all of them, without a budget."""
        return list(cells)

    @property
    def remaining(self) -> float:
        """How many more new cells it may score (math.inf: no limit)."""
        return math.inf

    @property
    def device(self) -> torch.device:
        """Where the policy's own models (a controller) should live."""
        return torch.device("cpu")

    def stateful(self) -> dict[str, Any]:
        """Its state that a search's checkpoint must save between training phases."""
        return {}

    def facts(self) -> dict[str, Any]:
        """What the search's record keeps about it."""
        return {"name": self.name, "cost": self.cost, "cost_unit": self.cost_unit,
                "training_epochs": self.training_epochs}


class SharedWeights(Evaluator):
    """The supernet: a cell's score is its validation perplexity under the shared weights. Its
    training keeps the final weights, as randomNAS and Yu et al. use them (not the best epoch's)."""

    name = "shared_weights"
    cost_unit = "supernet epochs"

    def __init__(self, space: SearchSpace, corpus: Corpus, supernet: SupernetConfig, rng: np.random.Generator,
                 score_batch_size: int | None = None, **cell_options):
        self.space, self.config, self.rng = space, supernet.train, rng
        self.epochs, self.phase_epochs = 0, 0  # before the current training phase, and in it
        self.model, (self.train_data, self.valid_data, _) = build_model_and_data(
            corpus, space.nodes, supernet.model, supernet.train, output=space.cell_output, **cell_options)
        # Scores read the whole validation split, by default as wide as validation during training.
        self.score_data = self.valid_data if score_batch_size is None else batchify(
            corpus.splits["valid"], score_batch_size, self.valid_data.device)
        # Quick looks read validation minibatches as wide as the training ones, as ENAS's rewards
        # (carpedm20 trainer.py batchifies them at batch_size, not at the evaluation's).
        self.quick_batches = ValidationStream(
            batchify(corpus.splits["valid"], self.config.batch_size, self.valid_data.device), self.config.bptt)
        self.quick_hidden: torch.Tensor | None = None  # the state the next quick look starts from

    def train(self, cell_for_step, validation_cells, label, after_epoch=None, checkpoint=None):
        def validate() -> float:
            return float(np.mean([evaluate(self.model, self.valid_data, arch, self.config.bptt)
                                  for arch in validation_cells()]))

        def ending(epoch: int) -> dict[str, Any]:
            self.phase_epochs = epoch  # cost() is current inside after_epoch
            return after_epoch(epoch) if after_epoch else {}

        fitted = fit(self.model, self.train_data, self.config, self.rng, cell_for_step, validate, label,
                     after_epoch=ending, checkpoint=checkpoint, objective=self.objective)
        self.epochs, self.phase_epochs = self.epochs + len(fitted.history), 0  # a resumed phase's history is whole
        return fitted.history

    def objective(self, model: LanguageModel, step: Step, arch: Any) -> tuple[torch.Tensor, ...]:
        """What each training step minimizes (recipe.Objective): the drawn cell's loss."""
        return cell_loss(model, step, arch)

    @property
    def cost(self):
        return self.epochs + self.phase_epochs

    def score(self, cells):
        return score_cells(self.model, self.score_data, cells, self.space, self.config.bptt)

    def quick_score(self, cell):
        """The cell's perplexity on the next validation minibatch. As ENAS's rewards (carpedm20
        trainer.py:393-467), the recurrent state carries over from one look to the next, whichever
        cell took it, and starts from zero when the minibatches start over."""
        self.model.eval()
        if self.quick_batches.at_start:  # new, restarted or wrapping: as the state
            self.quick_hidden = self.model.init_hidden(self.config.batch_size)
        x, y = self.quick_batches.next()
        with torch.no_grad():
            loss, self.quick_hidden, _ = self.model.loss(x, y, self.quick_hidden, self.model.cell.arch_of(cell))
        return perplexity(loss.item())

    def restart_quick_scores(self):
        """From the first validation minibatch and a zero state, as each of ENAS's controller phases."""
        self.quick_batches.restart()  # the next look starts the state anew too

    def rank_all(self, already=None):
        already = already or {}
        unscored = [g for g in self.space.enumerate() if self.space.to_id(g) not in already]
        return {self.ranking_name: already | self.score(unscored)}

    @property
    def device(self):
        return self.valid_data.device

    def stateful(self):
        return {"model": self.model, "quick_batches": self.quick_batches, "supernet_epochs": self}

    def state_dict(self) -> dict[str, Any]:
        """Its epochs before the current phase (the phase's own come back with fit's history) and
        the quick looks' state."""
        return {"epochs": self.epochs, "quick_hidden": self.quick_hidden}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.quick_hidden = state["epochs"], state["quick_hidden"]


class OracleEvaluator(Evaluator):
    """Nothing to train: a training phase only runs the policy's `after_epoch` (none: the phase is
    empty), and ends after the epoch in which the oracle refused a cell past the budget. It
    validates with the cells it has already trained, never training one for validation."""

    name = "oracle"
    cost_unit = "cells trained"

    def __init__(self, oracle: Oracle, train_config: TrainConfig):
        self.oracle, self.config = oracle, train_config
        torch.set_num_threads(train_config.threads)  # the policy's own models (controller, predictor) run on CPU
        self.stopped: str | None = None

    def train(self, cell_for_step, validation_cells, label, after_epoch=None, checkpoint=None):
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

    @property
    def cost(self):
        return self.oracle.spent

    @property
    def training_epochs(self):
        """Each cell it trained, for the epochs the oracle stage trained it."""
        return float(self.oracle.spent * self.oracle.table.epochs)

    def stateful(self):
        return {"oracle": self.oracle}

    def facts(self):
        return {**super().facts(), **self.oracle.facts(), "stopped": self.stopped}


def train_on_random_cells(evaluator: Evaluator, space: SearchSpace, rng: np.random.Generator, validation_cells: int,
                          after_epoch: Callable[[int], dict[str, Any]] | None = None,
                          checkpoint: Checkpoint | None = None) -> list[dict[str, Any]]:
    """Random search with weight sharing's whole supernet training (Li & Talwalkar 2019): a cell
    drawn uniformly per minibatch, validated on `validation_cells` cells drawn once. The oracle
    has nothing to train."""
    probes = space.sample_distinct(validation_cells, rng)
    return evaluator.train(lambda step: space.sample(rng), lambda: probes, "supernet", after_epoch=after_epoch,
                           checkpoint=checkpoint)
