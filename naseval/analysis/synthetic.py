"""Synthetic ground truths of known truth, shaped like naseval's, to measure the statistics on.

A population draws a space of cells: each cell's perplexity after one training seed is
log-normal around its own level, and may first have to escape a plateau: with probability
`escape` a seed learns (its level and noise), otherwise it stays near the plateau, where seeds
scatter by 0.3%. That is what the study saw at small budgets (docs/reliability.md): bimodal
noise. A cell's true value is its expected perplexity over seeds.

`bench/coverage.py` and the tests measure intervals and tests on these populations at the
seed counts the profiles use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from naseval.analysis.reliability import tau_b

CELLS = 32
LEVEL = np.log(100.0)  # log perplexity of a typical cell that learned
PLATEAU = np.log(135.0)  # about the unigram perplexity of the default's validation text
PLATEAU_SD = 0.003


@dataclass(frozen=True)
class Space:
    """One draw of a population: per cell, its log level, its noise sd and P(a seed escapes the plateau)."""

    level: np.ndarray
    noise_sd: np.ndarray
    escape: np.ndarray

    @property
    def truth(self) -> np.ndarray:
        """Each cell's expected perplexity over training seeds (a log-normal's mean)."""
        learned = np.exp(self.level + self.noise_sd ** 2 / 2)
        return self.escape * learned + (1 - self.escape) * np.exp(PLATEAU + PLATEAU_SD ** 2 / 2)

    def train(self, rng: np.random.Generator, seeds: int, draws: int | None = None) -> np.ndarray:
        """Perplexities of every cell under `seeds` training seeds: (cells, seeds), or (draws, cells, seeds)."""
        shape = (len(self.level), seeds) if draws is None else (draws, len(self.level), seeds)
        learned = np.exp(self.level[:, None] + rng.standard_normal(shape) * self.noise_sd[:, None])
        stuck = np.exp(PLATEAU + rng.standard_normal(shape) * PLATEAU_SD)
        return np.where(rng.random(shape) < self.escape[:, None], learned, stuck)

    def true_ceiling(self, seeds: int, rng: np.random.Generator, draws: int = 2000) -> float:
        """E tau(true order, mean of `seeds` seeds), by brute force from the known truth."""
        means = self.train(rng, seeds, draws).mean(axis=2)
        return float(np.nanmean(tau_b(np.broadcast_to(self.truth, means.shape), means)))


def _learning(level: np.ndarray, noise_sd: np.ndarray | float) -> Space:
    return Space(level, np.broadcast_to(np.asarray(noise_sd, dtype=float), level.shape).copy(), np.ones(len(level)))


def _plateau_and_escape(rng: np.random.Generator, cells: int) -> Space:
    """3/8 of the cells always learn, 3/8 escape the plateau in some seeds (P 0.1 to 0.9), 1/4 never do."""
    level = LEVEL + rng.normal(0, 0.06, cells)
    sometimes, never = 3 * cells // 8, cells // 4
    escape = np.r_[np.ones(cells - sometimes - never), rng.uniform(0.1, 0.9, sometimes), np.zeros(never)]
    return Space(level, np.full(cells, 0.06), rng.permutation(escape))


POPULATIONS: dict[str, Callable[[np.random.Generator, int], Space]] = {  # (rng, cells) -> a space
    "gaussian": lambda rng, cells: _learning(LEVEL + rng.normal(0, 0.06, cells), 0.03),
    "gaussian, noisy": lambda rng, cells: _learning(LEVEL + rng.normal(0, 0.02, cells), 0.03),
    "heavy-tailed": lambda rng, cells: _learning(LEVEL + 0.02 * rng.standard_t(2, cells), 0.03),
    "noise grows with perplexity": lambda rng, cells: _learning(level := LEVEL + rng.normal(0, 0.045, cells),
                                                                0.015 + 0.5 * np.abs(level - LEVEL)),
    "plateau and escape": _plateau_and_escape,
}
