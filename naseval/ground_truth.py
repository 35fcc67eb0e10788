"""Ground truth of an enumerable space: every cell trained from scratch with one seed.

Cells are independent jobs, so they run in a pool of worker processes; each job seeds itself
from the seed alone, so a cell's result does not depend on which worker ran it or when.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from naseval.checkpoint import Checkpoint, fingerprint
from naseval.data import Corpus
from naseval.errors import NasevalError, TrainingDiverged
from naseval.model import ModelConfig
from naseval.params import require
from naseval.runtime import keep_freed_memory, read_json, write_json
from naseval.space import SearchSpace, format_genotype
from naseval.train import TrainConfig, train_cell

log = logging.getLogger("naseval")


@dataclass(frozen=True)
class GroundTruthConfig:
    """params.yaml `ground_truth`."""

    seeds: tuple[int, ...] = (0, 1)
    max_cells: int = 64  # refuse spaces larger than this: they are not enumerable in practice
    workers: int = 1  # processes training cells in parallel; torch threads are shared among them

    def __post_init__(self) -> None:
        require(len(self.seeds) >= 1, "seeds", list(self.seeds), "a non-empty list of integers")
        require(self.max_cells >= 1, "max_cells", self.max_cells, "an integer >= 1")
        require(self.workers >= 1, "workers", self.workers, "an integer >= 1")


def is_enumerable(space: SearchSpace, config: GroundTruthConfig) -> bool:
    return space.size <= config.max_cells


@dataclass(frozen=True)
class _Job:
    cell_id: int
    space: SearchSpace
    corpus: Corpus
    model_config: ModelConfig
    train_config: TrainConfig
    seed: int
    threads: int
    checkpoint: Checkpoint | None


def _train_job(job: _Job) -> dict:
    keep_freed_memory()
    torch.set_num_threads(job.threads)
    genotype = job.space.from_id(job.cell_id)
    cell = {"cell_id": job.cell_id, "genotype": format_genotype(genotype)}
    try:
        result = train_cell(genotype, job.corpus, job.space.nodes, job.model_config, job.train_config,
                            job.seed, show_progress=False, checkpoint=job.checkpoint)
    except TrainingDiverged as diverged:  # one cell's failure is a result, not the end of the stage
        return cell | {"status": "failed", "reason": str(diverged), "valid_ppl": None, "test_ppl": None,
                       "epochs": None}
    return cell | {"status": "ok", "reason": None, "valid_ppl": result.valid_ppl, "test_ppl": result.test_ppl,
                   "epochs": len(result.history)}


class Finished:
    """A ground-truth run's resume folder: one JSON file per finished cell, one checkpoint per
    cell in training (removed once the cell is finished)."""

    def __init__(self, folder: Path, run: str):
        self.folder, self.run = folder, run

    def checkpoint(self, cell_id: int) -> Checkpoint:
        return Checkpoint(self.folder / f"cell_{cell_id}.pt", fingerprint(self.run, cell_id))

    def add(self, cell: dict) -> None:
        write_json(self.folder / f"cell_{cell['cell_id']}.json", {"run": self.run, "cell": cell})
        self.checkpoint(cell["cell_id"]).remove()

    def cells(self) -> list[dict]:
        kept = [read_json(path) for path in sorted(self.folder.glob("cell_*.json"))]
        foreign = [k for k in kept if k.get("run") != self.run]
        if foreign:
            raise NasevalError(f"{self.folder} holds cells of another ground-truth run (its params, seed or data "
                               f"differ): not resumed; run the stage again to start over")
        return [k["cell"] for k in kept]


def ground_truth_record(
    space: SearchSpace,
    corpus: Corpus,
    model_config: ModelConfig,
    train_config: TrainConfig,
    config: GroundTruthConfig,
    seed: int,
    resume: Path | None = None,
) -> dict:
    """Every cell of `space` trained from scratch with `seed`, ordered by cell id.

    A space too large to enumerate gets a record without cells that says why, so the pipeline
    of an 8-node profile still runs and the analysis reports perplexities only. With a `resume`
    folder, each finished cell is kept there and each cell in training checkpoints there every
    epoch, so a killed run continues where it stopped.
    """
    if not is_enumerable(space, config):
        reason = f"{space.size} cells > ground_truth.max_cells {config.max_cells}: not enumerable"
        log.info("no ground truth: %s", reason)
        return {"seed": seed, "enumerable": False, "reason": reason, "cells": []}
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    run = fingerprint("ground_truth", space, model_config, train_config, seed, corpus.digest())
    finished = Finished(resume, run) if resume else None
    cells = finished.cells() if finished else []
    done = {cell["cell_id"] for cell in cells}
    jobs = [_Job(i, space, corpus, model_config, train_config, seed, threads,
                 finished.checkpoint(i) if finished else None)
            for i in range(space.size) if i not in done]
    if done:
        log.info("resumed: %d of %d cells were already trained", len(done), space.size)
    with ExitStack() as stack:
        outcomes = map(_train_job, jobs)
        if config.workers > 1:
            # spawn, not fork: a forked child inherits the parent's OpenMP state and can hang.
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(config.workers))
            outcomes = pool.imap_unordered(_train_job, jobs)
        for cell in tqdm(outcomes, total=len(jobs), desc=f"ground truth seed {seed}", unit="cell"):
            if cell["status"] == "ok":
                log.info("cell %3d %-28s valid ppl %8.2f  test ppl %8.2f", cell["cell_id"],
                         cell["genotype"], cell["valid_ppl"], cell["test_ppl"])
            else:
                log.error("cell %3d %-28s failed: %s", cell["cell_id"], cell["genotype"], cell["reason"])
            cells.append(cell)
            if finished:
                finished.add(cell)
    return {"seed": seed, "enumerable": True, "cells": sorted(cells, key=lambda c: c["cell_id"])}
