"""analyze: the runs named by params, their from-scratch results and the ground truth -> metrics/."""

import os
from pathlib import Path

import typer

from naseval.analysis.evaluators import EVALUATOR_COLUMNS
from naseval.analysis.figures import render_figures
from naseval.analysis.inputs import read_evaluator_rankings, read_ground_truth, read_run
from naseval.analysis.report import render_report
from naseval.analysis.summary import TAU_COLUMNS, TRACE_COLUMNS, AnalysisConfig, Experiment, analyze
from naseval.core.command import run_stage
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.params import build, load, read_params, section
from naseval.core.runtime import atomic_directory, environment, read_json, write_atomic, write_csv, write_json
from naseval.core.space import SearchSpace


def main(
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage, for its meta.json."),
    runs: Path = typer.Option(Path("runs/policies"), help="Root of the search/extract/train outputs."),
    ground_truth: Path = typer.Option(Path("runs/ground_truth"), help="Root of the ground-truth outputs."),
    evaluators: Path = typer.Option(Path("runs/evaluators"), help="Root of the rank stage's outputs."),
    metrics: Path = typer.Option(Path("metrics/summary.json"), help="Metrics JSON to write."),
    plots: Path = typer.Option(Path("metrics/plots"), help="Folder for the plot CSVs."),
    figures: Path = typer.Option(Path("metrics/figures"), help="Folder for the PNG figures."),
    report: Path = typer.Option(Path("metrics/report.md"), help="Markdown report to write."),
    params: Path = typer.Option(Path("params.yaml"),
                                help="Reads `policy`, `baseline`, `seeds`, `space`, `ground_truth.seeds`, "
                                     "`rank.evaluators`, `analysis`."),
) -> None:
    """Compare the policy with the baseline and weight sharing with the ground truth."""
    values = read_params(params)
    experiment = build(Experiment, {k: values.get(k) for k in ("policy", "baseline", "seeds")}, "")
    config = load(AnalysisConfig, values, "analysis")
    records = [read_run(runs, p, s) for p in experiment.policies for s in experiment.seeds]
    truth_config = load(GroundTruthConfig, values, "ground_truth")
    truth = read_ground_truth(ground_truth, list(truth_config.seeds), len(truth_config.cell_groups))
    names = list(section(values, "rank.evaluators") or [])
    rankings = read_evaluator_rankings(evaluators, names, list(experiment.seeds))
    trained_on = read_json(data / "meta.json")
    result = analyze(records, truth, experiment, config, load(SearchSpace, values, "space"),
                     trained_on.get("reference_perplexity"), rankings, tuple(names))
    write_json(metrics, {"data": {k: trained_on[k] for k in ("vocab_size", "tokens")}, **result.summary,
                         "environment": environment()})
    write_csv(plots / "final_ppl.csv", result.final_ppl)
    write_csv(plots / "weight_sharing_vs_ground_truth.csv", result.ranking_rows)
    write_csv(plots / "ground_truth.csv", result.ground_truth_rows)
    write_csv(plots / "search_trace.csv", result.trace_rows, TRACE_COLUMNS)
    write_csv(plots / "tau_over_training.csv", result.tau_rows, TAU_COLUMNS)
    write_csv(plots / "evaluators.csv", result.evaluator_rows, EVALUATOR_COLUMNS)
    drawn = render_figures(result, config.confidence)
    with atomic_directory(figures) as folder:  # the folder is renamed into place whole
        for name, (_, image) in drawn.items():
            (folder / name).write_bytes(image)
    captions = {caption: os.path.relpath(figures / name, report.parent) for name, (caption, _) in drawn.items()}
    write_atomic(report, render_report(result, captions, config))


if __name__ == "__main__":
    run_stage(main)
