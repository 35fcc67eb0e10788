"""How far a ground truth can be trusted, and the uncertainty of every tau measured against it.

A ground truth is k training seeds of every cell. Each seed is one draw of a chaotic process,
so a seed's ranking is the cells' true order plus training noise, and so, less so, is the mean
of the seeds that the analysis ranks by. Three views of that noise, all Kendall tau-b:

* `seed_to_seed_tau`: two single seeds against each other (a pessimistic view: both are noisy).
* `leave_one_seed_out_tau`: one seed against the mean of the others.
* `ceiling_tau`: what a perfect ranking (the cells' true order at this budget) is expected to
  reach against the k-seed mean: the most any weight-sharing ranking can be expected to reach.

The ceiling comes from a noise model fitted to the seeds (`NoiseModel`), on log perplexity:
each cell's k results scatter around its true value with its own variance, shrunk towards the
pooled one since k is small. The spread of the cell means, less the noise's share of it, is the
spread of the true values; those are taken as the observed means pulled towards their grand
mean to that spread. Monte Carlo then draws fresh k-seed ground truths around them and
measures tau against the true order.
`tests/test_reliability.py` checks it on synthetic ground truths of known truth and noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from naseval.ranking import Scores


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


def percentile_interval(values: np.ndarray, confidence: float) -> list[float]:
    tail = (1 - confidence) / 2
    finite = values[np.isfinite(values)]
    return [float(q) for q in np.quantile(finite, [tail, 1 - tail])]


def seed_to_seed_tau(results: np.ndarray) -> float:
    """Mean tau over every pair of seeds: results (cells, seeds)."""
    k = results.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    return float(np.mean([tau_b(results[:, i], results[:, j])[0] for i, j in pairs]))


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


@dataclass(frozen=True)
class NoiseModel:
    """Cell c's log perplexity with seed s is true_log[c] + N(0, noise_sd[c]^2), independent over
    seeds. On the log scale training noise is nearly proportional: a cell at 250 scatters more
    than one at 100 in perplexity, about as much in log perplexity."""

    true_log: np.ndarray  # (cells,)
    noise_sd: np.ndarray  # (cells,)

    @classmethod
    def fit(cls, results: np.ndarray) -> NoiseModel:
        """From perplexities (cells, seeds), seeds >= 2."""
        logs = np.log(results)
        k = logs.shape[1]
        means = logs.mean(axis=1)
        within = logs.var(axis=1, ddof=1)
        # each cell's variance has k - 1 degrees of freedom: shrink it half way to the pooled one
        variance = (within + within.mean()) / 2
        observed = means.var(ddof=1)
        true_spread = max(observed - variance.mean() / k, 1e-3 * observed)
        centre = means.mean()
        return cls(centre + (means - centre) * math.sqrt(true_spread / observed), np.sqrt(variance))

    def ceiling_tau(self, seeds: int, draws: int, rng: np.random.Generator) -> float:
        """Expected tau between the true order and the mean perplexity of `seeds` fresh seeds."""
        cells = len(self.true_log)
        noise = rng.standard_normal((draws, cells, seeds)) * self.noise_sd[:, None]
        means = np.exp(self.true_log[:, None] + noise).mean(axis=2)  # (draws, cells), as the analysis ranks
        return float(np.nanmean(tau_b(np.broadcast_to(self.true_log, means.shape), means)))


def cell_intervals(results: np.ndarray, confidence: float) -> dict[str, np.ndarray]:
    """Per cell over seeds: mean, sample std and a t interval of the mean."""
    k = results.shape[1]
    mean, std = results.mean(axis=1), results.std(axis=1, ddof=1)
    half = stats.t.ppf((1 + confidence) / 2, k - 1) * std / math.sqrt(k)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half}


def probability_best_is_best(results: np.ndarray, resamples: int, rng: np.random.Generator) -> float:
    """How often the best cell of the seeds' mean stays best when the seeds are resampled (with
    replacement, the same draw for every cell, as a seed is one run of every cell)."""
    k = results.shape[1]
    best = int(np.argmin(results.mean(axis=1)))
    draws = rng.integers(0, k, (resamples, k))
    means = results[:, draws].mean(axis=2)  # (cells, resamples)
    return float(np.mean(np.argmin(means, axis=0) == best))


def kendall_tau_interval(scores: Scores, per_seed: list[Scores], resamples: int, confidence: float,
                         rng: np.random.Generator) -> list[float]:
    """Percentile bootstrap interval of tau(scores, ground-truth mean), resampling the cells (which
    cells a space happens to hold) and the ground-truth seeds (which draws of training noise)."""
    cells, results = seed_matrix(per_seed)
    kept = [i for i, cell in enumerate(cells) if cell in scores]
    x, results = np.array([scores[cells[i]] for i in kept], dtype=float), results[kept]
    n, k = results.shape
    pick_cells = rng.integers(0, n, (resamples, n))
    pick_seeds = rng.integers(0, k, (resamples, k))
    truth = np.take_along_axis(results[pick_cells], pick_seeds[:, None, :], axis=2).mean(axis=2)  # (resamples, n)
    return percentile_interval(tau_b(x[pick_cells], truth), confidence)


def reliability(per_seed: list[Scores], resamples: int, confidence: float, seed: int,
                ceiling_draws: int = 2000) -> dict[str, object] | None:
    """The ground truth's reliability figures; None with fewer than 2 seeds (nothing to compare)."""
    if len(per_seed) < 2:
        return None
    rng = np.random.default_rng(seed)
    _, results = seed_matrix(per_seed)
    k = results.shape[1]
    model = NoiseModel.fit(results)
    return {
        "seeds": k,
        "ceiling_tau": model.ceiling_tau(k, ceiling_draws, rng),
        "leave_one_seed_out_tau": leave_one_seed_out_tau(results, resamples, confidence, rng),
        "seed_to_seed_tau": seed_to_seed_tau(results),
        "noise_sd": float(np.sqrt(np.mean(model.noise_sd ** 2))),  # of log perplexity, like the next
        "true_spread_sd": float(model.true_log.std(ddof=1)),
        "probability_best_is_best": probability_best_is_best(results, resamples, rng),
    }
