"""Where found cells sit against random sampling and random search, computed exactly.

`random` draws one cell uniformly, and random search at budget B keeps the best of B distinct
uniform cells; in an enumerable space both are known distributions over the ground truth's
cells, so a policy is held against them exactly rather than against a few seeds of them. The
random search here has a perfect oracle (the judging ground truth): it is the best that random
search at that budget can do, so a policy beating it beats any noisier random search.

For each found cell x and budget B: P(x beats the best of B random cells), ties counting half
(B = 1: random sampling; this is the found cell's quantile among all cells). A policy's
probability is the mean over its seeds, with a score interval over seeds (the per-seed variance
the larger of Newcombe's model's and the seeds' own), and it is tested exactly against "no
different from the reference": under that hypothesis each seed's found cell has the reference's
rank distribution, so the sum of ranks has their convolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from naseval.analysis.statistics import score_interval


def beats_best_of(worse: int, tied: int, cells: int, budget: int) -> float:
    """P(a cell beats the best of `budget` distinct uniform cells of `cells`), ties counting
    half, given how many cells are worse than it and how many (itself included) tie with it."""
    draws = math.comb(cells, budget)
    all_worse, none_better = math.comb(worse, budget), math.comb(worse + tied, budget)
    return (all_worse + 0.5 * (none_better - all_worse)) / draws


def rank_distribution(cells: int, budget: int) -> np.ndarray:
    """P(the best of `budget` distinct uniform cells has rank r), r = 1..cells (no ties)."""
    at_least = np.array([math.comb(cells - r + 1, budget) for r in range(1, cells + 2)], dtype=float)
    return (at_least[:-1] - at_least[1:]) / math.comb(cells, budget)


def rank_sum_p(ranks: list[int], cells: int, budget: int) -> float:
    """Two-sided exact p that the ranks are draws of the best of `budget` random cells: twice the
    smaller tail of their sum under the convolution of `rank_distribution`, at most 1."""
    single = rank_distribution(cells, budget)
    total = np.array([1.0])
    for _ in ranks:
        total = np.convolve(total, single)  # index i: sum of ranks = i + len(ranks)
    observed = sum(ranks) - len(ranks)
    return float(min(1.0, 2 * min(total[:observed + 1].sum(), total[observed:].sum())))


def position(value: float, truth: Iterable[float]) -> tuple[int, int]:
    """(cells worse than `value`, cells tied with it, itself included) among the ground truth's values."""
    values = list(truth)
    return sum(v > value for v in values), sum(v == value for v in values)


def per_seed_variance(theta: float) -> float:
    """The variance of one seed's probability, Hanley and McNeil's two terms averaged (as
    Newcombe's method 5 averages the sample sizes): 1/12 at theta = 1/2, as for a uniform draw."""
    return (theta * (1 - theta) ** 2 / (2 - theta) + theta ** 2 * (1 - theta) / (1 + theta)) / 2


def against_reference(positions: list[tuple[int, int]], cells: int, budget: int, confidence: float) -> dict | None:
    """A policy's found cells, by their `position`s among the ground truth's `cells` (one per
    seed), against the best of `budget` random cells: the probability with its interval, each
    seed's probability and the exact test; None without found cells or with too few cells."""
    if not positions or budget > cells:
        return None
    per_seed = [beats_best_of(worse, tied, cells, budget) for worse, tied in positions]
    probability, seeds = float(np.mean(per_seed)), len(positions)
    # The model's variance alone runs narrow where a large budget makes each seed's probability
    # nearly all or nothing; the seeds' own variance, where larger, restores the coverage.
    observed = float(np.var(per_seed, ddof=1)) if seeds > 1 else 0.0
    ranks = [cells - worse - tied + 1 for worse, tied in positions]  # ties take the better rank
    return {"budget": budget, "probability": probability, "per_seed": per_seed,
            "interval": score_interval(probability, lambda theta: max(per_seed_variance(theta), observed) / seeds,
                                       confidence),
            "p": rank_sum_p(ranks, cells, budget)}
