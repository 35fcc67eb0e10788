"""Every evaluator by name, its settings (params.yaml `search.evaluators`) and the one factory.

- `shared_weights`, `oracle`: naseval/search/evaluators.py;
- weight-sharing remedies: `few_shot` (few_shot.py), `fair_sampling` (fair_sampling.py),
  `landmark` (landmark.py);
- multi-fidelity: `short_training` (short_training.py);
- zero-cost proxies: `params`, `grad_norm`, `snip`, `synflow`, `hidden_covariance` (zero_cost.py).

The supernet family (`SUPERNETS`) trains a supernet and can replace `shared_weights` in a policy
that draws its cells uniformly; `landmark` also in one that draws them itself (ENAS), since it only
adds a penalty. The oracle, short training and the proxies train nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from naseval.core.data import Corpus
from naseval.core.errors import NasevalError
from naseval.core.evaluator_kinds import SUPERNETS
from naseval.core.space import SearchSpace
from naseval.search.evaluators import Evaluator, OracleEvaluator, SharedWeights
from naseval.search.fair_sampling import FairSampling
from naseval.search.few_shot import FewShot, FewShotConfig
from naseval.search.landmark import Landmark, LandmarkConfig
from naseval.search.oracle import Oracle, OracleTable
from naseval.search.short_training import ShortTraining, ShortTrainingConfig, truncated
from naseval.search.supernet import SupernetConfig
from naseval.search.zero_cost import PROXIES, ZeroCost, ZeroCostConfig

NEEDS_ORACLE = ("oracle", "landmark", "short_training")  # they read the oracle stage's held-out seeds
EVALUATORS = (*SUPERNETS, "oracle", "short_training", *PROXIES)


@dataclass(frozen=True)
class EvaluatorSettings:
    """params.yaml `search.evaluators`: each evaluator's settings, wherever it is used."""

    few_shot: FewShotConfig = field(default_factory=FewShotConfig)
    landmark: LandmarkConfig = field(default_factory=LandmarkConfig)
    short_training: ShortTrainingConfig = field(default_factory=ShortTrainingConfig)
    zero_cost: ZeroCostConfig = field(default_factory=ZeroCostConfig)


def make_evaluator(name: str, space: SearchSpace, corpus: Corpus, supernet: SupernetConfig, rng: np.random.Generator,
                   oracle: OracleTable | None, budget: int, score_batch_size: int | None = None,
                   settings: EvaluatorSettings = EvaluatorSettings(), **cell_options) -> Evaluator:
    """The evaluator `name` for a search (policies call it through SearchTask.evaluator);
    `budget` the cells an oracle or short training may train, `score_batch_size` the supernet's
    scoring batch (None: its eval_batch_size), `cell_options` shape the supernet (its weight
    sharing, DARTS's mixed cell). Under the oracle the supernet's recipe still sets the search's
    epochs and threads."""
    if name not in EVALUATORS:
        raise NasevalError(f"evaluator: expected one of {', '.join(EVALUATORS)}, got {name!r}")
    if name in NEEDS_ORACLE and oracle is None:
        raise NasevalError(f"the {name} evaluator needs the oracle stage's table (--oracle)")
    supernet_args = (space, corpus, supernet, rng, score_batch_size)
    if name == "shared_weights":
        return SharedWeights(*supernet_args, **cell_options)
    if name == "few_shot":
        return FewShot(*supernet_args, settings=settings.few_shot, **cell_options)
    if name == "fair_sampling":
        return FairSampling(*supernet_args, **cell_options)
    if name == "landmark":
        return Landmark(*supernet_args, table=oracle, settings=settings.landmark, **cell_options)
    if name == "oracle":
        return OracleEvaluator(Oracle(oracle, budget, rng, space), supernet.train)
    if name == "short_training":
        epochs = settings.short_training.epochs
        return ShortTraining(Oracle(truncated(oracle, epochs), budget, rng, space), supernet.train, epochs)
    return ZeroCost(name, space, corpus, supernet, rng, settings.zero_cost)
