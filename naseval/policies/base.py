"""The search-policy interface and its registry.

A policy gets a search task (space, data, seed, the supernet's recipe, and the oracle's table
where one was trained) and returns a SearchResult (policies/result.py): ranked candidate cells
with their search-time scores, a trace over search time with one schema for all, and, where it can
score every cell of the space, named rankings of all cells for comparison with the ground truth.
A policy that scores cells builds its evaluator with `SearchTask.evaluator`, one factory for all,
and lists in `evaluators` the ones it has a meaning with; it never asks which one it has.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from naseval.core.data import Corpus
from naseval.core.errors import NasevalError
from naseval.core.params import build, require, section
from naseval.core.profile import merged_params
from naseval.core.space import SearchSpace
from naseval.policies.result import SearchResult
from naseval.search.evaluators import Evaluator
from naseval.search.family import EvaluatorSettings, make_evaluator
from naseval.search.oracle import OracleTable
from naseval.search.supernet import SupernetConfig
from naseval.training.checkpoint import Checkpoint, Stateful


@dataclass(frozen=True)
class SearchTask:
    space: SearchSpace
    corpus: Corpus
    seed: int
    supernet: SupernetConfig = SupernetConfig()  # the policy's supernet and its recipe, overrides applied
    checkpoint: Checkpoint | None = None  # where a policy that trains saves its state, to resume
    oracle: OracleTable | None = None  # the held-out seeds' results, for the evaluators that read them
    evaluators: EvaluatorSettings = EvaluatorSettings()  # params.yaml `search.evaluators`

    def tracking(self, **stateful: Stateful) -> Checkpoint | None:
        """The task's checkpoint, also saving the policy's own stateful objects; None without one."""
        return self.checkpoint.tracking(**stateful) if self.checkpoint else None

    def evaluator(self, name: str, rng: np.random.Generator, budget: int = 0, score_batch_size: int | None = None,
                  **cell_options: Any) -> Evaluator:
        """The one way a policy gets its evaluator: `name` from its config, `budget` the oracle's
        (cells it may train), `score_batch_size` the supernet's scoring batch (None: its
        eval_batch_size), `cell_options` the supernet's weight sharing."""
        return make_evaluator(name, self.space, self.corpus, self.supernet, rng, self.oracle, budget,
                              score_batch_size, self.evaluators, **cell_options)


class SearchPolicy(ABC):
    """Subclasses set `name` and `Config`, the dataclass of params.yaml `search.<name>`. A policy
    with more than one meaningful evaluator has an `evaluator` key in its Config; one with a single
    evaluator has none (its `evaluators` says which)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    evaluators: ClassVar[tuple[str, ...]] = ()  # those its Config's `evaluator` accepts; none: it scores nothing

    def __init__(self, config: Any):
        self.config = config

    @property
    def evaluator_name(self) -> str:
        """The evaluator its config chooses, or its only one."""
        return getattr(self.config, "evaluator", self.evaluators[0] if self.evaluators else "none")

    @abstractmethod
    def search(self, task: SearchTask) -> SearchResult:
        """Run the search with `task.seed` driving every random draw."""


def check_evaluator(value: str, allowed: tuple[str, ...], why_not: str = "") -> None:
    """For a Config's __post_init__: `evaluator` must be one the policy has a meaning with."""
    require(value in allowed, "evaluator", value, f"{' or '.join(allowed)}{why_not}")


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


def search_params(params: dict[str, Any], name: str, where: str = "params.yaml") -> tuple[Any, SupernetConfig]:
    """The params of a search with policy `name`: its `search.<name>` section, and `search.supernet`
    with the section's `supernet:` overrides merged in (key by key, nested)."""
    own = dict(section(params, f"search.{name}", where) or {})
    overrides = own.pop("supernet", None)
    shared = section(params, "search.supernet", where)
    supernet = build(SupernetConfig, shared, "search.supernet", where)  # its own errors name its own keys
    if overrides is not None:
        key = f"search.{name}.supernet"
        supernet = build(SupernetConfig, merged_params(shared, overrides, key, where), key, where)
    return build(get_policy(name).Config, own, f"search.{name}", where), supernet

