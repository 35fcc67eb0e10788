"""oracle: the held-out ground-truth seeds an oracle search answers from, every cell trained from scratch."""

from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.data import load_corpus
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.params import load, read_params
from naseval.core.records import GROUND_TRUTH, ORACLE, oracle_json, seed_dir
from naseval.core.runtime import ENVIRONMENT, RESUME, atomic_directory, environment, setup_logging, write_json
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.search.oracle import OracleConfig
from naseval.training.ground_truth import ground_truth_record
from naseval.training.recipe import TrainConfig


def main(
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage."),
    out: Path = typer.Option(..., help="Folder for oracle.json, one cells.json per seed, oracle.log."),
    params: Path = typer.Option(Path("params.yaml"),
                                help="Reads `oracle`, and `space`, `model`, `train`, `ground_truth` for the recipe."),
) -> None:
    """Train every cell with each of `oracle.seeds`, as the ground-truth stage does with its own."""
    values = read_params(params)
    seeds = load(OracleConfig, values, "oracle").seeds
    space = load(SearchSpace, values, "space")
    model_config, train_config = load(ModelConfig, values, "model"), load(TrainConfig, values, "train")
    config = load(GroundTruthConfig, values, "ground_truth")
    corpus = load_corpus(data)
    with atomic_directory(out, resumable=True) as folder:
        log = setup_logging(folder / "oracle.log")
        log.info("oracle: seeds %s", ", ".join(map(str, seeds)) or "none")
        records = []
        for seed in seeds:
            record = ground_truth_record(space, corpus, model_config, train_config, config, seed,
                                         resume=folder / RESUME / f"seed_{seed}")
            write_json(seed_dir(folder, seed) / GROUND_TRUTH, record)
            records.append(record)
        write_json(folder / ORACLE, oracle_json(space, records))
        write_json(folder / ENVIRONMENT, environment(train_config.threads))


if __name__ == "__main__":
    run_stage(main)
