"""The weight-sharing ablation across DVC experiments: each policy with and without weight sharing.

Yu et al. (2020, Sec. 4.3) ran ENAS and NAO on NASBench-101 with and without weight sharing
and found that without it they beat random far more often. Here a policy's two versions are two
experiments (`search.<policy>.evaluator`: a supernet, such as `shared_weights`, or `oracle`),
judged by one ground truth;
this module reads their analysis summaries and sets out, per policy, evaluator and budget:

* its cost: cells trained from scratch (the oracle's budget spent) and supernet trainings;
* where its found cells sit against random sampling and against random search at each budget
  measured, exactly (`references`: the ground truth of every cell, not a few random seeds);
* its primary comparison: with random search at its own budget, the measured experiment;
* for a policy run both ways, the direct test of with-minus-without weight sharing on the
  search seeds both ran (equal seed counts).

Every test is one of one family, Holm-adjusted (`p_holm`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from naseval.analysis.references import against_reference
from naseval.analysis.report import chance, interval, markdown_table, mean_std, number, p_is, p_value
from naseval.analysis.statistics import (
    compare_samples,
    holm_beside,
    permutation_p,
    probability_interval,
    probability_of_beating,
    summary_statistics,
)
from naseval.analysis.summary import RANDOM_SAMPLING
from naseval.core.evaluator_kinds import SUPERNETS

RANDOM_SEARCH = "random_search"  # the reference at equal budget
WITHOUT_WEIGHT_SHARING = {"random_ws": RANDOM_SEARCH}  # a policy whose version without it has another name


@dataclass
class Result:
    """One policy's runs under one evaluator and one params section, over one or more experiments."""

    policy: str
    evaluator: str
    ground_truth: str  # the digest of the ground truth that judged it
    cells: int  # in that ground truth
    budget: int | None  # cells the oracle may train; None: it trains none
    cells_trained: float  # mean over seeds
    experiments: list[str] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)  # search seed -> its run summary

    def values(self, key: str, seeds: list[int] | None = None) -> list[Any]:
        return [run[key] for seed, run in sorted(self.runs.items()) if seeds is None or seed in seeds]

    @property
    def label(self) -> str:
        return self.policy if self.budget is None else f"{self.policy} (budget {self.budget})"


def collect(summaries: list[tuple[str, dict[str, Any]]]) -> list[Result]:
    """Every (policy, evaluator, settings, ground truth) result with a ground truth, in order of
    first appearance; the same runs in several experiments are one result naming them all."""
    results: dict[tuple, Result] = {}
    for label, summary in summaries:
        truth = summary.get("ground_truth")
        if not truth or "digest" not in truth:
            continue
        for policy, stats in summary["policies"].items():
            evaluator, oracle = stats.get("evaluator"), stats.get("oracle") or {}
            key = (policy, evaluator, stats.get("config_digest"), truth["digest"])
            result = results.setdefault(key, Result(
                policy, evaluator, truth["digest"], truth.get("cells", 0), oracle.get("budget"),
                (oracle.get("cells_trained") or {}).get("mean", 0.0)))
            result.experiments.append(label)
            for name, run in summary["runs"].items():
                if name.startswith(f"{policy}/") and run.get("ground_truth_rank") is not None:
                    result.runs.setdefault(int(name.rsplit("/", 1)[1]), run)
    return list(results.values())


def random_searches(results: list[Result], ground_truth: str) -> dict[int, Result]:
    """Budget -> the measured random search (with the oracle) with the most runs under that ground truth."""
    found: dict[int, Result] = {}
    for r in results:
        if r.policy == RANDOM_SEARCH and r.evaluator == "oracle" and r.ground_truth == ground_truth and r.budget:
            if r.budget not in found or len(r.runs) > len(found[r.budget].runs):
                found[r.budget] = r
    return found


def exact(result: Result, budget: int, confidence: float) -> dict[str, Any] | None:
    """`references.against_reference` from the runs' positions (None where the summaries predate them)."""
    if not result.runs or any("ground_truth_cells_worse" not in run for run in result.runs.values()):
        return None
    positions = list(zip(result.values("ground_truth_cells_worse"), result.values("ground_truth_cells_tied"),
                         strict=True))
    return against_reference(positions, result.cells, budget, confidence)


def measured(result: Result, against: Result | None, confidence: float, seed: int) -> dict[str, Any] | None:
    """The result against a measured reference experiment: P(a seed beats one of it), with its
    score interval, and the permutation test of the difference of found cells' ground truths."""
    if against is None or against is result or not result.runs or not against.runs:
        return None
    ours, theirs = result.values("ground_truth_valid_ppl"), against.values("ground_truth_valid_ppl")
    return {"probability": probability_of_beating(ours, theirs),
            "interval": probability_interval(ours, theirs, confidence), "p": permutation_p(ours, theirs, seed),
            "against": against.label, "against_runs": len(against.runs)}


def ablation_rows(results: list[Result], confidence: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        if not result.runs:
            continue
        searches = random_searches(results, result.ground_truth)
        ranks, regrets = result.values("ground_truth_rank"), result.values("regret")
        rows.append({
            "policy": result.policy, "label": result.label, "evaluator": result.evaluator,
            "experiments": ", ".join(result.experiments), "ground_truth": result.ground_truth,
            "runs": len(result.runs), "seeds": sorted(result.runs), "budget": result.budget,
            "cells_trained": result.cells_trained, "supernet_trainings": int(result.evaluator in SUPERNETS),
            "ground_truth_rank": summary_statistics(ranks), "regret": summary_statistics(regrets),
            "found_best": sum(rank == 1 for rank in ranks),
            "vs_random_sampling": None if result.policy == RANDOM_SAMPLING else exact(result, 1, confidence),
            "vs_random_search": {budget: exact(result, budget, confidence) for budget in sorted(searches)},
            "vs_measured_random_search": measured(result, searches.get(result.budget), confidence, seed),
            "values": result.values("ground_truth_valid_ppl"), "ranks": ranks,
        })
    order = {"none": 0, "shared_weights": 1, "oracle": 2}  # the references, with weight sharing, without
    return sorted(rows, key=lambda r: (r["ground_truth"] != rows[0]["ground_truth"], order.get(r["evaluator"], 3),
                                       r["policy"] != RANDOM_SEARCH, r["policy"], r["budget"] or 0))


def twin_rows(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(with weight sharing, without) pairs of rows judged by the same ground truth; every supernet
    evaluator (plain weight sharing and its remedies) is a "with"."""
    pairs = []
    for shared in (r for r in rows if r["evaluator"] in SUPERNETS):
        twin = WITHOUT_WEIGHT_SHARING.get(shared["policy"], shared["policy"])
        pairs += [(shared, alone) for alone in rows if alone["policy"] == twin and alone["evaluator"] == "oracle"
                  and alone["ground_truth"] == shared["ground_truth"]]
    return pairs


def costs(rows: list[dict[str, Any]], confidence: float = 0.95, seed: int = 0) -> list[dict[str, Any]]:
    """What weight sharing cost each policy run both ways: with minus without, on the search seeds
    both ran, so that both sides have as many seeds."""
    found = []
    for shared, alone in twin_rows(rows):
        seeds = sorted(set(shared["seeds"]) & set(alone["seeds"]))
        if not seeds:
            continue
        pick = [[row["values"][row["seeds"].index(s)] for s in seeds] for row in (shared, alone)]
        found.append({"shared": shared, "alone": alone, "seeds": seeds,
                      "difference": compare_samples(*pick, confidence, seed)})
    return found


def adjust_family(rows: list[dict[str, Any]], cost_rows: list[dict[str, Any]]) -> int:
    """Holm over every test of the ablation: each row against random sampling, against random
    search at each budget (exact) and against the measured random search, and each cost test.
    Writes `p_holm` beside each p; returns the family's size."""
    tests = [(test, "p") for row in rows for test in (row["vs_random_sampling"], *row["vs_random_search"].values(),
                                                      row["vs_measured_random_search"]) if test]
    tests += [(cost["difference"], "permutation_p") for cost in cost_rows]
    holm_beside(tests)
    return len(tests)


def cost_sentences(cost_rows: list[dict[str, Any]], significance: float = 0.05) -> list[str]:
    """One sentence per policy run both ways: what weight sharing cost it, with its uncertainty."""
    sentences = []
    for cost in cost_rows:
        shared, alone, difference = cost["shared"], cost["alone"], cost["difference"]
        adjusted = difference.get("permutation_p_holm", difference["permutation_p"])
        evidence = ("no evidence of a difference" if adjusted is None or adjusted >= significance
                    else f"evidence of a difference (Holm-adjusted p < {significance})")
        name = shared["label"] if shared["policy"] == alone["policy"] else f"{shared['label']} / {alone['label']}"
        sentences.append(
            f"Weight sharing cost **{name}** {number(difference['difference_of_means'])} ground-truth perplexity "
            f"on its found cells over the {len(cost['seeds'])} search seeds run both ways (Welch interval"
            f"{interval(difference['difference_interval']) or ' n/a'}, "
            f"{p_is(difference['permutation_p'], 'permutation p')}"
            f", Holm {p_value(adjusted)}: {evidence}); P(beats random sampling) {chance(shared['vs_random_sampling'])} "
            f"with it ({shared['runs']} seeds) and {chance(alone['vs_random_sampling'])} without "
            f"({alone['runs']} seeds).")
    return sentences


def search_chance(row: dict[str, Any], budget: int) -> str:
    test = row["vs_random_search"].get(budget)
    return "n/a" if test is None else f"{chance(test)}, p {p_value(test.get('p_holm'))}"


def ablation_markdown(rows: list[dict[str, Any]]) -> str:
    """The table; P columns are exact against the ground truth of all cells, with Holm-adjusted p."""
    budgets = sorted({b for r in rows for b in r["vs_random_search"]})
    return markdown_table(
        ["policy", "evaluator", "experiments", "runs", "cells trained", "supernet trainings", "ground-truth rank",
         "regret", "found best", "P(beats random sampling)",
         *(f"P(beats random search, budget {b})" for b in budgets), "vs measured random search, same budget"],
        [[r["label"], r["evaluator"], r["experiments"], r["runs"], number(r["cells_trained"]), r["supernet_trainings"],
          mean_std(r["ground_truth_rank"]), mean_std(r["regret"]), r["found_best"],
          "n/a" if r["vs_random_sampling"] is None else
          f"{chance(r['vs_random_sampling'])}, p {p_value(r['vs_random_sampling'].get('p_holm'))}",
          *(search_chance(r, b) for b in budgets),
          "n/a" if r["vs_measured_random_search"] is None else
          f"{chance(r['vs_measured_random_search'])}, p {p_value(r['vs_measured_random_search'].get('p_holm'))}"]
         for r in rows])


CSV_COLUMNS = ["policy", "evaluator", "budget", "experiments", "runs", "cells_trained", "supernet_trainings",
               "ground_truth_rank_mean", "ground_truth_rank_std", "regret_mean", "found_best",
               "p_beats_random_sampling", "p_beats_random_sampling_low", "p_beats_random_sampling_high",
               "p_value_vs_random_sampling", "p_holm_vs_random_sampling", "ground_truth"]


def ablation_csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for r in rows:
        against = r["vs_random_sampling"] or {"probability": None, "interval": [None, None], "p": None}
        flat.append({
            "policy": r["policy"], "evaluator": r["evaluator"], "budget": r["budget"], "experiments": r["experiments"],
            "runs": r["runs"], "cells_trained": r["cells_trained"], "supernet_trainings": r["supernet_trainings"],
            "ground_truth_rank_mean": r["ground_truth_rank"]["mean"],
            "ground_truth_rank_std": r["ground_truth_rank"]["std"], "regret_mean": r["regret"]["mean"],
            "found_best": r["found_best"], "p_beats_random_sampling": against["probability"],
            "p_beats_random_sampling_low": against["interval"][0],
            "p_beats_random_sampling_high": against["interval"][1], "p_value_vs_random_sampling": against["p"],
            "p_holm_vs_random_sampling": against.get("p_holm"), "ground_truth": r["ground_truth"]})
    return flat
