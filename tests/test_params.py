import pytest

from naseval.analysis.summary import Experiment
from naseval.core.errors import NasevalError
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.params import build, load, read_params
from naseval.core.space import SearchSpace
from naseval.policies import get_policy, search_params
from naseval.training.recipe import TrainConfig


@pytest.mark.parametrize(
    "cls, section, message",
    [
        (SearchSpace, {"nodes": 0}, "params.yaml: space.nodes: expected an integer >= 1, got 0"),
        (TrainConfig, {"lr": -1}, "params.yaml: train.lr: expected a number > 0, got -1"),
        (TrainConfig, {"lr": "3e-3x"}, "params.yaml: train.lr: expected a number, got '3e-3x'"),
        (TrainConfig, {"lrr": 1.0}, r"unknown key train.lrr \(known: epochs, "),
        (TrainConfig, {"epochs": 1.5}, "train.epochs: expected an integer, got 1.5"),
        (TrainConfig, {"device": "tpu"}, "train.device: expected one of cpu, cuda, got 'tpu'"),
        (GroundTruthConfig, {"seeds": []}, r"ground_truth.seeds: expected a non-empty list of integers, got \[\]"),
    ],
)
def test_impossible_params_are_named(cls, section, message):
    key = {SearchSpace: "space", TrainConfig: "train", GroundTruthConfig: "ground_truth"}[cls]
    with pytest.raises(NasevalError, match=message):
        load(cls, {key: section}, key)


def test_numbers_written_as_yaml_strings_are_read():
    assert load(TrainConfig, {"train": {"lr": "3e-3"}}, "train").lr == pytest.approx(3e-3)


def test_nested_sections_and_a_policys_supernet_overrides_are_checked():
    shared = {"train": {"clip": 0.25, "epochs": 10}}
    with pytest.raises(NasevalError, match="search.supernet.train.clip: expected a number > 0, got 0"):
        search_params({"search": {"supernet": {"train": {"clip": 0}}, "random_ws": {}}}, "random_ws")
    with pytest.raises(NasevalError, match="search.nao.supernet.train.clip: expected a number > 0, got 0"):
        search_params({"search": {"supernet": shared, "nao": {"supernet": {"train": {"clip": 0}}}}}, "nao")
    _, supernet = search_params({"search": {"supernet": shared, "nao": {"supernet": {"train": {"epochs": 3}}}}}, "nao")
    assert (supernet.train.epochs, supernet.train.clip) == (3, 0.25)


def test_empty_seeds_and_unknown_policy():
    with pytest.raises(NasevalError, match=r"seeds: expected a non-empty list of integers, got \[\]"):
        build(Experiment, {"policy": "random", "seeds": []}, "")
    with pytest.raises(NasevalError, match=r"unknown policy 'enas2' \(known: .*random, random_search, random_ws"):
        get_policy("enas2")


def test_missing_section_and_file(tmp_path):
    with pytest.raises(NasevalError, match="missing key search.darts"):
        load(TrainConfig, {"search": {}}, "search.darts")
    with pytest.raises(NasevalError, match="params file not found"):
        read_params(tmp_path / "params.yaml")
