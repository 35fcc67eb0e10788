"""The ground truth's reliability figures against synthetic ground truths of known truth and noise."""

import numpy as np
import pytest
from scipy import stats

from naseval.analysis.reliability import (
    ceiling_tau,
    ceiling_tau_interval,
    cell_intervals,
    kendall_tau_interval,
    leave_one_seed_out,
    leave_one_seed_out_tau,
    probability_best_is_best,
    reliability,
    seed_to_seed_tau,
    tau_b,
)
from naseval.analysis.synthetic import CELLS, POPULATIONS


def scores(values: np.ndarray) -> dict[int, float]:
    return {cell: float(v) for cell, v in enumerate(values)}


def test_tau_b_is_scipys_with_and_without_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, (20, 15)), rng.standard_normal((20, 15))
    expected = [stats.kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)]
    assert tau_b(x, y, rows_per_chunk=7) == pytest.approx(expected)
    assert np.isnan(tau_b(np.ones(5), np.arange(5.0))[0])  # a constant ranking has no tau


@pytest.mark.parametrize("seeds", [3, 4])
@pytest.mark.parametrize("name", list(POPULATIONS))
def test_ceiling_estimate_is_within_005_of_the_truth(name, seeds):
    """Averaged over 40 ground truths drawn from each synthetic population, plateau-and-escape
    (bimodal noise) included; one estimate scatters by 0.02 to 0.13 around it
    (`python bench/ceiling_validation.py`)."""
    rng = np.random.default_rng(1)
    estimates, truths = [], []
    for _ in range(40):
        space = POPULATIONS[name](rng, CELLS)
        estimates.append(ceiling_tau(seed_to_seed_tau(space.train(rng, seeds)), seeds))
        truths.append(space.true_ceiling(seeds, rng, 1000))
    assert np.mean(estimates) == pytest.approx(np.mean(truths), abs=0.05)


def test_the_ceilings_interval_covers_the_true_ceiling_where_cells_plateau_and_escape():
    rng = np.random.default_rng(5)
    covered = 0
    for _ in range(40):
        space = POPULATIONS["plateau and escape"](rng, CELLS)
        low, high = ceiling_tau_interval(space.train(rng, 3), 1000, 0.95, rng)
        covered += low <= space.true_ceiling(3, rng, 1000) <= high
    assert covered >= 38


def test_ceiling_follows_spearman_brown():
    assert ceiling_tau(1.0, 3) == pytest.approx(1.0)
    assert ceiling_tau(-0.3, 3) == 0.0  # seeds that disagree: nothing true to reach
    # seeds agreeing at tau 1/3 (rho 0.5): a 3-seed mean has reliability 0.75, rho sqrt(0.75) with the truth
    assert ceiling_tau(1 / 3, 3) == pytest.approx(2 / np.pi * np.arcsin(np.sqrt(0.75)))
    assert ceiling_tau(0.5, 2) < ceiling_tau(0.5, 4) < ceiling_tau(0.5, 8) < 1


def test_leave_one_seed_out_against_scipy_on_constructed_seeds():
    results = np.array([[1.0, 2.0, 1.5], [2.0, 1.0, 2.5], [3.0, 3.5, 1.0], [4.0, 4.5, 5.0], [5.0, 5.5, 4.0]])
    expected = [stats.kendalltau(results[:, s], np.delete(results, s, axis=1).mean(axis=1)).statistic
                for s in range(3)]
    assert leave_one_seed_out(results) == pytest.approx(expected)
    assert leave_one_seed_out(np.repeat(np.arange(5.0)[:, None], 3, axis=1)) == pytest.approx([1.0] * 3)
    figures = leave_one_seed_out_tau(results, 500, 0.95, np.random.default_rng(0))
    assert figures["mean"] == pytest.approx(np.mean(expected))
    low, high = figures["interval"]
    assert -1 <= low < figures["mean"] < high <= 1


def test_seed_to_seed_tau_is_the_mean_over_pairs():
    results = np.array([[1.0, 1.0, 3.0], [2.0, 2.0, 2.0], [3.0, 3.0, 1.0]])
    assert seed_to_seed_tau(results) == pytest.approx((1.0 - 1.0 - 1.0) / 3)


def test_tau_interval_covers_the_true_tau_in_at_least_90_of_100_cases():
    """A weight-sharing ranking correlated with the cells' true quality; the ground truth sees that
    quality through 3 noisy seeds. The true tau is the ranking's with the true quality."""
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(100):
        rho = rng.uniform(-0.2, 0.9)
        quality = rng.standard_normal(CELLS)
        ranking = rho * quality + np.sqrt(1 - rho ** 2) * rng.standard_normal(CELLS)
        results = 100 + 3 * quality[:, None] + rng.standard_normal((CELLS, 3)) * 3.0
        low, high = kendall_tau_interval(scores(ranking), [scores(results[:, s]) for s in range(3)], 1000, 0.95,
                                         rng)
        covered += low <= tau_b(ranking, quality)[0] <= high
    assert covered >= 90


def test_cell_intervals_are_t_intervals_of_the_mean():
    results = np.array([[100.0, 102.0, 104.0], [90.0, 90.0, 90.0]])
    spread = cell_intervals(results, 0.95)
    half = stats.t.ppf(0.975, 2) * 2.0 / np.sqrt(3)
    assert spread["mean"] == pytest.approx([102.0, 90.0]) and spread["std"] == pytest.approx([2.0, 0.0])
    assert spread["low"] == pytest.approx([102.0 - half, 90.0])
    assert spread["high"] == pytest.approx([102.0 + half, 90.0])


def test_probability_that_the_best_cell_is_best():
    rng = np.random.default_rng(3)
    clear = np.array([[90.0, 91.0, 90.5], [100.0, 101.0, 99.0], [110.0, 108.0, 109.0]])
    assert probability_best_is_best(clear, 1000, rng) == 1.0
    close = np.array([[100.0, 104.0, 101.0], [103.0, 100.0, 102.5], [120.0, 121.0, 119.0]])
    assert 0.2 < probability_best_is_best(close, 2000, rng) < 0.8  # cells 0 and 1 swap under resampling


def test_reliability_needs_two_seeds_and_reports_every_figure():
    one = [scores(np.arange(5.0))]
    assert reliability(one, 100, 0.95, 0) is None
    rng = np.random.default_rng(4)
    true = np.linspace(90, 120, CELLS)
    per_seed = [scores(true + rng.normal(0, 1, CELLS)) for _ in range(3)]
    figures = reliability(per_seed, 500, 0.95, 0)
    assert figures["seeds"] == 3
    assert figures["ceiling_tau"] > figures["leave_one_seed_out_tau"]["mean"] > figures["seed_to_seed_tau"] > 0.8
    assert reliability(per_seed, 500, 0.95, 0) == figures  # seeded: the same figures every time
