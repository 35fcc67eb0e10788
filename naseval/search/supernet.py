"""The supernet every weight-sharing policy trains (`search.supernet`), and what they all do with
it: score cells, record rankings over search time, read validation minibatches."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from naseval.core.data import get_batch
from naseval.core.space import Genotype, SearchSpace
from naseval.nn.model import LanguageModel, ModelConfig
from naseval.nn.stacked import evaluate_cells
from naseval.training.recipe import TrainConfig, evaluate, perplexity


@dataclass(frozen=True)
class SupernetConfig:
    """params.yaml `search.supernet`: the supernet of every weight-sharing policy and its training
    recipe, one for all so that their rankings differ by policy, not by recipe. A policy's section
    may override parts of it under `supernet:` where its original trains differently (NAO: epochs
    per round)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


SCORE_BATCH = 32  # cells scored together: their states and per-cell weights stay within memory


def score_cells(
    model: LanguageModel,
    valid_data: torch.Tensor,
    cells: Iterable[Genotype],
    space: SearchSpace,
    bptt: int,
) -> dict[int, float]:
    """Cell id -> validation perplexity under the shared weights (a DARTS supernet scores a
    genotype's one-hot mixing weights, `MixedCell.arch_of`). The fast implementation
    scores up to SCORE_BATCH cells at once; the reference one cell after the other."""
    cells = list(cells)
    if not model.fused_loss:
        return {space.to_id(g): perplexity(evaluate(model, valid_data, model.cell.arch_of(g), bptt))
                for g in tqdm(cells, desc="score cells", unit="cell", leave=False)}
    scores = {}
    for start in range(0, len(cells), SCORE_BATCH):
        batch = cells[start:start + SCORE_BATCH]
        losses = evaluate_cells(model, valid_data, batch, bptt).tolist()
        scores |= {space.to_id(g): perplexity(loss) for g, loss in zip(batch, losses, strict=True)}
    return scores


class RankingHistory:
    """Every cell's scores at regular points of search time, so that the analysis can follow
    Kendall tau with the ground truth as the supernet trains.

    `rank_all()` returns named rankings (name -> cell id -> score) of the current search state;
    `every` 0 records nothing. Called as `after_epoch`, so under averaged SGD it scores the
    averaged weights, as validation does.
    """

    def __init__(self, every: int, rank_all: Callable[[], dict[str, dict[int, float]]]):
        self.every, self.rank_all = every, rank_all
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self, point: int, epoch: int | None = None) -> dict[str, Any]:
        """Record at `point` (an epoch, or NAO's round) if it is due; `epoch` labels it."""
        if self.every and point % self.every == 0:
            rankings = self.rank_all()
            if rankings:  # an oracle search has no supernet to rank with
                self.snapshots.append({"epoch": point if epoch is None else epoch, "rankings": rankings})
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = state["snapshots"]


class ValidationStream:
    """Consecutive (inputs, targets) slices of batchified data that wrap around at the end: the
    validation minibatches of ENAS's rewards and of DARTS's architecture steps."""

    def __init__(self, data: torch.Tensor, length: int):
        self.data, self.length, self.start = data, length, 0

    @property
    def at_start(self) -> bool:
        """Whether the next slice is the first one (the stream is new, restarted or wraps)."""
        return self.start == 0 or self.start >= self.data.size(0) - 1

    def restart(self) -> None:
        self.start = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.start >= self.data.size(0) - 1:
            self.start = 0
        x, y = get_batch(self.data, self.start, self.length)
        self.start += x.size(0)
        return x, y

    def state_dict(self) -> dict[str, int]:
        return {"start": self.start}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.start = state["start"]
