"""The files stages hand to each other: their layout under the runs folder and their JSON form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from naseval.core.errors import NasevalError
from naseval.core.runtime import read_json
from naseval.core.space import SearchSpace

SEARCH_RESULT = "result.json"
SEARCH_TRACE = "trace.csv"
TOP = "top.json"
TRAIN_METRICS = "metrics.json"
GROUND_TRUTH = "cells.json"
ORACLE = "oracle.json"
RANKING = "ranking.json"  # the rank stage's: one evaluator's ranking of the space with one seed

# A search's trace.csv starts with these columns, for every policy (policies/result.py's Trace):
# the step, the cell it holds and its score, the best cell so far and its score, the cost so far.
TRACE_FIELDS = ("step", "cell_id", "genotype", "score", "best_cell_id", "best_score", "cost")


def run_dir(root: Path, policy: str, seed: int) -> Path:
    """Same layout as dvc.yaml's `runs/policies/${item.policy}/seed_${item.seed}`."""
    return root / policy / f"seed_{seed}"


def without_seconds(row: dict[str, Any]) -> dict[str, Any]:
    """A history row without its wall time, which no two runs share: records stay byte-identical."""
    return {k: v for k, v in row.items() if k != "seconds"}


def seed_dir(root: Path, seed: int) -> Path:
    return root / f"seed_{seed}"








def top_candidate(search_result: dict[str, Any]) -> dict[str, Any]:
    """The policy's pick, its first-ranked candidate, with the output rule it was searched with."""
    run = {"policy": search_result["policy"], "seed": search_result["seed"]}
    if search_result["status"] == "failed":
        return {**run, "status": "failed", "reason": f"search: {search_result['reason']}"}
    best = search_result["candidates"][0]
    return {**run, "status": "ok", "cell_id": best["cell_id"], "genotype": best["genotype"],
            "search_score": best["score"], "cell_output": search_result["cell_output"]}


TOP_FIELDS = {"ok": {"policy": str, "seed": int, "cell_id": int, "genotype": str, "cell_output": str},
              "failed": {"policy": str, "seed": int, "reason": str}}


def read_top(path: Path) -> dict[str, Any]:
    """An extract stage's top.json, checked: a hand-edited or foreign file gets one line naming
    what is wrong instead of a KeyError deep in a stage."""
    top = read_json(path)
    status = top.get("status") if isinstance(top, dict) else None
    if status not in TOP_FIELDS:
        raise NasevalError(f"{path}: status: expected one of {', '.join(TOP_FIELDS)}, got {status!r}; "
                           f"run the extract stage again")
    for key, kind in TOP_FIELDS[status].items():
        value = top.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise NasevalError(f"{path}: {key}: expected {'an integer' if kind is int else 'a string'}, "
                               f"got {value!r}; run the extract stage again")
    return top





def merged_groups(folder: Path, groups: int) -> dict[str, Any]:
    """One seed's ground-truth record from its groups' folders (dvc.yaml's group_<g>)."""
    records = [read_json(folder / f"group_{group}" / GROUND_TRUTH) for group in range(groups)]
    split = {record.get("groups") for record in records}
    if split != {groups}:
        raise NasevalError(f"{folder}: its groups were trained as {sorted(map(str, split))} groups, the analysis "
                           f"reads {groups}: rerun the ground truth (dvc repro)")
    cells = sorted((cell for record in records for cell in record["cells"]), key=lambda cell: cell["cell_id"])
    return {**records[0], "cells": cells}


def oracle_json(space: SearchSpace, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The oracle stage's table: each held-out seed's finished cells (an empty list of seeds is a table too)."""
    return {"space_size": space.size, "cell_output": space.cell_output,
            "seeds": {str(r["seed"]): {str(c["cell_id"]): c["valid_ppl"] for c in r["cells"] if c["status"] == "ok"}
                      for r in records if r["enumerable"]}}
