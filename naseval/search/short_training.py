"""`short_training`: each cell trained from scratch for a fraction of the ground truth's budget,
the multi-fidelity baseline (a learning-curve estimate, as early stopping in Hyperband or
NAS-Bench-201's 12-epoch results).

It costs no training of its own: the oracle stage has trained every cell with the ground truth's
recipe under held-out seeds and kept each epoch's validation perplexity, so a cell's score is
the best validation perplexity within its first `epochs` epochs under one held-out seed, drawn
with the search's random stream on the first look, as the oracle draws (the judging seeds never
answer: their noise would be shared with the ground truth). Its cost is what that training would
have taken, in cell-epochs.

A difference from training with a short budget: the curve is read from the full run, whose
learning rate (cosine over the ground truth's epochs) has not yet decayed at epoch `epochs`; a
run with the short budget would have annealed it. Learning-curve methods read their curves the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from naseval.core.errors import NasevalError
from naseval.core.params import require
from naseval.search.evaluators import OracleEvaluator
from naseval.search.oracle import Oracle, OracleTable


@dataclass(frozen=True)
class ShortTrainingConfig:
    """params.yaml `search.evaluators.short_training`."""

    epochs: int = 2  # of the ground truth's (6 on the default profile)

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")


def truncated(table: OracleTable, epochs: int) -> OracleTable:
    """The table of each cell's best validation perplexity within its first `epochs` epochs."""
    if not table.curves:
        raise NasevalError("short_training reads the oracle stage's learning curves: set oracle.seeds and run the "
                           "oracle stage")
    require(epochs <= table.epochs, "search.evaluators.short_training.epochs", epochs,
            f"at most the {table.epochs} epochs the oracle stage trained")
    return OracleTable({seed: {cell: min(curve[:epochs]) for cell, curve in by_cell.items()}
                        for seed, by_cell in table.curves.items()}, table.cell_output, table.space_size)


class ShortTraining(OracleEvaluator):
    name = "short_training"
    cost_unit = "cell-epochs"

    def __init__(self, oracle: Oracle, train_config, epochs: int):
        super().__init__(oracle, train_config)
        self.epochs = epochs

    @property
    def cost(self):
        return self.oracle.spent * self.epochs

    @property
    def training_epochs(self):
        return float(self.cost)

    def rank_all(self, already=None):
        """Every cell, where the budget pays for the space."""
        if self.remaining < self.oracle.space.size:
            return {}
        return {self.ranking_name: self.score(list(self.oracle.space.enumerate()))}

    def facts(self):
        return {**super().facts(), "epochs": self.epochs}
