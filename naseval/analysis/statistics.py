"""Is a policy better than its baseline? Two-sample statistics over the seeds' perplexities.

Lower perplexity is better throughout: "a beats b" means a's perplexity is lower. With a handful
of seeds per policy every number here is uncertain, so each comes with what bounds it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


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


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; None where it is undefined (a sample of one, or no
    variance in either sample)."""
    if len(a) < 2 or len(b) < 2 or (np.var(a) == 0 and np.var(b) == 0):
        return None
    return _finite_or_none(stats.ttest_ind(a, b, equal_var=False).pvalue)


def mann_whitney_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of the Mann-Whitney U test (exact for small samples without ties)."""
    if not a or not b:
        return None
    return _finite_or_none(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def smallest_mann_whitney_p(n: int, m: int) -> float:
    """The lowest two-sided p-value the exact test can give with samples of n and m: reached when
    every value of one sample lies below every value of the other. 2 seeds each: 1/3."""
    return min(1.0, 2.0 / math.comb(n + m, n))


def probability_of_beating(a: list[float], b: list[float]) -> float:
    """P(a seed of `a` has a lower perplexity than a seed of `b`), ties counting half: the
    common-language effect size, U / (n m)."""
    x, y = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[None, :]
    return float(np.mean((x < y) + 0.5 * (x == y)))


def probability_interval(a: list[float], b: list[float], resamples: int, confidence: float,
                         rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap interval of `probability_of_beating(a, b)`, each sample resampled on its own."""
    x = rng.choice(np.asarray(a, dtype=float), (resamples, len(a)))[:, :, None]
    y = rng.choice(np.asarray(b, dtype=float), (resamples, len(b)))[:, None, :]
    probabilities = ((x < y) + 0.5 * (x == y)).mean(axis=(1, 2))
    tail = (1 - confidence) / 2
    low, high = np.quantile(probabilities, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_interval(a: list[float], b: list[float], resamples: int, confidence: float,
                       rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b), each sample resampled on its own."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    differences = (rng.choice(x, (resamples, len(x))).mean(axis=1)
                   - rng.choice(y, (resamples, len(y))).mean(axis=1))
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return float(low), float(high)


def compare_samples(policy: list[float], baseline: list[float], resamples: int, confidence: float,
                    seed: int) -> dict[str, float | list[float] | None]:
    """Everything a reader needs to judge 'policy beats baseline' on one metric."""
    rng = np.random.default_rng(seed)
    low, high = bootstrap_interval(policy, baseline, resamples, confidence, rng)
    return {
        "difference_of_means": float(np.mean(policy) - np.mean(baseline)),
        "difference_interval": [low, high],
        "confidence": confidence,
        "welch_p": welch_p(policy, baseline),
        "mann_whitney_p": mann_whitney_p(policy, baseline),
        "smallest_possible_mann_whitney_p": smallest_mann_whitney_p(len(policy), len(baseline)),
        "probability_of_beating_baseline": probability_of_beating(policy, baseline),
        "probability_interval": list(probability_interval(policy, baseline, resamples, confidence, rng)),
    }
