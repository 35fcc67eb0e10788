"""search: run one policy with one seed; write its ranked candidates, rankings and trace."""

import time
from pathlib import Path

import typer

from naseval.checkpoint import Checkpoint, fingerprint
from naseval.data import load_corpus
from naseval.errors import TrainingDiverged
from naseval.params import load, read_params
from naseval.policies import SearchTask, get_policy
from naseval.records import SEARCH_RESULT, SEARCH_TRACE, failed_search_json, read_oracle, search_result_json
from naseval.runtime import (
    ENVIRONMENT,
    RESUME,
    atomic_directory,
    check_seed,
    environment,
    setup_logging,
    write_csv,
    write_json,
)
from naseval.space import SearchSpace, format_genotype
from stages.common import run_stage


def main(
    policy: str = typer.Option(..., help="A registered policy name, e.g. random or random_ws."),
    seed: int = typer.Option(..., help="Drives every random draw of the search."),
    data: Path = typer.Option(Path("data/prepared"), help="Output of the prepare stage."),
    oracle: Path = typer.Option(Path("runs/oracle"), help="Output of the oracle stage, for the oracle evaluator."),
    out: Path = typer.Option(..., help="Folder for result.json, trace.csv and search.log."),
    params: Path = typer.Option(Path("params.yaml"), help="Reads `space` and `search.<policy>`."),
) -> None:
    """Search the space with POLICY and SEED."""
    check_seed(seed)
    values = read_params(params)
    policy_cls = get_policy(policy)
    config = load(policy_cls.Config, values, f"search.{policy}")
    space = load(SearchSpace, values, "space")
    corpus = load_corpus(data)
    table = read_oracle(oracle) if getattr(config, "evaluator", None) == "oracle" else None
    with atomic_directory(out, resumable=True) as folder:
        log = setup_logging(folder / "search.log")
        run = fingerprint("search", policy, seed, config, space, corpus.digest(), table)
        task = SearchTask(space, corpus, seed, Checkpoint(folder / RESUME / "search.pt", run), oracle=table)
        log.info("search: policy %s, seed %d, %d cells in the space%s", policy, seed, space.size,
                 f", oracle seeds {', '.join(map(str, table.seeds))}" if table else "")
        started = time.perf_counter()
        try:
            result = policy_cls(config).search(task)
        except TrainingDiverged as diverged:  # a failed run is a result: the analysis counts it
            write_json(folder / ENVIRONMENT, environment())
            log.error("search failed: %s", diverged)
            record = failed_search_json(space, policy, seed, time.perf_counter() - started, str(diverged))
            write_json(folder / SEARCH_RESULT, record)
            return
        seconds = time.perf_counter() - started
        write_json(folder / ENVIRONMENT, environment())  # after the search: its threads
        write_json(folder / SEARCH_RESULT, search_result_json(result, space, policy, seed, seconds, config))
        write_csv(folder / SEARCH_TRACE, result.trace)
        log.info("search done in %.1f s; top cell %s", seconds, format_genotype(result.candidates[0].genotype))


if __name__ == "__main__":
    run_stage(main)
