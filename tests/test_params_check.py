"""The whole params file checked before anything trains: every shipped params file passes, each
bad value fails with one line naming it, and the check's output does not change with the values."""

import copy

import pytest
import yaml
from conftest import ROOT

from naseval.core.errors import NasevalError
from naseval.core.params import read_params
from naseval.core.profile import apply_profile
from naseval.params_check import check_params

DEFAULT = read_params(ROOT / "params.yaml")


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_profile_merged_into_the_default_passes(profile):
    text = apply_profile((ROOT / "params.yaml").read_text(), (ROOT / "profiles" / f"{profile}.yaml").read_text(),
                         profile)
    assert check_params(yaml.safe_load(text)) == check_params(DEFAULT)


def test_what_the_check_writes_does_not_change_with_valid_values():
    """Its output is a stage output nothing depends on; still, it must say the same for any valid
    file, so that it never looks like a result."""
    changed = copy.deepcopy(DEFAULT) | {"policy": "enas"}
    changed["train"]["lr"] = 2.0
    assert check_params(changed) == check_params(DEFAULT)
    assert "search.enas" in check_params(DEFAULT) and "analysis" in check_params(DEFAULT)


BAD = {  # a change to the default -> what the one line says
    "an unknown policy": (lambda p: p.update(policy="bogus"),
                          "params.yaml: policy: unknown policy 'bogus' (known: darts, enas, evolution, nao, random, "
                          "random_search, random_ws)"),
    "an unknown baseline": (lambda p: p.update(baseline="rando"), "params.yaml: baseline: unknown policy 'rando'"),
    "a misspelt section": (lambda p: p.update(ground_truht={"seeds": [0]}),
                           "params.yaml: unknown section ground_truht (known: analysis, baseline, data, ground_truth"),
    "a section of no policy": (lambda p: p["search"].update(bogus={}), "unknown policy 'bogus'"),
    "a bad value in a policy not under evaluation": (lambda p: p["search"]["darts"].update(arch_lr=-1.0),
                                                     "search.darts.arch_lr"),
    "a bad value the analysis reads": (lambda p: p["analysis"].update(confidence=2.0), "analysis.confidence"),
    "an unknown evaluator to rank with": (lambda p: p["rank"].update(evaluators=["magic"]),
                                          "rank.evaluators: expected one of shared_weights"),
    "oracle seeds that judge": (lambda p: p["oracle"].update(seeds=[2, 3]),
                                "oracle.seeds: expected seeds not among ground_truth.seeds (they judge what the "
                                "oracle answers), got [2] in both"),
    "more cell groups than batches": (lambda p: p["ground_truth"].update(cell_groups=[0, 1, 2]),
                                      "ground_truth.cell_groups: 3 groups of 2 batches of cells"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_value_anywhere_fails_with_one_line_naming_it(case):
    change, message = BAD[case]
    params = copy.deepcopy(DEFAULT)
    change(params)
    with pytest.raises(NasevalError) as error:
        check_params(params)
    assert message in str(error.value) and "\n" not in str(error.value)
