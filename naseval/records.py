"""The files stages hand to each other: their layout under the runs folder and their JSON form."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naseval.errors import NasevalError
from naseval.runtime import read_json
from naseval.space import SearchSpace, format_genotype

if TYPE_CHECKING:  # imported where used: extract reads records and must not wait for torch and scipy
    from naseval.analysis import GroundTruth, RunRecord
    from naseval.oracle import OracleTable
    from naseval.policies import SearchResult

SEARCH_RESULT = "result.json"
SEARCH_TRACE = "trace.csv"
TOP = "top.json"
TRAIN_METRICS = "metrics.json"
GROUND_TRUTH = "cells.json"
ORACLE = "oracle.json"


def run_dir(root: Path, policy: str, seed: int) -> Path:
    """Same layout as dvc.yaml's `runs/policies/${item.policy}/seed_${item.seed}`."""
    return root / policy / f"seed_{seed}"


def seed_dir(root: Path, seed: int) -> Path:
    return root / f"seed_{seed}"


def _search_header(space: SearchSpace, policy: str, seed: int, seconds: float) -> dict[str, Any]:
    return {
        "policy": policy,
        "seed": seed,
        "space": {"nodes": space.nodes, "ops": list(space.ops), "size": space.size},
        "cell_output": space.cell_output,
        "seconds": round(seconds, 3),
    }


def config_digest(config: Any) -> str:
    """A short digest of a params section (a dataclass): equal settings, equal digest."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def failed_search_json(space: SearchSpace, policy: str, seed: int, seconds: float, reason: str) -> dict[str, Any]:
    """A search that diverged: kept as a record so the analysis counts it instead of losing it."""
    return {**_search_header(space, policy, seed, seconds), "status": "failed", "reason": reason,
            "candidates": [], "rankings": {}, "ranking_history": []}


def _rankings_json(rankings: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
    return {name: {str(cell): s for cell, s in scores.items()} for name, scores in rankings.items()}


def _rankings_from_json(rankings: dict[str, dict[str, float]]) -> dict[str, dict[int, float]]:
    return {name: {int(cell): s for cell, s in scores.items()} for name, scores in rankings.items()}


def search_result_json(result: SearchResult, space: SearchSpace, policy: str, seed: int,
                       seconds: float, config: Any = None) -> dict[str, Any]:
    """`config`: the policy's params section (a dataclass), kept so results of other settings
    are told apart (naseval compare)."""
    return {
        **_search_header(space, policy, seed, seconds),
        "config_digest": config_digest(config) if config is not None else None,
        "status": "ok",
        "evaluator": result.evaluator,
        "details": result.details,
        "candidates": [
            {"cell_id": space.to_id(c.genotype), "genotype": format_genotype(c.genotype), "score": c.score}
            for c in result.candidates
        ],
        "rankings": _rankings_json(result.rankings),
        "ranking_history": [{"epoch": point["epoch"], "rankings": _rankings_json(point["rankings"])}
                            for point in result.ranking_history],
    }


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


def read_trace(search_folder: Path) -> list[dict[str, str]]:
    """The search's trace rows as text (a failed search has none)."""
    path = search_folder / SEARCH_TRACE
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def read_run(policies_root: Path, policy: str, seed: int) -> RunRecord:
    from naseval.analysis import RunRecord

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
    from naseval.analysis import GroundTruth

    valid_ppl, genotypes, failed, rules = {}, {}, {}, set()
    for seed in seeds:
        record = merged_groups(seed_dir(root, seed), groups)
        cells = record["cells"]
        rules.add(record.get("cell_output", "mean"))
        if cells:
            valid_ppl[seed] = {c["cell_id"]: c["valid_ppl"] for c in cells if c.get("status", "ok") == "ok"}
            genotypes |= {c["cell_id"]: c["genotype"] for c in cells}
            failed |= {c["cell_id"]: f"seed {seed}: {c['reason']}" for c in cells if c.get("status") == "failed"}
    if len(rules) > 1:
        raise NasevalError(f"{root}: ground-truth seeds trained with different cell outputs "
                           f"({', '.join(sorted(rules))})")
    return GroundTruth(valid_ppl, genotypes, failed, cell_output=rules.pop()) if valid_ppl else None


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


def read_oracle(root: Path) -> OracleTable:
    from naseval.oracle import OracleTable

    path = root / ORACLE
    if not path.is_file():
        raise NasevalError(f"{path} not found: run the oracle stage (dvc repro oracle)")
    table = read_json(path)
    return OracleTable({int(seed): {int(cell): ppl for cell, ppl in cells.items()}
                        for seed, cells in table["seeds"].items()}, table["cell_output"], table["space_size"])
