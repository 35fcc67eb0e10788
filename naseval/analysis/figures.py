"""The report's figures as PNG bytes: the paper's Fig. 3 and 4 and tau over supernet training.

Drawn on matplotlib Figures directly (no pyplot), so no global state or display is involved.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from naseval.analysis.summary import Analysis

MARKERS = "ovs^DP*Xh"


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def final_ppl_figure(rows: list[dict[str, Any]]) -> Figure:
    """Paper Fig. 3: each seed's found cell per policy, with the policy's mean ± std."""
    by_policy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_policy[row["policy"]].append(row)
    figure = Figure(figsize=(1.8 + 1.4 * len(by_policy), 4))
    ax = figure.subplots()
    for x, (policy, runs) in enumerate(by_policy.items()):
        ppl = np.array([r["test_ppl"] for r in runs])
        offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else [0.0]
        ax.scatter(x + np.asarray(offsets), ppl, zorder=3, label=None)
        for offset, run in zip(offsets, runs, strict=True):
            ax.annotate(str(run["seed"]), (x + offset, run["test_ppl"]), textcoords="offset points",
                        xytext=(5, 0), fontsize=7, va="center")
        ax.errorbar(x + 0.3, ppl.mean(), yerr=ppl.std(ddof=1) if len(ppl) > 1 else 0, fmt="_k", capsize=4,
                    markersize=14)
    ax.set_xticks(range(len(by_policy)), list(by_policy))
    ax.set_xlim(-0.6, len(by_policy) - 0.2)
    ax.set_ylabel("test perplexity (lower is better)")
    ax.set_title("Found cell per search seed (numbers), mean ± std", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return figure


def ground_truth_figure(truth_rows: list[dict[str, Any]], final_rows: list[dict[str, Any]],
                        confidence: float, unigram_ppl: float | None = None) -> Figure:
    """Paper Fig. 4a: every cell's ground truth, best first, with its interval over the training
    seeds and the cells the policies found; with the unigram perplexity, the line below which a
    cell has learned, and the cells that did not learn in some seed."""
    ordered = sorted(truth_rows, key=lambda row: row["rank"])
    mean = np.array([row["mean_valid_ppl"] for row in ordered])
    low, high = (np.array([np.nan if row[key] is None else row[key] for row in ordered]) for key in ("low", "high"))
    position = {row["cell_id"]: i for i, row in enumerate(ordered)}
    figure = Figure(figsize=(max(6, 0.22 * len(ordered)), 4))
    ax = figure.subplots()
    ax.errorbar(range(len(ordered)), mean, yerr=np.nan_to_num([mean - low, high - mean]), fmt="o", color="0.5",
                ecolor="0.7", capsize=2, markersize=4,
                label=f"ground truth: mean and {confidence:.0%} interval over training seeds")
    if unigram_ppl is not None:
        ax.axhline(unigram_ppl, color="C3", linestyle="--", linewidth=1,
                   label=f"unigram perplexity {unigram_ppl:.1f}: above it a cell has not learned")
        stuck = [i for i, row in enumerate(ordered) if row.get("seeds_not_learned")]
        if stuck:
            ax.scatter(stuck, mean[stuck], marker="x", color="C3", zorder=3,
                       label=f"not learned in some seed ({len(stuck)} cells)")
    policies = list(dict.fromkeys(row["policy"] for row in final_rows))
    for i, (marker, policy) in enumerate(zip(MARKERS, policies, strict=False)):
        found = [position[r["cell_id"]] for r in final_rows if r["policy"] == policy and r["cell_id"] in position]
        ax.scatter(found, mean[found], marker=marker, s=70 + 50 * i, facecolors="none", edgecolors=f"C{i}",
                   linewidths=1.5, zorder=3, label=f"found by {policy}")
    ax.set_xticks(range(len(ordered)), [str(row["cell_id"]) for row in ordered], fontsize=7, rotation=90)
    ax.set_xlabel("cell id, best first")
    ax.set_ylabel("validation perplexity")
    ax.set_title("Ground truth of every cell and the cells each policy found", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figure


def ranking_figure(rows: list[dict[str, Any]], taus: dict[str, dict[str, dict[str, Any]]]) -> Figure:
    """Paper Fig. 4b: weight-sharing rank against ground-truth rank, one panel per run and ranking."""
    panels: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        panels[row["run"], row["ranking"]].append(row)
    columns = min(4, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(3.2 * columns, 3.2 * lines))
    axes = figure.subplots(lines, columns, squeeze=False).ravel()
    for ax, ((run, name), points) in zip(axes, panels.items(), strict=False):
        truth = [p["ground_truth_rank"] for p in points]
        ax.scatter(truth, [p["weight_sharing_rank"] for p in points], s=14)
        ax.plot([1, max(truth)], [1, max(truth)], color="0.7", linewidth=1)
        tau = taus.get(run, {}).get(name, {}).get("kendall_tau")
        ax.set_title(f"{run} {name}\ntau = {'n/a' if tau is None else f'{tau:.2f}'}", fontsize=8)
        ax.set_xlabel("ground-truth rank", fontsize=8)
        ax.set_ylabel("weight-sharing rank", fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    figure.tight_layout()
    return figure


def tau_figure(rows: list[dict[str, Any]], ceiling: float | None) -> Figure:
    """Kendall tau of each run's rankings with the ground truth over search time."""
    curves: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        curves[row["run"], row["ranking"]].append(row)
    figure = Figure(figsize=(6.5, 4))
    ax = figure.subplots()
    for (run, name), points in curves.items():
        ax.plot([p["epoch"] for p in points], [np.nan if p["kendall_tau"] is None else p["kendall_tau"]
                                               for p in points], marker="o", label=f"{run} {name}")
    ax.axhline(0, color="0.6", linewidth=1)
    if ceiling is not None:
        ax.axhline(ceiling, color="k", linestyle="--", linewidth=1,
                   label="ceiling: a perfect ranking's expected tau")
    ax.set_ylim(-1, 1)
    ax.set_xlabel("search epoch")
    ax.set_ylabel("Kendall tau with the ground truth")
    ax.set_title("Does weight sharing rank better as the supernet trains?", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return figure


def ablation_figure(rows: list[dict[str, Any]]) -> Figure:
    """Ground-truth rank of each seed's found cell, per policy, with and without weight sharing."""
    budgets: dict[str, set] = {}
    for row in rows:
        budgets.setdefault(row["policy"], set()).add(row["budget"])

    def category(row: dict[str, Any]) -> str:  # a policy run at several budgets gets a column per budget
        if len(budgets[row["policy"]] - {None}) < 2:
            return row["policy"]
        return f"{row['policy']}\n(budget {row['budget']})"

    policies = list(dict.fromkeys(category(row) for row in rows))
    figure = Figure(figsize=(1.8 + 1.5 * len(policies), 4))
    ax = figure.subplots()
    styles = {"shared_weights": ("o", "C0", -0.15), "oracle": ("s", "C1", 0.15), "none": ("^", "0.4", 0.0)}
    labels = {"shared_weights": "with weight sharing", "oracle": "without (oracle)", "none": "scores nothing"}
    others = {row["evaluator"] for row in rows if isinstance(row["evaluator"], str)} - set(styles)
    for i, evaluator in enumerate(sorted(others)):  # the remedies of weight sharing, short training, proxies
        styles[evaluator] = (MARKERS[(i + 3) % len(MARKERS)], f"C{(i + 2) % 10}", -0.3)
        labels[evaluator] = f"evaluator {evaluator}"
    for row in rows:
        marker, color, shift = styles.get(row["evaluator"], styles["none"])
        x = policies.index(category(row)) + shift
        jitter = np.linspace(-0.06, 0.06, len(row["ranks"])) if len(row["ranks"]) > 1 else [0.0]
        ax.scatter(x + np.asarray(jitter), row["ranks"], marker=marker, color=color, alpha=0.6, s=22)
        ax.errorbar(x, np.mean(row["ranks"]), fmt="_k", markersize=16)
    for evaluator, (marker, color, _) in styles.items():
        if any(row["evaluator"] == evaluator for row in rows):
            ax.scatter([], [], marker=marker, color=color, label=labels[evaluator])
    ax.set_xticks(range(len(policies)), policies)
    ax.set_ylim(max(max(row["ranks"]) for row in rows) + 1, 0)  # rank 1 on top
    ax.set_ylabel("ground-truth rank of the found cell (1 = best)")
    ax.set_title("Found cells with and without weight sharing (one mark per search seed, bar: mean)", fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return figure


def evaluators_figure(rows: list[dict[str, Any]], ceiling: float | None) -> Figure:
    """Each evaluator's Kendall tau with the ground truth against its cost, one point per seed."""
    figure = Figure(figsize=(7, 4.2))
    ax = figure.subplots()
    names = list(dict.fromkeys(row["evaluator"] for row in rows))
    for i, name in enumerate(names):
        points = [row for row in rows if row["evaluator"] == name]
        ax.scatter([p["training_epochs"] for p in points],
                   [np.nan if p["kendall_tau"] is None else p["kendall_tau"] for p in points],
                   marker=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", label=name, alpha=0.8)
    ax.axhline(0, color="0.6", linewidth=1)
    if ceiling is not None:
        ax.axhline(ceiling, color="k", linestyle="--", linewidth=1, label="ceiling: a perfect ranking's expected tau")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(0, 2 * max([row["training_epochs"] for row in rows] + [1.0]))  # costs are never negative
    ax.set_ylim(-1, 1)
    ax.set_xlabel("cost: passes of one cell over the training split (symlog)")
    ax.set_ylabel("Kendall tau with the ground truth")
    ax.set_title("Which evaluator ranks cells truthfully, and at what cost? (one point per seed)", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(alpha=0.3)
    return figure


def render_figures(analysis: Analysis, confidence: float) -> dict[str, tuple[str, bytes]]:
    """File name -> (caption, PNG) for every figure the analysis has data for."""
    summary = analysis.summary
    ceiling = ((summary.get("ground_truth") or {}).get("reliability") or {}).get("ceiling_tau")
    figures = {}
    if analysis.final_ppl:
        figures["final_ppl.png"] = ("Test perplexity of each seed's found cell, per policy (paper Fig. 3)",
                                    final_ppl_figure(analysis.final_ppl))
    if analysis.ground_truth_rows:
        figures["ground_truth.png"] = (
            f"Ground-truth validation perplexity of every cell, best first, with its {confidence:.0%} interval "
            "over training seeds; the cells the policies found are marked (paper Fig. 4a)",
            ground_truth_figure(analysis.ground_truth_rows, analysis.final_ppl, confidence,
                                (summary["ground_truth"].get("reference_valid_ppl") or {}).get("unigram")))
    if analysis.ranking_rows:
        figures["ranking_vs_ground_truth.png"] = (
            "Weight-sharing rank vs ground-truth rank per run and ranking; on the diagonal is perfect "
            "(paper Fig. 4b)", ranking_figure(analysis.ranking_rows, summary.get("weight_sharing", {})))
    if analysis.tau_rows:
        figures["tau_over_training.png"] = (
            "Kendall tau with the ground truth over supernet training",
            tau_figure(analysis.tau_rows, ceiling))
    if any(row["kendall_tau"] is not None for row in analysis.evaluator_rows):
        figures["evaluators.png"] = (
            "Each evaluator's Kendall tau with the ground truth against its cost, one point per seed "
            "(`params` ties every cell: no tau)",
            evaluators_figure(analysis.evaluator_rows, ceiling))
    return {name: (caption, png(figure)) for name, (caption, figure) in figures.items()}
