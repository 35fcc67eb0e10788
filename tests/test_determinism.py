"""Same params and seed, same machine: byte-identical outputs on the CPU, for every policy.

Each policy's search, extract and train stages run twice into separate folders; everything they
write must match byte for byte, wall-clock timings aside."""

import csv
import json

import pytest
import yaml
from conftest import tiny_stage_inputs
from typer.testing import CliRunner

from naseval.core.records import GROUND_TRUTH, ORACLE, oracle_json, seed_dir
from naseval.core.runtime import write_json
from naseval.core.space import SearchSpace
from naseval.policies import policy_names
from stages.__main__ import app

pytestmark = pytest.mark.integration  # every policy's three stages, twice
runner = CliRunner()
TINY_SUPERNET = {"model": {"hidden_size": 8}, "train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 8, "bptt": 10}}
TIMINGS = {"seconds"}


def chain(root, policy, name):
    run, common = root / name, ["--params", str(root / "params.yaml")]
    for step in (
        ["search", "--policy", policy, "--seed", "7", "--data", str(root / "data"), "--oracle", str(root / "oracle"),
         "--out", str(run / "search")],
        ["extract", "--search", str(run / "search"), "--out", str(run / "top.json")],
        ["train", "--cell", str(run / "top.json"), "--seed", "7", "--data", str(root / "data"),
         "--out", str(run / "train")],
    ):
        result = runner.invoke(app, step + common)
        assert result.exit_code == 0, result.output
    return run


def held_out_seeds(folder):
    """The oracle stage's outputs for seeds 3 and 4, for the evaluators that read them."""
    records = [{"seed": seed, "enumerable": True,
                "cells": [{"cell_id": c, "status": "ok", "valid_ppl": 100.0 + c + seed,
                           "valid_ppl_by_epoch": [150.0 + c + seed, 100.0 + c + seed]} for c in range(32)]}
               for seed in (3, 4)]
    for record in records:
        write_json(seed_dir(folder, record["seed"]) / GROUND_TRUTH, record)
    write_json(folder / ORACLE, oracle_json(SearchSpace(2), records))


def without_timings(path):
    if path.suffix == ".json":
        return json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k not in TIMINGS})
    if path.suffix == ".csv":
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(path.open())]
    return path.read_bytes()


@pytest.mark.parametrize("policy", policy_names())
def test_same_seed_gives_byte_identical_outputs(policy, tmp_path, tiny_corpus):
    params = tiny_stage_inputs(tmp_path, tiny_corpus, epochs=2)
    params["search"]["supernet"] = TINY_SUPERNET
    for name in ("random_ws", "enas", "darts", "nao"):
        params["search"][name] |= {"ranking_every": 1}
    params["search"]["nao"] |= {"epd": {"epochs": 20}, "rounds": 2}
    params["search"]["enas"]["controller"]["steps_per_epoch"] = 5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    held_out_seeds(tmp_path / "oracle")
    first, second = chain(tmp_path, policy, "first"), chain(tmp_path, policy, "second")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and p.suffix in (".json", ".csv"))
    assert {"search/result.json", "top.json", "train/metrics.json"} <= {str(f) for f in files}
    for file in files:
        if file.name in ("metrics.json", "top.json"):  # no timings in them: the bytes themselves
            assert (first / file).read_bytes() == (second / file).read_bytes(), file
        assert without_timings(first / file) == without_timings(second / file), file


@pytest.mark.parametrize("evaluator", ["few_shot", "fair_sampling", "landmark", "short_training", "synflow",
                                       "hidden_covariance"])
def test_a_rank_gives_byte_identical_rankings(evaluator, tmp_path, tiny_corpus):
    params = tiny_stage_inputs(tmp_path, tiny_corpus)
    # lr 5: at 20 this hidden size of 8 sends a sub-supernet to a diverged run (tests/tiny_repo.py)
    params["search"]["supernet"] = {**TINY_SUPERNET, "train": {**TINY_SUPERNET["train"], "lr": 5.0}}
    params["search"]["evaluators"] |= {"few_shot": {"finetune_epochs": 1}, "landmark": {"warmup_epochs": 0},
                                       "short_training": {"epochs": 1}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    held_out_seeds(tmp_path / "oracle")
    outputs = []
    for name in ("first", "second"):
        result = runner.invoke(app, ["rank", "--evaluator", evaluator, "--seed", "7", "--data", str(tmp_path / "data"),
                                     "--oracle", str(tmp_path / "oracle"), "--out", str(tmp_path / name),
                                     "--params", str(tmp_path / "params.yaml")])
        assert result.exit_code == 0, result.output
        outputs.append(without_timings(tmp_path / name / "ranking.json"))
    assert outputs[0] == outputs[1] and len(json.loads(outputs[0])["scores"]) == 32


def test_a_ranking_whose_supernet_diverges_is_a_failed_result(tmp_path, tiny_corpus):
    """At lr 20 this hidden size of 8 sends few-shot's identity sub-supernet to a diverged run."""
    params = tiny_stage_inputs(tmp_path, tiny_corpus)
    params["search"]["supernet"] = TINY_SUPERNET
    params["search"]["evaluators"]["few_shot"] = {"finetune_epochs": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["rank", "--evaluator", "few_shot", "--seed", "7", "--data", str(tmp_path / "data"),
                                 "--out", str(tmp_path / "out"), "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "ranking.json").read_text())
    assert record["status"] == "failed" and "diverged" in record["reason"] and record["scores"] == {}
