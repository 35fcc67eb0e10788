"""The evaluators table: each evaluator's rankings of the space (the rank stage, one per seed)
against the ground truth, and which evaluators beat plain weight sharing and the trivial proxy.

Every row is a function of the seeds' rankings: Kendall tau with the ground-truth mean (its mean
over seeds, with a t interval over seeds: the evaluator's own randomness, which is what differs
between evaluators; the ground truth's noise and the space's cells are common to all of them and
are in each seed's bootstrap intervals, `evaluator_runs`), the tau between its own seeds, top-k
overlap, tau over the ground truth's ceiling, tau against the order Yu et al. published at paper
scale (validity: whether what it ranks is the architecture), and the cost. Differences are
tested across seeds with
Welch's t test, Holm-adjusted over the family of every comparison with `shared_weights` and with
`params`; the exact permutation p is given beside it.

A ranking that ties every cell (`params` in a space whose cells all have the same parameters)
has no tau; the tests count it as tau 0, no information.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from naseval.analysis.ranking import Scores, finite, kendall_tau, pairwise_taus
from naseval.analysis.statistics import holm_beside, permutation_p, welch_p
from naseval.core.errors import NasevalError

BASELINES = ("shared_weights", "params")  # what every evaluator is tested against
EVALUATOR_COLUMNS = ["evaluator", "seed", "kendall_tau", "training_epochs", "seconds"]  # plot rows


@dataclass(frozen=True)
class EvaluatorRanking:
    """One rank stage's record: an evaluator's scores of the space with one seed (lower is better)."""

    name: str
    seed: int
    scores: Scores
    cost: float
    cost_unit: str
    training_epochs: float
    seconds: float
    cell_output: str
    facts: dict[str, Any]
    failure: str | None = None  # why it has no scores: its supernet diverged


def mean_interval(values: list[float], confidence: float) -> list[float] | None:
    """Student's t interval of the mean over seeds; None with fewer than 2 values or no spread."""
    if len(values) < 2 or np.var(values) == 0:
        return None
    bounds = stats.ttest_1samp(values, 0.0).confidence_interval(confidence)
    return [float(bounds.low), float(bounds.high)]


def mean_or_none(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def check_held_out(rankings: list[EvaluatorRanking], judging: list[int]) -> None:
    """Refuse an evaluator that learned from the seeds that judge it (landmarks, short training)."""
    for ranking in rankings:
        shared = sorted(set(ranking.facts.get("seeds", [])) & set(judging))
        if shared:
            raise NasevalError(f"{ranking.name} (seed {ranking.seed}) answered from ground-truth seeds "
                               f"{', '.join(map(str, shared))}, which judge it: keep oracle.seeds out of "
                               f"ground_truth.seeds")


def evaluator_row(name: str, mine: list[EvaluatorRanking], agreements: list[dict[str, Any]],
                  confidence: float, top_k: tuple[int, ...], ceiling: float | None,
                  published: Scores) -> dict[str, Any]:
    taus = [a["kendall_tau"] for a in agreements]
    defined = [tau for tau in taus if tau is not None]
    tau = float(np.mean(defined)) if defined else None
    between = [finite(t) for t in pairwise_taus([r.scores for r in mine])]
    constant = all(len(set(r.scores.values())) == 1 for r in mine)  # its top k would be the lowest ids
    return {
        "name": name,
        "seeds": [r.seed for r in mine],
        "kendall_tau": tau,
        "kendall_tau_interval": mean_interval(defined, confidence),
        "kendall_tau_by_seed": taus,
        "constant_ranking": constant,
        "kendall_tau_over_ceiling": None if tau is None or not ceiling else tau / ceiling,
        "seed_to_seed_kendall_tau": mean_or_none(between),
        # validity: against the order Yu et al. published at paper scale, where it judges the space
        "kendall_tau_vs_published": mean_or_none([finite(kendall_tau(r.scores, published)) for r in mine])
        if published else None,
        **{f"top_{k}_overlap": float(np.mean([a[f"top_{k}_overlap"] for a in agreements]))
           if agreements and not constant else None for k in top_k},
        "cost": {"unit": mine[0].cost_unit, "value": float(np.mean([r.cost for r in mine])),
                 "training_epochs": float(np.mean([r.training_epochs for r in mine])),
                 "seconds": float(np.mean([r.seconds for r in mine]))},
    }


def tested_taus(row: dict[str, Any]) -> list[float]:
    return [0.0 if tau is None else tau for tau in row["kendall_tau_by_seed"]]


def add_tests(rows: list[dict[str, Any]], seed: int) -> None:
    """`vs_<baseline>` in each row: the difference of mean taus with each baseline in the table,
    Welch's p and the exact permutation p, and Welch's p Holm-adjusted over the whole family."""
    by_name = {row["name"]: row for row in rows}
    family = []
    for baseline in (b for b in BASELINES if b in by_name):
        against = tested_taus(by_name[baseline])
        for row in rows:
            if row["name"] == baseline:
                continue
            mine = tested_taus(row)
            test = {"difference_of_means": float(np.mean(mine) - np.mean(against)),
                    "welch_p": welch_p(mine, against), "permutation_p": permutation_p(mine, against, seed)}
            row[f"vs_{baseline}"] = test
            family.append((test, "welch_p"))
    holm_beside(family)


def evaluators_table(rankings: list[EvaluatorRanking], names: list[str],
                     agree: Callable[[Scores], dict[str, Any]] | None, judging: list[int], confidence: float,
                     top_k: tuple[int, ...], ceiling: float | None, seed: int,
                     published: Scores) -> tuple[list[dict], dict[str, Any], list[dict]]:
    """(the table's rows in the order of `names`, each ranking's agreement by `<name>/seed_<s>`,
    the plot rows: one per ranking). `agree(scores)` is a ranking's agreement with the ground
    truth (summary.agreement); None without a ground truth, where the rows keep each evaluator's
    agreement with itself across seeds and its cost, and nothing is tested. `judging`: the
    ground-truth seeds; `seed`: the permutation tests'; `published`: the published paper-scale
    ranks of the space's cells (empty where they do not judge it)."""
    check_held_out(rankings, judging)
    rows, runs, points = [], {}, []
    for name in names:
        tried = sorted((r for r in rankings if r.name == name), key=lambda r: r.seed)
        mine = [r for r in tried if r.failure is None]
        if not mine:
            continue
        agreements = [agree(r.scores) for r in mine] if agree else []
        rows.append(evaluator_row(name, mine, agreements, confidence, top_k, ceiling, published)
                    | {"failed": {"count": len(tried) - len(mine), "seeds": [r.seed for r in tried if r.failure]}})
        for r, a in zip(mine, agreements, strict=True) if agreements else ():
            runs[f"{name}/seed_{r.seed}"] = a
            points.append({"evaluator": name, "seed": r.seed, "kendall_tau": a["kendall_tau"],
                           "training_epochs": r.training_epochs, "seconds": r.seconds})
    if agree:
        add_tests(rows, seed)
    return rows, runs, points


def significant(test: dict[str, Any] | None, level: float) -> bool:
    return bool(test) and test.get("welch_p_holm") is not None and test["welch_p_holm"] < level


def evaluator_verdicts(rows: list[dict[str, Any]], level: float) -> list[str]:
    """For the report: which evaluators rank better or worse than each baseline, after Holm."""
    sentences = []
    for baseline in BASELINES:
        tested = [row for row in rows if f"vs_{baseline}" in row]
        if not tested:
            continue
        named = {direction: [f"`{row['name']}`" for row in tested if significant(row[f"vs_{baseline}"], level)
                             and direction * row[f"vs_{baseline}"]["difference_of_means"] > 0]
                 for direction in (1, -1)}

        def rank(names: list[str]) -> str:
            return f"{', '.join(names)} rank{'s' if len(names) == 1 else ''}"

        sentences.append(f"Against `{baseline}`: " + (f"{rank(named[1])} cells better" if named[1]
                                                      else "no evaluator ranks cells significantly better")
                         + (f"; {rank(named[-1])} them worse" if named[-1] else "") + ".")
    family = sum(f"vs_{baseline}" in row for row in rows for baseline in BASELINES)
    if family:
        sentences.append(f"Each verdict: Welch's t test of the difference of mean tau over seeds, Holm-adjusted over "
                         f"the family of {family} comparisons, at p < {level}.")
    return sentences
