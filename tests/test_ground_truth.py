import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, make_tiny_corpus, tiny_stage_inputs

from bench.stop_signals import STOPS
from naseval.core.errors import NasevalError, TrainingDiverged
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.records import GROUND_TRUTH, merged_groups
from naseval.core.runtime import RESUME, write_json
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.training.ground_truth import ground_truth_record
from naseval.training.recipe import TrainConfig, train_cell_reference

TOY_MODEL = ModelConfig(hidden_size=8)
TOY_TRAIN = TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10)


def test_every_cell_is_trained_and_matches_training_it_alone(tiny_corpus):
    space = SearchSpace(1)
    calm = dataclasses.replace(TOY_TRAIN, lr=2.0)  # the batched and the one-cell paths order floats differently
    record = ground_truth_record(space, tiny_corpus, TOY_MODEL, calm, GroundTruthConfig(workers=1), 5)
    assert [c["cell_id"] for c in record["cells"]] == [0, 1, 2, 3]
    assert [c["genotype"] for c in record["cells"]] == ["tanh:0", "relu:0", "sigmoid:0", "identity:0"]
    direct = train_cell_reference(space.from_id(2), tiny_corpus, 1, TOY_MODEL, calm, 5, show_progress=False)
    assert abs(direct.test_ppl - record["cells"][2]["test_ppl"]) < 1e-3 * direct.test_ppl
    assert record["cells"][2]["valid_ppl_by_epoch"] == pytest.approx([row["valid_ppl"] for row in direct.history],
                                                                     rel=1e-3)


@pytest.mark.integration
def test_workers_do_not_change_a_single_byte_and_batching_is_tracked(tmp_path, tiny_corpus):
    """One worker or two, cells.csv byte for byte alike; what does change numbers (the batch size,
    the threads) is a param the stage tracks."""
    params = tiny_stage_inputs(tmp_path, tiny_corpus, epochs=2, lr=20.0)
    params["ground_truth"]["cells_per_batch"] = 5  # 7 batches: 6 of 5 and one of 2
    outputs = []
    for workers in (1, 2):
        params["ground_truth"]["workers"] = workers
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        out = tmp_path / f"gt_{workers}"
        subprocess.run([sys.executable, "-m", "stages.ground_truth", "--seed", "3", "--data", str(tmp_path / "data"),
                        "--out", str(out), "--params", str(tmp_path / "params.yaml")], cwd=ROOT, check=True,
                       capture_output=True)
        outputs.append((out / "cells.csv").read_bytes())
        assert "32 cells in 7 batches of up to 5" in (out / "ground_truth.log").read_text()
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b",ok,") >= 28  # a few toy cells may diverge at lr 20; the rest trained
    tracked = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["ground_truth"]["params"]
    assert {"train", "ground_truth.cells_per_batch"} <= set(tracked) and "ground_truth.workers" not in tracked


def ground_truth_command(root, out):
    return [sys.executable, "-m", "stages.ground_truth", "--seed", "3", "--data", str(root / "data"),
            "--out", str(out), "--params", str(root / "params.yaml")]


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """A ground truth of 8 batches on 2 workers, and its cells.csv uninterrupted: what every stopped
    run, resumed, must equal byte for byte."""
    root = tmp_path_factory.mktemp("two_workers")
    params = tiny_stage_inputs(root, make_tiny_corpus(), epochs=3, lr=2.0)
    params["ground_truth"] |= {"cells_per_batch": 4, "workers": 2}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run(ground_truth_command(root, root / "whole"), cwd=ROOT, check=True, capture_output=True)
    return root, (root / "whole" / "cells.csv").read_bytes()


@pytest.mark.integration
@pytest.mark.parametrize("how", list(STOPS))
def test_a_ground_truth_with_two_workers_stopped_ends_promptly_and_resumes_to_the_same_cells(how, two_workers):
    """However its workers are stopped, the stage ends within a scheduler's grace (30 s) with one
    line saying why, keeps its finished cells and the checkpoints of the batches in training, and
    run again ends byte for byte as a run never stopped. Before, a signal to the process group or
    a killed worker left the pool waiting for ever for the lost batches."""
    root, whole = two_workers
    out = root / how.split()[0]
    stage = subprocess.Popen(ground_truth_command(root, out), cwd=ROOT, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # its own process group, as a job's or a terminal's
    log, kept = root / f".{out.name}.partial" / "ground_truth.log", root / f".{out.name}.partial" / RESUME
    while stage.poll() is None and not (log.exists() and " cell " in log.read_text() and list(kept.glob("*.pt"))):
        time.sleep(0.05)  # the first batch is done, and the two workers on the next ones have saved an epoch
    sent = time.monotonic()
    STOPS[how](stage)
    try:
        _, stderr = stage.communicate(timeout=60)  # a hang fails here instead of holding CI
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(stage.pid, signal.SIGKILL)
    assert time.monotonic() - sent < 30, "the stage did not end within a scheduler's grace"
    assert stage.returncode == 1, f"the stage finished before it was stopped: {stderr}"
    (line,) = [line for line in stderr.splitlines() if line.startswith("error: ")]
    if how.startswith("SIGKILL"):
        assert re.fullmatch(r"error: the worker training cells \d+-\d+ was killed by SIGKILL, most often the kernel's "
                            r"out-of-memory killer \(a batch needs about \d+ MB\): lower ground_truth.workers, .*; "
                            r"\d+ cells finished and kept in \S+; run the stage again to continue from them", line)
    else:
        signal_name = how.split()[0]
        assert re.fullmatch(rf"error: stopped by {signal_name}: \d+ cells finished and kept, \d+ batches stopped "
                            r"where they were or not begun; run the stage again to continue from it", line)
    if not how.startswith("SIGKILL"):  # (the other worker may have been between batches when one died)
        assert "checkpoint saved at" in stderr  # a worker's batch, within or at the end of an epoch
    assert list(kept.glob("cell_*.json")) and list(kept.glob("cells_*.pt")), "finished cells and checkpoints kept"
    subprocess.run(ground_truth_command(root, out), cwd=ROOT, check=True, capture_output=True)
    assert (out / "cells.csv").read_bytes() == whole
    assert "resumed: " in (out / "ground_truth.log").read_text()


def test_a_large_space_gets_a_record_without_cells(tiny_corpus):
    record = ground_truth_record(SearchSpace(8), tiny_corpus, TOY_MODEL, TOY_TRAIN, GroundTruthConfig(), 0)
    assert record["enumerable"] is False and record["cells"] == []
    assert "2642411520 cells > ground_truth.max_cells 64" in record["reason"]


def test_a_resumed_ground_truth_keeps_finished_cells_and_trains_the_rest(tmp_path, tiny_corpus):
    space, config = SearchSpace(1), GroundTruthConfig(workers=1)
    whole = ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, config, 5, resume=tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"cell_{i}.json" for i in range(4)]
    (tmp_path / "a" / "cell_2.json").unlink()
    (tmp_path / "a" / "cell_3.json").unlink()  # "killed" while cells 2 and 3 were training
    resumed = ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, config, 5, resume=tmp_path / "a")
    assert resumed == whole


def test_groups_of_cells_merge_into_the_whole_ground_truth(tmp_path, tiny_corpus):
    space = SearchSpace(1)
    whole = ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, GroundTruthConfig(workers=1), 5)
    split = GroundTruthConfig(workers=1, cells_per_batch=1, cell_groups=(0, 1, 2))  # 4 batches into 3 groups
    groups = [ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, split, 5, group=g) for g in range(3)]
    assert [[c["cell_id"] for c in g["cells"]] for g in groups] == [[0], [1], [2, 3]]
    for group, record in enumerate(groups):
        write_json(tmp_path / "seed_5" / f"group_{group}" / GROUND_TRUTH, record)
    merged = merged_groups(tmp_path / "seed_5", 3)
    one_per_batch = ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN,
                                        GroundTruthConfig(workers=1, cells_per_batch=1), 5)
    assert merged["cells"] == one_per_batch["cells"]  # the same batches, so the same numbers
    assert [c["cell_id"] for c in merged["cells"]] == [c["cell_id"] for c in whole["cells"]]
    with pytest.raises(NasevalError, match="its groups were trained as \\['3'\\] groups, the analysis reads 2"):
        merged_groups(tmp_path / "seed_5", 2)


def test_cell_groups_must_count_from_zero_and_not_outnumber_the_batches(tiny_corpus):
    with pytest.raises(NasevalError, match=r"cell_groups: expected the list 0, 1, .* groups, got \[1, 2\]"):
        GroundTruthConfig(cell_groups=(1, 2))
    five = GroundTruthConfig(cells_per_batch=1, cell_groups=(0, 1, 2, 3, 4))
    with pytest.raises(NasevalError, match="5 groups of 4 batches of cells: expected at most 4"):
        ground_truth_record(SearchSpace(1), tiny_corpus, TOY_MODEL, TOY_TRAIN, five, 5, group=0)


def test_finished_cells_of_another_ground_truth_run_are_refused(tmp_path, tiny_corpus):
    space, config = SearchSpace(1), GroundTruthConfig(workers=1)
    ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, config, 5, resume=tmp_path)
    with pytest.raises(NasevalError, match="holds cells of another ground-truth run"):
        ground_truth_record(space, tiny_corpus, TOY_MODEL, TOY_TRAIN, config, 6, resume=tmp_path)


def test_a_cell_that_diverges_is_a_failed_cell_not_a_failed_stage(tiny_corpus, monkeypatch):
    import naseval.training.ground_truth as ground_truth

    def diverging_for_relu(genotype, *args, **kwargs):
        if genotype[0][0] == "relu":
            raise TrainingDiverged("training diverged: loss nan at row 0")
        return train_cell_reference(genotype, *args, **kwargs)

    monkeypatch.setattr(ground_truth, "train_cell_reference", diverging_for_relu)
    reference = dataclasses.replace(TOY_TRAIN, implementation="reference")
    record = ground_truth_record(SearchSpace(1), tiny_corpus, TOY_MODEL, reference, GroundTruthConfig(), 5)
    statuses = {c["genotype"]: (c["status"], c["reason"]) for c in record["cells"]}
    assert statuses["relu:0"] == ("failed", "training diverged: loss nan at row 0")
    assert statuses["tanh:0"] == ("ok", None) and record["cells"][1]["valid_ppl"] is None
