"""The weight-sharing ablation across experiments: results matched by ground truth, held against
exact references and the measured random search, costs stated, one Holm family."""

import pytest

from naseval.analysis.ablation import (
    ablation_csv_rows,
    ablation_markdown,
    ablation_rows,
    adjust_family,
    collect,
    cost_sentences,
    costs,
)

TRUTH = {"digest": "gt-a", "seeds": [0, 1, 2], "cells": 32}


def stats(evaluator, digest="cfg", budget=None):
    oracle = {"oracle": {"budget": budget, "cells_trained": {"mean": budget - 0.5}}} if budget else {}
    return {"seeds": 4, "failed": {"count": 0, "seeds": []}, "evaluator": evaluator, "config_digest": digest,
            **oracle}


def run(rank):
    """A found cell of rank `rank` of 32, ground truth 100 + rank, no ties."""
    return {"ground_truth_rank": rank, "ground_truth_valid_ppl": 100.0 + rank, "regret": rank - 1.0,
            "ground_truth_cells_worse": 32 - rank, "ground_truth_cells_tied": 1}


def summary(policy, evaluator, ranks, baseline_ranks=(10, 12, 20, 30), truth=TRUTH, budget=None, digest="cfg"):
    """An experiment's summary: the policy's runs (seeds 0, 1, ...) and the random baseline's."""
    runs = {f"{policy}/{seed}": run(r) for seed, r in enumerate(ranks)}
    runs |= {f"random/{seed}": run(r) for seed, r in enumerate(baseline_ranks)}
    return {"policies": {policy: stats(evaluator, digest, budget), "random": stats("none", "random")}, "runs": runs,
            "ground_truth": truth}


SUMMARIES = [
    ("workspace", summary("enas", "shared_weights", (15, 20, 25, 28))),
    ("enas-oracle", summary("enas", "oracle", (1, 2, 2, 4, 3, 5, 1, 2), budget=16)),
    ("search", summary("random_search", "oracle", (2, 3, 5, 6), budget=16)),
    ("search-2", summary("random_search", "oracle", (4, 9, 12, 20), budget=2, digest="cfg2")),
    ("other-truth", summary("enas", "oracle", (1, 1, 1, 1), truth={"digest": "gt-b", "seeds": [0], "cells": 32},
                            budget=16)),
]


def rows_by_key():
    rows = ablation_rows(collect(SUMMARIES))
    return {(r["label"], r["evaluator"], r["ground_truth"]): r for r in rows}, rows


def test_the_same_runs_in_several_experiments_are_one_result_and_ground_truths_stay_apart():
    results = collect(SUMMARIES)
    keys = [(r.policy, r.evaluator, r.ground_truth, r.experiments) for r in results]
    assert ("random", "none", "gt-a", ["workspace", "enas-oracle", "search", "search-2"]) in keys
    assert ("enas", "oracle", "gt-b", ["other-truth"]) in keys and len(results) == 7
    assert {r.label for r in results if r.policy == "random_search"} == {"random_search (budget 16)",
                                                                          "random_search (budget 2)"}


def test_each_row_states_its_cost_and_sits_against_exact_references():
    rows, _ = rows_by_key()
    alone = rows["enas (budget 16)", "oracle", "gt-a"]
    assert alone["cells_trained"] == 15.5 and alone["supernet_trainings"] == 0
    assert rows["enas", "shared_weights", "gt-a"]["supernet_trainings"] == 1
    # rank r of 32 beats 32 - r cells and ties itself: (32 - r + 0.5) / 32, averaged over the 8 seeds
    ranks = (1, 2, 2, 4, 3, 5, 1, 2)
    assert alone["vs_random_sampling"]["probability"] == pytest.approx(sum(32 - r + 0.5 for r in ranks) / 32 / 8)
    assert alone["vs_random_sampling"]["p"] < 0.001
    assert set(alone["vs_random_search"]) == {2, 16}  # every budget random search was measured at
    assert alone["vs_random_search"][16]["probability"] < alone["vs_random_search"][2]["probability"]
    assert alone["vs_measured_random_search"]["against"] == "random_search (budget 16)"
    assert rows["random", "none", "gt-a"]["vs_random_sampling"] is None  # not against itself
    assert rows["enas (budget 16)", "oracle", "gt-b"]["vs_random_search"] == {}  # none under that ground truth


def test_summaries_without_positions_get_no_exact_reference():
    old = summary("nao", "oracle", (3, 4), budget=16)
    for name in ("nao/0", "nao/1"):
        del old["runs"][name]["ground_truth_cells_worse"]
    [nao] = [r for r in ablation_rows(collect([("old", old)])) if r["policy"] == "nao"]
    assert nao["vs_random_sampling"] is None


def test_weight_sharing_is_tested_directly_on_the_seeds_run_both_ways():
    _, rows = rows_by_key()
    [cost] = costs(rows)
    assert cost["seeds"] == [0, 1, 2, 3]  # the oracle ran 8 seeds: only the 4 shared ones count
    assert cost["difference"]["difference_of_means"] == pytest.approx((15 + 20 + 25 + 28 - (1 + 2 + 2 + 4)) / 4)
    assert cost["difference"]["permutation_p"] == pytest.approx(2 / 70)  # 4 vs 4 wholly apart
    family = adjust_family(rows, [cost])
    assert family == 1 + sum(bool(r["vs_random_sampling"]) + len(r["vs_random_search"])
                             + bool(r["vs_measured_random_search"]) for r in rows)
    assert 2 / 70 < cost["difference"]["permutation_p_holm"] <= family * 2 / 70
    [sentence] = cost_sentences([cost])
    assert sentence.startswith("Weight sharing cost **enas** 19.8 ground-truth perplexity on its found cells over "
                               "the 4 search seeds run both ways (Welch interval [")
    assert "permutation p = 0.03, Holm 0.23: no evidence of a difference" in sentence
    assert "with it (4 seeds) and " in sentence and " without (8 seeds)." in sentence


def test_the_table_and_csv_carry_costs_and_holm_p():
    _, rows = rows_by_key()
    adjust_family(rows, costs(rows))
    table = ablation_markdown(rows)
    assert "P(beats random search, budget 2) | P(beats random search, budget 16)" in table
    assert "| enas (budget 16) | oracle | enas-oracle | 8 | 15.5 | 0 | 2.5 ± 1.4 |" in table
    flat = {(r["policy"], r["evaluator"], r["ground_truth"], r["budget"]): r for r in ablation_csv_rows(rows)}
    alone = flat["enas", "oracle", "gt-a", 16]
    assert alone["p_holm_vs_random_sampling"] >= alone["p_value_vs_random_sampling"]


def test_random_ws_is_paired_with_random_search():
    rows = ablation_rows(collect([("workspace", summary("random_ws", "shared_weights", (3, 9, 14, 20))),
                                  SUMMARIES[2]]))
    [cost] = costs(rows)
    assert cost_sentences([cost])[0].startswith("Weight sharing cost **random_ws / random_search (budget 16)** ")


def test_every_supernet_evaluator_is_a_row_with_weight_sharing_paired_with_its_oracle_twin():
    rows = ablation_rows(collect([("workspace", summary("random_ws", "shared_weights", (3, 9, 14, 20))),
                                  ("few-shot", summary("random_ws", "few_shot", (2, 5, 14, 18), digest="cfg-few")),
                                  SUMMARIES[2]]))
    few = next(row for row in rows if row["evaluator"] == "few_shot")
    assert few["supernet_trainings"] == 1 and few["cells_trained"] == 0
    assert sorted(cost["shared"]["evaluator"] for cost in costs(rows)) == ["few_shot", "shared_weights"]
