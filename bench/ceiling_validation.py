"""How close is the ceiling estimate to the truth? Synthetic ground truths of known truth and noise.

For each population of `naseval.analysis.synthetic` (Gaussian, noisy, heavy-tailed, noise growing
with perplexity, plateau and escape), draws 200 spaces of 32 cells and a ground truth of k seeds
of each, estimates the ceiling (`naseval.analysis.reliability.ceiling_tau`) and its cell-bootstrap
interval, and compares with the true expected tau of the k-seed mean against the true order.
Prints bias, root-mean-square error and the interval's coverage per population and seed count.

    python bench/ceiling_validation.py   (about 5 minutes on 2 cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from naseval.analysis.reliability import ceiling_tau, ceiling_tau_interval, seed_to_seed_tau  # noqa: E402
from naseval.analysis.synthetic import CELLS, POPULATIONS  # noqa: E402


def main(draws: int = 200) -> None:
    print("| population | seeds | true ceiling | mean estimate | bias | rms error | 95% interval's coverage |")
    print("|---|---|---|---|---|---|---|")
    for name, population in POPULATIONS.items():
        for seeds in (3, 4):
            rng = np.random.default_rng(0)
            estimates, truths, covered = [], [], 0
            for _ in range(draws):
                space = population(rng, CELLS)
                results = space.train(rng, seeds)
                truth = space.true_ceiling(seeds, rng)
                low, high = ceiling_tau_interval(results, 1000, 0.95, rng)
                estimates.append(ceiling_tau(seed_to_seed_tau(results), seeds))
                truths.append(truth)
                covered += low <= truth <= high
            error = np.array(estimates) - np.array(truths)
            print(f"| {name} | {seeds} | {np.mean(truths):.3f} | {np.mean(estimates):.3f} | {error.mean():+.3f} "
                  f"| {np.sqrt(np.mean(error ** 2)):.3f} | {covered / draws:.2f} |", flush=True)


if __name__ == "__main__":
    main()
