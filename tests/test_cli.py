"""The stage commands as a user meets them: help, one-line errors, nothing half-written."""

import hashlib

import pytest
import yaml
from conftest import ROOT
from typer.testing import CliRunner

from naseval.analysis.inputs import read_run
from naseval.analysis.report import render_report
from naseval.analysis.summary import AnalysisConfig, Experiment, analyze
from naseval.cli import app
from naseval.core.data import save_corpus
from naseval.core.errors import NasevalError
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.params import build, load, read_params
from naseval.core.profile import apply_profile
from naseval.core.runtime import read_json
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.policies import policy_names, search_params
from naseval.training.recipe import TrainConfig
from stages.__main__ import app as stages

runner = CliRunner()


@pytest.mark.parametrize("command", ["prepare", "search", "extract", "train", "ground-truth", "analyze"])
def test_every_stage_has_help(command):
    result = runner.invoke(stages, [command, "--help"])
    assert result.exit_code == 0 and "--params" in result.output


def test_unknown_policy_is_one_line_and_non_zero(tmp_path):
    result = runner.invoke(stages, ["search", "--policy", "nope", "--seed", "0", "--out", str(tmp_path / "o"),
                                 "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 1
    assert result.output.strip() == f"error: unknown policy 'nope' (known: {', '.join(policy_names())})"
    assert not (tmp_path / "o").exists()


def test_bad_params_name_the_key(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("  nodes: 2", "  nodes: 0"))
    result = runner.invoke(stages, ["search", "--policy", "random", "--seed", "0", "--out", str(tmp_path / "o"),
                                 "--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 1
    assert "params.yaml: space.nodes: expected an integer >= 1, got 0" in result.output


def test_corrupted_data_leaves_no_output(tmp_path, monkeypatch):
    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.{split}.txt").write_text("not ptb\n")
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(tmp_path))
    out = tmp_path / "prepared"
    result = runner.invoke(stages, ["prepare", "--out", str(out), "--params", str(ROOT / "params.yaml")])
    bad_md5 = hashlib.md5(b"not ptb\n").hexdigest()
    assert result.exit_code == 1 and f"corrupted PTB file {tmp_path}/ptb.train.txt: md5 {bad_md5}" in result.output
    assert not out.exists() and list(tmp_path.glob(".*tmp")) == []


@pytest.mark.parametrize("profile", [None, "paper-2node", "paper-8node"])
def test_every_profile_merges_to_valid_params(profile, tmp_path):
    out = tmp_path / "params.yaml"
    if profile:
        result = runner.invoke(app, ["profile", profile, "--base", str(ROOT / "params.yaml"), "--out", str(out),
                                     "--folder", str(ROOT / "profiles")])
        assert result.exit_code == 0, result.output
    params = read_params(out if profile else ROOT / "params.yaml")
    experiment = build(Experiment, {k: params[k] for k in ("policy", "baseline", "seeds")}, "")
    assert set(experiment.policies) <= set(params["search"])
    for name in policy_names():  # every policy can be chosen with dvc exp run -S policy=...
        search_params(params, name)
    load(SearchSpace, params, "space")
    load(ModelConfig, params, "model")
    load(TrainConfig, params, "train")
    load(GroundTruthConfig, params, "ground_truth")
    load(AnalysisConfig, params, "analysis")
    if profile:  # what differs arrives, what does not stays
        assert params["train"]["epochs"] == 1000 and params["analysis"] == read_params(ROOT / "params.yaml")["analysis"]
        _, nao_supernet = search_params(params, "nao")
        _, darts_supernet = search_params(params, "darts")
        assert nao_supernet.train.epochs == 10  # per round, its own override
        assert (darts_supernet.train.epochs, darts_supernet.model.hidden_size) == (50, 300)


def test_a_profile_takes_its_own_comments_and_refuses_a_key_nothing_reads():
    base = "train:\n  epochs: 5   # the default's reason\n  lr: 5.0   # kept\nseeds: [0]\n"
    merged = apply_profile(base, "train:\n  epochs: 1000\nseeds: [0, 1]   # ten in the paper\n", "p.yaml")
    assert merged == "train:\n  epochs: 1000\n  lr: 5.0   # kept\nseeds: [0, 1]   # ten in the paper\n"
    with pytest.raises(NasevalError, match=r"p.yaml: unknown key train.epoch \(known: epochs, lr\)"):
        apply_profile(base, "train:\n  epoch: 1000\n", "p.yaml")
    result = runner.invoke(app, ["profile", "nope", "--folder", str(ROOT / "profiles")])
    assert result.exit_code == 1
    assert result.output.strip() == "error: unknown profile 'nope' (known: paper-2node, paper-8node)"


@pytest.mark.integration
def test_compare_outside_a_dvc_repository_is_one_line_and_non_zero(tmp_path):
    result = runner.invoke(app, ["compare", "--repo", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: dvc exp show failed in {tmp_path}: ")
    assert len(result.output.strip().splitlines()) == 1


def test_a_diverged_search_is_a_failed_run_that_reaches_the_analysis(tmp_path, tiny_corpus):
    save_corpus(tiny_corpus, tmp_path / "data")
    params = read_params(ROOT / "params.yaml")
    params["search"]["darts"] |= {"order": "first", "supernet": {
        "model": {"hidden_size": 8},
        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "bptt": 10, "lr": 1e30}}}  # overflows at once
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = tmp_path / "runs" / "darts" / "seed_0"
    common = ["--params", str(tmp_path / "params.yaml")]
    steps = [
        ["search", "--policy", "darts", "--seed", "0", "--data", str(tmp_path / "data"), "--out", str(run / "search")],
        ["extract", "--search", str(run / "search"), "--out", str(run / "top.json")],
        ["train", "--cell", str(run / "top.json"), "--seed", "0", "--data", str(tmp_path / "data"),
         "--out", str(run / "train")],
    ]
    for step in steps:
        result = runner.invoke(stages, step + common)
        assert result.exit_code == 0, result.output
    searched = read_json(run / "search" / "result.json")
    assert searched["status"] == "failed" and "diverged" in searched["reason"]
    assert "search failed: " in (run / "search" / "search.log").read_text()
    record = read_run(tmp_path / "runs", "darts", 0)
    assert record.failure.startswith("search: ") and record.test_ppl is None
    result = analyze([record], None, Experiment("darts", "darts", (0,)))
    assert result.summary["policies"]["darts"]["failed"] == {"count": 1, "seeds": [0]}
    assert result.summary["runs"]["darts/0"]["status"] == "failed"
    assert "**1 of 1 darts runs failed** (seed 0: search: architecture step diverged" in render_report(
        result, {}, AnalysisConfig())
