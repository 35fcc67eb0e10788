"""Integration: the real dvc on a tiny profile in a temporary git repository."""

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_repo import environment, run, tiny_repo

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path, ptb_dir, monkeypatch) -> Path:
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(ptb_dir))
    return tiny_repo(tmp_path)


@pytest.fixture
def repo_ranked_by_params(tmp_path, ptb_dir, monkeypatch) -> Path:
    """The tiny profile with one evaluator in the rank stage: the whole table is the first test's."""
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(ptb_dir))
    return tiny_repo(tmp_path, {"rank": {"evaluators": ["params"]}})


def summary(repo: Path) -> dict:
    return json.loads((repo / "metrics" / "summary.json").read_text())


def tau_seed_1(metrics: dict) -> float:
    return metrics["weight_sharing"]["random_ws/1"]["shared_weights_valid_ppl"]["kendall_tau"]


def test_repro_then_experiment_with_another_policy(repo):
    run(repo, "dvc", "repro")
    first = summary(repo)
    assert set(first["policies"]) == {"random", "random_ws"}
    assert first["ground_truth"]["cells"] == 4
    assert set(first["weight_sharing"]) == {"random_ws/0", "random_ws/1"}
    tau = first["weight_sharing"]["random_ws/0"]["shared_weights_valid_ppl"]["kendall_tau"]
    assert -1.0 <= tau <= 1.0
    assert (repo / "runs/policies/random_ws/seed_1/search/search.log").stat().st_size > 0
    report = (repo / "metrics" / "report.md").read_text()
    assert "Found cells by test perplexity of its one retrain: **random_ws**" in report
    assert "Ground-truth reliability (2 seeds): a perfect ranking is expected to reach Kendall tau" in report
    reliability = first["ground_truth"]["reliability"]
    assert -1 <= reliability["seed_to_seed_tau"] <= 1 and 0 <= reliability["ceiling_tau"] <= 1
    assert first["comparison"]["verdict_metric"] == "ground_truth_valid_ppl"
    for stage_output in ("data/prepared", "runs/policies/random/seed_0/search", "runs/ground_truth/seed_1/group_0",
                         "runs/policies/random_ws/seed_1/train"):
        assert json.loads((repo / stage_output / "environment.json").read_text())["torch"]
    assert {p.name for p in (repo / "metrics" / "figures").iterdir()} == {
        "final_ppl.png", "ground_truth.png", "ranking_vs_ground_truth.png", "tau_over_training.png", "evaluators.png"}
    # the evaluators table: every evaluator of rank.evaluators, each with both seeds, tested and costed
    names = yaml.safe_load((repo / "params.yaml").read_text())["rank"]["evaluators"]
    table = {row["name"]: row for row in first["evaluators"]}
    assert list(table) == names and all(row["seeds"] == [0, 1] for row in table.values())
    assert table["params"]["constant_ranking"] and table["shared_weights"]["cost"]["unit"] == "supernet epochs"
    assert table["fair_sampling"]["cost"]["training_epochs"] == 4 * table["shared_weights"]["cost"]["training_epochs"]
    assert all("welch_p_holm" in row["vs_shared_weights"] for name, row in table.items() if name != "shared_weights")
    # rank's shared weights are random_ws's supernet: the same ranking for the same seed
    assert first["evaluator_runs"]["shared_weights/seed_1"]["kendall_tau"] == tau_seed_1(first)
    assert len((repo / "metrics" / "plots" / "evaluators.csv").read_text().splitlines()) == 1 + 2 * len(names)
    assert "## Evaluators: which ranks cells truthfully, and at what cost" in report
    tau_plot = (repo / "metrics" / "plots" / "tau_over_training.csv").read_text().splitlines()
    assert tau_plot[0] == "run,ranking,epoch,kendall_tau" and len(tau_plot) == 3  # 2 seeds x epoch 1
    trace_plot = (repo / "metrics" / "plots" / "search_trace.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in trace_plot[1:]} == {"random_ws/0", "random_ws/1", "random/0", "random/1"}
    assert "Data and pipelines are up to date" in run(repo, "dvc", "repro").stdout

    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "default run")
    experiment = run(repo, "dvc", "exp", "run", "-S", "policy=random").stdout
    assert "Running stage 'analyze'" in experiment
    for stage in ("search@random-0", "train@random-1", "ground_truth@0-0"):
        assert f"Running stage '{stage}'" not in experiment
    second = summary(repo)
    assert set(second["policies"]) == {"random"}
    assert "Running stage 'check_params'" in experiment  # params changed: checked again, nothing follows from it
    assert second["runs"]["random/0"] == first["runs"]["random/0"]  # cached, not retrained

    diff = run(repo, "dvc", "metrics", "diff", "--json").stdout
    assert "policies.random_ws.test_ppl.mean" in diff
    run(repo, "dvc", "plots", "show", "-o", "plots_html")
    assert (repo / "plots_html" / "index.html").stat().st_size > 0
    assert "final_ppl.png" in (repo / "plots_html" / "index.html").read_text()

    # a policy with another evaluator: only its searches (and what follows) rerun, the ranks are cached
    experiment = run(repo, "dvc", "exp", "run", "-S", "policy=random_ws", "-S",
                     "search.random_ws.evaluator=few_shot").stdout
    assert "Running stage 'search@random_ws-0'" in experiment and "Running stage 'rank@" not in experiment
    third = summary(repo)
    assert third["policies"]["random_ws"]["evaluator"] == "few_shot"
    assert set(third["weight_sharing"]["random_ws/0"]) == {"few_shot_valid_ppl"}


def test_a_bad_value_fails_within_seconds_before_anything_trains(repo):
    """On a fresh clone nothing is cached: before, `policy=bogus` trained prepare and the oracle
    (5.5 minutes at the default) before the search stage named it."""
    started = time.monotonic()
    result = subprocess.run(["dvc", "exp", "run", "-S", "policy=bogus"], cwd=repo, env=environment(),
                            capture_output=True, text=True, timeout=120)
    assert time.monotonic() - started < 30
    output = result.stdout + result.stderr
    assert result.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors == ["error: params.yaml: policy: unknown policy 'bogus' (known: darts, enas, evolution, nao, random, "
                      "random_search, random_ws)"], output
    assert re.findall(r"Running stage '([^']+)'", output) == ["check_params"]


EXPERIMENTS = [  # policy, its cell output rule, its rankings of all cells, whether the ground truth trains
    ("darts", "mean", {"shared_weights_valid_ppl", "alpha_neg_log_prob"}, True),  # the first experiment
    ("enas", "loose_ends", {"shared_weights_valid_ppl", "controller_neg_log_prob"}, True),  # the original's rule
    ("nao", "mean", {"shared_weights_valid_ppl", "predictor_neg_performance"}, False),  # mean's, from the run-cache
]


def test_experiments_with_the_search_policies(repo_ranked_by_params):
    repo = repo_ranked_by_params
    for policy, cell_output, rankings, trains_ground_truth in EXPERIMENTS:
        experiment = run(repo, "dvc", "exp", "run", "-S", f"policy={policy}", "-S",
                         f"space.cell_output={cell_output}").stdout
        assert f"Running stage 'search@{policy}-1'" in experiment
        # the baseline and the ground truth follow the rule: each rule's are trained once
        assert ("Running stage 'ground_truth@0-0'" in experiment) == trains_ground_truth
        result = summary(repo)
        assert set(result["policies"]) == {policy, "random"}
        assert result["experiment"]["cell_output"] == cell_output
        assert result["policies"][policy]["failed"]["count"] == 0
        assert set(result["weight_sharing"][f"{policy}/0"]) == rankings
        for name in (policy, "random"):
            run_folder = repo / "runs" / "policies" / name / "seed_0"
            assert json.loads((run_folder / "top.json").read_text())["cell_output"] == cell_output
            assert json.loads((run_folder / "train" / "metrics.json").read_text())["cell_output"] == cell_output
        truth = json.loads((repo / "runs" / "ground_truth" / "seed_0" / "group_0" / "cells.json").read_text())
        assert truth["cell_output"] == cell_output
        run_folder = repo / "runs" / "policies" / policy / "seed_0"
        trace = (run_folder / "search" / "trace.csv").read_text().splitlines()
        assert trace[0].startswith("step,cell_id,genotype,score,best_cell_id,best_score,cost,")  # the one schema
        # the header, then 1 epoch, or NAO's 2 rounds: each trains, though the pool holds the whole space
        assert len(trace) == 1 + (2 if policy == "nao" else 1)
        plot = (repo / "metrics" / "plots" / "search_trace.csv").read_text().splitlines()
        assert plot[0] == "run,step,cell_id,genotype,score,best_cell_id,best_score,cost"
        assert {line.split(",")[0] for line in plot[1:]} == {f"{name}/{seed}" for name in (policy, "random")
                                                              for seed in (0, 1)}  # every run draws it
        assert f"policies.{policy}.test_ppl.mean" in run(repo, "dvc", "metrics", "diff", "--json").stdout

    compare = run(repo, sys.executable, "-m", "naseval.cli", "compare", "--markdown", "table.md", "--csv", "table.csv")
    table = (repo / "table.md").read_text()
    assert compare.stdout.strip() == table.strip()
    table_one = table.split("\n\n")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table_one.splitlines()[2:]}
    assert set(rows) == {"darts", "enas", "nao", "random"}
    assert all(" | random | " in rows[policy] for policy, *_ in EXPERIMENTS)  # each vs its baseline, with p-values
    assert (repo / "table.csv").read_text().startswith("policy,evaluator,experiments,runs_ok,runs,test_ppl_mean")


WITHOUT_WEIGHT_SHARING = [  # dvc exp run settings, the policy, its evaluator
    (["policy=enas"], "enas", "shared_weights"),
    (["policy=enas", "search.enas.evaluator=oracle"], "enas", "oracle"),
    (["policy=evolution"], "evolution", "oracle"),
    (["policy=random_search"], "random_search", "oracle"),
]


def test_experiments_with_and_without_weight_sharing(repo_ranked_by_params):
    repo = repo_ranked_by_params
    for settings, policy, evaluator in WITHOUT_WEIGHT_SHARING:
        experiment = run(repo, "dvc", "exp", "run", *(f"-S{setting}" for setting in settings)).stdout
        assert ("Running stage 'oracle'" in experiment) == (settings == ["policy=enas"])  # trained once
        result = summary(repo)
        assert result["policies"][policy]["evaluator"] == evaluator
        assert result["policies"]["random"]["evaluator"] == "none"
        assert result["experiment"]["ground_truth_seeds"] == {"judging": [0, 1],
                                                             "oracle": [3, 4] if evaluator == "oracle" else []}
        report = (repo / "metrics" / "report.md").read_text()
        assert ("searched **without weight sharing**" in report) == (evaluator == "oracle")
        if evaluator == "oracle":
            oracle = result["policies"][policy]["oracle"]
            assert oracle["seeds"] == [3, 4] and 1 <= oracle["cells_trained"]["mean"] <= 4  # the space has 4
        probability = result["comparison"]["ground_truth_valid_ppl"]["probability_interval"]
        assert 0 <= probability[0] <= probability[1] <= 1

    run(repo, sys.executable, "-m", "naseval.cli", "compare", "--markdown", "table.md", "--ablation-csv",
        "ablation.csv", "--figure", "ablation.png")
    with open(repo / "ablation.csv") as file:
        rows = {(row["policy"], row["evaluator"]): row for row in csv.DictReader(file)}
    assert set(rows) == {("enas", "shared_weights"), ("enas", "oracle"), ("evolution", "oracle"),
                         ("random_search", "oracle"), ("random", "none")}
    for row in rows.values():
        assert row["runs"] == "2" and 1 <= float(row["ground_truth_rank_mean"]) <= 4
        if row["policy"] != "random":
            low, p, high = (float(row[f"p_beats_random_sampling{end}"]) for end in ("_low", "", "_high"))
            assert 0 <= low <= p <= high <= 1
    assert rows["random", "none"]["p_beats_random_sampling"] == ""  # not against itself
    assert "Weight sharing cost **enas**" in (repo / "table.md").read_text()
    assert (repo / "ablation.png").read_bytes()[:4] == b"\x89PNG"
