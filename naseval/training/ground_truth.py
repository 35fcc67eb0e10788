"""Ground truth of an enumerable space: every cell trained from scratch with one seed.

Cells train in batches of `cells_per_batch` (one model with stacked weights), and batches are
independent jobs in a pool of worker processes; each job seeds itself from the seed alone, so a
cell's result does not depend on which worker ran it or when, nor on the worker count: every
worker runs `train.threads` threads. The batches and the threads are tracked params, not
resource knobs, because both change a cell's floating-point arithmetic: batched products pick
their kernels by shape, and elementwise and reduction kernels can round an element differently
by its place in the tensor and the tensor's layout. At a chaotic budget that arithmetic acts as
a seed (measured on the tests' toy corpus at lr 20: one cell in batches of 3 with other
partners, validation perplexity 27.6 against 22.5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from naseval.core import preemption
from naseval.core.data import Corpus
from naseval.core.errors import NasevalError, Preempted, RefusedCheckpoint, TrainingDiverged, WorkerDied
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.runtime import keep_freed_memory, read_json, write_json
from naseval.core.space import Genotype, SearchSpace, format_genotype
from naseval.core.workers import WorkerExit, describe_exit, run_watched
from naseval.nn.model import ModelConfig
from naseval.training.checkpoint import Checkpoint, fingerprint
from naseval.training.recipe import TrainConfig, train_cell_reference
from naseval.training.stacked import CellOutcome, bytes_per_cell, train_cells_stacked

log = logging.getLogger("naseval")


def is_enumerable(space: SearchSpace, config: GroundTruthConfig) -> bool:
    return space.size <= config.max_cells


def batches_of_cells(space: SearchSpace, train_config: TrainConfig, config: GroundTruthConfig) -> list[tuple[int, ...]]:
    """Cell ids in order, cut into the batches that train together: `cells_per_batch` each (the
    last may be smaller); one cell per batch on the reference implementation."""
    size = 1 if train_config.implementation == "reference" else config.cells_per_batch
    return [tuple(range(start, min(start + size, space.size))) for start in range(0, space.size, size)]


def group_of_batches(batches: list[tuple[int, ...]], config: GroundTruthConfig, group: int) -> list[tuple[int, ...]]:
    """The batches of `group` of `config.cell_groups`: contiguous runs of whole batches, as even
    as the batch count allows."""
    groups = len(config.cell_groups)
    if group not in config.cell_groups:
        raise NasevalError(f"group: expected one of ground_truth.cell_groups {list(config.cell_groups)}, got {group}")
    if groups > len(batches):
        raise NasevalError(f"ground_truth.cell_groups: {groups} groups of {len(batches)} batches of cells: "
                           f"expected at most {len(batches)} (or a smaller cells_per_batch)")
    return batches[group * len(batches) // groups:(group + 1) * len(batches) // groups]


@dataclass(frozen=True)
class _Job:
    cell_ids: tuple[int, ...]
    space: SearchSpace
    corpus: Corpus
    model_config: ModelConfig
    train_config: TrainConfig
    seed: int
    checkpoint: Checkpoint | None


def _train_job(job: _Job) -> list[dict] | None:
    """The batch's cells, or None when a stop request came first (its checkpoint is saved)."""
    keep_freed_memory()
    if preemption.requested():
        return None
    genotypes = [job.space.from_id(i) for i in job.cell_ids]
    options = {"show_progress": False, "checkpoint": job.checkpoint, "cell_output": job.space.cell_output}
    args = (job.corpus, job.space.nodes, job.model_config, job.train_config, job.seed)
    try:
        if job.train_config.implementation == "fast":
            outcomes = train_cells_stacked(genotypes, *args, **options)
        else:
            outcomes = [train_cell_reference_outcome(genotypes[0], *args, **options)]
    except Preempted as stopped:
        log.warning("cells %s: %s", format_cell_ids(job.cell_ids), stopped)
        return None
    return [{"cell_id": i, "genotype": outcome.genotype, "status": "failed" if outcome.failure else "ok",
             "reason": outcome.failure, "valid_ppl": outcome.valid_ppl, "test_ppl": outcome.test_ppl,
             "epochs": None if outcome.failure else len(outcome.history),
             # the learning curve: what shorter budgets would have given (bench/reliability_study.py)
             "valid_ppl_by_epoch": [row["valid_ppl"] for row in outcome.history]}
            for i, outcome in zip(job.cell_ids, outcomes, strict=True)]


def worker_died_message(lost: WorkerExit, kept: int, resume: Path | None, megabytes: int) -> str:
    """One line: which batch died how, what most often causes it and what to change, what was kept."""
    cause = f"the worker training cells {format_cell_ids(lost.job.cell_ids)} {describe_exit(lost.exitcode)}"
    if lost.killed:
        cause += (f", most often the kernel's out-of-memory killer (a batch needs about {megabytes} MB): lower "
                  f"ground_truth.workers, which changes no result, or ground_truth.cells_per_batch, which is tracked")
    where = f" in {resume}" if resume else ""
    return f"{cause}; {kept} cells finished and kept{where}; run the stage again to continue from them"


def format_cell_ids(cell_ids: tuple[int, ...]) -> str:
    return f"{cell_ids[0]}-{cell_ids[-1]}" if len(cell_ids) > 1 else str(cell_ids[0])


def train_cell_reference_outcome(genotype: Genotype, *args, **options) -> CellOutcome:
    """One cell on the reference path; a diverged cell is a result, not the end of the stage."""
    try:
        result = train_cell_reference(genotype, *args, **options)
    except TrainingDiverged as diverged:
        return CellOutcome(format_genotype(genotype), None, None, [], str(diverged))
    return CellOutcome(result.genotype, result.valid_ppl, result.test_ppl, result.history)


class GroundTruthResume:
    """A ground-truth run's resume folder: one JSON file per finished cell, one checkpoint per
    batch of cells in training (removed once its cells are finished)."""

    def __init__(self, folder: Path, run: str):
        self.folder, self.run = folder, run

    def checkpoint(self, cell_ids: tuple[int, ...]) -> Checkpoint:
        return Checkpoint(self.folder / f"cells_{cell_ids[0]}-{cell_ids[-1]}.pt", fingerprint(self.run, cell_ids))

    def add(self, cells: list[dict]) -> None:
        for cell in cells:
            write_json(self.folder / f"cell_{cell['cell_id']}.json", {"run": self.run, "cell": cell})
        self.checkpoint(tuple(cell["cell_id"] for cell in cells)).remove()

    def cells(self) -> list[dict]:
        kept = [read_json(path) for path in sorted(self.folder.glob("cell_*.json"))]
        foreign = [k for k in kept if k.get("run") != self.run]
        if foreign:
            raise RefusedCheckpoint(f"{self.folder} holds cells of another ground-truth run (its params, seed or "
                                    f"data differ): not resumed; run the stage again to start over")
        return [k["cell"] for k in kept]


def ground_truth_record(
    space: SearchSpace,
    corpus: Corpus,
    model_config: ModelConfig,
    train_config: TrainConfig,
    config: GroundTruthConfig,
    seed: int,
    resume: Path | None = None,
    group: int | None = None,
) -> dict:
    """Every cell of `space` trained from scratch with `seed`, ordered by cell id; with a
    `group`, only the cells of that group of `config.cell_groups`.

    A space too large to enumerate gets a record without cells that says why, so the pipeline
    of an 8-node profile still runs and the analysis reports perplexities only. With a `resume`
    folder, each finished cell is kept there and each cell in training checkpoints there every
    epoch, so a killed run continues where it stopped.
    """
    if not is_enumerable(space, config):
        reason = f"{space.size} cells > ground_truth.max_cells {config.max_cells}: not enumerable"
        log.info("no ground truth: %s", reason)
        record = {"seed": seed, "enumerable": False, "reason": reason, "cell_output": space.cell_output}
        if group is not None:
            record |= {"group": group, "groups": len(config.cell_groups)}
        return record | {"cells": []}
    run = fingerprint("ground_truth", space, model_config, train_config, seed, corpus.digest())
    finished = GroundTruthResume(resume, run) if resume else None
    cells = {cell["cell_id"]: cell for cell in (finished.cells() if finished else [])}
    done = set(cells)
    batches = batches_of_cells(space, train_config, config)
    if group is not None:
        batches = group_of_batches(batches, config, group)
    jobs = [_Job(ids, space, corpus, model_config, train_config, seed,
                 finished.checkpoint(ids) if finished else None)
            for ids in batches if not done.issuperset(ids)]
    largest, cells_here = max(map(len, batches)), sum(map(len, batches))
    megabytes = largest * bytes_per_cell(len(corpus.vocabulary), space.nodes, model_config, train_config) >> 20
    log.info("%d cells in %d batches of up to %d (about %d MB each), %d at a time", cells_here, len(batches), largest,
             megabytes, config.workers)
    if done:
        log.info("resumed: %d of %d cells were already trained", len(done), cells_here)
    trained = 0
    with preemption.listening(), tqdm(total=sum(len(job.cell_ids) for job in jobs), desc=f"ground truth seed {seed}",
                                      unit="cell") as progress:
        outcomes = map(_train_job, jobs)
        if config.workers > 1:
            outcomes = run_watched(_train_job, jobs, config.workers)
        try:
            for batch in outcomes:
                if batch is None:
                    continue
                trained += 1
                for cell in batch:
                    if cell["status"] == "ok":
                        log.info("cell %3d %-28s valid ppl %8.2f  test ppl %8.2f", cell["cell_id"],
                                 cell["genotype"], cell["valid_ppl"], cell["test_ppl"])
                    else:
                        log.error("cell %3d %-28s failed: %s", cell["cell_id"], cell["genotype"], cell["reason"])
                cells |= {cell["cell_id"]: cell for cell in batch}
                progress.update(len(batch))
                if finished:
                    finished.add(batch)
        except WorkerExit as lost:
            message = worker_died_message(lost, len(cells), resume, megabytes)
            log.error("%s", message)
            raise WorkerDied(message) from None
    if trained < len(jobs):
        raise preemption.stop(f"{len(cells)} cells finished and kept, {len(jobs) - trained} batches stopped where "
                              f"they were or not begun")
    record = {"seed": seed, "enumerable": True, "cell_output": space.cell_output}
    if group is not None:
        record |= {"group": group, "groups": len(config.cell_groups)}
    return record | {"cells": [cells[i] for i in sorted(cells)]}
