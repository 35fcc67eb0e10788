"""Table 1 from what `dvc exp show --json` prints (its layout as DVC 3 writes it)."""

import pytest

from naseval.analysis.compare import experiment_summaries, table_markdown, table_one

METRICS = "metrics/summary.json"


def stats(mean, failed=0):
    return {"seeds": 2, "failed": {"count": failed, "seeds": []},
            "test_ppl": {"mean": mean, "std": 1.0, "median": mean, "best": mean - 1, "worst": mean + 1}}


def summary(policy, mean, permutation_p):
    return {"experiment": {"policy": policy, "baseline": "random", "seeds": [0, 1]},
            "policies": {policy: stats(mean), "random": stats(70.0)},
            "comparison": {"policy": policy, "baseline": "random", "verdict_metric": "test_ppl",
                           "test_ppl": {"permutation_p": permutation_p, "mann_whitney_p": 0.33,
                                        "probability_of_beating_baseline": 0.75}}}


def entry(rev, name, metrics, experiments=None):
    data = {"rev": rev, "metrics": {METRICS: {"data": metrics}} if metrics else {}, "params": {}}
    return {"rev": rev, "name": name, "data": data, "error": None, "experiments": experiments}


EXP_SHOW = [
    entry("workspace", None, summary("enas", 65.0, 0.04)),
    entry("a1b2c3d4e5f6", "main", summary("random_ws", 68.0, 0.5), experiments=[
        {"name": "crank-ankh", "executor": None,
         "revs": [entry("0123456789ab", "crank-ankh", summary("enas", 65.0, 0.04))]},
        {"name": "broken-run", "executor": None, "revs": [entry("fedcba987654", "broken-run", None)]},
    ]),
]


def test_every_experiment_with_a_summary_is_found():
    labels = [label for label, _ in experiment_summaries(EXP_SHOW, METRICS)]
    assert labels == ["workspace", "main", "crank-ankh"]


def test_table_one_has_a_row_per_result_and_merges_repeats():
    rows = table_one(experiment_summaries(EXP_SHOW, METRICS))
    assert [(r["policy"], r["experiments"]) for r in rows] == [
        ("enas", "workspace, crank-ankh"), ("random", "workspace, main, crank-ankh"), ("random_ws", "main")]
    enas = rows[0]
    assert enas["baseline"] == "random" and enas["permutation_p"] == 0.04 and enas["test_ppl_mean"] == 65.0
    assert enas["p_holm"] == pytest.approx(0.08) and rows[2]["p_holm"] == 0.5  # Holm over the two verdicts
    assert enas["judged_on"] == "test_ppl"
    assert rows[1]["baseline"] is None and rows[1]["permutation_p"] is None and rows[1]["p_holm"] is None
    assert rows[2]["probability_of_beating_baseline"] == 0.75


def test_markdown_table_shows_mean_std_and_p_values():
    lines = table_markdown(table_one(experiment_summaries(EXP_SHOW, METRICS))).splitlines()
    assert lines[0].startswith("| policy | evaluator | experiments | runs ok | test ppl (mean ± std) |")
    assert lines[2] == ("| enas |  | workspace, crank-ankh | 2/2 | 65.0 ± 1.0 | 64.0 | n/a | random | test_ppl | 0.04 "
                        "| 0.08 | 0.33 | 0.75 | n/a |")
    assert lines[3].startswith("| random |  | workspace, main, crank-ankh | 2/2 | 70.0 ± 1.0 | 69.0 | n/a |  |  |")


@pytest.mark.parametrize("broken", [[], [entry("workspace", None, None)]])
def test_nothing_to_compare_gives_no_rows(broken):
    assert table_one(experiment_summaries(broken, METRICS)) == []
