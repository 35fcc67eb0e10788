"""`landmark`: landmark regularization of the supernet (Yu et al., "Landmark regularization:
ranking guided super-net training in neural architecture search", CVPR 2021;
kcyu2014/nas-landmarkreg).

A few cells, the landmarks, have a known order. Each training step adds to the drawn cell's loss
a ranking penalty on one pair of landmarks (better, worse): coefficient x max(0, L(better) -
L(worse)), the supernet's losses of both on a validation minibatch. The penalty is zero when the
supernet already orders the pair as the landmarks are ordered, and pushes the better one's loss
down otherwise.

The landmarks' order comes from the oracle stage's held-out seeds (their mean validation
perplexity), never from the seeds that judge: the analysis refuses evaluators that answered from
the judging seeds, as it refuses oracle searches.

As the original (landmark_procedures.py; their best setting, validate-landmarkloss.sh):
- the `mae_relu` penalty, no margin; one pair per step (`landmark_loss_random_pairs` 1), drawn
  as a = randint(0, n - 2), b = randint(a + 1, n - 1) over the landmarks sorted best first;
- on a validation minibatch (`landmark_use_valid`), each landmark from a zero recurrent state;
- the coefficient 10 on the `cosine_increase` schedule, set once per epoch: zero before
  `warmup_epochs`, then coefficient x (1 + cos(pi (e - warmup) / epochs + pi)) / 2, so that it
  rises from 0 and, as in the original, never reaches the full coefficient (half of it here, at
  10 epochs with a warm-up of 4; NAS-Bench-201's 400 with 150 reach 0.69); `constant` applies the
  coefficient from the warm-up on;
- landmarks drawn at random.

How many landmarks: the original uses 30 to 50 of spaces of thousands of cells. Here the whole
space is 32 cells and its order is what the evaluator is judged on, so 50 would hand the
evaluator the oracle's order of every cell. The default, 8 (a quarter of the space), gives 28
pairs to learn from and leaves 24 cells whose rank the supernet alone decides. The training
perplexity the supernet logs includes the penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from naseval.core.errors import NasevalError
from naseval.core.params import require
from naseval.core.space import Genotype
from naseval.search.evaluators import SharedWeights
from naseval.search.oracle import OracleTable
from naseval.search.supernet import ValidationStream

SCHEDULES = ("cosine_increase", "constant")


@dataclass(frozen=True)
class LandmarkConfig:
    """params.yaml `search.evaluators.landmark`."""

    landmarks: int = 8  # cells whose held-out order the supernet is taught
    coefficient: float = 10.0
    schedule: str = "cosine_increase"  # or constant
    warmup_epochs: int = 4  # of plain supernet training before the penalty starts

    def __post_init__(self) -> None:
        require(self.landmarks >= 2, "landmarks", self.landmarks, "an integer >= 2 (a pair)")
        require(self.coefficient >= 0, "coefficient", self.coefficient, "a number >= 0")
        require(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        require(self.warmup_epochs >= 0, "warmup_epochs", self.warmup_epochs, "an integer >= 0")


def landmark_penalty(better_loss: torch.Tensor, worse_loss: torch.Tensor) -> torch.Tensor:
    """The original's `mae_relu`: zero when the better landmark already has the lower loss."""
    return torch.relu(better_loss - worse_loss)


def coefficient_at(config: LandmarkConfig, epoch: int, epochs: int) -> float:
    """The penalty's weight in the `epoch`-th epoch (from 1) of `epochs`."""
    done = epoch - 1 - config.warmup_epochs
    if done < 0:
        return 0.0
    if config.schedule == "constant":
        return config.coefficient
    return config.coefficient * 0.5 * (1 + math.cos(math.pi * (done / epochs + 1)))


def ordered_landmarks(cells: list[Genotype], table: OracleTable, to_id) -> list[Genotype]:
    """The landmarks best first, by their mean validation perplexity over the held-out seeds."""
    def held_out_mean(cell: Genotype) -> float:
        results = [by_cell[to_id(cell)] for by_cell in table.valid_ppl.values() if to_id(cell) in by_cell]
        if not results:
            raise NasevalError(f"landmark cell {to_id(cell)} diverged under every oracle seed: it has no order")
        return float(np.mean(results))
    return sorted(cells, key=lambda cell: (held_out_mean(cell), to_id(cell)))


class Landmark(SharedWeights):
    name = "landmark"

    def __init__(self, *args, table: OracleTable, settings: LandmarkConfig = LandmarkConfig(), **kwargs):
        super().__init__(*args, **kwargs)
        if not table.valid_ppl:
            raise NasevalError("the landmark evaluator orders its landmarks by the oracle's held-out seeds: set "
                               "oracle.seeds and run the oracle stage")
        table.check_matches(self.space)
        require(settings.landmarks <= self.space.size, "search.evaluators.landmark.landmarks", settings.landmarks,
                f"at most the space's {self.space.size} cells")
        self.settings, self.seeds = settings, table.seeds
        self.landmarks = ordered_landmarks(self.space.sample_distinct(settings.landmarks, self.rng), table,
                                           self.space.to_id)
        self.pair_batches = ValidationStream(self.quick_batches.data, self.config.bptt)
        self.penalized_steps = 0

    def objective(self, model, step, arch):
        loss, hidden, raw = super().objective(model, step, arch)
        weight = coefficient_at(self.settings, math.floor(step.epochs_done) + 1, self.config.epochs)
        if weight == 0:
            return loss, hidden, raw
        n = len(self.landmarks)
        a = int(self.rng.integers(0, n - 1))
        b = int(self.rng.integers(a + 1, n))
        x, y = self.pair_batches.next()
        zero = model.init_hidden(x.size(1))
        better, worse = (model.loss(x, y, zero, self.landmarks[i])[0] for i in (a, b))
        self.penalized_steps += 1
        return loss + weight * landmark_penalty(better, worse), hidden, raw

    @property
    def training_epochs(self):
        """The drawn cell's epochs, and two landmark passes per penalized step over minibatches of
        the training batch size (each a fraction of an epoch: steps per epoch are known only
        after the fact, so this counts the steps)."""
        steps_per_epoch = (self.train_data.size(0) - 1) / self.config.bptt
        return float(self.cost + 2 * self.penalized_steps / steps_per_epoch)

    def stateful(self):
        return {**super().stateful(), "pair_batches": self.pair_batches}

    def state_dict(self):
        return {**super().state_dict(), "penalized_steps": self.penalized_steps}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.penalized_steps = state["penalized_steps"]

    def facts(self):
        return {**super().facts(), "seeds": self.seeds,
                "landmarks": [self.space.to_id(cell) for cell in self.landmarks]}
