"""ground_truth: the cells of one group of an enumerable space trained from scratch with one seed."""

from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.data import load_corpus
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.params import load, read_params
from naseval.core.records import GROUND_TRUTH
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
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.training.ground_truth import ground_truth_record
from naseval.training.recipe import TrainConfig


def main(
    seed: int = typer.Option(..., help="Training seed shared by all cells."),
    group: int = typer.Option(0, help="Which of ground_truth.cell_groups to train."),
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage."),
    out: Path = typer.Option(..., help="Folder for cells.json, cells.csv, ground_truth.log."),
    params: Path = typer.Option(Path("params.yaml"), help="Reads `space`, `model`, `train`, `ground_truth`."),
) -> None:
    """Train the cells of GROUP from scratch with SEED (nothing for a non-enumerable space)."""
    check_seed(seed)
    values = read_params(params)
    space = load(SearchSpace, values, "space")
    model_config, train_config = load(ModelConfig, values, "model"), load(TrainConfig, values, "train")
    config = load(GroundTruthConfig, values, "ground_truth")
    with atomic_directory(out, resumable=True) as folder:
        setup_logging(folder / "ground_truth.log")
        record = ground_truth_record(space, load_corpus(data), model_config, train_config, config, seed,
                                     resume=folder / RESUME, group=group)
        write_json(folder / GROUND_TRUTH, record)
        write_json(folder / ENVIRONMENT, environment(train_config.threads))
        write_csv(folder / "cells.csv", [{k: v for k, v in cell.items() if k != "valid_ppl_by_epoch"}
                                         for cell in record["cells"]])


if __name__ == "__main__":
    run_stage(main)
