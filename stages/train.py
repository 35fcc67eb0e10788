"""train: one extracted cell trained from scratch; its best-validation checkpoint and perplexities."""

from pathlib import Path

import torch
import typer

from naseval.core.command import run_stage
from naseval.core.data import load_corpus
from naseval.core.errors import TrainingDiverged
from naseval.core.params import load, read_params
from naseval.core.records import TRAIN_METRICS, read_top
from naseval.core.runtime import (
    ENVIRONMENT,
    RESUME,
    atomic_directory,
    check_seed,
    environment,
    setup_logging,
    write_csv,
    write_json,
)
from naseval.core.space import SearchSpace, parse_genotype
from naseval.nn.model import ModelConfig
from naseval.training.checkpoint import Checkpoint, fingerprint
from naseval.training.recipe import TrainConfig, train_cell_reference
from naseval.training.stacked import train_cell_stacked


def main(
    cell: Path = typer.Option(..., help="top.json written by the extract stage."),
    seed: int = typer.Option(..., help="Seed of the from-scratch training."),
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage."),
    out: Path = typer.Option(..., help="Folder for metrics.json, history.csv, checkpoint.pt, train.log."),
    params: Path = typer.Option(Path("params.yaml"), help="Reads `space`, `model`, `train`."),
) -> None:
    """Train the cell in CELL from scratch with SEED."""
    check_seed(seed)
    values = read_params(params)
    space = load(SearchSpace, values, "space")
    model_config, config = load(ModelConfig, values, "model"), load(TrainConfig, values, "train")
    top = read_top(cell)
    genotype = parse_genotype(top["genotype"], space) if top["status"] == "ok" else None
    corpus = load_corpus(data)
    with atomic_directory(out, resumable=True) as folder:
        log = setup_logging(folder / "train.log")
        write_json(folder / ENVIRONMENT, environment(config.threads))
        if genotype is None:  # nothing to train; the failure travels on to the analysis
            log.error("no cell to train: %s", top["reason"])
            write_json(folder / TRAIN_METRICS, {"status": "failed", "reason": top["reason"]})
            return
        log.info("train %s (cell %d of %s/%d, %s output) from scratch, seed %d", top["genotype"], top["cell_id"],
                 top["policy"], top["seed"], top["cell_output"], seed)
        checkpoint = Checkpoint(folder / RESUME / "train.pt",
                                fingerprint("train", top, seed, space, model_config, config, corpus.digest()))
        train = train_cell_stacked if config.implementation == "fast" else train_cell_reference
        try:
            result = train(genotype, corpus, space.nodes, model_config, config, seed,
                                cell_output=top["cell_output"], checkpoint=checkpoint)
        except TrainingDiverged as diverged:
            log.error("training failed: %s", diverged)
            write_json(folder / TRAIN_METRICS, {"status": "failed", "reason": f"train: {diverged}"})
            return
        write_json(folder / TRAIN_METRICS, {
            "status": "ok", "cell_id": top["cell_id"], "genotype": result.genotype,
            "cell_output": top["cell_output"], "valid_ppl": result.valid_ppl, "test_ppl": result.test_ppl,
        })
        write_csv(folder / "history.csv", result.history)
        torch.save({"model": result.best_state, "genotype": result.genotype, "cell_output": top["cell_output"]},
                   folder / "checkpoint.pt")
        log.info("valid ppl %.2f, test ppl %.2f", result.valid_ppl, result.test_ppl)


if __name__ == "__main__":
    run_stage(main)
