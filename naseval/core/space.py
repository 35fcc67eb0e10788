"""The search space of recurrent cells (DARTS RNN space, as evaluated by Yu et al. 2020).

A cell has `nodes` intermediate nodes. Node i (0-based) reads one predecessor p in {0..i}
(0 is the cell's first state s0, j > 0 is the j-th intermediate node) and applies one op.
A genotype is the tuple of (op, predecessor) pairs, one per node, so the space holds
n! * |ops|^n cells: 32 for 2 nodes, 2,642,411,520 for 8 nodes.

The cell's output is the mean of its intermediate nodes (DARTS, the paper) or of its loose ends,
the nodes no other node reads (ENAS). The rule is part of the space: under the two rules the
same genotype is a different function whenever a node reads another (16 of the 32 2-node
cells), so every stage of an experiment (search, baseline, retraining, ground truth) uses the
one rule the space names, and no comparison can mix rules.

Cells have integer ids by mixed radix, as in the paper's code: node i contributes the digit
|ops| * pred + op_index in radix |ops| * (i + 1), node 0 being the most significant digit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from naseval.core.errors import NasevalError

KNOWN_OPS = ("tanh", "relu", "sigmoid", "identity")
CELL_OUTPUTS = ("mean", "loose_ends")

Genotype = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class SearchSpace:
    nodes: int = 2
    ops: tuple[str, ...] = KNOWN_OPS
    cell_output: str = "mean"  # or loose_ends (see the module's docstring)

    def __post_init__(self) -> None:
        if isinstance(self.nodes, bool) or not isinstance(self.nodes, int) or self.nodes < 1:
            raise NasevalError(f"nodes: expected an integer >= 1, got {self.nodes!r}")
        if not self.ops:
            raise NasevalError(f"ops: expected a non-empty list from {list(KNOWN_OPS)}")
        for op in self.ops:
            if op not in KNOWN_OPS:
                raise NasevalError(f"ops: unknown op {op!r} (known: {', '.join(KNOWN_OPS)})")
        if len(set(self.ops)) != len(self.ops):
            raise NasevalError(f"ops: duplicate ops in {list(self.ops)}")
        object.__setattr__(self, "ops", tuple(self.ops))
        if self.cell_output not in CELL_OUTPUTS:
            raise NasevalError(f"cell_output: expected one of {', '.join(CELL_OUTPUTS)}, got {self.cell_output!r}")

    @property
    def size(self) -> int:
        return math.factorial(self.nodes) * len(self.ops) ** self.nodes

    def _radix(self, node: int) -> int:
        return len(self.ops) * (node + 1)

    def validate(self, genotype: Genotype) -> Genotype:
        """Return the genotype as a tuple of (op, pred) tuples, or raise naming what is wrong."""
        genotype = tuple((op, pred) for op, pred in genotype)
        if len(genotype) != self.nodes:
            raise NasevalError(
                f"invalid genotype {format_genotype(genotype)!r}: has {len(genotype)} nodes, "
                f"the space has {self.nodes}"
            )
        for node, (op, pred) in enumerate(genotype):
            if op not in self.ops:
                raise NasevalError(
                    f"invalid genotype: node {node} has op {op!r} (allowed: {', '.join(self.ops)})"
                )
            if isinstance(pred, bool) or not isinstance(pred, int) or not 0 <= pred <= node:
                raise NasevalError(
                    f"invalid genotype: node {node} has predecessor {pred!r} (allowed: 0..{node})"
                )
        return genotype

    def to_id(self, genotype: Genotype) -> int:
        cell_id = 0
        for node, (op, pred) in enumerate(self.validate(genotype)):
            cell_id = cell_id * self._radix(node) + len(self.ops) * pred + self.ops.index(op)
        return cell_id

    def from_id(self, cell_id: int) -> Genotype:
        if isinstance(cell_id, bool) or not isinstance(cell_id, (int, np.integer)):
            raise NasevalError(f"invalid cell id {cell_id!r}: expected an integer")
        if not 0 <= cell_id < self.size:
            raise NasevalError(f"invalid cell id {cell_id}: allowed 0..{self.size - 1}")
        digits = []
        rest = int(cell_id)
        for node in reversed(range(self.nodes)):
            rest, digit = divmod(rest, self._radix(node))
            digits.append(digit)
        digits.reverse()
        return tuple((self.ops[d % len(self.ops)], d // len(self.ops)) for d in digits)

    def enumerate(self) -> Iterator[Genotype]:
        return (self.from_id(i) for i in range(self.size))

    def isomorphs(self, genotype: Genotype) -> list[Genotype]:
        """Every genotype that computes the same family of functions as `genotype`: the same
        graph with its intermediate nodes numbered in another topological order. The output
        rule (the mean of all nodes, or of the nodes nobody reads) and each node's own weights
        do not depend on the numbering, so relabelling the nodes and their weights alike gives
        the same cell. In the 2-node space: a cell whose two nodes both read s0 and the cell
        with their ops swapped (6 pairs). Sorted by id, `genotype` included."""
        genotype = self.validate(genotype)
        found = set()
        for order in itertools.permutations(range(1, self.nodes + 1)):
            label = (0, *order)  # node i (state i + 1) becomes state label[i + 1]
            if all(label[pred] < label[i + 1] for i, (_, pred) in enumerate(genotype)):
                relabelled = sorted((label[i + 1], op, label[pred]) for i, (op, pred) in enumerate(genotype))
                found.add(self.to_id(tuple((op, pred) for _, op, pred in relabelled)))
        return [self.from_id(i) for i in sorted(found)]

    def function_classes(self) -> list[int]:
        """Per cell id, the smallest id computing the same family of functions (`isomorphs`):
        cells with the same class are one architecture under two names."""
        return [self.to_id(self.isomorphs(genotype)[0]) for genotype in self.enumerate()]

    def sample(self, rng: np.random.Generator) -> Genotype:
        """A cell drawn uniformly: each node's digit is uniform and independent."""
        return tuple(
            (self.ops[int(rng.integers(len(self.ops)))], int(rng.integers(node + 1)))
            for node in range(self.nodes)
        )

    def sample_distinct(self, count: int, rng: np.random.Generator) -> list[Genotype]:
        """`count` different cells (all of them if the space is smaller), in order of first draw."""
        count = min(count, self.size)
        seen: dict[int, Genotype] = {}
        while len(seen) < count:
            genotype = self.sample(rng)
            seen.setdefault(self.to_id(genotype), genotype)
        return list(seen.values())


def loose_ends(genotype: Genotype) -> list[int]:
    """The intermediate nodes (0-based) that no other node reads; the last node always is one."""
    read = {pred - 1 for _, pred in genotype if pred > 0}
    return [node for node in range(len(genotype)) if node not in read]


def format_genotype(genotype: Genotype) -> str:
    """Canonical text form, e.g. 'tanh:0 relu:1' (node i reads its predecessor after the colon)."""
    return " ".join(f"{op}:{pred}" for op, pred in genotype)


def parse_genotype(text: str, space: SearchSpace) -> Genotype:
    pairs = []
    for token in text.split():
        op, sep, pred = token.partition(":")
        if not sep or not pred.lstrip("-").isdigit():
            raise NasevalError(f"invalid genotype {text!r}: expected 'op:pred op:pred ...', got {token!r}")
        pairs.append((op, int(pred)))
    return space.validate(tuple(pairs))
