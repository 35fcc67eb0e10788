"""rank: one evaluator ranks the space on its own, with one seed (the evaluators table's rows)."""

from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.data import load_corpus
from naseval.core.errors import NasevalError, TrainingDiverged
from naseval.core.params import load, read_params
from naseval.core.records import RANKING
from naseval.core.runtime import (
    ENVIRONMENT,
    RESUME,
    atomic_directory,
    check_seed,
    environment,
    setup_logging,
    write_json,
)
from naseval.core.space import SearchSpace
from naseval.search.family import NEEDS_ORACLE, EvaluatorSettings
from naseval.search.oracle import read_oracle
from naseval.search.space_ranking import RankConfig, failed_ranking, rank_space
from naseval.search.supernet import SupernetConfig
from naseval.training.checkpoint import Checkpoint, fingerprint


def main(
    evaluator: str = typer.Option(..., help="An evaluator's name, e.g. shared_weights or snip."),
    seed: int = typer.Option(..., help="Drives every random draw of the evaluator."),
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage."),
    oracle: Path = typer.Option(Path("runs/oracle"), help="Output of the oracle stage (landmark, short_training)."),
    out: Path = typer.Option(..., help="Folder for ranking.json and rank.log."),
    params: Path = typer.Option(Path("params.yaml"),
                                help="Reads `space`, `search.supernet`, `search.evaluators`, `rank`."),
) -> None:
    """Rank the space's cells with EVALUATOR and SEED."""
    check_seed(seed)
    values = read_params(params)
    config = load(RankConfig, values, "rank")
    if evaluator not in config.evaluators:
        raise NasevalError(f"--evaluator: expected one of rank.evaluators ({', '.join(config.evaluators)}), "
                           f"got {evaluator!r}")
    space = load(SearchSpace, values, "space")
    settings = load(EvaluatorSettings, values, "search.evaluators")
    supernet = load(SupernetConfig, values, "search.supernet")
    corpus = load_corpus(data)
    table = read_oracle(oracle) if evaluator in NEEDS_ORACLE else None
    with atomic_directory(out, resumable=True) as folder:
        log = setup_logging(folder / "rank.log")
        log.info("rank: evaluator %s, seed %d, %d cells in the space", evaluator, seed, space.size)
        run = fingerprint("rank", evaluator, seed, config, supernet, settings, space, corpus.digest(), table)
        try:
            record = rank_space(evaluator, seed, space, corpus, supernet, settings, config, table,
                                Checkpoint(folder / RESUME / "rank.pt", run))
        except TrainingDiverged as diverged:  # a failed ranking is a result: the analysis lists it
            log.error("rank failed: %s", diverged)
            record = failed_ranking(evaluator, seed, space, str(diverged))
        else:
            log.info("rank done in %.1f s: %d cells, cost %s %s", record["seconds"], len(record["scores"]),
                     record["cost"], record["cost_unit"])
        write_json(folder / ENVIRONMENT, environment(supernet.train.threads))
        write_json(folder / RANKING, record)


if __name__ == "__main__":
    run_stage(main)
