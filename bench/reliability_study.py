"""How reliable is the ground truth at a given budget, and what does it cost? The frontier.

Trains every cell of the default space with several seeds for each configuration below (the
default profile with one thing changed), and reads shorter budgets off the learning curves: a
cell's result after e epochs is its best validation perplexity up to epoch e, which is what an
e-epoch run gives (NT-ASGD's switch and the best state depend only on earlier epochs). For
each (configuration, epochs) it prints the ground truth's reliability (`naseval.analysis.reliability`:
ceiling tau of the k-seed mean, leave-one-seed-out tau, seed-to-seed tau) and the ground
truth's wall and CPU seconds per seed on this machine; then, for budgets it did not measure,
the ceiling that 3 to 5 seeds would give as a function of the seed-to-seed tau.

    python bench/reliability_study.py [--seeds 0,1,2,3] [--only NAME,...] [--json FILE]

Results are kept per (configuration, seed) in the JSON file, so a rerun skips what is done.
About 40 minutes on a 2-core machine for the default configurations and 4 seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from naseval.analysis.reliability import ceiling_tau, leave_one_seed_out, seed_to_seed_tau  # noqa: E402
from naseval.core.data import DataConfig, locate_ptb, tokenize  # noqa: E402
from naseval.core.ground_truth_config import GroundTruthConfig  # noqa: E402
from naseval.core.params import load, read_params  # noqa: E402
from naseval.core.space import SearchSpace  # noqa: E402
from naseval.nn.model import ModelConfig  # noqa: E402
from naseval.training.ground_truth import ground_truth_record  # noqa: E402
from naseval.training.recipe import TrainConfig  # noqa: E402

# name -> overrides of params.yaml's data, model and train sections
CONFIGS: dict[str, dict[str, dict]] = {
    "v1000-lr5": {"data": {"vocab_size": 1000}, "train": {"lr": 5.0}},
    "lr5": {"train": {"lr": 5.0}},
    "lr20": {"train": {"lr": 20.0}},
    "v1000-lr5-60k": {"data": {"vocab_size": 1000, "max_train_tokens": 60000}, "train": {"lr": 5.0, "epochs": 6}},
}
SEEDS_FOR_PREDICTION = (3, 4, 5)  # the ceilings these seed counts would give, by Spearman-Brown


def configured(values: dict, overrides: dict[str, dict]) -> dict:
    return {**values, **{section: {**values[section], **changes} for section, changes in overrides.items()}}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_seed(values: dict, seed: int, workers: int) -> dict:
    data = load(DataConfig, values, "data")
    corpus = tokenize(locate_ptb(data, ROOT / "data" / "download"), data)
    space = load(SearchSpace, values, "space")
    model, train = load(ModelConfig, values, "model"), load(TrainConfig, values, "train")
    config = dataclasses.replace(load(GroundTruthConfig, values, "ground_truth"), workers=workers)
    wall, cpu = time.perf_counter(), cpu_seconds()
    record = ground_truth_record(space, corpus, model, train, config, seed)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, "epochs": train.epochs,
            "curves": {c["cell_id"]: c["valid_ppl_by_epoch"] for c in record["cells"] if c["status"] == "ok"}}


def frontier_rows(name: str, runs: list[dict]) -> list[dict]:
    epochs = min(r["epochs"] for r in runs)
    cells = sorted(set.intersection(*(set(r["curves"]) for r in runs)))
    rows = []
    for e in range(2, epochs + 1):
        results = np.array([[min(r["curves"][c][:e]) for r in runs] for c in cells])
        between_seeds = seed_to_seed_tau(results)
        rows.append({
            "config": name, "epochs": e, "seeds": len(runs), "cells": len(cells),
            "gt_s_per_seed": float(np.mean([r["wall_s"] for r in runs])) * e / epochs,
            "cpu_s_per_seed": float(np.mean([r["cpu_s"] for r in runs])) * e / epochs,
            "ceiling_tau": ceiling_tau(between_seeds, len(runs)),
            **{f"ceiling_tau_{k}_seeds": ceiling_tau(between_seeds, k) for k in SEEDS_FOR_PREDICTION},
            "leave_one_seed_out_tau": float(np.mean(leave_one_seed_out(results))),
            "seed_to_seed_tau": between_seeds,
            "best_mean_valid_ppl": float(results.mean(axis=1).min()),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| config | epochs | GT s/seed | CPU s/seed | ceiling (k seeds) | ceiling 3 / 4 / 5 seeds "
            "| leave-one-out | seed-to-seed | best ppl |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['epochs']} | {r['gt_s_per_seed']:.0f} | {r['cpu_s_per_seed']:.0f} "
            f"| {r['ceiling_tau']:.2f} ({r['seeds']}) "
            f"| {' / '.join(format(r[f'ceiling_tau_{k}_seeds'], '.2f') for k in SEEDS_FOR_PREDICTION)} "
            f"| {r['leave_one_seed_out_tau']:.2f} | {r['seed_to_seed_tau']:.2f} | {r['best_mean_valid_ppl']:.1f} |")
    return "\n".join(lines)


def seeds_needed_table(threshold: float = 0.8) -> str:
    """What a ground truth of 3, 4 or 5 seeds would reach, and how many seeds reach `threshold`,
    as a function of how well two single seeds agree (for budgets not measured, e.g. paper scale)."""
    lines = [f"| seed-to-seed tau | ceiling, 3 seeds | 4 seeds | 5 seeds | seeds for {threshold} |",
             "|---|---|---|---|---|"]
    for between_seeds in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        needed = next(k for k in range(1, 1000) if ceiling_tau(between_seeds, k) >= threshold)
        lines.append(f"| {between_seeds} | " + " | ".join(f"{ceiling_tau(between_seeds, k):.2f}" for k in (3, 4, 5))
                     + f" | {needed} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--only", default=",".join(CONFIGS), help="configurations to run, comma-separated")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "reliability_study.json")
    args = parser.parse_args()
    values = read_params(ROOT / "params.yaml")
    seeds = [int(s) for s in args.seeds.split(",")]
    done = json.loads(args.json.read_text()) if args.json.is_file() else {}
    rows = []
    for name in args.only.split(","):
        for seed in seeds:
            key = f"{name}/seed_{seed}"
            if key not in done:
                print(f"training {key}", file=sys.stderr, flush=True)
                done[key] = run_seed(configured(values, CONFIGS[name]), seed, args.workers)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(done))
        runs = [done[f"{name}/seed_{s}"] for s in seeds]
        for run in runs:
            run["curves"] = {int(c): curve for c, curve in run["curves"].items()}
        rows += frontier_rows(name, runs)
    print(markdown(rows))
    print()
    print(seeds_needed_table())


if __name__ == "__main__":
    main()
