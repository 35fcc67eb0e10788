"""The weight-sharing ablation across experiments: results matched by ground truth, against both random baselines."""

import pytest

from naseval.analysis.ablation import ablation_csv_rows, ablation_markdown, ablation_rows, collect, cost_sentences

TRUTH = {"digest": "gt-a", "seeds": [0, 1, 2]}


def stats(evaluator, digest="cfg"):
    return {"seeds": 4, "failed": {"count": 0, "seeds": []}, "evaluator": evaluator, "config_digest": digest}


def summary(policy, evaluator, ranks, baseline_ranks=(10, 12, 20, 30), truth=TRUTH):
    """An experiment's summary: the policy's runs and the random baseline's, ground truth = 100 + rank."""
    runs = {f"{policy}/{seed}": {"ground_truth_rank": r, "ground_truth_valid_ppl": 100.0 + r, "regret": r - 1.0}
            for seed, r in enumerate(ranks)}
    runs |= {f"random/{seed}": {"ground_truth_rank": r, "ground_truth_valid_ppl": 100.0 + r, "regret": r - 1.0}
             for seed, r in enumerate(baseline_ranks)}
    return {"policies": {policy: stats(evaluator), "random": stats("none", "random")}, "runs": runs,
            "ground_truth": truth}


SUMMARIES = [
    ("workspace", summary("enas", "shared_weights", (15, 20, 25, 28))),
    ("enas-oracle", summary("enas", "oracle", (1, 2, 2, 4))),
    ("search", summary("random_search", "oracle", (2, 3, 5, 6))),
    ("other-truth", summary("enas", "oracle", (1, 1, 1, 1), truth={"digest": "gt-b", "seeds": [0]})),
]


def test_the_same_runs_in_several_experiments_are_one_result_and_ground_truths_stay_apart():
    results = collect(SUMMARIES)
    keys = [(r.policy, r.evaluator, r.ground_truth, r.experiments) for r in results]
    assert ("random", "none", "gt-a", ["workspace", "enas-oracle", "search"]) in keys
    assert ("enas", "oracle", "gt-b", ["other-truth"]) in keys and len(results) == 6


def test_each_result_is_held_against_random_sampling_and_random_search_of_its_ground_truth():
    rows = {(r["policy"], r["evaluator"], r["ground_truth"]): r for r in ablation_rows(collect(SUMMARIES), 2000)}
    alone = rows["enas", "oracle", "gt-a"]
    assert alone["ground_truth_rank"]["mean"] == 2.25 and alone["found_best"] == 1
    assert alone["vs_random_sampling"]["probability"] == 1.0  # every rank beats 10..30
    assert alone["vs_random_search"]["probability"] == pytest.approx((4 + 3.5 + 3.5 + 2) / 16)
    low, high = alone["vs_random_search"]["interval"]
    assert low < alone["vs_random_search"]["probability"] < high
    shared = rows["enas", "shared_weights", "gt-a"]
    assert shared["vs_random_sampling"]["probability"] == pytest.approx(5.5 / 16)  # a tie counts half
    assert shared["vs_random_search"]["probability"] == 0.0
    assert rows["random", "none", "gt-a"]["vs_random_sampling"] is None  # not against itself
    assert rows["enas", "oracle", "gt-b"]["vs_random_search"] is None  # no random search under that ground truth
    flat = {(r["policy"], r["evaluator"], r["ground_truth"]): r for r in ablation_csv_rows(list(rows.values()))}
    assert flat["enas", "oracle", "gt-a"]["p_beats_random_sampling"] == 1.0
    assert "| enas | oracle | enas-oracle | 4 | 2.2 ± 1.3 |" in ablation_markdown(list(rows.values()))


def test_one_sentence_per_policy_says_what_weight_sharing_cost_it():
    rows = ablation_rows(collect(SUMMARIES), 2000)
    [sentence] = cost_sentences(rows, 2000)
    assert sentence.startswith("Weight sharing cost **enas** 19.8 ground-truth perplexity on its found cells (95% "
                               "interval [")
    assert "Welch p = " in sentence and "evidence of a difference (p < 0.05)" in sentence
    assert "mean ground-truth rank 22.0 with it (4 seeds) and 2.2 without (4 seeds)" in sentence
    assert "P(beats random sampling) 0.34 [" in sentence and "with it and 1.00 [1.00, 1.00] without" in sentence


def test_random_ws_is_paired_with_random_search():
    rows = ablation_rows(collect([("workspace", summary("random_ws", "shared_weights", (3, 9, 14, 20))),
                                  SUMMARIES[2]]), 2000)
    [sentence] = cost_sentences(rows, 2000)
    assert sentence.startswith("Weight sharing cost **random_ws / random_search** ")
