"""The ranking analysis: is the policy better than random, and does weight sharing rank truthfully?

Pure functions of the runs' records and the ground truth; the analyze stage does the I/O.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from naseval.analysis.evaluators import EvaluatorRanking, evaluators_table
from naseval.analysis.ranking import (
    Scores,
    finite,
    kendall_tau,
    kendall_tau_p,
    mean_scores,
    pairwise_taus,
    ranks,
    spearman_rho,
    top_k_overlap,
)
from naseval.analysis.references import against_reference, position
from naseval.analysis.reliability import (
    cell_intervals,
    kendall_tau_interval,
    kendall_tau_interval_seeds_only,
    reliability,
    seed_matrix,
)
from naseval.analysis.statistics import compare_samples, holm_beside, summary_statistics
from naseval.analysis.validity import by_function, cells_not_learned, fidelity, published_ranks, validity
from naseval.core.errors import NasevalError
from naseval.core.params import require
from naseval.core.records import TRACE_FIELDS
from naseval.core.runtime import check_seed
from naseval.core.space import SearchSpace

TRACE_COLUMNS = ["run", *TRACE_FIELDS]  # of the search traces' plot rows
TAU_COLUMNS = ["run", "ranking", "epoch", "kendall_tau"]  # of the tau-over-training plot rows
RANDOM_SAMPLING = "random"  # the policy that draws one cell uniformly: the exact reference itself


@dataclass(frozen=True)
class Experiment:
    """params.yaml top level: the policy under evaluation, its baseline and the search seeds."""

    policy: str
    baseline: str = "random"
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        require(len(self.seeds) >= 1, "seeds", list(self.seeds), "a non-empty list of integers")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", list(self.seeds), "distinct seeds")
        for seed in self.seeds:
            check_seed(seed, "seeds")

    @property
    def policies(self) -> list[str]:
        """The policy and the baseline, once each when they are the same."""
        return list(dict.fromkeys([self.policy, self.baseline]))


@dataclass(frozen=True)
class AnalysisConfig:
    """params.yaml `analysis`: how much evidence the report asks for before it states a finding."""

    confidence: float = 0.95  # of every interval
    significance: float = 0.05  # p-values below it count as evidence of a difference
    bootstrap_resamples: int = 10_000
    bootstrap_seed: int = 0
    top_k: tuple[int, ...] = (1, 3, 5)  # overlaps of the k best cells, weight sharing vs ground truth
    min_ceiling_tau: float = 0.8  # below this ceiling tau the report calls the ground truth too noisy

    def __post_init__(self) -> None:
        for key in ("confidence", "significance"):
            value = getattr(self, key)
            require(0 < value < 1, key, value, "a number between 0 and 1")
        require(self.bootstrap_resamples >= 100, "bootstrap_resamples", self.bootstrap_resamples,
                "an integer >= 100")
        require(len(self.top_k) >= 1 and all(k >= 1 for k in self.top_k), "top_k", list(self.top_k),
                "a non-empty list of integers >= 1")
        require(-1 <= self.min_ceiling_tau <= 1, "min_ceiling_tau", self.min_ceiling_tau,
                "a number between -1 and 1")


@dataclass(frozen=True)
class RunRecord:
    """One (policy, seed) run: its top cell, that cell trained from scratch, its rankings.

    A failed run (diverged search or training) has a `failure` and no perplexities; it is
    counted and named in the summary, never silently dropped.
    """

    policy: str
    seed: int
    cell_id: int | None
    genotype: str | None
    search_score: float | None
    valid_ppl: float | None
    test_ppl: float | None
    rankings: dict[str, Scores] = field(default_factory=dict)  # weight-sharing scores of all cells
    cell_output: str = "mean"
    evaluator: dict[str, Any] | None = None  # how its search scored cells (Evaluator.facts); None: it scored none
    config_digest: str | None = None  # of its policy's params section
    failure: str | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)  # the search's, one row per epoch or round
    ranking_history: list[dict[str, Any]] = field(default_factory=list)  # [{"epoch", "rankings"}]

    @property
    def name(self) -> str:
        return f"{self.policy}/{self.seed}"

    @property
    def evaluator_name(self) -> str:
        return self.evaluator["name"] if self.evaluator else "none"


@dataclass(frozen=True)
class GroundTruth:
    """Every cell of an enumerable space trained from scratch with several seeds."""

    valid_ppl: dict[int, Scores]  # training seed -> cell id -> validation perplexity, finished cells only
    genotypes: dict[int, str] = field(default_factory=dict)  # cell id -> genotype
    failed: dict[int, str] = field(default_factory=dict)  # cell id -> why its training diverged: left out
    cell_output: str = "mean"  # the output rule every cell was trained with
    curves: dict[int, dict[int, list[float]]] = field(default_factory=dict)  # seed -> cell -> valid ppl by epoch

    @functools.cached_property
    def mean(self) -> Scores:
        return mean_scores(list(self.valid_ppl.values()))

    @functools.cached_property
    def digest(self) -> str:
        """Of every seed's results: experiments judged by the same ground truth have the same one."""
        text = json.dumps({str(s): {str(c): v for c, v in sorted(cells.items())}
                           for s, cells in sorted(self.valid_ppl.items())} | {"cell_output": self.cell_output})
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def per_seed(self) -> list[Scores]:
        return [self.valid_ppl[seed] for seed in sorted(self.valid_ppl)]

    @functools.cached_property
    def results(self) -> tuple[list[int], np.ndarray]:
        """The cells every seed finished and their results (cells, seeds), as `reliability` takes them."""
        return seed_matrix(self.per_seed)


@dataclass
class Analysis:
    summary: dict[str, Any]  # metrics JSON
    final_ppl: list[dict[str, Any]]  # plot rows: one per run
    ranking_rows: list[dict[str, Any]]  # plot rows: weight-sharing rank vs ground-truth rank
    ground_truth_rows: list[dict[str, Any]]  # plot rows: one per cell
    trace_rows: list[dict[str, Any]]  # plot rows: each run's pick and its search-time score over search time
    tau_rows: list[dict[str, Any]]  # plot rows: tau of weight sharing vs ground truth over search time
    evaluator_rows: list[dict[str, Any]] = field(default_factory=list)  # plot rows: each evaluator's tau and cost


def summarize_policy(runs: list[RunRecord], truth: Scores | None, confidence: float) -> dict[str, Any]:
    """Statistics over the runs that finished, and where their found cells sit against random
    sampling, exactly (`references`); the failed ones are listed apart."""
    finished = [r for r in runs if r.failure is None]
    summary: dict[str, Any] = {
        "seeds": len(runs),
        "failed": {"count": len(runs) - len(finished), "seeds": [r.seed for r in runs if r.failure]},
    }
    evaluators = sorted({r.evaluator_name for r in finished})
    summary["evaluator"] = evaluators[0] if len(evaluators) == 1 else evaluators or None
    summary["config_digest"] = next((r.config_digest for r in finished), None)
    oracle = [r.evaluator for r in finished if r.evaluator_name == "oracle"]
    if oracle:
        summary["oracle"] = {"seeds": sorted({s for facts in oracle for s in facts["seeds"]}),
                             "budget": max(facts["budget"] for facts in oracle),
                             "cells_trained": summary_statistics([facts["cells_trained"] for facts in oracle]),
                             "queries": summary_statistics([facts["queries"] for facts in oracle])}
    if finished:
        summary |= {
            "test_ppl": summary_statistics([r.test_ppl for r in finished]),
            "valid_ppl": summary_statistics([r.valid_ppl for r in finished]),
            "distinct_cells": len({r.cell_id for r in finished}),
        }
    known = [r for r in finished if truth and r.cell_id in truth]  # not a cell whose ground truth diverged
    if known:
        truth_ranks, best = ranks(truth), min(truth.values())
        summary |= {
            "ground_truth_valid_ppl": summary_statistics([truth[r.cell_id] for r in known]),
            "ground_truth_rank": summary_statistics([truth_ranks[r.cell_id] for r in known]),
            "regret": summary_statistics([truth[r.cell_id] - best for r in known]),
            "found_best_cell": sum(truth_ranks[r.cell_id] == 1 for r in known),
            "vs_random_sampling": against_reference([position(truth[r.cell_id], truth.values()) for r in known],
                                                    len(truth), 1, confidence),
        }
    ranked = [r for r in runs if r.rankings]
    names = sorted({name for r in ranked for name in r.rankings})
    if names:
        summary["weight_sharing"] = {name: ranking_summary([judged(r.rankings[name], truth) for r in ranked
                                                             if name in r.rankings], truth) for name in names}
    return summary


def ranking_summary(rankings: list[Scores], truth: Scores | None) -> dict[str, Any]:
    """One named ranking across a policy's seeds: its agreement with the ground truth, and with
    itself from seed to seed (instability: the paper finds it changes with the seed)."""
    summary = {"seed_to_seed_kendall_tau": tau_statistics([finite(tau) for tau in pairwise_taus(rankings)])}
    if truth:
        summary["kendall_tau"] = tau_statistics([finite(kendall_tau(scores, truth)) for scores in rankings])
    return summary


def tau_statistics(taus: list[float | None]) -> dict[str, float | int] | None:
    """Mean, std, min and max of the defined taus (higher is better, so no best/worst), and how
    many were undefined (a constant ranking has no tau); None where no tau is defined."""
    defined = [tau for tau in taus if tau is not None]
    if not defined:
        return None
    stats = summary_statistics(defined)
    return {"mean": stats["mean"], "std": stats["std"], "min": stats["best"], "max": stats["worst"],
            "count": len(defined), "undefined": len(taus) - len(defined)}


def run_summary(run: RunRecord, truth: Scores | None) -> dict[str, Any]:
    if run.failure is not None:
        return {"status": "failed", "reason": run.failure, "genotype": run.genotype}
    summary = {
        "status": "ok",
        "cell_id": run.cell_id,
        "genotype": run.genotype,
        "cell_output": run.cell_output,
        "evaluator": run.evaluator_name,
        "search_score": run.search_score,
        "test_ppl": run.test_ppl,
        "valid_ppl": run.valid_ppl,
    }
    if truth and run.cell_id in truth:
        worse, tied = position(truth[run.cell_id], truth.values())
        summary |= {"ground_truth_valid_ppl": truth[run.cell_id], "ground_truth_rank": ranks(truth)[run.cell_id],
                    "regret": truth[run.cell_id] - min(truth.values()),
                    "ground_truth_cells_worse": worse, "ground_truth_cells_tied": tied}
    return summary


def judged(scores: Scores, truth: Scores | None) -> Scores:
    """A ranking's cells that the ground truth judges (not those whose training diverged)."""
    return scores if not truth else {cell: score for cell, score in scores.items() if cell in truth}


def agreement(scores: Scores, truth: GroundTruth, config: AnalysisConfig, rng: np.random.Generator,
              space: SearchSpace | None = None, ceiling: float | None = None) -> dict[str, Any]:
    """How well one weight-sharing ranking matches the ground-truth mean, over the cells the
    ground truth judges, matched by cell id. Two intervals (`reliability.kendall_tau_interval`):
    resampling cells and ground-truth seeds (the tau of a population of cells like these), and
    the seeds only (that of these cells). Given the ground truth's `ceiling`, tau over it (tau
    corrected for ground-truth noise). With the `space`, tau also over its distinct functions."""
    mean, top_k = truth.mean, config.top_k
    scores = judged(scores, mean)
    intervals = {}
    if len(truth.valid_ppl) > 1:
        intervals = {name: method(scores, truth.per_seed, config.bootstrap_resamples, config.confidence, rng)
                     for name, method in (("kendall_tau_interval", kendall_tau_interval),
                                          ("kendall_tau_interval_seeds_only", kendall_tau_interval_seeds_only))}
    distinct = {}
    if space is not None:
        classes = space.function_classes()
        distinct = {"kendall_tau_distinct_functions": finite(kendall_tau(by_function(scores, classes),
                                                                         by_function(mean, classes)))}
    tau = finite(kendall_tau(scores, mean))
    return {
        "kendall_tau": tau,
        **intervals,
        "kendall_tau_over_ceiling": None if tau is None or not ceiling else tau / ceiling,
        **distinct,
        "kendall_tau_p": finite(kendall_tau_p(scores, mean)),
        "spearman_rho": finite(spearman_rho(scores, mean)),
        **{f"top_{k}_overlap": top_k_overlap(scores, mean, k) for k in top_k},
    }


def compare_policy(runs: list[RunRecord], experiment: Experiment, truth: Scores | None,
                   config: AnalysisConfig) -> dict[str, Any] | None:
    """The policy against the baseline on the quality of their found cells, measured twice: by the
    test perplexity of each cell's one retrain, and, in an enumerable space, by the cell's
    ground-truth mean over the training seeds. The verdict rests on the second where it exists:
    one retrain is one draw of training noise, the ground-truth mean averages several."""
    if experiment.policy == experiment.baseline:
        return None
    finished = [r for r in runs if r.failure is None]
    metrics = {"test_ppl": lambda r: r.test_ppl}
    if truth:
        metrics["ground_truth_valid_ppl"] = lambda r: truth.get(r.cell_id)
    comparison: dict[str, Any] = {"policy": experiment.policy, "baseline": experiment.baseline}
    for metric, value in metrics.items():
        samples = [[value(r) for r in finished if r.policy == p and value(r) is not None]
                   for p in (experiment.policy, experiment.baseline)]
        if all(samples):
            comparison[metric] = compare_samples(*samples, config.confidence, config.bootstrap_seed)
    verdict_metric = next((m for m in ("ground_truth_valid_ppl", "test_ppl") if m in comparison), None)
    return comparison | {"verdict_metric": verdict_metric} if verdict_metric else None


def ground_truth_summary(truth: GroundTruth, config: AnalysisConfig, space: SearchSpace | None = None,
                         reference_ppl: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Its best cell, reliability and, given the space and the corpus's reference perplexities
    (`ngram.reference_perplexities`), its validity (`validity`)."""
    mean = truth.mean
    best = min(mean, key=lambda cell: (mean[cell], cell))
    summary: dict[str, Any] = {
        "cells": len(mean),
        "seeds": sorted(truth.valid_ppl),
        "digest": truth.digest,
        "failed_cells": {"count": len(truth.failed), "cells": truth.failed},
        "best_cell_id": best,
        "best_genotype": truth.genotypes.get(best),
        "best_valid_ppl": mean[best],
        "reliability": reliability(truth.per_seed, config.bootstrap_resamples, config.confidence,
                                   config.bootstrap_seed),
        "min_ceiling_tau": config.min_ceiling_tau,
    }
    if len(truth.valid_ppl) > 1:  # how far one retrain of a cell scatters: the per-cell std over seeds, pooled
        # (the root of the mean variance: a mean of stds would be pulled down by quiet cells on a plateau)
        stds = cell_intervals(truth.results[1], config.confidence)["std"]
        summary["retrain_noise_sd"] = float(np.sqrt(np.mean(stds ** 2)))
    if reference_ppl is not None:
        unigram = reference_ppl["unigram"]["valid"]
        not_learned = cells_not_learned(truth.valid_ppl, unigram)
        summary["reference_valid_ppl"] = {order: by_split["valid"] for order, by_split in reference_ppl.items()}
        summary["cells_not_learned"] = {"criterion": f"validation perplexity not below the unigram's, {unigram:.1f}",
                                        "count": {seed: len(cells) for seed, cells in not_learned.items()},
                                        "cells": not_learned}
    if space is not None:
        rng = np.random.default_rng(config.bootstrap_seed)
        summary["validity"] = validity(truth.valid_ppl, space, config.bootstrap_resamples, config.confidence, rng)
    if truth.curves:
        summary["fidelity"] = fidelity(truth.curves)
    return summary


def ranking_rows(runs: list[RunRecord], truth: Scores) -> list[dict[str, Any]]:
    truth_ranks, rows = ranks(truth), []
    for run in runs:
        for name, scores in run.rankings.items():
            ws_ranks = ranks(scores)
            rows += [{"run": run.name, "ranking": name, "cell_id": cell,
                      "weight_sharing_rank": ws_ranks[cell], "ground_truth_rank": truth_ranks[cell]}
                     for cell in sorted(scores) if cell in truth_ranks]
    return rows


def tau_rows(runs: list[RunRecord], truth: Scores) -> list[dict[str, Any]]:
    """Kendall tau with the ground truth at each recorded point of each run's search."""
    return [
        {"run": run.name, "ranking": name, "epoch": point["epoch"], "kendall_tau": finite(kendall_tau(scores, truth))}
        for run in runs for point in run.ranking_history for name, scores in point["rankings"].items()
    ]


def ground_truth_rows(truth: GroundTruth, confidence: float, space: SearchSpace | None = None,
                      unigram_ppl: float | None = None) -> list[dict[str, Any]]:
    """One row per cell: mean over seeds, std and a t interval of the mean (none with one seed),
    rank, the published rank where the space is the published one, in how many seeds it did not
    learn (given the unigram perplexity), and each seed's result."""
    mean = truth.mean
    truth_ranks = ranks(mean)
    cells, results = truth.results
    spread = cell_intervals(results, confidence) if results.shape[1] > 1 else None
    published = published_ranks(space) if space is not None else {}
    return [
        {"cell_id": cell, "genotype": truth.genotypes.get(cell), "mean_valid_ppl": mean[cell],
         **{key: None if spread is None else float(spread[key][i]) for key in ("std", "low", "high")},
         "rank": truth_ranks[cell], "published_rank": published.get(cell),
         "seeds_not_learned": None if unigram_ppl is None else int(np.sum(results[i] >= unigram_ppl)),
         **{f"seed_{seed}": scores.get(cell) for seed, scores in sorted(truth.valid_ppl.items())}}
        for i, cell in enumerate(cells)
    ]


def output_rule(runs: list[RunRecord], ground_truth: GroundTruth | None, others: dict[str, str] | None = None) -> str:
    """The one cell output rule of the runs, the ground truth and `others` (name -> rule). Under
    two rules a genotype names two functions, so ranks, regrets, taus and comparisons across
    rules would be meaningless."""
    rules = {r.name: r.cell_output for r in runs if r.failure is None} | (others or {})
    if ground_truth:
        rules["the ground truth"] = ground_truth.cell_output
    if len(set(rules.values())) > 1:
        listed = ", ".join(f"{name} {rule}" for name, rule in rules.items())
        raise NasevalError(f"cannot compare cells trained with different cell outputs ({listed}): every stage "
                           f"must run with the same space.cell_output")
    return next(iter(rules.values()), "mean")


def seeds_that_judge_and_answer(runs: list[RunRecord], ground_truth: GroundTruth | None) -> dict[str, list[int]]:
    """The ground-truth seeds the analysis judges with, and those an oracle answered searches from;
    refused where they meet, since a search would then be scored by the seeds that judge it."""
    judging = sorted(ground_truth.valid_ppl) if ground_truth else []
    # the oracle, and the evaluators that read its seeds (landmarks, short training), state them
    answering = sorted({s for r in runs if r.evaluator for s in r.evaluator.get("seeds", [])})
    shared = sorted(set(judging) & set(answering))
    if shared:
        raise NasevalError(f"ground-truth seeds {', '.join(map(str, shared))} both judge and answered the oracle "
                           f"searches: the oracle would leak the evaluation; keep oracle.seeds out of "
                           f"ground_truth.seeds")
    return {"judging": judging, "oracle": answering}


def adjust_family(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's family of verdicts, each test once: the policy against the baseline, each
    policy's found cells against random sampling, each weight-sharing ranking's tau against 0.
    Holm's adjustment over them is written beside each raw p (`<name>_holm`) and listed."""
    tests: list[tuple[str, dict[str, Any], str]] = []  # (finding, where its p is, the p's key)
    comparison = summary.get("comparison")
    if comparison:
        tests.append((f"{comparison['policy']} vs {comparison['baseline']}",
                      comparison[comparison["verdict_metric"]], "permutation_p"))
    for policy, stats in summary["policies"].items():
        if stats.get("vs_random_sampling") and policy != RANDOM_SAMPLING:
            tests.append((f"{policy} vs random sampling", stats["vs_random_sampling"], "p"))
    for run, by_name in summary.get("weight_sharing", {}).items():
        tests += [(f"{run} `{name}`: Kendall tau vs 0", agreement, "kendall_tau_p")
                  for name, agreement in by_name.items()]
    holm_beside([(holder, key) for _, holder, key in tests])
    return [{"finding": finding, "p": holder[key], "p_holm": holder[f"{key}_holm"]} for finding, holder, key in tests]


def analyze(runs: list[RunRecord], ground_truth: GroundTruth | None, experiment: Experiment,
            config: AnalysisConfig = AnalysisConfig(), space: SearchSpace | None = None,
            reference_ppl: dict[str, dict[str, float]] | None = None,
            evaluator_rankings: list[EvaluatorRanking] = (), evaluator_names: tuple[str, ...] = ()) -> Analysis:
    """`ground_truth` is None for spaces too large to enumerate: perplexities only. The `space`
    and the corpus's `reference_ppl` (`ngram.reference_perplexities`) add the ground truth's
    validity checks; the rank stage's `evaluator_rankings`, in the order of `evaluator_names`,
    the evaluators table (analysis/evaluators.py)."""
    truth = ground_truth.mean if ground_truth and ground_truth.valid_ppl else None
    summary: dict[str, Any] = {
        "experiment": {"policy": experiment.policy, "baseline": experiment.baseline,
                       "seeds": list(experiment.seeds), "cell_output": output_rule(runs, ground_truth),
                       "ground_truth_seeds": seeds_that_judge_and_answer(runs, ground_truth)},
        "policies": {p: summarize_policy([r for r in runs if r.policy == p], truth, config.confidence)
                     for p in experiment.policies},
    }
    comparison = compare_policy(runs, experiment, truth, config)
    if comparison:
        summary["comparison"] = comparison
    summary["runs"] = {r.name: run_summary(r, truth) for r in runs}
    ceiling: float | None = None
    if truth:
        summary["ground_truth"] = ground_truth_summary(ground_truth, config, space, reference_ppl)
        ceiling = finite((summary["ground_truth"]["reliability"] or {}).get("ceiling_tau", math.nan))
        rng = np.random.default_rng(config.bootstrap_seed)
        summary["weight_sharing"] = {
            r.name: {name: agreement(scores, ground_truth, config, rng, space, ceiling)
                     for name, scores in r.rankings.items()}
            for r in runs if r.rankings
        }
    evaluator_rows: list[dict[str, Any]] = []
    if evaluator_rankings:
        output_rule([], ground_truth, {f"{r.name} seed {r.seed}": r.cell_output for r in evaluator_rankings})
        rng = np.random.default_rng(config.bootstrap_seed)
        agree = (lambda scores: agreement(scores, ground_truth, config, rng, space, ceiling)) if truth else None
        summary["evaluators"], summary["evaluator_runs"], evaluator_rows = evaluators_table(
            list(evaluator_rankings), list(evaluator_names), agree, sorted(ground_truth.valid_ppl) if truth else [],
            config.confidence, config.top_k, ceiling, config.bootstrap_seed,
            published_ranks(space) if space is not None else {})
        summary["evaluator_failures"] = {f"{r.name}/seed_{r.seed}": r.failure for r in evaluator_rankings
                                         if r.failure}
    summary["family"] = adjust_family(summary)
    final_ppl = [
        {"policy": r.policy, "seed": r.seed, "cell_id": r.cell_id, "genotype": r.genotype, "valid_ppl": r.valid_ppl,
         "test_ppl": r.test_ppl}
        for r in runs if r.failure is None
    ]
    trace_rows = [
        {"run": r.name, **{key: row[key] for key in TRACE_FIELDS}} for r in runs for row in r.trace
    ]
    return Analysis(
        summary, final_ppl,
        ranking_rows(runs, truth) if truth else [],
        ground_truth_rows(ground_truth, config.confidence, space,
                          reference_ppl["unigram"]["valid"] if reference_ppl else None) if truth else [],
        trace_rows,
        tau_rows(runs, truth) if truth else [],
        evaluator_rows,
    )
