"""search: run one policy with one seed; write its ranked candidates, rankings and trace."""

import time
from pathlib import Path

import typer

from naseval.core.command import run_stage
from naseval.core.data import load_corpus
from naseval.core.errors import TrainingDiverged
from naseval.core.params import load, read_params
from naseval.core.records import SEARCH_RESULT, SEARCH_TRACE
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
from naseval.core.space import SearchSpace, format_genotype
from naseval.policies import SearchTask, get_policy, search_params
from naseval.policies.result import failed_search_json, search_result_json, trace_columns
from naseval.search.family import NEEDS_ORACLE, EvaluatorSettings
from naseval.search.oracle import read_oracle
from naseval.training.checkpoint import Checkpoint, fingerprint


def main(
    policy: str = typer.Option(..., help="A registered policy name, e.g. random or random_ws."),
    seed: int = typer.Option(..., help="Drives every random draw of the search."),
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage."),
    oracle: Path = typer.Option(Path("runs/oracle"), help="Output of the oracle stage, for the oracle evaluator."),
    out: Path = typer.Option(..., help="Folder for result.json, trace.csv and search.log."),
    params: Path = typer.Option(Path("params.yaml"),
                                help="Reads `space`, `search.supernet`, `search.evaluators`, `search.<policy>`."),
) -> None:
    """Search the space with POLICY and SEED."""
    check_seed(seed)
    values = read_params(params)
    policy_cls = get_policy(policy)
    config, supernet = search_params(values, policy)
    space = load(SearchSpace, values, "space")
    settings = load(EvaluatorSettings, values, "search.evaluators")
    corpus = load_corpus(data)
    searcher = policy_cls(config)
    table = read_oracle(oracle) if searcher.evaluator_name in NEEDS_ORACLE else None
    with atomic_directory(out, resumable=True) as folder:
        log = setup_logging(folder / "search.log")
        run = fingerprint("search", policy, seed, config, supernet, settings, space, corpus.digest(), table)
        task = SearchTask(space, corpus, seed, supernet, Checkpoint(folder / RESUME / "search.pt", run), oracle=table,
                          evaluators=settings)
        log.info("search: policy %s, seed %d, %d cells in the space%s", policy, seed, space.size,
                 f", oracle seeds {', '.join(map(str, table.seeds))}" if table else "")
        started = time.perf_counter()
        try:
            result = searcher.search(task)
        except TrainingDiverged as diverged:  # a failed run is a result: the analysis counts it
            write_json(folder / ENVIRONMENT, environment())
            log.error("search failed: %s", diverged)
            record = failed_search_json(space, policy, seed, time.perf_counter() - started, str(diverged))
            write_json(folder / SEARCH_RESULT, record)
            return
        seconds = time.perf_counter() - started
        write_json(folder / ENVIRONMENT, environment())  # after the search: its threads
        write_json(folder / SEARCH_RESULT, search_result_json(result, space, policy, seed, seconds, config,
                                                                  *([supernet] if policy_cls.evaluators else [])))
        write_csv(folder / SEARCH_TRACE, result.trace, trace_columns(result.trace))
        log.info("search done in %.1f s; top cell %s", seconds, format_genotype(result.candidates[0].genotype))


if __name__ == "__main__":
    run_stage(main)
