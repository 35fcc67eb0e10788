"""`fair_sampling`: FairNAS's strict fairness (Chu et al., "FairNAS: Rethinking evaluation
fairness of weight sharing neural architecture search", ICCV 2021) on recurrent cells.

Each training step draws one topology (each node's predecessor, uniformly) and one permutation of
the ops per node, and trains as many cells as there are ops: cell k gives node i the k-th op of
node i's permutation. Every op of every node is trained exactly once per step; the gradients of
the paths are accumulated and the supernet takes one optimizer step (clipped once).

As Yu et al.'s port to PTB cells (kcyu2014/nas-landmarkreg,
nasws/rnn/random_policy/fairnas_weight_sharing.py): the paths share the topology, each loss
counts 1/(number of paths), and the recurrent state the next step starts from is the last path's
(the port overwrites one state list with each path's). Unlike the port, every path trains: the
port sets its slice indices once per step, outside the loop over paths, so when its small batch
equals the batch only the first path ever gets a gradient.

A step costs one pass per path: `training_epochs` is epochs times the number of ops.
"""

from __future__ import annotations

import torch

from naseval.core.space import Genotype
from naseval.search.evaluators import SharedWeights


def fair_paths(ops: tuple[str, ...], predecessors: list[int], permutations: list[list[int]]) -> tuple[Genotype, ...]:
    """The step's cells: cell k gives node i op `ops[permutations[i][k]]` and predecessor
    `predecessors[i]`."""
    return tuple(tuple((ops[permutation[k]], pred) for pred, permutation in zip(predecessors, permutations,
                                                                              strict=True))
                 for k in range(len(ops)))


class FairSampling(SharedWeights):
    """Replaces the policy's draw of cells by fair paths; for policies that draw uniformly."""

    name = "fair_sampling"

    def draw_paths(self) -> tuple[Genotype, ...]:
        predecessors = [int(self.rng.integers(node + 1)) for node in range(self.space.nodes)]
        permutations = [list(self.rng.permutation(len(self.space.ops))) for _ in range(self.space.nodes)]
        return fair_paths(self.space.ops, predecessors, permutations)

    def train(self, cell_for_step, validation_cells, label, after_epoch=None, checkpoint=None):
        return super().train(lambda step: self.draw_paths(), validation_cells, label, after_epoch, checkpoint)

    def objective(self, model, step, arch):
        """The mean loss of the step's paths (the accumulated gradients divided by their number),
        the last path's state, and every path's outputs for the activation regularizer."""
        losses, states, outputs = zip(*(model.loss(step.inputs, step.targets, step.hidden, cell) for cell in arch),
                                      strict=True)
        return torch.stack(losses).mean(), states[-1], torch.cat(outputs, dim=1)

    @property
    def training_epochs(self):
        return float(self.cost * len(self.space.ops))
