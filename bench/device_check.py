"""The paper-scale GPU check: a ground-truth batch of 8 cells warned and resumed on the device,
a short retrain, and what they predict for a paper campaign.

    python bench/device_check.py --device cuda --out bench/results     # what bench/device_check.sh runs
    python bench/device_check.py --device cpu --hidden 32 --train-tokens 20000   # a smoke run on a CPU

1. The ground_truth stage trains group 0 of paper-2node (8 two-node cells at hidden 850, as one
   batched model) on a corpus of PTB's shape (10,000 words, Zipf-distributed ids: speed does not
   depend on the text, and the device machine has no PTB). After its first epoch it gets SIGUSR1,
   as `sbatch --signal=B:USR1@...` would send it: it must save within its epoch and stop. Run
   again, it must resume from there on the device and finish.
2. One cell retrains the same way, alone (a `train` stage's job).
3. From the epochs' times: tokens/s, cell-epochs per GPU-hour at full PTB (929,589 training
   tokens; an epoch's time scales with its tokens), the checkpoint's size, and the predicted
   GPU-hours of paper-2node's ground truth (3 seeds x 32 cells x 1,000 epochs) and retrains
   (20 x 1,000 epochs). The searches are not timed here.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from naseval.core.data import Corpus, save_corpus  # noqa: E402
from naseval.core.ground_truth_config import GroundTruthConfig  # noqa: E402
from naseval.core.params import load  # noqa: E402
from naseval.core.profile import merged_params  # noqa: E402
from naseval.core.space import SearchSpace  # noqa: E402
from naseval.nn.model import ModelConfig  # noqa: E402
from naseval.nn.stacked import StackedLanguageModel  # noqa: E402
from naseval.training.recipe import TrainConfig, build_model_and_data  # noqa: E402
from naseval.training.stacked import StackedTraining, train_cell_stacked  # noqa: E402

PTB_TRAIN_TOKENS, PTB_VOCABULARY = 929_589, 10_000
CAMPAIGN = {"ground_truth_cell_epochs": 3 * 32 * 1000, "retrain_epochs": 20 * 1000}  # paper-2node


def synthetic_corpus(train_tokens: int, eval_tokens: int, seed: int = 0) -> Corpus:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, PTB_VOCABULARY + 1)
    zipf = (1 / ranks) / (1 / ranks).sum()
    splits = {split: rng.choice(PTB_VOCABULARY, size=size, p=zipf).astype(np.int64)
              for split, size in (("train", train_tokens), ("valid", eval_tokens), ("test", eval_tokens))}
    return Corpus([f"w{i}" for i in range(PTB_VOCABULARY)], splits)


def paper_params(device: str, epochs: int, hidden: int | None) -> dict:
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = merged_params(default, yaml.safe_load((ROOT / "profiles" / "paper-2node.yaml").read_text()), "")
    overrides = {"train": {"epochs": epochs, "device": device}}
    if hidden:
        overrides["model"] = {"hidden_size": hidden}
    return merged_params(params, overrides, "")


def run_stage(work: Path, warn_after_epoch: int | None) -> tuple[int, str, int | None]:
    """The ground_truth stage on group 0; with `warn_after_epoch`, SIGUSR1 once that epoch's line
    is logged. Its return code, its log, and the checkpoint's size when it stopped."""
    command = [sys.executable, "-m", "stages.ground_truth", "--seed", "0", "--group", "0", "--data",
               str(work / "data"), "--out", str(work / "ground_truth"), "--params", str(work / "params.yaml")]
    env = {**os.environ, "NASEVAL_CHECKPOINT_SECONDS": "0", "DVC_NO_ANALYTICS": "1"}
    log_path = work / f"stage-{time.time_ns()}.log"
    with open(log_path, "w") as log:
        stage = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log, stdout=log)
        warned = False
        while stage.poll() is None:
            if warn_after_epoch and not warned and f"train epoch {warn_after_epoch}:" in log_path.read_text():
                stage.send_signal(signal.SIGUSR1)
                warned = True
            time.sleep(0.2)
    checkpoints = list((work / ".ground_truth.partial" / ".resume").glob("cells_*.pt"))
    return stage.returncode, log_path.read_text(), checkpoints[0].stat().st_size if checkpoints else None


def checkpoint_sizes(params: dict) -> dict[str, int]:
    """A paper-size batch's checkpoint in MiB, before and after its cells switch to averaging,
    as `train_cells_stacked` writes it (measured on the CPU: the size does not depend on the device)."""
    model_config, train_config = load(ModelConfig, params, "model"), load(TrainConfig, params, "train")
    corpus = synthetic_corpus(1000, 100)
    train_config = replace(train_config, device="cpu")
    template, _ = build_model_and_data(corpus, 2, model_config, train_config)
    cells = [SearchSpace(2).from_id(i) for i in range(load(GroundTruthConfig, params, "ground_truth").cells_per_batch)]
    batch = StackedTraining(StackedLanguageModel(template, cells), train_config)
    sizes = {}
    for phase in ("sgd", "averaging"):
        batch.optimizer.start_averaging(torch.full((len(cells),), phase == "averaging"))
        buffer = io.BytesIO()
        torch.save({"epoch": 1, "within": None, "batch": batch.state_dict()}, buffer)
        sizes[phase] = len(buffer.getvalue()) >> 20
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-tokens", type=int, default=300_000)
    parser.add_argument("--eval-tokens", type=int, default=30_000)
    parser.add_argument("--hidden", type=int, default=None, help="Not paper-size: for a smoke run on a CPU.")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results")))
    parser.add_argument("--checkpoint-size", action="store_true",
                        help="Only print a paper-size batch's checkpoint size (CPU, no training).")
    args = parser.parse_args()
    if args.checkpoint_size:
        print(json.dumps({"checkpoint_mib": checkpoint_sizes(paper_params("cpu", 1, args.hidden))}))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        corpus = synthetic_corpus(args.train_tokens, args.eval_tokens)
        save_corpus(corpus, work / "data")
        params = paper_params(args.device, args.epochs, args.hidden)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

        started = time.perf_counter()
        code, warned_log, checkpoint_bytes = run_stage(work, warn_after_epoch=1)
        assert code == 1 and "stopped by SIGUSR1: checkpoint saved at epoch" in warned_log, warned_log[-3000:]
        code, resumed_log, _ = run_stage(work, warn_after_epoch=None)
        assert code == 0 and "resumed from" in resumed_log, resumed_log[-3000:]
        stage_seconds = time.perf_counter() - started
        cells = json.loads((work / "ground_truth" / "cells.json").read_text())["cells"]
        # the last epoch's line: a whole epoch with its validation (the first after the resume is a part)
        speed = re.findall(r"train epoch \d+: (\d+) cells, (\d+) tok/s", resumed_log)[-1]
        batch_epoch = int(speed[0]) * (len(corpus.splits["train"]) - 1) / int(speed[1])

        model_config, train_config = load(ModelConfig, params, "model"), load(TrainConfig, params, "train")
        retrain = train_cell_stacked(SearchSpace(2).from_id(13), corpus, 2, model_config,
                                     replace(train_config, epochs=2), seed=0, show_progress=False)
        retrain_epoch = retrain.history[-1]["seconds"]

    scale = PTB_TRAIN_TOKENS / args.train_tokens
    batch_cell_epochs_per_hour = len(cells) * 3600 / (batch_epoch * scale)
    retrain_epochs_per_hour = 3600 / (retrain_epoch * scale)
    result = {
        "device": args.device, "hidden": model_config.hidden_size, "train_tokens": args.train_tokens,
        "ground_truth_batch": {"cells": len(cells), "epoch_seconds": round(batch_epoch, 2),
                               "tokens_per_second": round(len(cells) * args.train_tokens / batch_epoch),
                               "cell_epochs_per_gpu_hour_full_ptb": round(batch_cell_epochs_per_hour, 1),
                               "checkpoint_megabytes": round((checkpoint_bytes or 0) / 2**20),
                               "warned_and_resumed": True, "stage_seconds_both_runs": round(stage_seconds, 1)},
        "retrain": {"epoch_seconds": round(retrain_epoch, 2),
                    "tokens_per_second": round(args.train_tokens / retrain_epoch),
                    "epochs_per_gpu_hour_full_ptb": round(retrain_epochs_per_hour, 1)},
        "paper_2node_predicted_gpu_hours": {
            "ground_truth": round(CAMPAIGN["ground_truth_cell_epochs"] / batch_cell_epochs_per_hour, 1),
            "retrains": round(CAMPAIGN["retrain_epochs"] / retrain_epochs_per_hour, 1),
            "searches": "not timed here"},
    }
    (args.out / "device_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
