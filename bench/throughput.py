"""Throughput against the machine's matrix-product limit, fast path beside the reference path.

    python bench/throughput.py                      # CPU: default and paper sizes, ~7 minutes on 2 cores
    python bench/throughput.py --device cuda        # what bench/device_check.sh runs
    python bench/throughput.py --stages             # also time the ground_truth stage both ways and a no-op dvc repro

Every case runs in a fresh process (so that its peak memory is its own) and prints one row:
tokens/s for training (forward, backward, clipping, SGD step) and evaluation, the matrix-product
FLOPs per token it counts, the tokens/s those FLOPs allow at the matrix-product rates measured in
the same run at the same shapes and precision, achieved / limit, and peak memory. Batched rows
count tokens of every cell. The table goes to stdout (Markdown) and, with --json, to a file.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from naseval.core.runtime import keep_freed_memory  # noqa: E402
from naseval.core.space import SearchSpace  # noqa: E402
from naseval.nn.model import LanguageModel, ModelConfig  # noqa: E402
from naseval.nn.stacked import StackedLanguageModel, evaluate_cells  # noqa: E402
from naseval.training.stacked import StackedNTASGD, clip_per_cell  # noqa: E402

SIZES = {  # vocabulary, hidden (= embedding), batch, bptt; cells in a batched row
    "default": {"vocab": 2000, "hidden": 64, "batch": 64, "bptt": 35, "cells": 32},
    "paper": {"vocab": 10000, "hidden": 850, "batch": 64, "bptt": 35, "cells": 4},
}
DARTS_V2_CELL = (("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1),
                 ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5))  # a fixed 8-node cell (DARTS's)
DROPOUTS = ModelConfig(hidden_size=64, dropout=0.3, dropouth=0.1, dropoutx=0.2, dropouti=0.1, dropoute=0.0)


@dataclass(frozen=True)
class Case:
    model: str  # "cell8": the fixed 8-node cell; "supernet2": the 2-node supernet, a random cell per step
    size: str
    implementation: str  # "reference", "fast", or "batched" (2-node cells as one model: 32, or 4 at paper size)
    precision: str
    device: str
    seconds: float  # per mode: how long to time


def matmul_flops_per_token(nodes: int, hidden: int, vocab: int) -> dict[str, float]:
    """Forward FLOPs per token of each family of matrix products: the input half of W0 over all
    steps at once, the recurrent products (W0's hidden half and one per node), the decoder."""
    return {"input": 2 * hidden * 2 * hidden, "recurrent": (1 + nodes) * 2 * hidden * 2 * hidden,
            "decoder": 2 * hidden * vocab}


def matmul_shapes(size: dict, nodes: int) -> dict[str, tuple[int, int, int]]:
    """(m, k, n) of each family's forward product; backward runs its two transposes."""
    H, tokens = size["hidden"], size["batch"] * size["bptt"]
    return {"input": (tokens, H, 2 * H), "recurrent": (size["batch"], H, 2 * H), "decoder": (tokens, H, size["vocab"])}


def matmul_rate(m: int, k: int, n: int, dtype: torch.dtype, device: torch.device, seconds: float = 0.6) -> float:
    """FLOP/s of (m, k) @ (k, n) on this machine, measured (the best of three tries)."""
    a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
    return 2 * m * k * n / timed(lambda: a @ b, device, seconds)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def limit_tokens_per_second(size: dict, nodes: int, dtype: torch.dtype, device: torch.device,
                            training: bool) -> tuple[float, float]:
    """The tokens/s that the counted matrix products allow at their measured rates, and the FLOPs per token."""
    flops = matmul_flops_per_token(nodes, size["hidden"], size["vocab"])
    seconds, total = 0.0, 0.0
    for family, (m, k, n) in matmul_shapes(size, nodes).items():
        products = [(m, k, n), (m, n, k), (k, m, n)] if training else [(m, k, n)]  # forward, dgrad, wgrad
        for shape in products:
            seconds += flops[family] / matmul_rate(*shape, dtype, device)
            total += flops[family]
    return 1.0 / seconds, total


def timed(step, device: torch.device, seconds: float, tries: int = 3) -> float:
    """Seconds per call of `step` after two warm-up calls: the best of `tries` tries, each at
    least `seconds` / `tries` long and 2 calls (a shared machine only ever slows a try down)."""
    for _ in range(2):
        step()
    best = float("inf")
    for _ in range(tries):
        synchronize(device)
        calls, started = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - started < seconds / tries:
            step()
            calls += 1
        synchronize(device)
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def run_case(case: Case) -> dict:
    device = torch.device(case.device)
    size = SIZES[case.size]
    V, H, B, T = size["vocab"], size["hidden"], size["batch"], size["bptt"]
    config = replace(DROPOUTS, hidden_size=H)
    nodes = 8 if case.model == "cell8" else 2
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    space = SearchSpace(nodes)
    words, targets = torch.randint(0, V, (T, B), device=device), torch.randint(0, V, (T, B), device=device)
    model = LanguageModel(V, nodes, config, fused_loss=case.implementation != "reference",
                          precision=case.precision).to(device)

    def arch():
        return DARTS_V2_CELL if case.model == "cell8" else space.sample(rng)

    if case.implementation == "batched":
        cells = list(SearchSpace(2).enumerate())[:size["cells"]]
        batched = StackedLanguageModel(model, cells)
        optimizer = StackedNTASGD(list(batched.parameters()), 8e-7, len(cells))
        hidden = batched.init_hidden(B)

        def train_step():
            batched.train()
            losses, _, raw = batched(words, targets, hidden)
            for p in batched.parameters():
                p.grad = None
            (losses + 1e-3 * (raw[:, 1:] - raw[:, :-1]).pow(2).flatten(1).mean(1)).sum().backward()
            clip_per_cell(list(batched.parameters()), 0.25)
            optimizer.step(20.0)

        def eval_step():
            evaluate_cells(model, torch.cat([words, targets[-1:]]), cells, T)  # under shared weights

        tokens = T * B * len(cells)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=20.0, weight_decay=8e-7)
        hidden = model.init_hidden(B)

        def train_step():
            model.train()
            loss, _, raw = model.loss(words, targets, hidden, arch())
            optimizer.zero_grad(set_to_none=True)
            (loss + 1e-3 * (raw[1:] - raw[:-1]).pow(2).mean()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            optimizer.step()

        @torch.no_grad()
        def eval_step():
            model.eval()
            model.loss(words, targets, hidden, arch())

        tokens = T * B
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    row = asdict(case) | {"nodes": nodes}
    for mode, step in (("train", train_step), ("eval", eval_step)):
        row[f"{mode}_tokens_per_s"] = tokens / timed(step, device, case.seconds)
    row["peak_memory_mb"] = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
                             else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return row


def native_bf16(device: torch.device) -> tuple[bool, float, float]:
    """Whether bf16 matrix products beat fp32 here, with both rates (GFLOP/s) at a decoder shape."""
    fp32 = matmul_rate(2240, 64, 2000, torch.float32, device, 0.3) / 1e9
    bf16 = matmul_rate(2240, 64, 2000, torch.bfloat16, device, 0.3) / 1e9
    return bf16 > fp32, fp32, bf16


def cases(device: str, sizes: list[str], seconds: float) -> list[Case]:
    native, fp32, bf16 = native_bf16(torch.device(device))
    print(f"bf16 matrix products: {bf16:.1f} GFLOP/s against fp32 {fp32:.1f}"
          f"{'' if native else ' (not native here: bf16 rows at default size only)'}", file=sys.stderr)
    chosen = []
    for size in sizes:
        for model in ("cell8", "supernet2"):
            for implementation in ("reference", "fast"):
                chosen.append(Case(model, size, implementation, "fp32", device, seconds))
            if native or size == "default":
                chosen.append(Case(model, size, "fast", "bf16", device, seconds))
        chosen.append(Case("supernet2", size, "batched", "fp32", device, seconds))
    return chosen


def in_fresh_process(case: Case) -> dict:
    output = subprocess.run([sys.executable, __file__, "--case", json.dumps(asdict(case))],
                            check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def with_limits(row: dict, limits: dict) -> dict:
    """The row with each mode's limit (measured once per size, cell and precision) and achieved / limit."""
    dtype = torch.bfloat16 if row["precision"] == "bf16" else torch.float32
    for mode in ("train", "eval"):
        key = (row["size"], row["nodes"], row["precision"], mode)
        if key not in limits:
            limits[key] = limit_tokens_per_second(SIZES[row["size"]], row["nodes"], dtype, torch.device(row["device"]),
                                                  mode == "train")
        limit, flops = limits[key]
        row |= {f"{mode}_limit_tokens_per_s": limit, f"{mode}_mflop_per_token": flops / 1e6,
                f"{mode}_of_limit": row[f"{mode}_tokens_per_s"] / limit}
    return row


def stage_seconds(implementation: str, workdir: Path) -> float:
    """Wall time of the default profile's ground_truth stage (seed 0) with `implementation`."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["implementation"] = implementation
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    out = workdir / f"ground_truth_{implementation}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "stages.ground_truth", "--seed", "0", "--data", str(workdir / "prepared"),
                    "--out", str(out), "--params", str(workdir / "params.yaml")], check=True, cwd=ROOT,
                   capture_output=True)
    return time.perf_counter() - started


def stages_row() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        subprocess.run([sys.executable, "-m", "stages.prepare", "--out", str(workdir / "prepared")], check=True,
                       cwd=ROOT, capture_output=True)
        row = {f"ground_truth_seconds_{impl}": stage_seconds(impl, workdir) for impl in ("reference", "fast")}
    if shutil.which("dvc") and subprocess.run(["dvc", "status", "--json"], cwd=ROOT, capture_output=True,
                                              text=True).stdout.strip() == "{}":
        started = time.perf_counter()
        subprocess.run(["dvc", "repro"], cwd=ROOT, check=True, capture_output=True)
        row["noop_dvc_repro_seconds"] = time.perf_counter() - started
    else:
        row["noop_dvc_repro_seconds"] = None  # the pipeline is not up to date here: run dvc repro first
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | size | path | precision | train tok/s | limit | of limit | eval tok/s | limit | of limit "
             "| MFLOP/token (train) | peak MB |", "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['size']} | {r['implementation']} | {r['precision']} "
            f"| {r['train_tokens_per_s']:,.0f} | {r['train_limit_tokens_per_s']:,.0f} | {r['train_of_limit']:.0%} "
            f"| {r['eval_tokens_per_s']:,.0f} | {r['eval_limit_tokens_per_s']:,.0f} | {r['eval_of_limit']:.0%} "
            f"| {r['train_mflop_per_token']:.1f} | {r['peak_memory_mb']:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=list(SIZES))
    parser.add_argument("--seconds", type=float, default=5.0, help="timing per case and mode")
    parser.add_argument("--stages", action="store_true", help="also time the ground_truth stage and a no-op repro")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case, print its JSON row
    args = parser.parse_args()
    keep_freed_memory()
    if args.case:
        print(json.dumps(run_case(Case(**json.loads(args.case)))))
        return
    rows, limits = [], {}
    for case in cases(args.device, args.sizes, args.seconds):
        rows.append(with_limits(in_fresh_process(case), limits))
        print(f"{case.model} {case.size} {case.implementation} {case.precision}: "
              f"train {rows[-1]['train_tokens_per_s']:,.0f} tok/s ({rows[-1]['train_of_limit']:.0%} of limit)",
              file=sys.stderr)
    machine = {"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "device": args.device,
               "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    report = {"machine": machine, "cases": rows, "stages": stages_row() if args.stages else None}
    print(f"\n{json.dumps(machine)}\n\n{markdown(rows)}")
    if report["stages"]:
        print("\n" + "\n".join(f"- {key}: {value if value is None else round(value, 1)}"
                               for key, value in report["stages"].items()))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
