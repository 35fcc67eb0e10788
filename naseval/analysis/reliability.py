"""How far a ground truth can be trusted, and the uncertainty of every tau measured against it.

A ground truth is k training seeds of every cell. Each seed is one draw of a chaotic process,
so a seed's ranking is the cells' true order plus training noise, and so, less so, is the mean
of the seeds that the analysis ranks by. Three views of that noise, all Kendall tau-b:

* `seed_to_seed_tau`: two single seeds against each other (a pessimistic view: both are noisy).
* `leave_one_seed_out_tau`: one seed against the mean of the others.
* `ceiling_tau`: what a perfect ranking (the cells' true order at this budget) is expected to
  reach against the k-seed mean: the most any weight-sharing ranking can be expected to reach.

The ceiling is a split-half estimate with the Spearman-Brown correction, the split being into
single seeds: if each seed's result is the cell's true value plus independent noise, two seeds
correlate at rho = r (a seed's reliability: the share of its variance that is the cells' true
differences), a k-seed mean has reliability r_k = k r / (1 + (k - 1) r), and it correlates with
the truth at sqrt(r_k). Rank correlations go through Greiner's relation for a Gaussian latent
scale, tau = 2/pi asin(rho). Ranks make it indifferent to the perplexity scale, and it needs
no model of each cell's noise, which differs by orders of magnitude between cells (a cell stuck
on a plateau scatters by 0.3%, one that escaped it by 15%; seen in bench/reliability_study.py).
`tests/test_reliability.py` checks it on synthetic ground truths of known truth and noise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats

from naseval.analysis.ranking import Scores


def tau_b(x: np.ndarray, y: np.ndarray, rows_per_chunk: int = 512) -> np.ndarray:
    """Kendall tau-b of each row pair: x, y (R, n) -> (R,); NaN where a row is constant. Equal to
    scipy's `kendalltau` (tau-b), vectorized for resampling, in chunks of (rows, n, n) signs."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    n = x.shape[1]
    pairs = n * (n - 1) / 2
    taus = np.empty(x.shape[0])
    for start in range(0, x.shape[0], rows_per_chunk):
        part = slice(start, start + rows_per_chunk)
        dx = np.sign(x[part, :, None] - x[part, None, :])  # (rows, n, n)
        dy = np.sign(y[part, :, None] - y[part, None, :])
        concordance = (dx * dy).sum(axis=(1, 2)) / 2
        untied_x = pairs - ((dx == 0).sum(axis=(1, 2)) - n) / 2  # the diagonal is no pair
        untied_y = pairs - ((dy == 0).sum(axis=(1, 2)) - n) / 2
        with np.errstate(invalid="ignore", divide="ignore"):
            taus[part] = concordance / np.sqrt(untied_x * untied_y)
    return taus


def seed_matrix(per_seed: list[Scores]) -> tuple[list[int], np.ndarray]:
    """The cells every seed finished, and their results: (cells, seeds)."""
    cells = sorted(set.intersection(*(set(s) for s in per_seed)))
    return cells, np.array([[s[cell] for s in per_seed] for cell in cells], dtype=float)


def percentile_interval(values: np.ndarray, confidence: float) -> list[float] | None:
    """The central `confidence` interval of the finite values; None when none is (a constant
    ranking has no tau in any resample)."""
    tail = (1 - confidence) / 2
    finite = values[np.isfinite(values)]
    return [float(q) for q in np.quantile(finite, [tail, 1 - tail])] if finite.size else None


def seed_to_seed_tau(results: np.ndarray) -> float | np.ndarray:
    """Mean tau over every pair of seeds: results (..., cells, seeds) -> a float, or one per
    leading index (NaN where a pair has no tau)."""
    *batch, cells, seeds = results.shape
    first, second = np.triu_indices(seeds, k=1)  # every pair of seeds once
    flat = results.reshape(-1, cells, seeds)
    taus = np.stack([tau_b(flat[:, :, i], flat[:, :, j]) for i, j in zip(first, second, strict=True)])
    mean = taus.mean(axis=0).reshape(batch)
    return float(mean) if not batch else mean


def leave_one_seed_out(results: np.ndarray) -> np.ndarray:
    """Each seed's tau against the mean of the other seeds: results (..., cells, seeds) -> (..., seeds)."""
    k = results.shape[-1]
    others = (results.sum(axis=-1, keepdims=True) - results) / (k - 1)
    seeds_first = np.swapaxes(results, -1, -2)  # (..., seeds, cells)
    cells = results.shape[-2]
    taus = tau_b(seeds_first.reshape(-1, cells), np.swapaxes(others, -1, -2).reshape(-1, cells))
    return taus.reshape(results.shape[:-2] + (k,))


def leave_one_seed_out_tau(results: np.ndarray, resamples: int, confidence: float,
                           rng: np.random.Generator) -> dict[str, float | list[float]]:
    """The mean over seeds of `leave_one_seed_out`, with a percentile bootstrap interval over cells."""
    cells = results.shape[0]
    boot = leave_one_seed_out(results[rng.integers(0, cells, (resamples, cells))])  # (resamples, seeds)
    with np.errstate(invalid="ignore"):  # a resample of one repeated cell has no tau: left out
        boot = boot.mean(axis=1)
    return {"mean": float(np.mean(leave_one_seed_out(results))), "interval": percentile_interval(boot, confidence)}


def reliability_of_mean(seed_to_seed: float | np.ndarray, seeds: int) -> float | np.ndarray:
    """The reliability of a `seeds`-seed mean (rho^2 with the truth), from the tau between single
    seeds: Spearman-Brown on one seed's, read through the latent-Gaussian link rho = sin(pi/2 tau)."""
    single = np.maximum(np.sin(np.pi / 2 * np.asarray(seed_to_seed, dtype=float)), 0.0)
    return seeds * single / (1 + (seeds - 1) * single)


def ceiling_tau(seed_to_seed: float | np.ndarray, seeds: int) -> float | np.ndarray:
    """The tau a perfect ranking is expected to reach against a `seeds`-seed mean, from the tau
    between single seeds: the mean correlates with the truth at the root of its reliability, and
    tau = 2/pi asin(rho). NaN where the seeds' tau is (no cell pair was untied)."""
    ceiling = 2 / np.pi * np.arcsin(np.sqrt(reliability_of_mean(seed_to_seed, seeds)))
    return float(ceiling) if np.ndim(ceiling) == 0 else ceiling


def predicted_leave_one_seed_out(seed_to_seed: float, seeds: int) -> float:
    """What the ceiling's model predicts for `leave_one_seed_out_tau`: one seed and the mean of the
    k - 1 others correlate at the root of the product of their reliabilities."""
    product = reliability_of_mean(seed_to_seed, 1) * reliability_of_mean(seed_to_seed, seeds - 1)
    return float(2 / np.pi * np.arcsin(np.sqrt(product)))


def ceiling_tau_interval(results: np.ndarray, resamples: int, confidence: float,
                         rng: np.random.Generator) -> list[float] | None:
    """Percentile bootstrap interval of the ceiling over cells (which cells a space happens to
    hold): results (cells, seeds). On synthetic ground truths it covers the true ceiling of the
    cells at hand in 0.93 to 1.00 of draws (`bench/coverage.py`)."""
    cells, seeds = results.shape
    resampled = results[rng.integers(0, cells, (resamples, cells))]  # (resamples, cells, seeds)
    with np.errstate(invalid="ignore"):  # a resample of one repeated cell has no tau: left out
        return percentile_interval(ceiling_tau(seed_to_seed_tau(resampled), seeds), confidence)


def cell_intervals(results: np.ndarray, confidence: float) -> dict[str, np.ndarray]:
    """Per cell over seeds: mean, sample std and a t interval of the mean."""
    k = results.shape[1]
    mean, std = results.mean(axis=1), results.std(axis=1, ddof=1)
    half = stats.t.ppf((1 + confidence) / 2, k - 1) * std / math.sqrt(k)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half}


def seed_draws(seeds: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of `seeds` seeds with replacement, (draws, seeds): every ordered draw, each
    once (the exact bootstrap), where there are at most `resamples` of them; else random ones."""
    if seeds ** seeds <= resamples:
        return np.array(list(itertools.product(range(seeds), repeat=seeds)))
    return rng.integers(0, seeds, (resamples, seeds))


def distinct_seed_resamples(seeds: int) -> int:
    """How many different multisets a bootstrap of `seeds` seeds can draw: C(2k - 1, k); 10 for 3."""
    return math.comb(2 * seeds - 1, seeds)


def probability_best_is_best(results: np.ndarray, resamples: int, rng: np.random.Generator) -> float:
    """How often the best cell of the seeds' mean stays best when the seeds are resampled (with
    replacement, the same draw for every cell, as a seed is one run of every cell)."""
    best = int(np.argmin(results.mean(axis=1)))
    means = results[:, seed_draws(results.shape[1], resamples, rng)].mean(axis=2)  # (cells, draws)
    return float(np.mean(np.argmin(means, axis=0) == best))


def matched_results(scores: Scores, per_seed: list[Scores]) -> tuple[np.ndarray, np.ndarray]:
    """The scores and the ground-truth results (cells, seeds) of the cells both have."""
    cells, results = seed_matrix(per_seed)
    kept = [i for i, cell in enumerate(cells) if cell in scores]
    return np.array([scores[cells[i]] for i in kept], dtype=float), results[kept]


def kendall_tau_interval(scores: Scores, per_seed: list[Scores], resamples: int, confidence: float,
                         rng: np.random.Generator) -> list[float]:
    """Percentile bootstrap interval of tau(scores, ground-truth mean), resampling the cells
    (which cells a space happens to hold) and the ground-truth seeds (which draws of training
    noise): the tau of a population of cells like these. For the cells at hand it is wide
    (`bench/coverage.py`)."""
    x, results = matched_results(scores, per_seed)
    n, k = results.shape
    pick_cells, pick_seeds = rng.integers(0, n, (resamples, n)), rng.integers(0, k, (resamples, k))
    truth = np.take_along_axis(results[pick_cells], pick_seeds[:, None, :], axis=2).mean(axis=2)  # (resamples, n)
    return percentile_interval(tau_b(x[pick_cells], truth), confidence)


def kendall_tau_interval_seeds_only(scores: Scores, per_seed: list[Scores], resamples: int, confidence: float,
                                    rng: np.random.Generator) -> list[float] | None:
    """Interval of the tau of these cells' scores with their true values, from ground-truth noise
    alone: each cell's mean is redrawn from its own residuals over seeds (rescaled by k/(k - 1)),
    and the shift of tau that causes is subtracted from the observed tau (a basic bootstrap, so
    the attenuation by noise is undone to first order). With 3 seeds per cell the noise is
    underestimated and the interval runs narrow (`bench/coverage.py`)."""
    x, results = matched_results(scores, per_seed)
    n, k = results.shape
    mean = results.mean(axis=1)
    residuals = np.broadcast_to((results - mean[:, None]) * math.sqrt(k / (k - 1)), (resamples, n, k))
    redrawn = mean + np.take_along_axis(residuals, rng.integers(0, k, (resamples, n, k)), axis=2).mean(axis=2)
    observed = float(tau_b(x, mean)[0])
    shifts = percentile_interval(tau_b(np.broadcast_to(x, (resamples, n)), redrawn) - observed, confidence)
    if shifts is None or not math.isfinite(observed):
        return None
    return [max(-1.0, observed - shifts[1]), min(1.0, observed - shifts[0])]


def reliability(per_seed: list[Scores], resamples: int, confidence: float, seed: int) -> dict[str, object] | None:
    """The ground truth's reliability figures; None with fewer than 2 seeds (nothing to compare)."""
    if len(per_seed) < 2:
        return None
    rng = np.random.default_rng(seed)
    _, results = seed_matrix(per_seed)
    k, between_seeds = results.shape[1], seed_to_seed_tau(results)
    leave_one_out = leave_one_seed_out_tau(results, resamples, confidence, rng)
    predicted = predicted_leave_one_seed_out(between_seeds, k)
    observed = leave_one_out["interval"]
    return {
        "seeds": k,
        "ceiling_tau": ceiling_tau(between_seeds, k),
        "ceiling_tau_interval": ceiling_tau_interval(results, resamples, confidence, rng),
        # what more ground-truth seeds would buy, by the same estimate
        "ceiling_tau_with_more_seeds": {str(more): ceiling_tau(between_seeds, more) for more in (k + 1, k + 2, 2 * k)},
        "leave_one_seed_out_tau": leave_one_out | {
            "predicted": predicted,  # by the ceiling's model; outside the observed interval, the model is off
            "predicted_within_interval": None if observed is None else observed[0] <= predicted <= observed[1]},
        "seed_to_seed_tau": between_seeds,
        "probability_best_is_best": probability_best_is_best(results, resamples, rng),
        "distinct_seed_resamples": distinct_seed_resamples(k),
    }
