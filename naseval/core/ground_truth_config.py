"""params.yaml `ground_truth`: read by the stages that train it (ground truth, oracle) and by the
analysis that judges with it, so it sits below both."""

from __future__ import annotations

from dataclasses import dataclass

from naseval.core.params import require
from naseval.core.runtime import check_seed


@dataclass(frozen=True)
class GroundTruthConfig:
    """params.yaml `ground_truth`."""

    seeds: tuple[int, ...] = (0, 1)
    max_cells: int = 64  # refuse spaces larger than this: they are not enumerable in practice
    cells_per_batch: int = 16  # trained together as one model (train.implementation fast); tracked
    workers: int = 1  # processes training batches in parallel: a resource knob, changing no number
    # One stage (one job) per group of cells and seed: [0] keeps each seed whole, [0, 1, 2, 3]
    # deals its batches into four. A list, since a DVC matrix needs one; a group holds whole
    # batches, so a cell's result does not depend on the grouping.
    cell_groups: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        require(len(self.seeds) >= 1, "seeds", list(self.seeds), "a non-empty list of integers")
        for seed in self.seeds:
            check_seed(seed, "seeds")
        require(self.max_cells >= 1, "max_cells", self.max_cells, "an integer >= 1")
        require(self.cells_per_batch >= 1, "cells_per_batch", self.cells_per_batch, "an integer >= 1")
        require(self.workers >= 1, "workers", self.workers, "an integer >= 1")
        require(list(self.cell_groups) == list(range(len(self.cell_groups))) and self.cell_groups != (),
                "cell_groups", list(self.cell_groups), "the list 0, 1, ..., n - 1 of n >= 1 groups")
