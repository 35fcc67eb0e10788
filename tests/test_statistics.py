import itertools
import math

import numpy as np
import pytest
from scipy import stats

from naseval.analysis.statistics import (
    compare_samples,
    difference_interval,
    holm,
    mann_whitney_p,
    permutation_p,
    probability_interval,
    probability_of_beating,
    smallest_mann_whitney_p,
    summary_statistics,
)

POLICY = [61.2, 62.5, 60.8, 63.1, 61.9]
BASELINE = [63.0, 64.2, 62.7, 65.5, 63.8, 64.9]


def test_describe_gives_the_median_and_sample_std():
    assert summary_statistics([3.0, 1.0, 2.0, 10.0]) == {
        "mean": 4.0, "std": pytest.approx(np.std([3, 1, 2, 10], ddof=1)), "median": 2.5, "best": 1.0, "worst": 10.0}
    assert summary_statistics([5.0])["std"] == 0.0


def every_split_p(a: list[float], b: list[float]) -> float:
    """The permutation p of the difference of means by enumerating every split of the pooled values."""
    pooled, observed = np.array(a + b), abs(np.mean(a) - np.mean(b))
    splits = [abs(pooled[list(chosen)].mean() - np.delete(pooled, list(chosen)).mean())
              for chosen in itertools.combinations(range(len(pooled)), len(a))]
    return float(np.mean(np.array(splits) >= observed - 1e-12))


def test_the_permutation_test_enumerates_every_split_of_small_samples():
    assert permutation_p(POLICY, BASELINE) == pytest.approx(every_split_p(POLICY, BASELINE))  # 462 splits
    assert permutation_p(POLICY, BASELINE) == pytest.approx(6 / 462)  # 6 splits as far apart
    assert permutation_p([60.0], BASELINE) is None  # scipy's permutation tests need 2 a side


def test_mann_whitney_without_ties_is_the_exact_test():
    assert mann_whitney_p(POLICY, BASELINE) == pytest.approx(
        stats.mannwhitneyu(POLICY, BASELINE, alternative="two-sided", method="exact").pvalue)


def test_tied_mann_whitney_never_goes_below_the_exact_floor():
    """4 vs 4 seeds, each side finding one repeated cell: scipy's default (normal approximation
    with ties) says 0.013, below the 2/70 that any split of 8 values can give."""
    one_cell, another = [90.0] * 4, [95.0] * 4
    assert stats.mannwhitneyu(one_cell, another).pvalue < 2 / 70
    assert mann_whitney_p(one_cell, another) == pytest.approx(2 / 70) == smallest_mann_whitney_p(4, 4)


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


def test_probability_interval_is_never_of_zero_width_and_solves_newcombes_equation():
    low, high = probability_interval([90.0] * 4, [95.0] * 12, 0.95)
    assert high == 1.0 and 0.5 < low < 0.9  # every pair beaten, yet the interval is not [1, 1]
    low, high = probability_interval(POLICY, BASELINE, 0.95)
    theta, n, m, pooled = probability_of_beating(POLICY, BASELINE), 5, 6, (5 + 6) / 2 - 1
    for end in (low, high):  # each end: theta's distance is z standard errors at that end
        variance = end * (1 - end) / (n * m) * (1 + (pooled - 1) * ((1 - end) / (2 - end) + end / (1 + end)))
        assert (theta - end) ** 2 == pytest.approx(stats.norm.ppf(0.975) ** 2 * variance)
    assert low < theta < high


def test_difference_interval_is_welchs():
    expected = stats.ttest_ind(POLICY, BASELINE, equal_var=False).confidence_interval(0.9)
    assert difference_interval(POLICY, BASELINE, 0.9) == pytest.approx([expected.low, expected.high])
    assert difference_interval([60.0], BASELINE, 0.9) is None
    assert difference_interval([60.0, 60.0], [61.0, 61.0], 0.9) is None


def test_holm_on_a_constructed_family():
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 = 0.03, 0.06, 0.04 -> kept non-decreasing: 0.03, 0.06, 0.06
    adjusted = holm([0.04, None, 0.01, 0.03])  # None: no test, not counted in the family
    assert adjusted[1] is None and [adjusted[i] for i in (0, 2, 3)] == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_comparison_is_seeded_and_orders_its_ends():
    first = compare_samples(POLICY, BASELINE, 0.9, seed=3)
    assert first == compare_samples(POLICY, BASELINE, 0.9, seed=3)
    low, high = first["difference_interval"]
    assert low < first["difference_of_means"] < high < 0
    assert math.isclose(first["difference_of_means"], np.mean(POLICY) - np.mean(BASELINE))
    assert first["permutation_p"] == permutation_p(POLICY, BASELINE)
