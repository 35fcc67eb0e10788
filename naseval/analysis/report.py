"""metrics/report.md: the analysis as tables, figures and plain sentences, each finding with its
number and its uncertainty. Rendered from the same summary that becomes the metrics JSON."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from naseval.analysis.coverage import MISCALIBRATED
from naseval.analysis.evaluators import evaluator_verdicts
from naseval.analysis.summary import RANDOM_SAMPLING, Analysis, AnalysisConfig


def number(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}".replace("-", "−")


def p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}" if value < 0.01 else f"{value:.2f}"


def p_is(value: float | None, name: str = "p") -> str:
    """"p = 0.43", or "p < 0.001" where the value is that small."""
    text = p_value(value)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def mean_std(stats: dict[str, float] | None, digits: int = 1) -> str:
    return "n/a" if stats is None else f"{number(stats['mean'], digits)} ± {number(stats['std'], digits)}"


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def finished(stats: dict[str, Any]) -> int:
    """How many of a policy's runs finished (the rest failed)."""
    return stats["seeds"] - stats["failed"]["count"]


METRIC_NAMES = {"test_ppl": "test perplexity of its one retrain",
                "ground_truth_valid_ppl": "ground-truth mean validation perplexity"}


def interval(bounds: list[float] | None, digits: int = 1) -> str:
    return "" if bounds is None else f" [{number(bounds[0], digits)}, {number(bounds[1], digits)}]"


def comparison_findings(summary: dict[str, Any], config: AnalysisConfig) -> list[str]:
    comparison = summary.get("comparison")
    if comparison is None:
        return []
    policy, baseline = comparison["policy"], comparison["baseline"]
    ours, theirs = (summary["policies"][p] for p in (policy, baseline))
    findings = []
    for metric in ("ground_truth_valid_ppl", "test_ppl"):
        if metric not in comparison:
            continue
        stats = comparison[metric]
        findings.append(
            f"Found cells by {METRIC_NAMES[metric]}: **{policy}** {mean_std(ours[metric])} ({finished(ours)} seeds) "
            f"vs **{baseline}** {mean_std(theirs[metric])} ({finished(theirs)} seeds): "
            f"difference {number(stats['difference_of_means'])}, {stats['confidence']:.0%} Welch interval"
            f"{interval(stats['difference_interval']) or ' n/a'}; {p_is(stats['permutation_p'], 'permutation p')}, "
            f"{p_is(stats['mann_whitney_p'], 'Mann-Whitney p')}; a seed of {policy} beats a seed of {baseline} "
            f"with probability {probability(stats)}.")
    stats = comparison[comparison["verdict_metric"]]
    truth = summary.get("ground_truth", {})
    if comparison["verdict_metric"] == "ground_truth_valid_ppl":
        reason = (f"it averages {len(truth['seeds'])} training seeds of each found cell, while a retrain is one "
                  f"draw of training noise")
        if "retrain_noise_sd" in truth:
            reason += (f", which scatters a cell's perplexity with a std of about {number(truth['retrain_noise_sd'])} "
                       f"(pooled over cells)")
    else:
        reason = "there is no ground truth, so only the retrains can judge"
    findings.append(f"**Verdict**, on the {METRIC_NAMES[comparison['verdict_metric']]} because {reason}: "
                    f"{verdict(policy, baseline, stats, config)}")
    if stats["smallest_possible_mann_whitney_p"] >= config.significance:
        findings.append(
            f"With these seed counts the Mann-Whitney test cannot go below p = "
            f"{p_value(stats['smallest_possible_mann_whitney_p'])}: more seeds are needed before it "
            f"could show a difference at α = {config.significance}.")
    return findings + reference_findings(summary)


def reference_findings(summary: dict[str, Any]) -> list[str]:
    """Each policy's found cells against random sampling, exactly: their quantile among all cells."""
    findings = []
    for policy, stats in summary["policies"].items():
        against = stats.get("vs_random_sampling")
        if against is None:
            continue
        sentence = (f"Against random sampling, computed exactly from the ground truth of all cells: a seed of "
                    f"**{policy}** finds a cell better than a uniformly drawn one with probability "
                    f"{chance(against)} (its found cells' quantiles "
                    f"{', '.join(f'{q:.2f}' for q in against['per_seed'])})")
        if policy != RANDOM_SAMPLING:
            sentence += f"; exact test of no difference: {p_is(against['p'])}, Holm {p_value(against.get('p_holm'))}"
        findings.append(sentence + ".")
    return findings


def probability(stats: dict[str, Any]) -> str:
    """P(beats the baseline) with its score interval."""
    return f"{stats['probability_of_beating_baseline']:.2f}{interval(stats['probability_interval'], 2)}"


def chance(against: dict[str, Any] | None) -> str:
    """A probability with its interval, to 2 decimals; n/a for none."""
    return "n/a" if against is None else f"{against['probability']:.2f}{interval(against['interval'], 2)}"


def evaluator_findings(summary: dict[str, Any]) -> list[str]:
    """How each policy scored its cells: with weight sharing, or with the oracle and from which seeds."""
    findings = []
    judging = summary["experiment"].get("ground_truth_seeds", {}).get("judging", [])
    for policy, stats in summary["policies"].items():
        if stats.get("evaluator") == "shared_weights":
            findings.append(f"{policy} scored cells with weight sharing (`evaluator: shared_weights`).")
        elif isinstance(stats.get("evaluator"), str) and "oracle" not in stats:
            findings.append(f"{policy} scored cells with `evaluator: {stats['evaluator']}` (docs/evaluators.md).")
        elif "oracle" in stats:
            oracle = stats["oracle"]
            findings.append(
                f"{policy} searched **without weight sharing** (`evaluator: oracle`): each cell it asked about was "
                f"answered with its result trained from scratch under one of the held-out ground-truth seeds "
                f"{', '.join(map(str, oracle['seeds']))}, drawn per cell with the search seed; the analysis judges "
                f"with seeds {', '.join(map(str, judging)) or 'none'}. It trained {mean_std(oracle['cells_trained'])} "
                f"cells of its budget of {oracle['budget']} per seed, asking {mean_std(oracle['queries'])} times. "
                f"Its results are conditional on this one table of {len(oracle['seeds'])} oracle seeds: its search "
                f"seeds share the table's noise, and retraining those seeds would move them.")
    return findings


def verdict(policy: str, baseline: str, stats: dict[str, Any], config: AnalysisConfig) -> str:
    """Judged by the permutation test, Holm-adjusted over the report's family of tests."""
    p, adjusted = stats["permutation_p"], stats.get("permutation_p_holm", stats["permutation_p"])
    if adjusted is None or adjusted >= config.significance:
        return (f"No evidence that {policy} beats {baseline} ({p_is(p, 'permutation p')}, Holm-adjusted "
                f"{p_value(adjusted)}; α = {config.significance}).")
    better = stats["difference_of_means"] < 0
    return (f"Evidence that {policy} {'beats' if better else 'is worse than'} {baseline} "
            f"({p_is(p, 'permutation p')}, Holm-adjusted {p_value(adjusted)} < α = {config.significance}).")


def reliability_findings(truth: dict[str, Any]) -> list[str]:
    figures = truth["reliability"]
    if figures is None:
        return ["With one ground-truth seed its reliability is unknown: how much of the ground-truth ranking is "
                "training noise cannot be told. Add ground-truth seeds before drawing conclusions."]
    ceiling, bounds, k = figures["ceiling_tau"], figures["ceiling_tau_interval"], figures["seeds"]
    if ceiling is None or not math.isfinite(ceiling):
        return [f"Ground-truth reliability ({k} seeds) is undefined: no two cells are ranked apart by its seeds."]
    loo = figures["leave_one_seed_out_tau"]
    sentence = (f"Ground-truth reliability ({k} seeds): a perfect ranking is expected to reach Kendall tau "
                f"**{number(ceiling, 2)}**{interval(bounds, 2)} against the {k}-seed mean (the ceiling, by "
                f"Spearman-Brown from how well single seeds agree; the interval resamples cells); one seed agrees with "
                f"the mean of the others at {number(loo['mean'], 2)}{interval(loo['interval'], 2)}, and two single "
                f"seeds with each other at {number(figures['seed_to_seed_tau'], 2)}. The best cell stays best in "
                f"{figures['probability_best_is_best']:.0%} of the resamplings of the seeds (of which there are "
                f"{figures['distinct_seed_resamples']} distinct ones).")
    if loo.get("predicted_within_interval") is False:
        sentence += (f" **The ceiling's model is off here**: it predicts {number(loo['predicted'], 2)} for one seed "
                     f"against the others, outside the observed interval, so read the ceiling as approximate.")
    lower = bounds[0] if bounds else ceiling
    if lower < truth["min_ceiling_tau"]:
        sentence += (f" **The ceiling's lower bound is below {truth['min_ceiling_tau']}: the ground truth may be too "
                     f"noisy to judge by.** Every tau below is capped near {number(ceiling, 2)} by training noise and "
                     f"every ground-truth rank is uncertain; train longer or add ground-truth seeds.")
    else:
        sentence += (" Read every tau below against this ceiling: it is what a perfect ranking is expected to "
                     "reach against this ground truth.")
    return [sentence]


def learning_findings(truth: dict[str, Any]) -> list[str]:
    """Did every cell learn, by the absolute criterion (below the unigram perplexity)?"""
    if "cells_not_learned" not in truth:
        return []
    counts, references = truth["cells_not_learned"]["count"], truth["reference_valid_ppl"]
    scale = (f"the validation perplexity of a unigram model, {number(references['unigram'])}, which knows word "
             f"frequencies and no context (a bigram model reaches {number(references['bigram'])})")
    if not any(counts.values()):
        return [f"Every cell learned in every seed: all are below {scale}."]
    per_seed = ", ".join(f"{count} in seed {seed}" for seed, count in counts.items())
    return [f"**Cells that did not learn** ({per_seed}, of {truth['cells']}): their validation perplexity is not "
            f"below {scale}. They have not begun to use their recurrent state, so their order reflects how soon "
            f"they would start learning, not their architectures."]


def validity_findings(truth: dict[str, Any]) -> list[str]:
    """Does the ground truth rank architectures: the published order, isomorphic cells, its epochs."""
    findings = []
    checks = truth.get("validity")
    if checks:
        if checks["tau_vs_published"] is None:
            findings.append(f"No published order to check this ground truth against: {checks['published_absent']}.")
        else:
            findings.append(
                f"Validity: against the paper-scale order Yu et al. published for this space, the ground-truth mean "
                f"agrees at Kendall tau **{number(checks['tau_vs_published'], 2)}**"
                f"{interval(checks['tau_vs_published_interval'], 2)} (single seeds "
                f"{', '.join(number(t, 2) for t in checks['tau_vs_published_per_seed'].values())}; over the "
                f"{checks['distinct_functions']} distinct functions "
                f"{number(checks['tau_vs_published_distinct_functions'], 2)}). 1 would be the paper's order: what "
                f"this budget ranks is that far from what training at paper scale ranks.")
        isomorphs = checks["isomorphs"]
        if isomorphs:
            published = checks.get("published_isomorphs")
            findings.append(
                f"Isomorphic cells (one architecture under two names, {isomorphs['pairs']} pairs) are "
                f"{number(isomorphs['mean_rank_gap'], 2)} ranks apart in the ground truth on average, against "
                f"{number(isomorphs['random_rank_gap'], 2)} for random ranks ({p_is(isomorphs['p'])})"
                + (f" and {number(published['mean_rank_gap'], 2)} in the published order" if published else "") + ".")
    rows = truth.get("fidelity", [])
    if len(rows) > 1:
        findings.append("Along its learning curves (each cell's best so far; under a decaying learning rate not what "
                        "a shorter run would give), the ground truth after each epoch agrees with its final order "
                        "at Kendall tau "
                        + ", ".join(f"{number(row['kendall_tau_with_final'], 2)} (epoch {row['epoch']})"
                                    for row in rows[:-1]) + ".")
    return findings


def ground_truth_findings(summary: dict[str, Any]) -> list[str]:
    truth = summary.get("ground_truth")
    if truth is None:
        return ["The space is too large to enumerate: there is no ground truth, so only perplexities are "
                "reported."]
    findings = [f"Ground truth: all {truth['cells']} cells trained from scratch with seeds "
                f"{', '.join(map(str, truth['seeds']))}; the best is cell {truth['best_cell_id']} "
                f"({truth['best_genotype']}), mean validation perplexity {number(truth['best_valid_ppl'])}."]
    if truth["failed_cells"]["count"]:
        reasons = "; ".join(f"cell {cell}, {why}" for cell, why in truth["failed_cells"]["cells"].items())
        findings.append(f"**{truth['failed_cells']['count']} cells diverged in ground-truth training and are left "
                        f"out of every ranking** ({reasons}).")
    findings += reliability_findings(truth)
    findings += learning_findings(truth) + validity_findings(truth)
    for policy, stats in summary["policies"].items():
        if "ground_truth_rank" in stats:
            runs = [r for name, r in summary["runs"].items() if name.startswith(f"{policy}/") and "regret" in r]
            findings.append(
                f"{policy}'s cells rank {', '.join(str(r['ground_truth_rank']) for r in runs)} of {truth['cells']} "
                f"in ground truth (regret {', '.join('+' + number(r['regret']) for r in runs)} perplexity); "
                f"it found the best cell in {stats['found_best_cell']} of {len(runs)} seeds.")
    if all(stats.get("found_best_cell", 0) == 0 for stats in summary["policies"].values()):
        findings.append("No policy found the best cell.")
    return findings


def weight_sharing_findings(analysis: Analysis, config: AnalysisConfig) -> list[str]:
    summary = analysis.summary
    ceiling = (summary.get("ground_truth", {}).get("reliability") or {}).get("ceiling_tau")
    ceiling = ceiling if ceiling is not None and math.isfinite(ceiling) else None  # undefined: nothing to read
    per_run = summary.get("weight_sharing", {})
    findings = []
    for policy, stats in summary["policies"].items():
        for name, ranking in stats.get("weight_sharing", {}).items():
            agreements = {run: by_name[name] for run, by_name in per_run.items()
                          if run.startswith(f"{policy}/") and name in by_name}
            sentence = f"{policy}, ranking `{name}`:"
            if agreements:
                taus = "; ".join(f"{number(a['kendall_tau'], 2)}{interval(a.get('kendall_tau_interval'), 2)}"
                                 f"{seeds_only(a)}" for a in agreements.values())
                significant = sum((a.get("kendall_tau_p_holm") or 1) < config.significance for a in agreements.values())
                top = max(config.top_k)
                overlap = sum(a[f"top_{top}_overlap"] for a in agreements.values()) / len(agreements)
                sentence += (f" Kendall tau with the ground truth {taus} (runs {', '.join(agreements)}; "
                             f"{config.confidence:.0%} intervals: the first resamples cells and ground-truth seeds and "
                             f"estimates the tau of a population of cells like these, the second, in parentheses, "
                             f"resamples ground-truth noise only and estimates it for these cells); mean "
                             f"{number(ranking['kendall_tau']['mean'], 2) if ranking.get('kendall_tau') else 'n/a'}; "
                             f"different from 0 at Holm-adjusted p < {config.significance} in {significant} of "
                             f"{len(agreements)}; on average {overlap:.0%} of the ground truth's top {top} are in its "
                             f"top {top}.")
                if ceiling:
                    sentence += " " + ceiling_comparison(agreements, ceiling)
            if ranking["seed_to_seed_kendall_tau"] is not None:
                sentence += (f" Between search seeds the ranking agrees with itself at Kendall tau "
                             f"{number(ranking['seed_to_seed_kendall_tau']['mean'], 2)}.")
            findings.append(sentence)
    findings += tau_over_training_findings(analysis.tau_rows)
    return findings


def seeds_only(agreement: dict[str, Any]) -> str:
    bounds = agreement.get("kendall_tau_interval_seeds_only")
    return "" if bounds is None else f" ({number(bounds[0], 2)} to {number(bounds[1], 2)})"


def ceiling_comparison(agreements: dict[str, dict[str, Any]], ceiling: float) -> str:
    """Which runs' taus lie below the ceiling by their interval, and each tau over the ceiling
    (the tau a perfect ground truth would be expected to show, to first order)."""
    below = [run for run, a in agreements.items()
             if a.get("kendall_tau_interval") and a["kendall_tau_interval"][1] < ceiling]
    reach = [run for run in agreements if run not in below]
    corrected = ", ".join(number(a.get("kendall_tau_over_ceiling"), 2) for a in agreements.values())
    sentence = f"Against the ceiling {number(ceiling, 2)}: "
    if below:
        sentence += f"{', '.join(below)} rank{'s' if len(below) == 1 else ''} below it (the interval's top is lower)"
    if reach:
        sentence += (("; " if below else "") + f"the interval of {', '.join(reach)} contains it or more, so "
                     f"{'that run' if len(reach) == 1 else 'those runs'} cannot be told from a perfect ranking")
    return sentence + f". Corrected for ground-truth noise (tau over the ceiling): {corrected}."


def tau_over_training_findings(rows: list[dict[str, Any]]) -> list[str]:
    curves: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        curves[row["run"], row["ranking"]].append(row)
    findings = []
    for (run, name), points in curves.items():
        taus = [p["kendall_tau"] for p in points if p["kendall_tau"] is not None]
        if len(points) > 1 and taus:
            findings.append(
                f"Over search, tau of {run} `{name}` went from {number(points[0]['kendall_tau'], 2)} (epoch "
                f"{points[0]['epoch']}) to {number(points[-1]['kendall_tau'], 2)} (epoch {points[-1]['epoch']}), "
                f"between {number(min(taus), 2)} and {number(max(taus), 2)} on the way.")
    return findings


def failure_findings(summary: dict[str, Any]) -> list[str]:
    findings = []
    for policy, stats in summary["policies"].items():
        failed = stats["failed"]
        if failed["count"]:
            reasons = "; ".join(f"seed {s}: {summary['runs'][f'{policy}/{s}']['reason']}" for s in failed["seeds"])
            findings.append(f"**{failed['count']} of {stats['seeds']} {policy} runs failed** ({reasons}); the "
                            f"statistics cover the other runs.")
    return findings


def policy_table(summary: dict[str, Any]) -> str:
    rows = []
    for policy, stats in summary["policies"].items():
        test = stats.get("test_ppl")
        rows.append([
            policy, f"{finished(stats)}/{stats['seeds']}", mean_std(test),
            number(test and test["median"]), number(test and test["best"]), number(test and test["worst"]),
            mean_std(stats.get("valid_ppl")), mean_std(stats.get("ground_truth_valid_ppl")),
            mean_std(stats.get("ground_truth_rank")), mean_std(stats.get("regret")), stats.get("distinct_cells", "n/a"),
        ])
    return markdown_table(["policy", "runs ok", "test ppl", "median", "best", "worst", "valid ppl",
                           "ground-truth ppl", "ground-truth rank", "regret", "distinct cells"], rows)


def runs_table(summary: dict[str, Any]) -> str:
    rows = [[name, run["status"], f"`{run['genotype']}`" if run.get("genotype") else "n/a",
             number(run.get("search_score"), 2),
             number(run.get("valid_ppl")), number(run.get("test_ppl")), number(run.get("ground_truth_valid_ppl")),
             run.get("ground_truth_rank", "n/a"), number(run.get("regret")) if "regret" in run else "n/a"]
            for name, run in summary["runs"].items()]
    return markdown_table(["run", "status", "cell", "search score", "valid ppl", "test ppl",
                           "ground-truth ppl", "ground-truth rank", "regret"], rows)


def weight_sharing_table(summary: dict[str, Any], config: AnalysisConfig) -> str:
    rows = [[run, f"`{name}`", number(a["kendall_tau"], 3), interval(a.get("kendall_tau_interval"), 2).strip() or "n/a",
             interval(a.get("kendall_tau_interval_seeds_only"), 2).strip() or "n/a",
             number(a.get("kendall_tau_over_ceiling"), 2), p_value(a["kendall_tau_p"]),
             p_value(a.get("kendall_tau_p_holm")),
             number(a["spearman_rho"], 3), *(f"{a[f'top_{k}_overlap']:.2f}" for k in config.top_k)]
            for run, by_name in summary.get("weight_sharing", {}).items() for name, a in by_name.items()]
    return markdown_table(["run", "ranking", "Kendall tau", "interval (cells and seeds)", "interval (these cells)",
                           "tau / ceiling", "p (tau = 0)", "Holm p", "Spearman rho",
                           *(f"top-{k} overlap" for k in config.top_k)], rows)


WELCH = "difference of means, Welch t interval"  # its entry in MISCALIBRATED


def evaluators_table(summary: dict[str, Any], config: AnalysisConfig) -> str:
    """The evaluators table: tau with the ground truth, stability, cost and the tests."""
    def vs(row: dict[str, Any], baseline: str) -> str:
        test = row.get(f"vs_{baseline}")
        if not test:
            return ""
        p, holm = p_value(test["welch_p"]), p_value(test["welch_p_holm"])
        sign = "+" if test["difference_of_means"] >= 0 else ""
        return f"{sign}{number(test['difference_of_means'], 2)} (p {p}, Holm {holm})"

    rows = [[f"`{row['name']}`", "ties every cell" if row["constant_ranking"] else number(row["kendall_tau"], 2),
             interval(row["kendall_tau_interval"], 2).strip() or "n/a", number(row["kendall_tau_over_ceiling"], 2),
             number(row["seed_to_seed_kendall_tau"], 2), number(row["kendall_tau_vs_published"], 2),
             *(number(row[f"top_{k}_overlap"], 2) for k in config.top_k),
             f"{row['cost']['value']:g} {row['cost']['unit']}", number(row["cost"]["training_epochs"], 1),
             number(row["cost"]["seconds"], 1), vs(row, "shared_weights"), vs(row, "params")]
            for row in summary["evaluators"]]
    return markdown_table(["evaluator", "Kendall tau (mean over seeds)", f"{config.confidence:.0%} interval over seeds",
                           "tau / ceiling", "tau between its seeds", "tau vs published order",
                           *(f"top-{k} overlap" for k in config.top_k),
                           "cost", "training epochs", "seconds", "vs shared_weights: tau difference",
                           "vs params: tau difference"], rows)


def family_table(summary: dict[str, Any]) -> str:
    """Every test behind a verdict, with Holm's adjustment over all of them."""
    return markdown_table(["finding", "p", "Holm-adjusted p"],
                          [[test["finding"], p_value(test["p"]), p_value(test["p_holm"])]
                           for test in summary.get("family", [])])


def calibration_note() -> str:
    """Which of the methods the report uses are more than 0.02 off nominal, and how."""
    off = "; ".join(f"{method} ({'a test, ' if kind == 'conservative' else ''}{kind}: {where})"
                    for method, (kind, where) in MISCALIBRATED.items())
    return ("Calibration, measured on synthetic ground truths at these sample sizes (`python bench/coverage.py`, "
            "docs/statistics.md): the P(beats) score interval between two policies and the exact test against random "
            f"sampling are within 0.02 of nominal; these are not: {off}.")


def ground_truth_table(analysis: Analysis, confidence: float, best: int = 5) -> str:
    rows = sorted(analysis.ground_truth_rows, key=lambda row: row["rank"])[:best]
    seeds = [key for key in rows[0] if key.startswith("seed_")]
    return markdown_table(["rank", "cell", "genotype", "mean valid ppl", "std", f"{confidence:.0%} interval", *seeds],
                          [[r["rank"], r["cell_id"], f"`{r['genotype']}`", number(r["mean_valid_ppl"]),
                            number(r["std"]), interval(None if r["low"] is None else [r["low"], r["high"]]).strip(),
                            *(number(r[s]) for s in seeds)] for r in rows])


CELL_OUTPUT_SENTENCES = {  # every stage of the experiment used the space's rule (space.cell_output)
    "mean": "Every cell outputs the mean of its nodes (`space.cell_output: mean`, DARTS's rule).",
    "loose_ends": "Every cell outputs the mean of its loose ends (`space.cell_output: loose_ends`, ENAS's rule).",
}


def render_report(analysis: Analysis, figures: dict[str, str], config: AnalysisConfig) -> str:
    """`figures`: caption -> path relative to the report."""
    summary = analysis.summary
    experiment = summary["experiment"]
    sections = [
        f"# naseval report: {experiment['policy']} vs {experiment['baseline']}",
        f"Search seeds {', '.join(map(str, experiment['seeds']))}. {CELL_OUTPUT_SENTENCES[experiment['cell_output']]} "
        f"Lower perplexity is better. Generated by the analyze stage from `metrics/summary.json`'s numbers.",
        "## Findings",
        "\n".join(f"- {finding}" for finding in (
            failure_findings(summary) + evaluator_findings(summary) + comparison_findings(summary, config)
            + ground_truth_findings(summary)
            + weight_sharing_findings(analysis, config))),
        "## Policies (each seed's found cell: its retrain's perplexities and its ground truth)",
        policy_table(summary),
        "## Runs",
        runs_table(summary),
    ]
    if summary.get("weight_sharing"):
        sections += ["## Weight sharing vs ground truth", weight_sharing_table(summary, config)]
    if summary.get("evaluators"):
        sections += ["## Evaluators: which ranks cells truthfully, and at what cost",
                     "Each evaluator ranks every cell on its own, once per search seed (the rank stage; "
                     "docs/evaluators.md). Cost is in the evaluator's own unit, in passes of one cell over the "
                     "training split (forward and backward), and in seconds on this machine. "
                     + " ".join(evaluator_verdicts(summary["evaluators"], config.significance))
                     + " Welch's test rejects where Welch's interval leaves out 0, so it shares that interval's "
                     f"measured coverage, which runs {MISCALIBRATED[WELCH][0]} ({MISCALIBRATED[WELCH][1]}; "
                     "`bench/coverage.py`): there it rejects a true null more often than its level."
                     + "".join(f" {ranking} failed and is left out: {reason}."
                               for ranking, reason in summary.get("evaluator_failures", {}).items()),
                     evaluators_table(summary, config)]
    if summary.get("family"):
        sections += ["## Tests, and Holm's adjustment over them",
                     f"One family: every test a verdict above rests on. {calibration_note()}", family_table(summary)]
    if analysis.ground_truth_rows:
        sections += ["## Ground truth: the best cells", ground_truth_table(analysis, config.confidence)]
    if figures:
        sections += ["## Figures", "\n\n".join(f"![{caption}]({path})\n\n*{caption}*"
                                              for caption, path in figures.items())]
    return "\n\n".join(sections) + "\n"
