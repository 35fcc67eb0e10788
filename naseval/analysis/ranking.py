"""Rank statistics between two scorings of the same cells.

Scores are dicts cell id -> score (lower is better) and are always matched by id before any
statistic is computed. Correlating two lists of ids each sorted by rank, as earlier code did,
measures nothing: it compares id orders, not the two scorings of each cell.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from naseval.core.errors import NasevalError

Scores = dict[int, float]


def finite(value: float) -> float | None:
    """NaN (e.g. the tau of a constant ranking) as None, which JSON and the report can show."""
    return value if math.isfinite(value) else None


def matched(a: Scores, b: Scores) -> tuple[np.ndarray, np.ndarray]:
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise NasevalError(f"rank correlation needs at least 2 cells scored by both, got {len(common)}")
    return np.array([a[i] for i in common]), np.array([b[i] for i in common])


def kendall_tau(a: Scores, b: Scores) -> float:
    return float(stats.kendalltau(*matched(a, b)).statistic)


def kendall_tau_p(a: Scores, b: Scores) -> float:
    """Two-sided p-value of tau against no association: is a tau near 0 distinguishable from 0?"""
    return float(stats.kendalltau(*matched(a, b)).pvalue)


def spearman_rho(a: Scores, b: Scores) -> float:
    """NaN, without scipy's warning, when either ranking is constant: rho is undefined there, as tau."""
    x, y = matched(a, b)
    if len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def ranks(scores: Scores) -> dict[int, int]:
    """1 for the best (lowest) score; ties share the better rank."""
    ordered = sorted(scores.values())
    return {cell: ordered.index(score) + 1 for cell, score in scores.items()}


def top_k_overlap(a: Scores, b: Scores, k: int) -> float:
    """Fraction of b's k best cells that are also among a's k best, over the cells both scored;
    ties are broken by cell id so the answer does not depend on dict order."""
    common = sorted(set(a) & set(b))
    k = min(k, len(common))

    def best(scores: Scores) -> set[int]:
        return set(sorted(common, key=lambda cell: (scores[cell], cell))[:k])

    return len(best(a) & best(b)) / k if k else 0.0


def pairwise_taus(scorings: list[Scores]) -> list[float]:
    """Kendall tau of every pair, e.g. of rankings from different seeds."""
    return [kendall_tau(a, b) for a, b in itertools.combinations(scorings, 2)]


def mean_scores(scorings: list[Scores]) -> Scores:
    common = set.intersection(*(set(s) for s in scorings))
    return {cell: float(np.mean([s[cell] for s in scorings])) for cell in sorted(common)}
