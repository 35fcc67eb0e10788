"""The search-policy interface and its registry.

A policy gets a search task (space, data, seed) and returns ranked candidate
cells with their search-time scores, a trace over search time and, where it can score every
cell of the space, named rankings of all cells for comparison with the ground truth.
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
from naseval.space import Genotype, SearchSpace


@dataclass(frozen=True)
class SearchTask:
    space: SearchSpace
    corpus: Corpus
    seed: int
    checkpoint: Checkpoint | None = None  # where a policy that trains saves its state, to resume

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


class SearchPolicy(ABC):
    """Subclasses set `name` and `Config`, the dataclass of params.yaml `search.<name>`.

    A policy that trains a model owns its search-time model and recipe in that section, as the
    originals search with other sizes than they train with (DARTS: hidden 300 vs 850).
    """

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any):
        self.config = config

    @abstractmethod
    def search(self, task: SearchTask) -> SearchResult:
        """Run the search with `task.seed` driving every random draw."""


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
