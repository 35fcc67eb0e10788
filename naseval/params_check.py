"""The whole params file checked at once, before any stage trains or reads its inputs.

Each stage loads only its own sections, so a bad value used to surface only when the stage that
reads it ran: `dvc exp run -S policy=bogus` trained the oracle for minutes before the search
stage named `bogus`. The `check_params` stage, first in dvc.yaml and so first in every `dvc
repro` and `dvc exp run`, loads every section with the class of the code that owns it, as the
stages will; its output is the same for every valid params file, so nothing downstream reruns
because it did.
"""

from __future__ import annotations

from typing import Any

from naseval.analysis.summary import AnalysisConfig, Experiment
from naseval.core.data import DataConfig
from naseval.core.errors import NasevalError
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.params import build, load, section
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.policies import get_policy, search_params
from naseval.search.family import EvaluatorSettings
from naseval.search.oracle import OracleConfig
from naseval.search.space_ranking import RankConfig
from naseval.training.ground_truth import batches_of_cells, group_of_batches, is_enumerable
from naseval.training.recipe import TrainConfig

SECTIONS = {"data": DataConfig, "space": SearchSpace, "model": ModelConfig, "train": TrainConfig,
            "ground_truth": GroundTruthConfig, "oracle": OracleConfig, "rank": RankConfig,
            "search.evaluators": EvaluatorSettings, "analysis": AnalysisConfig}
EXPERIMENT = ("policy", "baseline", "seeds")
SHARED_SEARCH = ("supernet", "evaluators")  # the other keys of `search` are policies' sections


def check_params(params: dict[str, Any], where: str = "params.yaml") -> list[str]:
    """Load every section as its stage will; the first bad value raises NasevalError naming it.
    Returns the sections checked, in order (the same for every valid file of this layout)."""
    known = {*EXPERIMENT, *(key.split(".")[0] for key in SECTIONS), "search"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise NasevalError(f"{where}: unknown section {unknown[0]} (known: {', '.join(sorted(known))})")
    experiment = build(Experiment, {key: params.get(key) for key in EXPERIMENT}, "", where)
    for key in ("policy", "baseline"):
        try:
            get_policy(getattr(experiment, key))
        except NasevalError as error:  # an unknown name, with the known ones
            raise NasevalError(f"{where}: {key}: {error}") from None
    configs = {key: load(cls, params, key, where) for key, cls in SECTIONS.items()}
    policies = sorted(set(section(params, "search", where)) - set(SHARED_SEARCH))
    for name in experiment.policies + [p for p in policies if p not in experiment.policies]:
        search_params(params, name, where)  # search.supernet too, with the policy's overrides
    truth, space = configs["ground_truth"], configs["space"]
    shared = sorted(set(truth.seeds) & set(configs["oracle"].seeds))
    if shared:
        raise NasevalError(f"{where}: oracle.seeds: expected seeds not among ground_truth.seeds (they judge what "
                           f"the oracle answers), got {shared} in both")
    if is_enumerable(space, truth):
        group_of_batches(batches_of_cells(space, configs["train"], truth), truth, 0)
    return [*EXPERIMENT, *SECTIONS, *(f"search.{name}" for name in policies)]
