"""The report states each finding with its number; the figures are drawn from the same analysis."""

import dataclasses
import re

import numpy as np
import pytest

from naseval.analysis.figures import render_figures
from naseval.analysis.report import render_report
from naseval.analysis.summary import AnalysisConfig, Experiment, GroundTruth, RunRecord, analyze
from naseval.analysis.validity import published_ranking
from naseval.core.space import SearchSpace

CONFIG = AnalysisConfig()
CONSISTENT = GroundTruth({0: {0: 60.0, 1: 61.0, 2: 62.0, 3: 63.0}, 1: {0: 60.2, 1: 61.1, 2: 62.3, 3: 62.9}},
                         {0: "tanh:0", 1: "relu:0", 2: "sigmoid:0", 3: "identity:0"})
NOISY = GroundTruth({0: {0: 60.0, 1: 61.0, 2: 62.0, 3: 63.0}, 1: {0: 63.0, 1: 62.0, 2: 61.0, 3: 60.0}})
HISTORY = [{"epoch": 1, "rankings": {"shared_weights_valid_ppl": {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}}},
           {"epoch": 3, "rankings": {"shared_weights_valid_ppl": {0: 4.0, 1: 3.0, 2: 2.0, 3: 1.0}}}]


def runs(policy_ppl=(60.0, 60.5), baseline_ppl=(66.0, 67.0)):
    ws = {"shared_weights_valid_ppl": {0: 3.0, 1: 1.0, 2: 2.0, 3: 4.0}}
    return [RunRecord("enas", seed, 1 + seed, f"cell{1 + seed}", 1.0, ppl - 2, ppl, ws, ranking_history=HISTORY)
            for seed, ppl in enumerate(policy_ppl)] + [
        RunRecord("random", seed, 3, "cell3", None, ppl - 2, ppl) for seed, ppl in enumerate(baseline_ppl)]


def report(truth=CONSISTENT, records=None, experiment=Experiment("enas", "random", (0, 1)), **validity_inputs):
    result = analyze(records or runs(), truth, experiment, CONFIG, **validity_inputs)
    return render_report(result, {"a figure": "figures/a.png"}, CONFIG)


def test_report_states_the_comparison_with_its_numbers():
    text = report()
    assert ("Found cells by test perplexity of its one retrain: **enas** 60.2 ± 0.4 (2 seeds) vs **random** "
            "66.5 ± 0.7 (2 seeds): difference −6.2") in text
    assert ("Found cells by ground-truth mean validation perplexity: **enas** 61.6 ± 0.8 (2 seeds) vs **random** "
            "63.0 ± 0.0 (2 seeds): difference −1.4") in text
    assert "a seed of enas beats a seed of random with probability 1.00" in text
    assert "a seed of enas beats a seed of random with probability 1.00 [0.51, 1.00]" in text  # never [1, 1]
    assert "95% Welch interval [−9.7, −2.8]; permutation p = 0.33" in text
    assert "cannot go below p = 0.33" in text
    assert ("**Verdict**, on the ground-truth mean validation perplexity because it averages 2 training seeds of "
            "each found cell") in text
    # 2 seeds a side: 6 ways to split 4 values, so no permutation p goes below 2/6; Holm over the 4 tests
    assert "No evidence that enas beats random (permutation p = 0.33, Holm-adjusted 1.00; α = 0.05)." in text
    assert "| enas vs random | 0.33 | 1.00 |" in text
    assert "its found cells' quantiles 0.62, 0.38); exact test of no difference: p = 1.00" in text
    assert "Every cell outputs the mean of its nodes (`space.cell_output: mean`" in text


def test_the_report_names_the_experiments_cell_output_rule():
    records = [dataclasses.replace(record, cell_output="loose_ends") for record in runs()]
    truth = dataclasses.replace(CONSISTENT, cell_output="loose_ends")
    assert "Every cell outputs the mean of its loose ends (`space.cell_output: loose_ends`" in report(truth, records)


def test_without_ground_truth_the_verdict_rests_on_the_retrains():
    text = report(truth=None)
    assert "**Verdict**, on the test perplexity of its one retrain because there is no ground truth" in text
    four = runs(policy_ppl=(60.0, 60.5, 61.0, 61.5), baseline_ppl=(66.0, 67.0, 68.0, 69.0))
    text = report(truth=None, records=four, experiment=Experiment("enas", "random", (0, 1, 2, 3)))
    # 4 vs 4 wholly apart: the permutation test's floor, 2/70; the only test of the family
    assert "Evidence that enas beats random (permutation p = 0.03, Holm-adjusted 0.03 < α = 0.05)." in text


def test_report_says_no_evidence_when_the_difference_is_noise():
    text = report(records=runs(policy_ppl=(60.0, 66.0), baseline_ppl=(61.0, 65.0)))
    assert "No evidence that enas beats random (permutation p = 0.33" in text


def test_cells_that_did_not_learn_are_named_as_such():
    plateau = {0: 60.0, 1: 99.0, 2: 100.0, 3: 100.5}
    truth = GroundTruth({0: plateau, 1: {cell: ppl - 0.6 for cell, ppl in plateau.items()}})
    references = {"unigram": {"valid": 99.5, "test": 101.0}, "bigram": {"valid": 70.0, "test": 72.0}}
    text = report(truth, reference_ppl=references)
    assert ("**Cells that did not learn** (2 in seed 0, 1 in seed 1, of 4): their validation perplexity is not below "
            "the validation perplexity of a unigram model, 99.5") in text
    assert "Every cell learned" in report(truth, reference_ppl={**references, "unigram": {"valid": 200.0}})
    result = analyze(runs(), truth, Experiment("enas", "random", (0, 1)), CONFIG, reference_ppl=references)
    assert [row["seeds_not_learned"] for row in result.ground_truth_rows] == [0, 0, 1, 2]
    assert render_figures(result, CONFIG.confidence)["ground_truth.png"][1].startswith(b"\x89PNG")
    assert "did not learn" not in report(truth)  # without the corpus's references: no claim


def test_the_report_states_validity_against_the_published_order_and_isomorphs():
    space = SearchSpace()
    published = published_ranking().ranks_in(space)
    curves = {seed: {cell: [200.0 - rank, 100.0 + rank + seed] for cell, rank in published.items()} for seed in (0, 1)}
    results = {seed: {cell: min(curve) for cell, curve in by_cell.items()} for seed, by_cell in curves.items()}
    truth = GroundTruth(results, curves=curves)
    text = report(truth, space=space)
    assert "the ground-truth mean agrees at Kendall tau **1.00**" in text
    assert "over the 26 distinct functions 1.00" in text
    assert "(one architecture under two names, 6 pairs) are 1.83 ranks apart" in text
    assert "agrees with its final order at Kendall tau −1.00 (epoch 1)" in text
    assert "against 11.00 for random ranks (p < 0.001)" in text
    other = report(truth, space=SearchSpace(nodes=2, cell_output="loose_ends"))
    assert "No published order to check this ground truth against" in other


def test_a_low_ceiling_is_reported_as_a_ground_truth_too_noisy_to_judge_by():
    noisy = report(NOISY)
    assert "two single seeds with each other at −1.00" in noisy
    assert "**The ceiling's lower bound is below 0.8: the ground truth may be too noisy to judge by.**" in noisy
    consistent = report(CONSISTENT)
    assert "too noisy" not in consistent
    assert ("a perfect ranking is expected to reach Kendall tau **1.00** [1.00, 1.00] against the 2-seed mean"
            in consistent)
    assert "Read every tau below against this ceiling" in consistent


def test_report_names_ranks_the_best_cell_and_weight_sharing_agreement():
    text = report()
    assert "the best is cell 0 (tanh:0)" in text
    assert "enas's cells rank 2, 3 of 4" in text and "No policy found the best cell." in text
    assert ("enas, ranking `shared_weights_valid_ppl`: Kendall tau with the ground truth 0.33 [−1.00, 1.00] "
            "(0.33 to 0.33); 0.33 [−1.00, 1.00] (0.33 to 0.33)") in text
    assert "Between search seeds the ranking agrees with itself at Kendall tau 1.00" in text
    assert "went from 1.00 (epoch 1) to −1.00 (epoch 3), between −1.00 and 1.00 on the way" in text
    assert "![a figure](figures/a.png)" in text


def test_failed_runs_are_counted_in_the_report():
    failed = RunRecord("enas", 1, None, None, None, None, None, failure="training diverged: loss nan at row 0")
    text = report(records=runs()[:1] + [failed] + runs()[2:])
    assert "**1 of 2 enas runs failed** (seed 1: training diverged: loss nan at row 0)" in text


def test_without_ground_truth_the_report_says_why():
    text = report(truth=None)
    assert "too large to enumerate" in text and "with the ground truth" not in text
    assert "Between search seeds the ranking agrees with itself" in text  # instability needs no ground truth


@pytest.mark.parametrize("truth, expected", [
    (CONSISTENT, {"final_ppl.png", "ground_truth.png", "ranking_vs_ground_truth.png", "tau_over_training.png"}),
    (None, {"final_ppl.png"}),
])
def test_figures_are_written_as_non_empty_pngs(truth, expected):
    figures = render_figures(analyze(runs(), truth, Experiment("enas", "random", (0, 1)), CONFIG), CONFIG.confidence)
    assert set(figures) == expected
    for caption, image in figures.values():
        assert caption and image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 5000


def test_cells_that_diverged_in_ground_truth_are_left_out_and_reported():
    truth = GroundTruth({0: {0: 60.0, 2: 62.0, 3: 63.0}, 1: {0: 60.2, 2: 62.3, 3: 62.9}}, CONSISTENT.genotypes,
                        failed={1: "seed 0: training diverged: loss nan at row 0"})
    result = analyze(runs(), truth, Experiment("enas", "random", (0, 1)), CONFIG)
    assert result.summary["ground_truth"]["cells"] == 3
    assert "ground_truth_rank" not in result.summary["runs"]["enas/0"]  # its cell 1 has no ground truth
    assert result.summary["runs"]["enas/1"]["ground_truth_rank"] == 2
    text = render_report(result, {}, CONFIG)
    assert "**1 cells diverged in ground-truth training and are left out of every ranking** (cell 1, seed 0" in text
    assert "enas's cells rank 2 of 3" in text


def synthetic_truth(cells: int, seeds: int, noise: float, seed: int = 0) -> GroundTruth:
    """Cell c's perplexity is 60 + c plus Gaussian noise of sd `noise` per training seed."""
    rng = np.random.default_rng(seed)
    return GroundTruth({s: {c: 60.0 + c + float(rng.normal(0, noise)) for c in range(cells)} for s in range(seeds)})


def test_the_gate_reads_the_ceilings_lower_bound():
    text = report(synthetic_truth(12, 3, 2.0))
    ceiling = re.search(r"reach Kendall tau \*\*(\S+)\*\* \[(\S+), (\S+)\]", text)
    point, low = (float(ceiling[i].replace("−", "-")) for i in (1, 2))
    assert low < 0.8 <= point  # the point alone would pass the gate
    assert "**The ceiling's lower bound is below 0.8" in text


def test_a_tau_whose_interval_contains_the_ceiling_is_not_called_below_it():
    truth = synthetic_truth(16, 3, 1.0)
    perfect = {"shared_weights_valid_ppl": {c: float(c) for c in range(16)}}
    shuffled = {"shared_weights_valid_ppl": {c: float((7 * c) % 16) for c in range(16)}}
    records = [RunRecord("enas", 0, 1, "cell1", 1.0, 60.0, 61.0, perfect),
               RunRecord("enas", 1, 2, "cell2", 1.0, 60.0, 61.0, shuffled)] + runs()[2:]
    text = report(truth, records)
    assert "enas/1 ranks below it (the interval's top is lower)" in text
    assert "the interval of enas/0 contains it or more, so that run cannot be told from a perfect ranking" in text
    assert "enas/0 ranks below" not in text
    result = analyze(records, truth, Experiment("enas", "random", (0, 1)), CONFIG)
    agreement = result.summary["weight_sharing"]["enas/0"]["shared_weights_valid_ppl"]
    ceiling = result.summary["ground_truth"]["reliability"]["ceiling_tau"]
    assert agreement["kendall_tau_over_ceiling"] == pytest.approx(agreement["kendall_tau"] / ceiling)


def test_a_ground_truth_whose_seeds_tie_every_cell_has_no_ceiling_to_read():
    flat = GroundTruth({0: {c: 60.0 for c in range(4)}, 1: {c: 61.0 for c in range(4)}})
    text = report(flat)
    assert "Ground-truth reliability (2 seeds) is undefined: no two cells are ranked apart by its seeds." in text
    assert "nan" not in text.lower()
