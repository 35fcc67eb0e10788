"""The oracle: a cell's score from training it from scratch, instead of from a supernet.

In an enumerable space the ground-truth stage has trained every cell, so a search can look up
what a cell would score if it trained it: the weight-sharing ablation (Yu et al. 2020, Sec. 4.3,
on NASBench-101). Two rules keep the lookup honest:

- It answers from ground-truth seeds held out from those the analysis judges with (the oracle
  stage trains its own seeds), so a policy cannot learn the judging seeds' ranking for free.
- The first look at a cell draws one of the held-out seeds with the search's random stream and
  returns that seed's result, as training the cell once would: the policy meets training noise.
  Looking again returns the same result at no cost, as a cell trained once stays trained.

Its cost is counted in cells trained (each one training-epoch budget of the from-scratch recipe),
and a search stops asking once its `budget` is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from naseval.core.errors import NasevalError
from naseval.core.params import require
from naseval.core.records import GROUND_TRUTH, ORACLE, seed_dir
from naseval.core.runtime import check_seed, read_json
from naseval.core.space import Genotype, SearchSpace


@dataclass(frozen=True)
class OracleConfig:
    """params.yaml `oracle`: the ground-truth seeds the oracle stage trains for the oracle to answer
    from. They must not be among `ground_truth.seeds`, which judge (the analysis checks)."""

    seeds: tuple[int, ...] = (3, 4)  # none: no oracle, and no time spent training one

    def __post_init__(self) -> None:
        require(len(set(self.seeds)) == len(self.seeds), "seeds", list(self.seeds), "distinct seeds")
        for seed in self.seeds:
            check_seed(seed, "seeds")


@dataclass(frozen=True)
class OracleTable:
    """Every cell's validation perplexity under each held-out seed (cells that diverged are absent)."""

    valid_ppl: dict[int, dict[int, float]]  # seed -> cell id -> validation perplexity
    cell_output: str
    space_size: int
    curves: dict[int, dict[int, list[float]]] = field(default_factory=dict)  # seed -> cell -> valid ppl by epoch

    @property
    def seeds(self) -> list[int]:
        return sorted(self.valid_ppl)

    @property
    def epochs(self) -> int:
        """The epochs of training every learning curve holds; 0 without curves."""
        return min((len(curve) for by_cell in self.curves.values() for curve in by_cell.values()), default=0)

    def check_matches(self, space: SearchSpace) -> None:
        """Refuse a table trained for another space: its cell ids would name other cells."""
        if (self.space_size, self.cell_output) != (space.size, space.cell_output):
            raise NasevalError(f"the oracle's table was trained for {self.space_size} cells with cell output "
                               f"{self.cell_output}, the search's space has {space.size} with "
                               f"{space.cell_output}: run the oracle stage again")


class BudgetSpent(Exception):
    """Raised by `Oracle.score` for a new cell once the budget is spent; policies catch it to stop."""


class Oracle:
    def __init__(self, table: OracleTable, budget: int, rng: np.random.Generator, space: SearchSpace):
        if not table.valid_ppl:
            raise NasevalError("the oracle has no held-out seed to answer from: set oracle.seeds (in a space "
                               "small enough for a ground truth, ground_truth.max_cells)")
        table.check_matches(space)
        self.table, self.budget, self.rng, self.space = table, budget, rng, space
        self.answers: dict[int, float] = {}  # cell id -> the result of its one training
        self.answered_by: dict[int, int] = {}  # cell id -> the held-out seed that answered
        self.queries = 0
        self.refused = False  # whether it has refused a new cell past the budget

    @property
    def spent(self) -> int:
        return len(self.answers)

    def knows(self, genotype: Genotype) -> bool:
        return self.space.to_id(genotype) in self.answers

    def score(self, genotype: Genotype) -> float:
        """The cell's validation perplexity under one held-out seed; BudgetSpent for a new cell
        past the budget. A seed whose training of this cell diverged cannot answer for it."""
        cell = self.space.to_id(genotype)
        self.queries += 1
        if cell not in self.answers:
            if self.spent >= self.budget:
                self.refused = True
                raise BudgetSpent
            seeds = [seed for seed in self.table.seeds if cell in self.table.valid_ppl[seed]]
            if not seeds:
                raise NasevalError(f"cell {cell} diverged under every oracle seed: the oracle cannot score it")
            seed = seeds[int(self.rng.integers(len(seeds)))]
            self.answers[cell], self.answered_by[cell] = self.table.valid_ppl[seed][cell], seed
        return self.answers[cell]

    def state_dict(self) -> dict[str, Any]:
        return {"answers": self.answers, "answered_by": self.answered_by, "queries": self.queries,
                "refused": self.refused}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.answers, self.answered_by = state["answers"], state["answered_by"]
        self.queries, self.refused = state["queries"], state["refused"]

    def facts(self) -> dict[str, Any]:
        """What the search's record keeps: who answered, at what cost."""
        return {"seeds": self.table.seeds, "budget": self.budget, "cells_trained": self.spent,
                "queries": self.queries}


def read_oracle(root: Path) -> OracleTable:
    path = root / ORACLE
    if not path.is_file():
        raise NasevalError(f"{path} not found: run the oracle stage (dvc repro oracle)")
    table = read_json(path)
    curves = {int(seed): {cell["cell_id"]: cell["valid_ppl_by_epoch"]
                          for cell in read_json(seed_dir(root, int(seed)) / GROUND_TRUTH)["cells"]
                          if cell["status"] == "ok"}
              for seed in table["seeds"]}
    return OracleTable({int(seed): {int(cell): ppl for cell, ppl in cells.items()}
                        for seed, cells in table["seeds"].items()}, table["cell_output"], table["space_size"], curves)
