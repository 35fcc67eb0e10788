"""Table 1 of the paper across DVC experiments: every policy's found cells against its baseline.

Reads what `dvc exp show --json` prints (the workspace, the commits shown and their experiments)
and each one's analysis summary; `naseval compare` runs dvc and writes the table.
"""

from __future__ import annotations

import json
from typing import Any

from naseval.analysis.report import finished, markdown_table, number, p_value
from naseval.analysis.statistics import holm

TABLE_COLUMNS = ["policy", "evaluator", "experiments", "runs_ok", "runs", "test_ppl_mean", "test_ppl_std",
                 "test_ppl_best", "ground_truth_valid_ppl_mean", "baseline", "judged_on", "permutation_p", "p_holm",
                 "mann_whitney_p", "probability_of_beating_baseline", "ground_truth_rank_mean"]


def experiment_summaries(exp_show: list[dict[str, Any]], metrics_file: str) -> list[tuple[str, dict[str, Any]]]:
    """(label, analysis summary) of every entry that has one, in dvc's order."""
    found: list[tuple[str, dict[str, Any]]] = []

    def visit(entry: dict[str, Any]) -> None:
        metrics = (entry.get("data") or {}).get("metrics") or {}
        summary = (metrics.get(metrics_file) or {}).get("data")
        if summary and "policies" in summary:
            found.append((label(entry), summary))
        for experiment in entry.get("experiments") or []:
            for revision in experiment.get("revs") or []:
                visit(revision)

    for entry in exp_show:
        visit(entry)
    return found


def label(entry: dict[str, Any]) -> str:
    """The experiment's or branch's name, else the short commit; 'workspace' for the workspace."""
    revision = entry["rev"]
    return entry.get("name") or (revision if revision == "workspace" else revision[:7])


def policy_row(label: str, summary: dict[str, Any], policy: str) -> dict[str, Any]:
    stats = summary["policies"][policy]
    test = stats.get("test_ppl") or {}
    comparison = summary.get("comparison") or {}
    # the baseline's own row has no comparison; the policy's is on the metric its verdict rests on
    against = comparison.get(comparison["verdict_metric"], {}) if comparison.get("policy") == policy else {}
    return {
        "policy": policy,
        "evaluator": stats.get("evaluator"),
        "experiments": label,
        "runs_ok": finished(stats),
        "runs": stats["seeds"],
        "test_ppl_mean": test.get("mean"),
        "test_ppl_std": test.get("std"),
        "test_ppl_best": test.get("best"),
        "ground_truth_valid_ppl_mean": (stats.get("ground_truth_valid_ppl") or {}).get("mean"),
        "baseline": comparison.get("baseline") if against else None,
        "judged_on": comparison.get("verdict_metric") if against else None,
        "permutation_p": against.get("permutation_p"),
        "mann_whitney_p": against.get("mann_whitney_p"),
        "probability_of_beating_baseline": against.get("probability_of_beating_baseline"),
        "ground_truth_rank_mean": (stats.get("ground_truth_rank") or {}).get("mean"),
    }


def table_one(summaries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per policy result; the same result in several experiments (the baseline, or the
    workspace and its commit) is one row naming all of them."""
    rows: dict[str, dict[str, Any]] = {}
    for label, summary in summaries:
        for policy in summary["policies"]:
            row = policy_row(label, summary, policy)
            key = json.dumps({k: v for k, v in row.items() if k != "experiments"}, sort_keys=True)
            if key in rows:
                rows[key]["experiments"] += f", {label}"
            else:
                rows[key] = row
    ordered = sorted(rows.values(), key=lambda row: (row["policy"], row["baseline"] is None, row["experiments"]))
    for row, adjusted in zip(ordered, holm([row["permutation_p"] for row in ordered]), strict=True):
        row["p_holm"] = adjusted  # Table 1's verdicts are one family
    return ordered


def table_markdown(rows: list[dict[str, Any]]) -> str:
    return markdown_table(
        ["policy", "evaluator", "experiments", "runs ok", "test ppl (mean ± std)", "best", "ground-truth ppl", "vs",
         "judged on", "permutation p", "Holm p", "Mann-Whitney p", "P(beats baseline)", "ground-truth rank"],
        [[row["policy"], row["evaluator"] or "", row["experiments"], f"{row['runs_ok']}/{row['runs']}",
          f"{number(row['test_ppl_mean'])} ± {number(row['test_ppl_std'])}", number(row["test_ppl_best"]),
          number(row["ground_truth_valid_ppl_mean"]), row["baseline"] or "", row["judged_on"] or "",
          p_value(row["permutation_p"]) if row["baseline"] else "",
          p_value(row["p_holm"]) if row["baseline"] else "",
          p_value(row["mann_whitney_p"]) if row["baseline"] else "",
          number(row["probability_of_beating_baseline"], 2) if row["baseline"] else "",
          number(row["ground_truth_rank_mean"])]
         for row in rows])
