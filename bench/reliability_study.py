"""How valid and how reliable is the ground truth at a given budget, and what does it cost? The frontier.

Trains every cell of the default space with several seeds for each configuration below (the
default profile with some things changed), and reads shorter budgets off the learning curves:
a cell's result after e epochs is its best validation perplexity up to epoch e, which is what
an e-epoch run gives (NT-ASGD's switch and the best state depend only on earlier epochs). For
each (configuration, epochs) it prints

* validity (`naseval.analysis.validity`): Kendall tau of the seeds' mean against the order Yu et
  al. published (with a cell-and-seed bootstrap interval), the same over the 26 distinct
  functions, the mean rank gap of the 6 isomorphic pairs (random ranks: 11.0, the published
  order: 1.83), and the cells not learned (not below the unigram perplexity), most in any seed;
* reliability (`naseval.analysis.reliability`): the ceiling tau of the k-seed mean with a
  cell-bootstrap interval, and the seed-to-seed tau;
* cost: the ground truth's wall and CPU seconds per seed on this machine.

Then, for budgets it did not measure, the ceiling that 3 to 5 seeds would give as a function of
the seed-to-seed tau. Choose a configuration on some seeds (0-3), then confirm it on others
(4-6): the best of many configurations has an optimistic tau.

    python bench/reliability_study.py [--seeds 0,1,2,3] [--only NAME,...] [--json FILE]

Results are kept per (configuration, seed) in the JSON file, so a rerun skips what is done and
larger points can accumulate over several runs (or come from a GPU machine's file).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from naseval.analysis.ranking import mean_scores  # noqa: E402
from naseval.analysis.reliability import ceiling_tau, percentile_interval, seed_to_seed_tau  # noqa: E402
from naseval.analysis.validity import cells_not_learned, result_after, validity  # noqa: E402
from naseval.core.data import DataConfig, locate_ptb, tokenize  # noqa: E402
from naseval.core.ground_truth_config import GroundTruthConfig  # noqa: E402
from naseval.core.ngram import reference_perplexities  # noqa: E402
from naseval.core.params import load, read_params  # noqa: E402
from naseval.core.space import SearchSpace  # noqa: E402
from naseval.nn.model import ModelConfig  # noqa: E402
from naseval.training.ground_truth import ground_truth_record  # noqa: E402
from naseval.training.recipe import TrainConfig  # noqa: E402

# name -> overrides of params.yaml's data, model and train sections, on top of STUDY_BASE: each
# names its batch, rate and epochs, so that it means the same whatever params.yaml's recipe is
STUDY_BASE = {"train": {"lr_schedule": "constant", "warmup_epochs": 0.0}}
# the default's recipe, spelled out: the configurations that vary one thing of it start from here
DEFAULT_RECIPE = {"batch_size": 16, "lr": 20.0, "epochs": 6, "lr_schedule": "cosine"}
CONFIGS: dict[str, dict[str, dict]] = {
    "old-default": {"train": {"batch_size": 64, "lr": 5.0, "epochs": 5}},
    "b16-lr20": {"train": {"batch_size": 16, "lr": 20.0, "epochs": 10}},
    "b16-lr10": {"train": {"batch_size": 16, "lr": 10.0, "epochs": 10}},
    "b16-lr20-cosine": {"train": {**DEFAULT_RECIPE, "epochs": 8}},
    "b16-lr20-cosine-e6": {"train": DEFAULT_RECIPE},
    "h128-b16-lr20-cosine": {"model": {"hidden_size": 128}, "train": DEFAULT_RECIPE},
    "t60k-b16-lr20-cosine": {"data": {"max_train_tokens": 60000}, "train": {**DEFAULT_RECIPE, "epochs": 4}},
    "b32-lr20-cosine-warmup": {"train": {**DEFAULT_RECIPE, "batch_size": 32, "epochs": 10, "warmup_epochs": 1.0}},
    "b16-lr20-nonmono1": {"train": {"batch_size": 16, "lr": 20.0, "epochs": 10, "nonmono": 1}},
    "drop-b16-lr20-cosine-e6": {"model": {"dropout": 0.5, "dropouth": 0.25, "dropoutx": 0.5, "dropouti": 0.2,
                                          "dropoute": 0.1},
                                "train": DEFAULT_RECIPE},
    "b8-lr20-cosine-e4": {"train": {**DEFAULT_RECIPE, "batch_size": 8, "epochs": 4}},
    "b8-lr20-cosine-e6": {"train": {**DEFAULT_RECIPE, "batch_size": 8}},
    "clip0.1-b16-lr20-cosine-e6": {"train": {**DEFAULT_RECIPE, "clip": 0.1}},
    "clip1-b16-lr20-cosine-e6": {"train": {**DEFAULT_RECIPE, "clip": 1.0}},
    "v5k-b16-lr20-cosine-e6": {"data": {"vocab_size": 5000}, "train": DEFAULT_RECIPE},
    "t120k-b16-lr20-cosine-e3": {"data": {"max_train_tokens": 120000}, "train": {**DEFAULT_RECIPE, "epochs": 3}},
}
# A config with a cosine schedule decays over its own epochs: its shorter budgets are not what a
# shorter run would give, so only its last epoch is a budget (its rows before are a learning curve).
SEEDS_FOR_PREDICTION = (3, 4, 5)  # the ceilings these seed counts would give, by Spearman-Brown
RESAMPLES = 1000  # of the bootstrap intervals


def configured(values: dict, overrides: dict[str, dict]) -> dict:
    """params.yaml's values with STUDY_BASE's, then `overrides`' sections updated."""
    for changes in (STUDY_BASE, overrides):
        values = {**values, **{section: {**values[section], **update} for section, update in changes.items()}}
    return values


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def corpus_of(values: dict):
    data = load(DataConfig, values, "data")
    return tokenize(locate_ptb(data, ROOT / "data" / "download"), data)


def run_seed(values: dict, seed: int, workers: int) -> dict:
    corpus = corpus_of(values)
    space = load(SearchSpace, values, "space")
    model, train = load(ModelConfig, values, "model"), load(TrainConfig, values, "train")
    config = dataclasses.replace(load(GroundTruthConfig, values, "ground_truth"), workers=workers)
    wall, cpu = time.perf_counter(), cpu_seconds()
    record = ground_truth_record(space, corpus, model, train, config, seed)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, "epochs": train.epochs,
            "curves": {c["cell_id"]: c["valid_ppl_by_epoch"] for c in record["cells"] if c["status"] == "ok"}}


def ceiling_interval(results: np.ndarray, rng: np.random.Generator) -> list[float] | None:
    """95% percentile interval of the ceiling, resampling cells (results: cells x seeds)."""
    cells, k = results.shape
    picks = rng.integers(0, cells, (RESAMPLES, cells))
    with np.errstate(invalid="ignore"):
        boot = np.array([ceiling_tau(seed_to_seed_tau(results[pick]), k) for pick in picks])
    return percentile_interval(boot, 0.95)


def frontier_rows(name: str, runs: list[dict], seeds: list[int], unigram_ppl: float, every_epoch: bool) -> list[dict]:
    """One row per budget: every epoch where a shorter run gives what the curve says, else the last."""
    epochs = min(r["epochs"] for r in runs)
    cells = sorted(set.intersection(*(set(r["curves"]) for r in runs)))
    space = load(SearchSpace, read_params(ROOT / "params.yaml"), "space")
    rng = np.random.default_rng(0)
    rows = []
    for e in range(1 if every_epoch else epochs, epochs + 1):
        per_seed = {seed: {c: result_after(r["curves"][c], e) for c in cells} for seed, r in zip(seeds, runs,
                                                                                                 strict=True)}
        results = np.array([[per_seed[s][c] for s in seeds] for c in cells])
        between_seeds = seed_to_seed_tau(results)
        checks = validity(per_seed, space, RESAMPLES, 0.95, rng)
        rows.append({
            "config": name, "epochs": e, "seeds": len(runs), "cells": len(cells),
            "tau_vs_published": checks["tau_vs_published"],
            "tau_vs_published_interval": checks["tau_vs_published_interval"],
            "tau_vs_published_distinct_functions": checks["tau_vs_published_distinct_functions"],
            "isomorph_rank_gap": checks["isomorphs"]["mean_rank_gap"],
            "most_cells_not_learned": max(map(len, cells_not_learned(per_seed, unigram_ppl).values())),
            "ceiling_tau": ceiling_tau(between_seeds, len(runs)),
            "ceiling_tau_interval": ceiling_interval(results, rng),
            **{f"ceiling_tau_{k}_seeds": ceiling_tau(between_seeds, k) for k in SEEDS_FOR_PREDICTION},
            "seed_to_seed_tau": between_seeds,
            "gt_s_per_seed": float(np.mean([r["wall_s"] for r in runs])) * e / epochs,
            "cpu_s_per_seed": float(np.mean([r["cpu_s"] for r in runs])) * e / epochs,
            "best_mean_valid_ppl": min(mean_scores(list(per_seed.values())).values()),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| config | epochs | tau vs published | over 26 functions | isomorph gap | not learned "
            "| ceiling (k seeds) | ceiling 3 / 4 / 5 seeds | seed-to-seed | GT s/seed | CPU s/seed | best ppl |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        low, high = r["tau_vs_published_interval"] or (math.nan, math.nan)
        c_low, c_high = r["ceiling_tau_interval"] or (math.nan, math.nan)
        lines.append(
            f"| {r['config']} | {r['epochs']} | {r['tau_vs_published']:.2f} [{low:.2f}, {high:.2f}] "
            f"| {r['tau_vs_published_distinct_functions']:.2f} | {r['isomorph_rank_gap']:.2f} "
            f"| {r['most_cells_not_learned']} "
            f"| {r['ceiling_tau']:.2f} [{c_low:.2f}, {c_high:.2f}] ({r['seeds']}) "
            f"| {' / '.join(format(r[f'ceiling_tau_{k}_seeds'], '.2f') for k in SEEDS_FOR_PREDICTION)} "
            f"| {r['seed_to_seed_tau']:.2f} | {r['gt_s_per_seed']:.0f} | {r['cpu_s_per_seed']:.0f} "
            f"| {r['best_mean_valid_ppl']:.1f} |")
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
    parser.add_argument("--no-train", action="store_true", help="tabulate what the JSON holds; train nothing")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "reliability_study.json")
    args = parser.parse_args()
    values = read_params(ROOT / "params.yaml")
    seeds = [int(s) for s in args.seeds.split(",")]
    done = json.loads(args.json.read_text()) if args.json.is_file() else {}
    rows = []
    for name in args.only.split(","):
        for seed in seeds:
            key = f"{name}/seed_{seed}"
            if key not in done and not args.no_train:
                print(f"training {key}", file=sys.stderr, flush=True)
                done[key] = run_seed(configured(values, CONFIGS[name]), seed, args.workers)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(done))
        if any(f"{name}/seed_{s}" not in done for s in seeds):
            continue  # --no-train, and not all its seeds are done
        runs = [done[f"{name}/seed_{s}"] for s in seeds]
        for run in runs:
            run["curves"] = {int(c): curve for c, curve in run["curves"].items()}
        config = configured(values, CONFIGS[name])
        unigram_ppl = reference_perplexities(corpus_of(config))["unigram"]["valid"]
        rows += frontier_rows(name, runs, seeds, unigram_ppl, config["train"].get("lr_schedule") != "cosine")
    print(markdown(rows))
    print()
    print(seeds_needed_table())


if __name__ == "__main__":
    main()
