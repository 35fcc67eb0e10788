"""The search-policy interface and its registry.

A policy gets a search task (space, data, seed, and the oracle's table where one was trained)
and returns ranked candidate cells with their search-time scores, a trace over search time and,
where it can score every cell of the space, named rankings of all cells for comparison with the
ground truth. A policy that scores cells does it through an evaluator (naseval/evaluators.py),
and lists in `evaluators` the ones it has a meaning with.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from naseval.checkpoint import Checkpoint, Stateful
from naseval.data import Corpus
from naseval.errors import NasevalError
from naseval.model import ModelConfig
from naseval.oracle import OracleTable
from naseval.params import require
from naseval.space import Genotype, SearchSpace, format_genotype
from naseval.train import TrainConfig


@dataclass(frozen=True)
class SearchTask:
    space: SearchSpace
    corpus: Corpus
    seed: int
    checkpoint: Checkpoint | None = None  # where a policy that trains saves its state, to resume
    oracle: OracleTable | None = None  # the held-out seeds' results, for the oracle evaluator

    def tracking(self, **stateful: Stateful) -> Checkpoint | None:
        """The task's checkpoint, also saving the policy's own stateful objects; None without one."""
        return self.checkpoint.tracking(**stateful) if self.checkpoint else None


@dataclass(frozen=True)
class Candidate:
    genotype: Genotype
    score: float | None  # search-time score, lower is better; None when the policy has none


@dataclass
class SearchResult:
    candidates: list[Candidate]  # best first
    trace: list[dict[str, Any]]  # one row per point of search time, same keys in every row
    rankings: dict[str, dict[int, float]] = field(default_factory=dict)  # name -> cell id -> score
    details: dict[str, Any] = field(default_factory=dict)  # policy-specific facts worth a record
    # rankings of every cell at points of search time: [{"epoch": e, "rankings": {name: scores}}]
    ranking_history: list[dict[str, Any]] = field(default_factory=list)
    evaluator: dict[str, Any] | None = None  # the evaluator's facts (Evaluator.facts); None: scored nothing


def best_so_far_trace(cells: list[Genotype], scores: dict[int, float], space: SearchSpace) -> list[dict[str, Any]]:
    """One row per scored cell, in the order scored, with the best cell up to it."""
    rows, best = [], None
    for step, cell in enumerate(cells, 1):
        score = scores[space.to_id(cell)]
        if best is None or score < best[1]:
            best = cell, score
        rows.append({"step": step, "cell_id": space.to_id(cell), "genotype": format_genotype(cell), "score": score,
                     "best_cell_id": space.to_id(best[0]), "best_score": best[1]})
    return rows


class SearchPolicy(ABC):
    """Subclasses set `name` and `Config`, the dataclass of params.yaml `search.<name>`.

    A policy that trains a model owns its search-time model and recipe in that section, as the
    originals search with other sizes than they train with (DARTS: hidden 300 vs 850).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    evaluators: ClassVar[tuple[str, ...]] = ()  # those its Config's `evaluator` accepts; none: it scores nothing

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def search(self, task: SearchTask) -> SearchResult:
        """Run the search with `task.seed` driving every random draw."""


EVALUATORS = ("shared_weights", "oracle")  # naseval/evaluators.py


def check_evaluator(value: str, allowed: tuple[str, ...], why_not: str = "") -> None:
    """For a Config's __post_init__: `evaluator` must be one the policy has a meaning with."""
    require(value in allowed, "evaluator", value, f"{' or '.join(allowed)}{why_not}")


@dataclass(frozen=True)
class MultiTrialConfig:
    """What a policy that scores cell after cell (random search, evolution) shares: its evaluator,
    its budget, and the supernet it trains under shared weights, as random_ws's."""

    evaluator: str = "oracle"  # or shared_weights
    budget: int = 16  # distinct cells scored: under the oracle, cells trained
    model: ModelConfig = field(default_factory=ModelConfig)  # the supernet, under shared weights
    train: TrainConfig = field(default_factory=TrainConfig)  # its recipe
    validation_cells: int = 4  # cells whose mean validation loss tracks the supernet
    score_all_up_to: int = 64  # under shared weights, spaces this small are also ranked whole

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, EVALUATORS)
        for key in ("budget", "validation_cells", "score_all_up_to"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")


_REGISTRY: dict[str, type[SearchPolicy]] = {}


def register(cls: type[SearchPolicy]) -> type[SearchPolicy]:
    if cls.name in _REGISTRY:
        raise NasevalError(f"two search policies are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _import_policy_modules() -> None:
    """Every module of this package registers its policy on import: adding one touches no list."""
    package = importlib.import_module("naseval.policies")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"naseval.policies.{module.name}")


def policy_names() -> list[str]:
    _import_policy_modules()
    return sorted(_REGISTRY)


def get_policy(name: str) -> type[SearchPolicy]:
    names = policy_names()
    if name not in _REGISTRY:
        raise NasevalError(f"unknown policy {name!r} (known: {', '.join(names)})")
    return _REGISTRY[name]
