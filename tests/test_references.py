"""Random sampling and random search as exact references, against brute force on small ground truths."""

import itertools

import numpy as np
import pytest

from naseval.analysis.references import against_reference, beats_best_of, position, rank_distribution, rank_sum_p

TRUTH = [60.0, 61.0, 62.0, 62.0, 64.0, 65.0]  # cells 2 and 3 tie


def brute_force(value: float, truth: list[float], budget: int) -> float:
    """P(value beats the best of `budget` distinct cells), ties half, over every subset."""
    outcomes = [(value < min(subset)) + 0.5 * (value == min(subset))
                for subset in itertools.combinations(truth, budget)]
    return float(np.mean(outcomes))


@pytest.mark.parametrize("budget", [1, 2, 3, 6])
def test_beating_the_best_of_a_budget_is_exact(budget):
    for value in TRUTH:
        assert beats_best_of(*position(value, TRUTH), len(TRUTH), budget) == pytest.approx(
            brute_force(value, TRUTH, budget))


def test_probability_of_beating_random_sampling_on_a_constructed_ground_truth():
    # found cells 61 and 62 (a tied pair): 61 beats 4 of 6 cells, loses to one and ties itself: (4 + 0.5) / 6;
    # 62 beats 2, ties itself and its twin: (2 + 1) / 6
    result = against_reference([position(61.0, TRUTH), position(62.0, TRUTH)], len(TRUTH), 1, 0.95)
    assert result["per_seed"] == pytest.approx([4.5 / 6, 3 / 6])
    assert result["probability"] == pytest.approx(7.5 / 12)
    low, high = result["interval"]
    assert 0 < low < result["probability"] < high < 1
    assert against_reference([], len(TRUTH), 1, 0.95) is None
    assert against_reference([position(61.0, TRUTH)], len(TRUTH), 7, 0.95) is None  # a budget above the space


def test_best_of_budget_rank_distribution_sums_to_one_and_matches_subsets():
    for budget in (1, 4, 16):
        assert rank_distribution(32, budget).sum() == pytest.approx(1.0)
    ranks = [min(subset) for subset in itertools.combinations(range(1, 9), 3)]
    expected = np.bincount(ranks, minlength=9)[1:] / len(ranks)
    assert rank_distribution(8, 3) == pytest.approx(expected)


def test_the_exact_rank_sum_test_rejects_at_most_alpha_when_the_policy_is_the_reference():
    """Every outcome of 3 seeds of random search at budget 2 in 6 cells, weighted by its
    probability: the test rejects at 0.05 with probability at most 0.05."""
    single = rank_distribution(6, 2)
    rejected = sum(np.prod(single[[r - 1 for r in ranks]]) for ranks in itertools.product(range(1, 7), repeat=3)
                   if rank_sum_p(list(ranks), 6, 2) < 0.05)
    assert 0.01 < rejected <= 0.05
    assert rank_sum_p([1, 1, 1, 1], 32, 1) < 0.001  # four seeds all finding the best cell: not uniform draws
    assert rank_sum_p([16, 17, 16, 17], 32, 1) == 1.0  # the middle
