"""How close is the ceiling estimate to the truth? Synthetic ground truths of known truth and noise.

For each population of tests/test_reliability.py (true log perplexities of 32 cells and each
cell's noise), draws 200 ground truths of k seeds, estimates the ceiling from each
(`naseval.analysis.reliability.ceiling_tau`) and compares with the true expected tau of the k-seed mean
against the true order. Prints bias and root-mean-square error per population and seed count.

    python bench/ceiling_validation.py   (about 3 minutes on 2 cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_reliability import CELLS, PLATEAU, SYNTHETIC, true_ceiling  # noqa: E402

from naseval.analysis.reliability import ceiling_tau, seed_to_seed_tau  # noqa: E402


def main(draws: int = 200) -> None:
    print("| population | seeds | true ceiling | mean estimate | bias | rms error |")
    print("|---|---|---|---|---|---|")
    for name, population in {**SYNTHETIC, "most cells on a plateau": PLATEAU}.items():
        for seeds in (3, 4):
            rng = np.random.default_rng(0)
            estimates, truths = [], []
            for _ in range(draws):
                true_log, noise_sd = population(rng)
                results = np.exp(true_log[:, None] + rng.standard_normal((CELLS, seeds)) * noise_sd[:, None])
                estimates.append(ceiling_tau(seed_to_seed_tau(results), seeds))
                truths.append(true_ceiling(true_log, noise_sd, seeds, rng))
            error = np.array(estimates) - np.array(truths)
            print(f"| {name} | {seeds} | {np.mean(truths):.3f} | {np.mean(estimates):.3f} | {error.mean():+.3f} "
                  f"| {np.sqrt(np.mean(error ** 2)):.3f} |")


if __name__ == "__main__":
    main()
