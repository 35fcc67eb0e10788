"""Where a ground-truth worker's time goes: one batch of cells trained for one epoch under torch's
profiler, at the default profile's data, model and recipe (or a config's overrides).

    python bench/profile_ground_truth.py [--cells 16] [--rows 15]

Prints the wall seconds and the operators with the most self CPU time, grouped into the decoder
(logits, softmax and their gradients), the recurrence (the cells' batched products) and the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from naseval.core.data import DataConfig, locate_ptb, tokenize  # noqa: E402
from naseval.core.params import load, read_params  # noqa: E402
from naseval.core.space import SearchSpace  # noqa: E402
from naseval.nn.model import ModelConfig  # noqa: E402
from naseval.training.recipe import TrainConfig  # noqa: E402
from naseval.training.stacked import train_cells_stacked  # noqa: E402

# self-CPU operators by what they compute, in the default profile's fast path
DECODER = {"aten::addmm", "aten::mm", "aten::exp_", "aten::amax", "aten::gather", "FusedDecoderLoss"}
RECURRENCE = {"aten::bmm"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=16, help="cells in the batch (ground_truth.cells_per_batch)")
    parser.add_argument("--rows", type=int, default=15, help="operators to list")
    args = parser.parse_args()
    values = read_params(ROOT / "params.yaml")
    data = load(DataConfig, values, "data")
    corpus = tokenize(locate_ptb(data, ROOT / "data" / "download"), data)
    space = load(SearchSpace, values, "space")
    model = load(ModelConfig, values, "model")
    train = dataclasses.replace(load(TrainConfig, values, "train"), epochs=1)
    torch.set_num_threads(train.threads)
    genotypes = [space.from_id(i) for i in range(min(args.cells, space.size))]
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        train_cells_stacked(genotypes, corpus, space.nodes, model, train, 0, show_progress=False)
    print(f"{len(genotypes)} cells, 1 epoch (with validation and test): {time.perf_counter() - started:.1f} s "
          f"under the profiler")
    events = profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {"decoder": DECODER, "recurrence": RECURRENCE}
    for name, ops in shares.items():
        share = sum(e.self_cpu_time_total for e in events if e.key in ops) / total
        print(f"{name}: {share:.0%} of self CPU time")
    print(f"the rest (elementwise, indexing, optimizer): "
          f"{1 - sum(e.self_cpu_time_total for e in events if e.key in DECODER | RECURRENCE) / total:.0%}")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
