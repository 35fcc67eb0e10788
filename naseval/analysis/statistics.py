"""Is a policy better than its baseline? Two-sample statistics over the seeds' perplexities.

Lower perplexity is better throughout: "a beats b" means a's perplexity is lower. With a handful
of seeds per policy every number here is uncertain, so each comes with what bounds it, chosen
for its coverage at 4 and 12 seeds (`bench/coverage.py`, docs/statistics.md):

* the difference of means: Welch's t interval (scipy);
* P(a seed of a beats one of b): Newcombe's score interval, never of zero width;
* the tests: permutation tests (scipy), exact where the samples are small, ties included.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize, stats

PERMUTATIONS = 9_999  # random splits where there are more distinct ones; fewer: all of them, exactly


def summary_statistics(values: list[float]) -> dict[str, float]:
    """Mean, sample std (0 for one value), median, best (lowest) and worst."""
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "median": float(np.median(array)),
        "best": float(array.min()),
        "worst": float(array.max()),
    }


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _permutation(seed: int) -> stats.PermutationMethod:
    return stats.PermutationMethod(n_resamples=PERMUTATIONS, rng=np.random.default_rng(seed))


def _difference_of_means(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def permutation_p(a: list[float], b: list[float], seed: int = 0) -> float | None:
    """Two-sided p of the permutation test of the difference of means: how often relabelling the
    pooled seeds gives a difference as large. Exact for every seed count (all splits where there
    are at most PERMUTATIONS, else that many random ones); None with fewer than 2 seeds a side
    (scipy's permutation tests need 2)."""
    if min(len(a), len(b)) < 2:
        return None
    result = stats.permutation_test((a, b), _difference_of_means, vectorized=True, n_resamples=PERMUTATIONS,
                                    rng=np.random.default_rng(seed))
    return float(result.pvalue)


def mann_whitney_p(a: list[float], b: list[float], seed: int = 0) -> float | None:
    """Two-sided p of the Mann-Whitney U test from its permutation distribution, ties included
    (scipy's normal approximation, its default with ties, goes below what the test can reach);
    None with fewer than 2 seeds a side."""
    if min(len(a), len(b)) < 2:
        return None
    return _finite_or_none(stats.mannwhitneyu(a, b, alternative="two-sided", method=_permutation(seed)).pvalue)


def smallest_mann_whitney_p(n: int, m: int) -> float:
    """The lowest two-sided p-value the exact test can give with samples of n and m: reached when
    every value of one sample lies below every value of the other. 2 seeds each: 1/3."""
    return min(1.0, 2.0 / math.comb(n + m, n))


def probability_of_beating(a: list[float], b: list[float]) -> float:
    """P(a seed of `a` has a lower perplexity than a seed of `b`), ties counting half: the
    common-language effect size, U / (n m)."""
    x, y = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[None, :]
    return float(np.mean((x < y) + 0.5 * (x == y)))


def score_interval(estimate: float, variance: Callable[[float], float], confidence: float) -> list[float]:
    """The probabilities theta whose variance puts `estimate` within z standard errors:
    (estimate - theta)^2 <= z^2 variance(theta), as Wilson's interval does for a proportion.
    `variance` is 0 at 0 and 1 only, so the interval has width wherever there is any data."""
    z2 = stats.norm.ppf((1 + confidence) / 2) ** 2

    def excess(theta: float) -> float:
        return (estimate - theta) ** 2 - z2 * variance(theta)

    edge = 1e-12  # the variance vanishes at 0 and 1: the roots are searched strictly inside, else an end is 0 or 1
    low = 0.0 if excess(edge) <= 0 else optimize.brentq(excess, edge, min(estimate, 1 - edge))
    high = 1.0 if excess(1 - edge) <= 0 else optimize.brentq(excess, max(estimate, edge), 1 - edge)
    return [float(low), float(high)]


def probability_interval(a: list[float], b: list[float], confidence: float) -> list[float]:
    """Newcombe's (2006) score interval of `probability_of_beating(a, b)` (his method 5: Hanley
    and McNeil's variance, both sample sizes replaced by their mean, N* = (n + m) / 2 - 1)."""
    n, m = len(a), len(b)
    pooled = (n + m) / 2 - 1

    def variance(theta: float) -> float:
        return theta * (1 - theta) / (n * m) * (1 + (pooled - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))

    return score_interval(probability_of_beating(a, b), variance, confidence)


def difference_interval(a: list[float], b: list[float], confidence: float) -> list[float] | None:
    """Welch's t interval of mean(a) - mean(b); None where it is undefined (a sample of one, or
    no variance in either sample)."""
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return None
    bounds = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
    return [float(bounds.low), float(bounds.high)]


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p of Welch's t test of mean(a) = mean(b), the dual of `difference_interval`
    (it rejects at level alpha exactly when the 1 - alpha interval leaves out 0, so it shares the
    interval's measured coverage); None where the interval is undefined. Unlike the exact
    permutation test, whose smallest p with 4 seeds a side is 1/35, it can pass a Holm family."""
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return None
    return _finite_or_none(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over one family of tests (None: no test, left out of the
    family): controls the chance of any false finding in the family at the stated level."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for position, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - position) * p))
        adjusted[i] = running
    return adjusted


def holm_beside(tests: list[tuple[dict[str, Any], str]]) -> None:
    """Holm over one family, each test given as (where its p is, the p's key): writes the
    adjusted p beside each raw one, as `<key>_holm`."""
    for (holder, key), adjusted in zip(tests, holm([holder[key] for holder, key in tests]), strict=True):
        holder[f"{key}_holm"] = adjusted


def compare_samples(policy: list[float], baseline: list[float], confidence: float,
                    seed: int) -> dict[str, float | list[float] | None]:
    """Everything a reader needs to judge 'policy beats baseline' on one metric; the verdict
    rests on `permutation_p`."""
    return {
        "difference_of_means": float(np.mean(policy) - np.mean(baseline)),
        "difference_interval": difference_interval(policy, baseline, confidence),
        "confidence": confidence,
        "permutation_p": permutation_p(policy, baseline, seed),
        "mann_whitney_p": mann_whitney_p(policy, baseline, seed),
        "smallest_possible_mann_whitney_p": smallest_mann_whitney_p(len(policy), len(baseline)),
        "probability_of_beating_baseline": probability_of_beating(policy, baseline),
        "probability_interval": probability_interval(policy, baseline, confidence),
    }
