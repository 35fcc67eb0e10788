"""The weight-sharing ablation's experiments, their cost, and its table (docs/weight_sharing.md).

Run from the project root of a fresh clone, after `dvc repro` (bench/repro_timing.py times that):
    python bench/ablation_timing.py [--seeds N] [--shared-seeds M] [--oracle-only] [--budget B]
The experiments without weight sharing run search seeds 0..N-1 (default 12: they cost lookups
and one retrain per seed), those with it 0..M-1 (default 4, as params.yaml), their baseline
(`random`) too. Every experiment names its evaluator: `dvc exp run` leaves an experiment's params
in the workspace, so a setting left out would be the previous experiment's.

The equal-compute experiment: random search with the oracle at the budget one supernet training
buys. Its budget is measured on the default run in the workspace: the mean wall seconds of a
`random_ws` search (one supernet training, 10 epochs) over the mean seconds of one from-scratch
training (the train stage's epochs, from its history.csv); `--budget` sets it instead, where the
workspace's timings ran beside other work.

Prints those two costs, one line per experiment with its wall time and its search seconds per
seed, then what `naseval compare` prints; writes ablation.md, ablation.csv and ablation.png.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

RUNS = Path("runs/policies")
ORACLE_EXPERIMENTS = [["policy=random_search"], ["policy=evolution"],
                      ["policy=enas", "search.enas.evaluator=oracle"], ["policy=nao", "search.nao.evaluator=oracle"]]
SHARED_EXPERIMENTS = [["policy=random_ws"], ["policy=enas", "search.enas.evaluator=shared_weights"],
                      ["policy=nao", "search.nao.evaluator=shared_weights"]]


def search_seconds(policy: str) -> list[float]:
    """Wall seconds of each search of `policy` in the workspace, as its record keeps them."""
    paths = sorted(RUNS.glob(f"{policy}/seed_*/search/result.json"))
    return [json.loads(path.read_text())["seconds"] for path in paths]


def training_seconds() -> list[float]:
    """Seconds of each from-scratch training in the workspace (its epochs, without the test pass)."""
    return [float(pd.read_csv(path)["seconds"].sum()) for path in sorted(RUNS.glob("*/seed_*/train/history.csv"))]


def equal_compute_budget() -> tuple[int, float, float]:
    """(cells one supernet training pays for, seconds of a supernet training, of a cell's training)."""
    supernet, cell = statistics.mean(search_seconds("random_ws")), statistics.mean(training_seconds())
    return max(1, round(supernet / cell)), supernet, cell


def run(settings: list[str], seeds: int) -> float:
    command = ["dvc", "exp", "run", *(f"-S{s}" for s in settings), f"-Sseeds=[{', '.join(map(str, range(seeds)))}]"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    policy = settings[0].split("=", 1)[1]
    per_seed = statistics.mean(search_seconds(policy))
    print(f"| `{' '.join(settings)}` | {seeds} | {seconds:.0f} | {per_seed:.1f} |", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=12, help="search seeds 0..N-1 without weight sharing")
    parser.add_argument("--shared-seeds", type=int, default=4, help="search seeds 0..M-1 with weight sharing")
    parser.add_argument("--oracle-only", action="store_true", help="only the experiments without weight sharing")
    parser.add_argument("--budget", type=int, help="the equal-compute oracle budget, instead of the measured one")
    args = parser.parse_args()
    budget, supernet, cell = equal_compute_budget()
    print(f"one supernet training (random_ws search): {supernet:.1f} s; one from-scratch training: {cell:.1f} s; "
          f"equal-compute oracle budget: {budget} cells{f', set to {args.budget}' if args.budget else ''}\n")
    budget = args.budget or budget
    print("| experiment | seeds | wall s | search s per seed |\n|---|---:|---:|---:|")
    for settings in ORACLE_EXPERIMENTS + [["policy=random_search", f"search.random_search.budget={budget}"]]:
        run(settings, args.seeds)
    if not args.oracle_only:
        for settings in SHARED_EXPERIMENTS:
            run(settings, args.shared_seeds)
    subprocess.run([sys.executable, "-m", "naseval.cli", "compare", "--markdown", "ablation.md", "--ablation-csv",
                    "ablation.csv", "--figure", "ablation.png"], check=True)


if __name__ == "__main__":
    main()
