import dataclasses

import pytest
from scipy import stats

from naseval.analysis.inputs import read_trace
from naseval.analysis.report import evaluator_findings
from naseval.analysis.summary import AnalysisConfig, Experiment, GroundTruth, RunRecord, analyze
from naseval.core.errors import NasevalError

TRUTH = GroundTruth({
    0: {0: 60.0, 1: 61.0, 2: 62.0, 3: 63.0},
    1: {0: 60.5, 1: 60.9, 2: 62.5, 3: 62.8},
})
RANDOM_WS = Experiment("random_ws", "random", (0, 1))


def run(policy, seed, cell_id, test_ppl, rankings=None):
    return RunRecord(policy, seed, cell_id, f"cell{cell_id}", None, test_ppl + 2, test_ppl, rankings or {})


def test_policy_summary_and_ground_truth_ranks():
    runs = [run("random", 0, 3, 63.0), run("random", 1, 1, 61.0), run("random_ws", 0, 0, 60.0)]
    result = analyze(runs, TRUTH, RANDOM_WS)
    random = result.summary["policies"]["random"]
    assert random["test_ppl"] == {"mean": 62.0, "std": pytest.approx(2 ** 0.5), "median": 62.0, "best": 61.0,
                                  "worst": 63.0}
    assert random["ground_truth_rank"]["mean"] == 3.0  # ranks 4 and 2
    assert random["regret"]["worst"] == pytest.approx(62.9 - 60.25)  # cell 3's mean minus cell 0's
    assert random["found_best_cell"] == 0 and result.summary["policies"]["random_ws"]["found_best_cell"] == 1
    assert random["distinct_cells"] == 2
    assert result.summary["policies"]["random_ws"]["test_ppl"]["std"] == 0.0
    assert result.summary["runs"]["random/0"]["ground_truth_rank"] == 4
    assert result.summary["ground_truth"]["reliability"]["seed_to_seed_tau"] == pytest.approx(1.0)
    assert result.summary["runs"]["random/0"]["ground_truth_valid_ppl"] == pytest.approx(62.9)
    assert [row["rank"] for row in result.ground_truth_rows] == [1, 2, 3, 4]


def test_weight_sharing_against_ground_truth_is_matched_by_id():
    reversed_ws = {"shared_weights_valid_ppl": {3: 100.0, 2: 101.0, 1: 102.0, 0: 103.0}}
    faithful_ws = {"shared_weights_valid_ppl": {0: 200.0, 1: 201.0, 2: 202.0, 3: 203.0}}
    runs = [run("random_ws", 0, 3, 63.0, reversed_ws), run("random_ws", 1, 0, 60.0, faithful_ws)]
    result = analyze(runs, TRUTH, RANDOM_WS)
    agreement = result.summary["weight_sharing"]
    assert agreement["random_ws/0"]["shared_weights_valid_ppl"]["kendall_tau"] == pytest.approx(-1.0)
    assert agreement["random_ws/1"]["shared_weights_valid_ppl"]["spearman_rho"] == pytest.approx(1.0)
    rows = [r for r in result.ranking_rows if r["run"] == "random_ws/0"]
    assert {(r["cell_id"], r["weight_sharing_rank"], r["ground_truth_rank"]) for r in rows} == {
        (0, 4, 1), (1, 3, 2), (2, 2, 3), (3, 1, 4)}


def test_seeds_that_disagree_give_a_low_reliability():
    noisy = GroundTruth({0: {0: 60.0, 1: 61.0, 2: 62.0, 3: 63.0}, 1: {0: 63.0, 1: 62.0, 2: 61.0, 3: 60.0}})
    result = analyze([run("random", 0, 0, 60.0)], noisy, Experiment("random", "random", (0,)))
    figures = result.summary["ground_truth"]["reliability"]
    assert figures["seed_to_seed_tau"] == pytest.approx(-1.0)
    assert figures["leave_one_seed_out_tau"]["mean"] == pytest.approx(-1.0)
    assert figures["ceiling_tau"] < 0.5  # the cells' means are all 61.5: nothing true to rank


def test_without_ground_truth_only_perplexities_are_reported():
    result = analyze([run("random", 0, 12345, 80.0)], None, Experiment("random", "random", (0,)))
    assert "ground_truth" not in result.summary and "weight_sharing" not in result.summary
    assert "ground_truth_rank" not in result.summary["policies"]["random"]
    assert result.ground_truth_rows == [] and result.ranking_rows == []
    assert result.final_ppl == [{"policy": "random", "seed": 0, "cell_id": 12345, "genotype": "cell12345",
                                 "valid_ppl": 82.0, "test_ppl": 80.0}]


def trace_row(step, cell, score, best, best_score, cost, **extra):
    return {"step": str(step), "cell_id": str(cell), "genotype": f"cell{cell}", "score": score,
            "best_cell_id": str(best), "best_score": best_score, "cost": str(cost), **extra}


def test_every_runs_trace_becomes_plot_rows_of_the_one_schema():
    enas = [trace_row(1, 3, "70.5", 3, "70.5", 1, mode_probability="0.2"),
            trace_row(2, 0, "65.0", 0, "65.0", 2, mode_probability="0.4")]
    random = [trace_row(1, 1, "", 1, "", 0)]  # a pick without a score
    runs = [RunRecord("enas", 0, 0, "cell0", 65.0, 61.0, 60.0, trace=enas),
            RunRecord("random", 0, 1, "cell1", None, 62.0, 61.0, trace=random)]
    rows = analyze(runs, TRUTH, Experiment("enas", "random", (0,))).trace_rows
    assert rows == [{"run": "enas/0", **{k: v for k, v in row.items() if k != "mode_probability"}} for row in enas] + [
        {"run": "random/0", **random[0]}]


def test_a_trace_without_the_schemas_columns_is_refused(tmp_path):
    (tmp_path / "trace.csv").write_text("epoch,cell_id,score\n1,3,70.5\n")
    with pytest.raises(NasevalError, match=r"trace.csv: no column step, genotype, best_cell_id, best_score, cost"):
        read_trace(tmp_path)


def test_policy_is_compared_with_the_baseline_on_retrains_and_on_ground_truth():
    runs = [run("random_ws", 0, 0, 60.0), run("random_ws", 1, 1, 61.0),
            run("random", 0, 2, 64.0), run("random", 1, 3, 66.0)]
    comparison = analyze(runs, TRUTH, RANDOM_WS).summary["comparison"]
    assert comparison["policy"] == "random_ws" and comparison["baseline"] == "random"
    retrains = comparison["test_ppl"]
    assert retrains["difference_of_means"] == pytest.approx(-4.5)
    assert retrains["probability_of_beating_baseline"] == 1.0
    assert retrains["smallest_possible_mann_whitney_p"] == pytest.approx(1 / 3)
    low, high = retrains["difference_interval"]  # Welch's, 2 seeds a side: wide
    assert (low, high) == pytest.approx(stats.ttest_ind([60.0, 61.0], [64.0, 66.0], equal_var=False)
                                        .confidence_interval(0.95))
    assert low < -4.5 < high
    # cells 0 and 1 against 2 and 3 by their ground-truth means: (60.25 + 60.95 - 62.25 - 62.9) / 2
    assert comparison["ground_truth_valid_ppl"]["difference_of_means"] == pytest.approx(-1.975)
    assert comparison["verdict_metric"] == "ground_truth_valid_ppl"
    without_truth = analyze(runs, None, RANDOM_WS).summary["comparison"]
    assert without_truth["verdict_metric"] == "test_ppl" and "ground_truth_valid_ppl" not in without_truth


def test_no_comparison_when_the_policy_is_the_baseline_or_all_its_runs_failed():
    baseline_only = analyze([run("random", 0, 2, 64.0)], TRUTH, Experiment("random", "random", (0,)))
    assert "comparison" not in baseline_only.summary
    failed = RunRecord("random_ws", 0, None, None, None, None, None, failure="training diverged")
    result = analyze([failed, run("random", 0, 2, 64.0)], TRUTH, Experiment("random_ws", "random", (0,)))
    assert "comparison" not in result.summary
    assert result.summary["policies"]["random_ws"]["failed"] == {"count": 1, "seeds": [0]}


def test_weight_sharing_top_k_overlap_and_instability_across_seeds():
    faithful = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    swapped = {0: 2.0, 1: 1.0, 2: 3.0, 3: 4.0}
    runs = [run("random_ws", 0, 0, 60.0, {"ws": faithful}), run("random_ws", 1, 1, 61.0, {"ws": swapped})]
    result = analyze(runs, TRUTH, RANDOM_WS, AnalysisConfig(top_k=(1, 2)))
    agreement = result.summary["weight_sharing"]["random_ws/1"]["ws"]
    assert agreement["top_1_overlap"] == 0.0 and agreement["top_2_overlap"] == 1.0
    assert agreement["kendall_tau"] == pytest.approx(4 / 6)
    ranking = result.summary["policies"]["random_ws"]["weight_sharing"]["ws"]
    assert ranking["seed_to_seed_kendall_tau"]["mean"] == pytest.approx(4 / 6)
    assert ranking["kendall_tau"] == {"mean": pytest.approx((1 + 4 / 6) / 2), "std": pytest.approx(0.2357, abs=1e-4),
                                      "min": pytest.approx(4 / 6), "max": pytest.approx(1.0), "count": 2,
                                      "undefined": 0}


def test_a_constant_ranking_leaves_the_other_seeds_taus_described():
    """A supernet that scores every cell alike has no tau; the other seeds' taus still count."""
    constant = {0: 5.0, 1: 5.0, 2: 5.0, 3: 5.0}
    faithful = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    swapped = {0: 2.0, 1: 1.0, 2: 3.0, 3: 4.0}
    runs = [run("random_ws", seed, seed, 60.0, {"ws": scores})
            for seed, scores in enumerate([constant, faithful, swapped])]
    result = analyze(runs, TRUTH, Experiment("random_ws", "random", (0, 1, 2)))
    ranking = result.summary["policies"]["random_ws"]["weight_sharing"]["ws"]
    assert ranking["kendall_tau"]["count"] == 2 and ranking["kendall_tau"]["undefined"] == 1
    assert ranking["kendall_tau"]["mean"] == pytest.approx((1 + 4 / 6) / 2)
    assert ranking["seed_to_seed_kendall_tau"]["count"] == 1  # of 3 pairs, only faithful vs swapped
    assert ranking["seed_to_seed_kendall_tau"]["mean"] == pytest.approx(4 / 6)


def loose_ends_run(policy, seed, cell_id, test_ppl):
    return dataclasses.replace(run(policy, seed, cell_id, test_ppl), cell_output="loose_ends")


def test_cells_of_another_output_rule_than_the_ground_truths_are_not_compared():
    runs = [loose_ends_run("enas", 0, 0, 60.0), loose_ends_run("random", 0, 1, 61.0)]
    with pytest.raises(NasevalError, match="different cell outputs .*enas/0 loose_ends.*the ground truth mean"):
        analyze(runs, TRUTH, Experiment("enas", "random", (0,)))
    with pytest.raises(NasevalError, match="different cell outputs"):
        analyze([loose_ends_run("enas", 0, 0, 60.0), run("random", 0, 1, 61.0)], None,
                Experiment("enas", "random", (0,)))


def test_enas_is_judged_against_a_ground_truth_of_its_own_rule():
    truth = GroundTruth(TRUTH.valid_ppl, cell_output="loose_ends")
    runs = [loose_ends_run("enas", 0, 0, 60.0), loose_ends_run("random", 0, 3, 63.0)]
    result = analyze(runs, truth, Experiment("enas", "random", (0,)))
    assert result.summary["experiment"]["cell_output"] == "loose_ends"
    assert result.summary["runs"]["enas/0"]["ground_truth_rank"] == 1
    assert result.summary["runs"]["random/0"]["ground_truth_rank"] == 4


def test_tau_over_training_comes_from_each_runs_ranking_history():
    history = [{"epoch": 2, "rankings": {"ws": {0: 4.0, 1: 3.0, 2: 2.0, 3: 1.0}}},
               {"epoch": 4, "rankings": {"ws": {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}}}]
    record = RunRecord("random_ws", 0, 0, "cell0", None, 62.0, 60.0, ranking_history=history)
    rows = analyze([record], TRUTH, RANDOM_WS).tau_rows
    assert [(r["run"], r["ranking"], r["epoch"]) for r in rows] == [("random_ws/0", "ws", 2), ("random_ws/0", "ws", 4)]
    assert [r["kendall_tau"] for r in rows] == [pytest.approx(-1.0), pytest.approx(1.0)]


def test_bad_analysis_settings_are_rejected():
    for bad in ({"confidence": 1.5}, {"significance": 0}, {"top_k": ()}, {"bootstrap_resamples": 10}):
        with pytest.raises(NasevalError):
            AnalysisConfig(**bad)


def oracle_run(seed, cell_id, answered_by=(3, 4), budget=16, trained=4):
    facts = {"name": "oracle", "seeds": list(answered_by), "budget": budget, "cells_trained": trained, "queries": 9}
    return dataclasses.replace(run("evolution", seed, cell_id, 60.0), evaluator=facts)


def test_the_summary_names_each_policys_evaluator_and_the_seeds_that_judged_and_answered():
    runs = [oracle_run(0, 0), oracle_run(1, 1, trained=2), run("random", 0, 3, 63.0), run("random", 1, 2, 62.0)]
    summary = analyze(runs, TRUTH, Experiment("evolution", "random", (0, 1))).summary
    assert summary["experiment"]["ground_truth_seeds"] == {"judging": [0, 1], "oracle": [3, 4]}
    evolution = summary["policies"]["evolution"]
    assert evolution["evaluator"] == "oracle" and summary["policies"]["random"]["evaluator"] == "none"
    assert evolution["oracle"]["cells_trained"]["mean"] == 3.0 and evolution["oracle"]["budget"] == 16
    assert summary["runs"]["evolution/0"]["evaluator"] == "oracle"
    comparison = summary["comparison"]["ground_truth_valid_ppl"]
    assert comparison["probability_of_beating_baseline"] == 1.0  # ranks 1, 2 against 3, 4
    low, high = comparison["probability_interval"]
    assert 0.5 < low < high == 1.0  # a sample of 2 that beat every pair is not proof of certainty
    findings = " ".join(evaluator_findings(summary))
    assert "conditional on this one table of 2 oracle seeds" in findings


def test_an_oracle_that_answered_from_a_judging_seed_is_refused():
    runs = [oracle_run(0, 0, answered_by=(1, 3)), run("random", 0, 3, 63.0)]
    with pytest.raises(NasevalError, match="ground-truth seeds 1 both judge and answered the oracle searches"):
        analyze(runs, TRUTH, Experiment("evolution", "random", (0,)))


def test_the_ground_truth_digest_tells_ground_truths_apart():
    other = GroundTruth({**TRUTH.valid_ppl, 1: {**TRUTH.valid_ppl[1], 3: 62.9}})
    assert TRUTH.digest == GroundTruth(dict(TRUTH.valid_ppl)).digest != other.digest
    assert dataclasses.replace(TRUTH, cell_output="loose_ends").digest != TRUTH.digest
