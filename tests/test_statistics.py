import math

import numpy as np
import pytest
from scipy import stats

from naseval.analysis.statistics import (
    bootstrap_interval,
    compare_samples,
    mann_whitney_p,
    probability_of_beating,
    smallest_mann_whitney_p,
    summary_statistics,
    welch_p,
)

POLICY = [61.2, 62.5, 60.8, 63.1, 61.9]
BASELINE = [63.0, 64.2, 62.7, 65.5, 63.8, 64.9]


def test_describe_gives_the_median_and_sample_std():
    assert summary_statistics([3.0, 1.0, 2.0, 10.0]) == {
        "mean": 4.0, "std": pytest.approx(np.std([3, 1, 2, 10], ddof=1)), "median": 2.5, "best": 1.0, "worst": 10.0}
    assert summary_statistics([5.0])["std"] == 0.0


def test_p_values_match_scipy_on_fixed_samples():
    assert welch_p(POLICY, BASELINE) == pytest.approx(stats.ttest_ind(POLICY, BASELINE, equal_var=False).pvalue)
    assert welch_p(POLICY, BASELINE) < 0.01
    assert mann_whitney_p(POLICY, BASELINE) == pytest.approx(
        stats.mannwhitneyu(POLICY, BASELINE, alternative="two-sided").pvalue)


def test_welch_is_undefined_for_one_seed_or_no_variance():
    assert welch_p([60.0], BASELINE) is None
    assert welch_p([60.0, 60.0], [61.0, 61.0]) is None


def test_smallest_mann_whitney_p_is_reached_by_separated_samples():
    for n, m in [(2, 2), (3, 4), (5, 5)]:
        low, high = list(range(n)), list(range(100, 100 + m))
        assert smallest_mann_whitney_p(n, m) == pytest.approx(mann_whitney_p(low, high))
    assert smallest_mann_whitney_p(2, 2) == pytest.approx(1 / 3)


def test_probability_of_beating_counts_pairs_and_half_ties():
    assert probability_of_beating([1.0, 2.0], [3.0, 4.0]) == 1.0
    assert probability_of_beating([3.0, 4.0], [1.0, 2.0]) == 0.0
    assert probability_of_beating([1.0, 3.0], [2.0, 3.0]) == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    u = stats.mannwhitneyu(BASELINE, POLICY).statistic  # pairs where the baseline is higher
    assert probability_of_beating(POLICY, BASELINE) == pytest.approx(u / (len(POLICY) * len(BASELINE)))


def test_bootstrap_interval_covers_the_true_difference_on_a_synthetic_case():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(100):
        a, b = rng.normal(60.0, 2.0, 30), rng.normal(62.0, 2.0, 30)
        low, high = bootstrap_interval(list(a), list(b), 2000, 0.95, rng)
        covered += low <= -2.0 <= high
    assert 88 <= covered <= 100  # nominal 95; the percentile bootstrap runs a little narrow


def test_bootstrap_interval_is_seeded_and_orders_its_ends():
    first = compare_samples(POLICY, BASELINE, 1000, 0.9, seed=3)
    assert first == compare_samples(POLICY, BASELINE, 1000, 0.9, seed=3)
    low, high = first["difference_interval"]
    assert low < first["difference_of_means"] < high < 0
    assert math.isclose(first["difference_of_means"], np.mean(POLICY) - np.mean(BASELINE))
