"""What the analysis reads: each run's search, top cell and from-scratch result, and the ground truth."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from naseval.analysis.evaluators import EvaluatorRanking
from naseval.analysis.summary import GroundTruth, RunRecord
from naseval.core.errors import NasevalError
from naseval.core.records import (
    RANKING,
    SEARCH_RESULT,
    SEARCH_TRACE,
    TOP,
    TRACE_FIELDS,
    TRAIN_METRICS,
    merged_groups,
    read_top,
    run_dir,
    seed_dir,
)
from naseval.core.runtime import read_json


def _rankings_from_json(rankings: dict[str, dict[str, float]]) -> dict[str, dict[int, float]]:
    return {name: {int(cell): s for cell, s in scores.items()} for name, scores in rankings.items()}


def read_trace(search_folder: Path) -> list[dict[str, str]]:
    """The search's trace rows as text, as written (a failed search has none)."""
    path = search_folder / SEARCH_TRACE
    if not path.is_file():
        return []
    trace = pd.read_csv(path, dtype=str, keep_default_na=False)  # text as written: "" stays ""
    missing = [field for field in TRACE_FIELDS if field not in trace.columns]
    if missing:
        raise NasevalError(f"{path}: no column {', '.join(missing)}: written by an older naseval; "
                           f"rerun its search (dvc repro)")
    return trace.to_dict("records")


def read_run(policies_root: Path, policy: str, seed: int) -> RunRecord:
    folder = run_dir(policies_root, policy, seed)
    search = read_json(folder / "search" / SEARCH_RESULT)
    top = read_top(folder / TOP)
    trained = read_json(folder / "train" / TRAIN_METRICS)
    return RunRecord(
        policy=policy, seed=seed, cell_id=top.get("cell_id"), genotype=top.get("genotype"),
        search_score=top.get("search_score"), valid_ppl=trained.get("valid_ppl"),
        test_ppl=trained.get("test_ppl"),
        rankings=_rankings_from_json(search["rankings"]),
        ranking_history=[{"epoch": point["epoch"], "rankings": _rankings_from_json(point["rankings"])}
                         for point in search.get("ranking_history", [])],
        cell_output=top.get("cell_output", "mean"),
        evaluator=search.get("evaluator"), config_digest=search.get("config_digest"),
        failure=trained.get("reason") if trained["status"] == "failed" else None,
        trace=read_trace(folder / "search"),
    )

def read_ground_truth(root: Path, seeds: list[int], groups: int = 1) -> GroundTruth | None:
    """Every cell's validation perplexity per training seed, merged from the seed's `groups`
    groups of cells; None when the space was not enumerable.

    Cells are ranked by validation perplexity, as Yu et al. rank them; test perplexities stay in
    the ground-truth stage's own outputs.
    """
    valid_ppl, curves, genotypes, failed, rules = {}, {}, {}, {}, set()
    for seed in seeds:
        record = merged_groups(seed_dir(root, seed), groups)
        cells = record["cells"]
        rules.add(record.get("cell_output", "mean"))
        if cells:
            finished = [c for c in cells if c.get("status", "ok") == "ok"]
            valid_ppl[seed] = {c["cell_id"]: c["valid_ppl"] for c in finished}
            curves[seed] = {c["cell_id"]: c["valid_ppl_by_epoch"] for c in finished if c.get("valid_ppl_by_epoch")}
            genotypes |= {c["cell_id"]: c["genotype"] for c in cells}
            failed |= {c["cell_id"]: f"seed {seed}: {c['reason']}" for c in cells if c.get("status") == "failed"}
    if len(rules) > 1:
        raise NasevalError(f"{root}: ground-truth seeds trained with different cell outputs "
                           f"({', '.join(sorted(rules))})")
    return GroundTruth(valid_ppl, genotypes, failed, cell_output=rules.pop(),
                       curves={seed: c for seed, c in curves.items() if c}) if valid_ppl else None


def read_evaluator_rankings(root: Path, names: list[str], seeds: list[int]) -> list[EvaluatorRanking]:
    """The rank stage's records of every evaluator in `names` with every seed."""
    rankings = []
    for name in names:
        for seed in seeds:
            path = seed_dir(root / name, seed) / RANKING
            if not path.is_file():
                raise NasevalError(f"{path} not found: run the rank stage (dvc repro rank)")
            record = read_json(path)
            rankings.append(EvaluatorRanking(
                name=name, seed=seed, scores={int(cell): score for cell, score in record["scores"].items()},
                cost=record["cost"], cost_unit=record["cost_unit"], training_epochs=record["training_epochs"],
                seconds=record["seconds"], cell_output=record["cell_output"], facts=record["facts"],
                failure=record["reason"] if record.get("status") == "failed" else None))
    return rankings
