"""The weight-sharing ablation across DVC experiments: each policy with and without weight sharing.

Yu et al. (2020, Sec. 4.3) ran ENAS and NAO on NASBench-101 with and without weight sharing
and found that without it they beat random far more often. Here a policy's two versions are two
experiments (`search.<policy>.evaluator: shared_weights` or `oracle`), judged by one ground truth;
this module reads their analysis summaries and sets, per policy and evaluator, the found cells'
ground-truth ranks and regrets and the probability that a seed beats one of random sampling and
one of random search, with bootstrap intervals, beside a sentence on what weight sharing cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from naseval.analysis.report import interval, markdown_table, mean_std, number, p_is
from naseval.analysis.statistics import compare_samples, summary_statistics

RANDOM_SAMPLING, RANDOM_SEARCH = "random", "random_search"  # the references every result is held against
WITHOUT_WEIGHT_SHARING = {"random_ws": RANDOM_SEARCH}  # a policy whose version without it has another name


@dataclass
class Result:
    """One policy's runs under one evaluator and one params section, over one or more experiments."""

    policy: str
    evaluator: str
    ground_truth: str  # the digest of the ground truth that judged it
    experiments: list[str] = field(default_factory=list)
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)  # search seed -> its run summary

    def values(self, key: str) -> list[float]:
        return [run[key] for _, run in sorted(self.runs.items())]


def collect(summaries: list[tuple[str, dict[str, Any]]]) -> list[Result]:
    """Every (policy, evaluator, settings, ground truth) result with a ground truth, in order of
    first appearance; the same runs in several experiments are one result naming them all."""
    results: dict[tuple, Result] = {}
    for label, summary in summaries:
        truth = summary.get("ground_truth")
        if not truth or "digest" not in truth:
            continue
        for policy, stats in summary["policies"].items():
            evaluator = stats.get("evaluator")
            key = (policy, evaluator, stats.get("config_digest"), truth["digest"])
            result = results.setdefault(key, Result(policy, evaluator, truth["digest"]))
            result.experiments.append(label)
            for name, run in summary["runs"].items():
                if name.startswith(f"{policy}/") and run.get("ground_truth_rank") is not None:
                    result.runs.setdefault(int(name.rsplit("/", 1)[1]), run)
    return list(results.values())


def reference(results: list[Result], policy: str, ground_truth: str) -> Result | None:
    """The reference policy's result with the most runs under that ground truth."""
    candidates = [r for r in results if r.policy == policy and r.ground_truth == ground_truth
                  and (policy != RANDOM_SEARCH or r.evaluator == "oracle")]
    return max(candidates, key=lambda r: len(r.runs), default=None)


def beating(result: Result, against: Result | None, resamples: int, confidence: float, seed: int) -> dict | None:
    """P(a seed of `result` finds a cell with a lower ground truth than a seed of `against`), with interval."""
    if against is None or against is result or not result.runs or not against.runs:
        return None
    stats = compare_samples(result.values("ground_truth_valid_ppl"), against.values("ground_truth_valid_ppl"),
                            resamples, confidence, seed)
    return {"probability": stats["probability_of_beating_baseline"], "interval": stats["probability_interval"],
            "against_runs": len(against.runs)}


def ablation_rows(results: list[Result], resamples: int = 10_000, confidence: float = 0.95,
                  seed: int = 0) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        if not result.runs:
            continue
        ranks, regrets = result.values("ground_truth_rank"), result.values("regret")
        rows.append({
            "policy": result.policy, "evaluator": result.evaluator, "experiments": ", ".join(result.experiments),
            "ground_truth": result.ground_truth, "runs": len(result.runs),
            "ground_truth_rank": summary_statistics(ranks), "regret": summary_statistics(regrets),
            "found_best": sum(rank == 1 for rank in ranks),
            "vs_random_sampling": beating(result, reference(results, RANDOM_SAMPLING, result.ground_truth),
                                          resamples, confidence, seed),
            "vs_random_search": beating(result, reference(results, RANDOM_SEARCH, result.ground_truth),
                                        resamples, confidence, seed),
            "values": result.values("ground_truth_valid_ppl"), "ranks": ranks,
        })
    return rows


def twin_rows(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(with weight sharing, without) pairs of rows judged by the same ground truth."""
    pairs = []
    for shared in (r for r in rows if r["evaluator"] == "shared_weights"):
        twin = WITHOUT_WEIGHT_SHARING.get(shared["policy"], shared["policy"])
        pairs += [(shared, alone) for alone in rows if alone["policy"] == twin and alone["evaluator"] == "oracle"
                  and alone["ground_truth"] == shared["ground_truth"]]
    return pairs


def cost_sentences(rows: list[dict[str, Any]], resamples: int = 10_000, confidence: float = 0.95,
                   seed: int = 0, significance: float = 0.05) -> list[str]:
    """One sentence per policy run both ways: what weight sharing cost it, with its uncertainty."""
    sentences = []
    for shared, alone in twin_rows(rows):
        difference = compare_samples(shared["values"], alone["values"], resamples, confidence, seed)
        welch = difference["welch_p"]
        evidence = ("no evidence of a difference" if welch is None or welch >= significance
                    else f"evidence of a difference (p < {significance})")
        name = shared["policy"] if shared["policy"] == alone["policy"] else f"{shared['policy']} / {alone['policy']}"
        sentences.append(
            f"Weight sharing cost **{name}** {number(difference['difference_of_means'])} ground-truth perplexity "
            f"on its found cells ({confidence:.0%} interval{interval(difference['difference_interval'])}, "
            f"{p_is(welch, 'Welch p')}: {evidence}); mean ground-truth rank "
            f"{number(shared['ground_truth_rank']['mean'])} with it ({shared['runs']} seeds) and "
            f"{number(alone['ground_truth_rank']['mean'])} without ({alone['runs']} seeds); P(beats random "
            f"sampling) {chance(shared['vs_random_sampling'])} with it and {chance(alone['vs_random_sampling'])} "
            f"without.")
    return sentences


def chance(against: dict[str, Any] | None) -> str:
    return "n/a" if against is None else f"{against['probability']:.2f}{interval(against['interval'], 2)}"


def ablation_markdown(rows: list[dict[str, Any]]) -> str:
    return markdown_table(
        ["policy", "evaluator", "experiments", "runs", "ground-truth rank", "regret", "found best",
         "P(beats random sampling)", "P(beats random search)"],
        [[r["policy"], r["evaluator"], r["experiments"], r["runs"], mean_std(r["ground_truth_rank"]),
          mean_std(r["regret"]), r["found_best"], chance(r["vs_random_sampling"]), chance(r["vs_random_search"])]
         for r in rows])


CSV_COLUMNS = ["policy", "evaluator", "experiments", "runs", "ground_truth_rank_mean", "ground_truth_rank_std",
               "regret_mean", "found_best", "p_beats_random_sampling", "p_beats_random_sampling_low",
               "p_beats_random_sampling_high", "p_beats_random_search", "p_beats_random_search_low",
               "p_beats_random_search_high", "ground_truth"]


def ablation_csv_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for r in rows:
        row = {"policy": r["policy"], "evaluator": r["evaluator"], "experiments": r["experiments"], "runs": r["runs"],
               "ground_truth_rank_mean": r["ground_truth_rank"]["mean"],
               "ground_truth_rank_std": r["ground_truth_rank"]["std"], "regret_mean": r["regret"]["mean"],
               "found_best": r["found_best"], "ground_truth": r["ground_truth"]}
        for reference in ("random_sampling", "random_search"):
            against = r[f"vs_{reference}"] or {"probability": None, "interval": [None, None]}
            row |= {f"p_beats_{reference}": against["probability"], f"p_beats_{reference}_low": against["interval"][0],
                    f"p_beats_{reference}_high": against["interval"][1]}
        flat.append(row)
    return flat
