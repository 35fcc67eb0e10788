"""`few_shot`: the supernet split by one decision into sub-supernets (Zhao et al., "Few-shot
neural architecture search", ICML 2021; aoiang/few-shot-NAS).

The one-shot supernet trains as `shared_weights` does; then the space is split by the op of one
node (`split_node`, counted from 1 as in "node 1"), giving one sub-supernet per op. Each starts
from the trained shared weights, with a fresh optimizer, and is fine-tuned for `finetune_epochs`
on its own cells only, drawn as the policy draws them (the policy's draw is repeated until it
falls in the sub-space: uniform sampling stays uniform). A cell is scored by the sub-supernet of
its part. In the default 2-node space, splitting by node 1's op gives 4 sub-supernets of 8 cells.

As the original: one edge's operation is the split (its `--edge_to_split` 0, the first node's
input edge), and the sub-supernets train for half the one-shot epochs (300 of 600 on
NAS-Bench-201), the ratio of the default 5 of 10. Unlike it, the fine-tunes run one after the
other in the same process and take no checkpoint of their own: a resumed search retrains them
from the one-shot supernet's checkpoint, which gives the same numbers.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from naseval.core.params import require
from naseval.core.space import Genotype
from naseval.nn.model import LanguageModel
from naseval.search.evaluators import SharedWeights
from naseval.search.supernet import score_cells
from naseval.training.recipe import evaluate, fit


@dataclass(frozen=True)
class FewShotConfig:
    """params.yaml `search.evaluators.few_shot`."""

    split_node: int = 1  # whose op splits the space (1: the first intermediate node)
    finetune_epochs: int = 5  # per sub-supernet (the original: half the one-shot epochs)

    def __post_init__(self) -> None:
        require(self.split_node >= 1, "split_node", self.split_node, "a node number >= 1")
        require(self.finetune_epochs >= 1, "finetune_epochs", self.finetune_epochs, "an integer >= 1")


class FewShot(SharedWeights):
    name = "few_shot"

    def __init__(self, *args, settings: FewShotConfig = FewShotConfig(), **kwargs):
        super().__init__(*args, **kwargs)
        require(settings.split_node <= self.space.nodes, "search.evaluators.few_shot.split_node",
                settings.split_node, f"a node of the space, 1 to {self.space.nodes}")
        self.settings = settings
        self.node = settings.split_node - 1
        self.parts: dict[str, LanguageModel] = {}  # the split node's op -> its fine-tuned sub-supernet
        self.finetune_history: dict[str, list[dict[str, Any]]] = {}

    def part_of(self, cell: Genotype) -> str:
        return cell[self.node][0]

    def train(self, cell_for_step, validation_cells, label, after_epoch=None, checkpoint=None):
        rows = super().train(cell_for_step, validation_cells, label, after_epoch, checkpoint)
        config = dataclasses.replace(self.config, epochs=self.settings.finetune_epochs)
        for op in self.space.ops:
            part = copy.deepcopy(self.model)  # starts from the one-shot weights

            def within(step, op=op) -> Genotype:
                cell = cell_for_step(step)
                while self.part_of(cell) != op:
                    cell = cell_for_step(step)
                return cell

            probes = [g for g in validation_cells() if self.part_of(g) == op] or [
                next(g for g in self.space.enumerate() if self.part_of(g) == op)]

            def validate(part=part, probes=probes) -> float:
                return float(np.mean([evaluate(part, self.valid_data, g, config.bptt) for g in probes]))

            fitted = fit(part, self.train_data, config, self.rng, within, validate,
                         f"{label}: sub-supernet node {self.settings.split_node} = {op}")
            self.parts[op] = part
            self.finetune_history[op] = fitted.history
        return rows

    @property
    def cost(self):
        return super().cost + sum(len(rows) for rows in self.finetune_history.values())

    def score(self, cells):
        if not self.parts:  # during the one-shot phase (rankings over search time)
            return super().score(cells)
        scores: dict[int, float] = {}
        for op, part in self.parts.items():
            mine = [g for g in cells if self.part_of(g) == op]
            if mine:
                scores |= score_cells(part, self.score_data, mine, self.space, self.config.bptt)
        return {self.space.to_id(g): scores[self.space.to_id(g)] for g in cells}

    def facts(self):
        return {**super().facts(), "split_node": self.settings.split_node,
                "sub_supernets": len(self.parts), "finetune_epochs": self.settings.finetune_epochs}
