"""What a search returns, and its record: ranked candidates, a trace over search time with one
schema for every policy, named rankings of all cells, and the JSON the search stage writes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from naseval.core.records import TRACE_FIELDS, without_seconds
from naseval.core.space import Genotype, SearchSpace, format_genotype

# Every trace row has records.TRACE_FIELDS, first and in that order, so that every policy's trace
# draws the pick-over-search-time plot; a policy may add its own columns after them. `cost`: what
# the search has spent so far, in its evaluator's unit (Evaluator.cost_unit): supernet epochs under
# shared weights, cells trained under the oracle, 0 for a policy that scores nothing.


@dataclass(frozen=True)
class Candidate:
    genotype: Genotype
    score: float | None  # search-time score, lower is better; None when the policy has none


@dataclass
class SearchResult:
    candidates: list[Candidate]  # best first
    trace: list[dict[str, Any]]  # rows of TRACE_FIELDS (and the policy's own columns), from Trace.rows
    rankings: dict[str, dict[int, float]] = field(default_factory=dict)  # name -> cell id -> score
    details: dict[str, Any] = field(default_factory=dict)  # policy-specific facts worth a record
    # rankings of every cell at points of search time: [{"epoch": e, "rankings": {name: scores}}]
    ranking_history: list[dict[str, Any]] = field(default_factory=list)
    evaluator: dict[str, Any] | None = None  # the evaluator's facts (Evaluator.facts); None: scored nothing


class Trace:
    """A search's trace, row by row: the cell it holds at each step (its pick, or the cell it
    scored), that cell's score, the best cell so far by score, and the cost so far."""

    def __init__(self, space: SearchSpace, rows: list[dict[str, Any]] | None = None):
        self.space, self.rows = space, list(rows or [])

    def add(self, cell: Genotype, score: float | None, cost: float, **extra: Any) -> dict[str, Any]:
        """Append the next step's row; a cell without a score (a random pick) is the best only
        while nothing has a score."""
        last = self.rows[-1] if self.rows else {"best_cell_id": None, "best_score": None}
        best_id, best_score = last["best_cell_id"], last["best_score"]
        if best_id is None or (score is not None and (best_score is None or score < best_score)):
            best_id, best_score = self.space.to_id(cell), score
        row = {"step": len(self.rows) + 1, "cell_id": self.space.to_id(cell), "genotype": format_genotype(cell),
               "score": score, "best_cell_id": best_id, "best_score": best_score, "cost": cost, **extra}
        self.rows.append(row)
        return row


def trace_columns(rows: list[dict[str, Any]]) -> list[str]:
    """TRACE_FIELDS, then the policy's own columns in the order they first appear."""
    return list(dict.fromkeys([*TRACE_FIELDS, *(key for row in rows for key in row)]))


def epoch_rows(trace: Trace, history: list[dict[str, Any]], score: str = "valid_ppl") -> list[dict[str, Any]]:
    """The trace of a search whose evaluator trained in epochs: one row per history row, each
    naming its pick (`cell_id`) and its cost so far (`cost`), scored by the column `score`."""
    for row in history:
        extra = {k: v for k, v in without_seconds(row).items() if k not in TRACE_FIELDS and k != score}
        trace.add(trace.space.from_id(row["cell_id"]), row[score], row["cost"], **extra)
    return trace.rows


def ranked_candidates(cells: Iterable[Genotype], scores: dict[int, float], space: SearchSpace) -> list[Candidate]:
    """Best (lowest score) first; ties keep the cells' order."""
    return sorted((Candidate(g, scores[space.to_id(g)]) for g in cells), key=lambda c: c.score)


def config_digest(*configs: Any) -> str:
    """A short digest of params sections (dataclasses): equal settings, equal digest."""
    text = json.dumps([dataclasses.asdict(config) for config in configs], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _search_header(space: SearchSpace, policy: str, seed: int, seconds: float) -> dict[str, Any]:
    return {
        "policy": policy,
        "seed": seed,
        "space": {"nodes": space.nodes, "ops": list(space.ops), "size": space.size},
        "cell_output": space.cell_output,
        "seconds": round(seconds, 3),
    }


def rankings_json(rankings: dict[str, dict[int, float]]) -> dict[str, dict[str, float]]:
    return {name: {str(cell): s for cell, s in scores.items()} for name, scores in rankings.items()}


def failed_search_json(space: SearchSpace, policy: str, seed: int, seconds: float, reason: str) -> dict[str, Any]:
    """A search that diverged: kept as a record so the analysis counts it instead of losing it."""
    return {**_search_header(space, policy, seed, seconds), "status": "failed", "reason": reason,
            "candidates": [], "rankings": {}, "ranking_history": []}


def search_result_json(result: SearchResult, space: SearchSpace, policy: str, seed: int,
                       seconds: float, *configs: Any) -> dict[str, Any]:
    """`configs`: the search's params (dataclasses: the policy's section, and the supernet of a
    policy that scores cells), digested so results of other settings are told apart (naseval
    compare)."""
    return {
        **_search_header(space, policy, seed, seconds),
        "config_digest": config_digest(*configs) if configs else None,
        "status": "ok",
        "evaluator": result.evaluator,
        "details": result.details,
        "candidates": [
            {"cell_id": space.to_id(c.genotype), "genotype": format_genotype(c.genotype), "score": c.score}
            for c in result.candidates
        ],
        "rankings": rankings_json(result.rankings),
        "ranking_history": [{"epoch": point["epoch"], "rankings": rankings_json(point["rankings"])}
                            for point in result.ranking_history],
    }
