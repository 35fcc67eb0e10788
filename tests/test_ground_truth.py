import dataclasses
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT, tiny_stage_inputs

from naseval.core.errors import NasevalError, TrainingDiverged
from naseval.core.ground_truth_config import GroundTruthConfig
from naseval.core.records import GROUND_TRUTH, merged_groups
from naseval.core.runtime import write_json
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


@pytest.mark.integration
def test_a_warned_ground_truth_with_two_workers_stops_them_and_resumes_to_the_same_cells(tmp_path, tiny_corpus):
    """SIGUSR1 reaches the stage, which forwards it to its pool's workers: the batches in training
    save where they are, those not begun do not start, and the stage stops. Run again, it ends
    byte for byte as a run never stopped."""
    params = tiny_stage_inputs(tmp_path, tiny_corpus, epochs=6, lr=2.0)
    params["ground_truth"] |= {"cells_per_batch": 4, "workers": 2}  # 8 batches
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))

    def stage(out):
        return [sys.executable, "-m", "stages.ground_truth", "--seed", "3", "--data", str(tmp_path / "data"),
                "--out", str(out), "--params", str(tmp_path / "params.yaml")]

    subprocess.run(stage(tmp_path / "whole"), cwd=ROOT, check=True, capture_output=True)
    warned = subprocess.Popen(stage(tmp_path / "gt"), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    log = tmp_path / ".gt.partial" / "ground_truth.log"
    while warned.poll() is None and not (log.exists() and " cell " in log.read_text()):
        time.sleep(0.05)  # the first batch is done: two workers are on the next ones
    warned.send_signal(signal.SIGUSR1)
    _, stderr = warned.communicate(timeout=300)
    assert warned.returncode == 1, "the stage finished before it was warned"
    assert re.search(r"error: stopped by SIGUSR1: \d+ cells finished and kept, \d+ batches stopped where they were",
                     stderr)
    assert "stopped by SIGUSR1: checkpoint saved at" in stderr  # a worker's batch, within or at the end of an epoch
    subprocess.run(stage(tmp_path / "gt"), cwd=ROOT, check=True, capture_output=True)
    assert (tmp_path / "gt" / "cells.csv").read_bytes() == (tmp_path / "whole" / "cells.csv").read_bytes()
    assert "resumed: " in (tmp_path / "gt" / "ground_truth.log").read_text()


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
