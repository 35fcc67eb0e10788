"""The ranking analysis: is the policy better than random, and does weight sharing rank truthfully?

Pure functions of the runs' records and the ground truth; the analyze stage does the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from naseval.params import require
from naseval.ranking import Scores, kendall_tau, mean_pairwise_tau, mean_scores, ranks, spearman_rho

TRACE_COLUMNS = ["run", "epoch", "cell_id", "genotype", "score"]  # of a search trace's plot rows


@dataclass(frozen=True)
class Experiment:
    """params.yaml top level: the policy under evaluation, its baseline and the search seeds."""

    policy: str
    baseline: str = "random"
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        require(len(self.seeds) >= 1, "seeds", list(self.seeds), "a non-empty list of integers")
        require(len(set(self.seeds)) == len(self.seeds), "seeds", list(self.seeds), "distinct seeds")

    @property
    def policies(self) -> list[str]:
        """The policy and the baseline, once each when they are the same."""
        return list(dict.fromkeys([self.policy, self.baseline]))


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
    failure: str | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)  # the search's, one row per epoch or round

    @property
    def name(self) -> str:
        return f"{self.policy}/{self.seed}"


@dataclass
class Analysis:
    summary: dict[str, Any]  # metrics JSON
    final_ppl: list[dict[str, Any]]  # plot rows: one per run
    ranking_rows: list[dict[str, Any]]  # plot rows: weight-sharing rank vs ground-truth rank
    ground_truth_rows: list[dict[str, Any]]  # plot rows: one per cell
    trace_rows: list[dict[str, Any]]  # plot rows: each run's pick and its search-time score over search time


def describe(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "best": float(array.min()),
        "worst": float(array.max()),
    }


def summarize_policy(runs: list[RunRecord], truth_ranks: dict[int, int] | None) -> dict[str, Any]:
    """Statistics over the runs that finished; the failed ones are listed apart."""
    finished = [r for r in runs if r.failure is None]
    summary: dict[str, Any] = {
        "seeds": len(runs),
        "failed": {"count": len(runs) - len(finished), "seeds": [r.seed for r in runs if r.failure]},
    }
    if not finished:
        return summary
    summary |= {
        "test_ppl": describe([r.test_ppl for r in finished]),
        "valid_ppl": describe([r.valid_ppl for r in finished]),
        "distinct_cells": len({r.cell_id for r in finished}),
    }
    if truth_ranks is not None:
        summary["ground_truth_rank"] = describe([truth_ranks[r.cell_id] for r in finished])
    return summary


def run_summary(run: RunRecord, truth_ranks: dict[int, int] | None) -> dict[str, Any]:
    if run.failure is not None:
        return {"status": "failed", "reason": run.failure, "genotype": run.genotype}
    return {
        "status": "ok",
        "genotype": run.genotype,
        "cell_output": run.cell_output,
        "search_score": run.search_score,
        "test_ppl": run.test_ppl,
        "valid_ppl": run.valid_ppl,
        **({"ground_truth_rank": truth_ranks[run.cell_id]} if truth_ranks else {}),
    }


def weight_sharing_agreement(run: RunRecord, truth: Scores) -> dict[str, dict[str, float]]:
    return {
        name: {"kendall_tau": kendall_tau(scores, truth), "spearman_rho": spearman_rho(scores, truth)}
        for name, scores in run.rankings.items()
    }


def analyze(runs: list[RunRecord], ground_truth: dict[int, Scores]) -> Analysis:
    """`ground_truth`: training seed -> cell id -> validation perplexity; empty for large spaces."""
    truth = mean_scores(list(ground_truth.values())) if ground_truth else None
    truth_ranks = ranks(truth) if truth else None
    policies = sorted({r.policy for r in runs})
    summary: dict[str, Any] = {
        "policies": {
            p: summarize_policy([r for r in runs if r.policy == p], truth_ranks) for p in policies
        },
        "runs": {r.name: run_summary(r, truth_ranks) for r in runs},
    }
    ranking_rows: list[dict[str, Any]] = []
    if truth is not None and truth_ranks is not None:
        summary["ground_truth"] = {
            "cells": len(truth),
            "seeds": sorted(ground_truth),
            "best_valid_ppl": min(truth.values()),
            "noise_ceiling_kendall_tau": mean_pairwise_tau(list(ground_truth.values())),
        }
        summary["weight_sharing"] = {
            r.name: weight_sharing_agreement(r, truth) for r in runs if r.rankings
        }
        for r in runs:
            for name, scores in r.rankings.items():
                ws_ranks = ranks(scores)
                ranking_rows += [
                    {"run": r.name, "ranking": name, "cell_id": cell,
                     "weight_sharing_rank": ws_ranks[cell], "ground_truth_rank": truth_ranks[cell]}
                    for cell in sorted(scores) if cell in truth_ranks
                ]
    final_ppl = [
        {"policy": r.policy, "seed": r.seed, "genotype": r.genotype, "valid_ppl": r.valid_ppl,
         "test_ppl": r.test_ppl}
        for r in runs if r.failure is None
    ]
    ground_truth_rows = [
        {"cell_id": cell, "mean_valid_ppl": ppl, "rank": truth_ranks[cell],
         **{f"seed_{seed}": scores.get(cell) for seed, scores in sorted(ground_truth.items())}}
        for cell, ppl in sorted(truth.items())
    ] if truth and truth_ranks else []
    trace_rows = [
        {"run": r.name, **{key: row[key] for key in TRACE_COLUMNS[1:]}}
        for r in runs for row in r.trace if set(TRACE_COLUMNS[1:]) <= row.keys()
    ]
    return Analysis(summary, final_ppl, ranking_rows, ground_truth_rows, trace_rows)
