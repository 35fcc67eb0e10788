"""Resume after interruption: a run that continues from its checkpoint ends exactly as one that
never stopped. In-process for every policy and for from-scratch training; with a real SIGKILL for
the train stage."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from conftest import ROOT, tiny_stage_inputs

from naseval.core import preemption
from naseval.core.errors import NasevalError, Preempted
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.nn.stacked import StackedLanguageModel
from naseval.policies import SearchTask, get_policy
from naseval.search.supernet import SupernetConfig
from naseval.training.checkpoint import Checkpoint
from naseval.training.recipe import TrainConfig, build_model_and_data, train_cell_reference
from naseval.training.stacked import StackedNTASGD, StackedTraining, train_cells_stacked

SPACE = SearchSpace(2)
TINY = ModelConfig(hidden_size=8)
TRAIN = TrainConfig(epochs=6, batch_size=8, eval_batch_size=8, bptt=10, nonmono=1)  # ASGD from epoch 4


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_training_resumed_after_epoch_5_ends_as_an_uninterrupted_run(tmp_path, tiny_corpus):
    genotype = SPACE.from_id(13)
    whole = train_cell_reference(genotype, tiny_corpus, 2, TINY, TRAIN, seed=4, show_progress=False)
    checkpoint = Checkpoint(tmp_path / "train.pt", "run-a")
    train_cell_reference(genotype, tiny_corpus, 2, TINY, replace(TRAIN, epochs=5), seed=4, show_progress=False,
                         checkpoint=checkpoint)  # "killed" after its fifth epoch's checkpoint, averaging by then
    resumed = train_cell_reference(genotype, tiny_corpus, 2, TINY, TRAIN, seed=4, show_progress=False,
                                   checkpoint=checkpoint)
    assert any(row["averaged"] for row in whole.history)  # the ASGD state went through the checkpoint
    assert (resumed.valid_ppl, resumed.test_ppl) == (whole.valid_ppl, whole.test_ppl)
    assert without_seconds(resumed.history) == without_seconds(whole.history)


SUPERNET = SupernetConfig(TINY, replace(TRAIN, epochs=3, nonmono=1000))
POLICIES = {  # policy -> (config overrides, its supernet, what counts its epochs or rounds)
    "random_ws": ({"ranking_every": 1}, SUPERNET, "epochs"),
    "enas": ({"derive_samples": 10}, SUPERNET, "epochs"),
    "darts": ({"order": "first"}, SUPERNET, "epochs"),
    "nao": ({"rounds": 3, "seed_cells": 6, "top_cells": 2, "new_cells": 3, "random_cells": 1},
            replace(SUPERNET, train=replace(SUPERNET.train, epochs=1)), "rounds"),
}


def shortened(config, supernet, length_field):
    """The same search "killed" one epoch (or round) before its end."""
    if length_field == "rounds":
        return replace(config, rounds=config.rounds - 1), supernet
    return config, replace(supernet, train=replace(supernet.train, epochs=supernet.train.epochs - 1))


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.integration] if name == "darts" else [])
                                  for name in sorted(POLICIES)])
def test_search_resumed_from_its_checkpoint_ends_as_an_uninterrupted_search(name, tmp_path, tiny_corpus):
    overrides, supernet, length_field = POLICIES[name]
    policy = get_policy(name)
    config = policy.Config(**overrides)
    if name == "nao":
        config = replace(config, epd=replace(config.epd, epochs=20, hidden_size=16, embedding_size=8))
    whole = policy(config).search(SearchTask(SPACE, tiny_corpus, 3, supernet))
    checkpoint = Checkpoint(tmp_path / "search.pt", "run-b")
    short_config, short_supernet = shortened(config, supernet, length_field)
    policy(short_config).search(SearchTask(SPACE, tiny_corpus, 3, short_supernet, checkpoint))
    assert (tmp_path / "search.pt").is_file()
    resumed = policy(config).search(SearchTask(SPACE, tiny_corpus, 3, supernet, checkpoint))
    for part in ("candidates", "rankings", "ranking_history", "details", "evaluator"):
        assert same(getattr(resumed, part), getattr(whole, part)), part
    assert same(without_seconds(resumed.trace), without_seconds(whole.trace))


def same(a, b) -> bool:
    """Equal, NaN included (a cell can blow up under shared weights at this toy scale)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def test_a_checkpoint_of_another_run_or_a_truncated_one_is_refused(tmp_path, tiny_corpus):
    genotype = SPACE.from_id(1)
    train_cell_reference(genotype, tiny_corpus, 2, TINY, replace(TRAIN, epochs=1), seed=0, show_progress=False,
               checkpoint=Checkpoint(tmp_path / "a.pt", "run-a"))
    with pytest.raises(NasevalError, match=r"checkpoint .*a\.pt belongs to another run .*: not resumed"):
        Checkpoint(tmp_path / "a.pt", "run-b").load()
    (tmp_path / "b.pt").write_bytes((tmp_path / "a.pt").read_bytes()[:100])
    with pytest.raises(NasevalError, match=r"unreadable checkpoint .*b\.pt \(\w+\): not resumed"):
        Checkpoint(tmp_path / "b.pt", "run-a").load()
    torch.save({"model": {}}, tmp_path / "c.pt")
    with pytest.raises(NasevalError, match=r"c\.pt is not a naseval checkpoint"):
        Checkpoint(tmp_path / "c.pt", "run-a").load()


def tensors(value):
    """Every tensor in a nest of dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors(item)


def test_resume_restores_every_tensor_onto_the_device_of_the_parameters(tmp_path, tiny_corpus):
    """A checkpoint written on one device and resumed on another (here the CPU's, resumed on
    `meta`, which stands in for CUDA): the stacked optimizer's state, the best weights and the
    averages must follow the parameters, or the first step after a resume mixes devices."""
    config = replace(TRAIN, epochs=4)  # averaging from epoch 4: the averages hold weights of their own
    checkpoint = Checkpoint(tmp_path / "batch.pt", "run-c")
    train_cells_stacked([SPACE.from_id(3), SPACE.from_id(9)], tiny_corpus, 2, TINY, config, seed=1,
                        show_progress=False, checkpoint=checkpoint)
    template, _ = build_model_and_data(tiny_corpus, 2, TINY, config)
    batch = StackedTraining(StackedLanguageModel(template.to("meta"), [SPACE.from_id(3), SPACE.from_id(9)]), config)
    saved = checkpoint.load("meta")
    batch.load_state_dict(saved["batch"])
    restored = list(tensors([vars(batch), vars(batch.optimizer), list(batch.model.parameters())]))
    assert len(restored) > 20 and {t.device.type for t in restored} == {"meta"}
    assert bool(saved["batch"]["optimizer"]["averaging"].is_meta)  # what load() gave: already on meta
    assert {t.device.type for t in tensors(saved["random"])} == {"meta"}  # restore_random_states moves them back


def test_batched_training_stopped_within_an_epoch_resumes_to_the_same_cells(tmp_path, tiny_corpus, monkeypatch):
    """A warning mid-epoch: the batch saves where it is (row, recurrent state, running losses)
    and stops; the resumed run ends exactly as one never stopped."""
    cells, config = [SPACE.from_id(3), SPACE.from_id(9), SPACE.from_id(20)], replace(TRAIN, epochs=4)
    whole = train_cells_stacked(cells, tiny_corpus, 2, TINY, config, seed=2, show_progress=False)
    steps, step = 0, StackedNTASGD.step

    def warned_at_step_9(self, lr):
        nonlocal steps
        step(self, lr)
        steps += 1
        if steps == 9:
            monkeypatch.setattr(preemption, "_requested", "SIGUSR1")

    monkeypatch.setattr(StackedNTASGD, "step", warned_at_step_9)
    checkpoint = Checkpoint(tmp_path / "batch.pt", "run-d")
    with pytest.raises(Preempted, match=r"stopped by SIGUSR1: checkpoint saved at epoch \d+, row \d+"):
        train_cells_stacked(cells, tiny_corpus, 2, TINY, config, seed=2, show_progress=False, checkpoint=checkpoint)
    assert steps == 9 and checkpoint.load()["within"]["start"] > 0
    monkeypatch.undo()
    resumed = train_cells_stacked(cells, tiny_corpus, 2, TINY, config, seed=2, show_progress=False,
                                  checkpoint=checkpoint)
    for a, b in zip(resumed, whole, strict=True):
        assert (a.valid_ppl, a.test_ppl) == (b.valid_ppl, b.test_ppl)
        assert without_seconds(a.history) == without_seconds(b.history)


def test_training_warned_stops_at_the_epochs_end_with_its_checkpoint_and_resumes(tmp_path, tiny_corpus, monkeypatch):
    genotype = SPACE.from_id(13)
    whole = train_cell_reference(genotype, tiny_corpus, 2, TINY, TRAIN, seed=4, show_progress=False)
    checkpoint = Checkpoint(tmp_path / "train.pt", "run-e")
    monkeypatch.setattr(preemption, "_requested", "SIGTERM")
    with pytest.raises(Preempted, match="stopped by SIGTERM: checkpoint saved at the end of epoch 1"):
        train_cell_reference(genotype, tiny_corpus, 2, TINY, TRAIN, seed=4, show_progress=False, checkpoint=checkpoint)
    monkeypatch.undo()
    resumed = train_cell_reference(genotype, tiny_corpus, 2, TINY, TRAIN, seed=4, show_progress=False,
                                   checkpoint=checkpoint)
    assert (resumed.valid_ppl, resumed.test_ppl) == (whole.valid_ppl, whole.test_ppl)


def train_stage(tmp_path, out):
    return [sys.executable, "-m", "stages.train", "--cell", str(tmp_path / "top.json"), "--seed", "0",
            "--data", str(tmp_path / "data"), "--out", str(out), "--params", str(tmp_path / "params.yaml")]


@pytest.mark.integration
def test_train_stage_killed_after_a_checkpoint_resumes_to_identical_metrics(tmp_path, tiny_corpus):
    tiny_stage_inputs(tmp_path, tiny_corpus, epochs=40, nonmono=2)
    subprocess.run(train_stage(tmp_path, tmp_path / "whole"), cwd=ROOT, check=True, capture_output=True)

    killed = subprocess.Popen(train_stage(tmp_path, tmp_path / "train"), cwd=ROOT, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / ".train.partial" / ".resume" / "train.pt"
    while not checkpoint.exists() and killed.poll() is None:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL, "the stage finished before it could be killed"
    assert checkpoint.exists() and not (tmp_path / "train").exists()

    subprocess.run(train_stage(tmp_path, tmp_path / "train"), cwd=ROOT, check=True, capture_output=True)
    assert (tmp_path / "train" / "metrics.json").read_bytes() == (tmp_path / "whole" / "metrics.json").read_bytes()
    assert "resumed from" in (tmp_path / "train" / "train.log").read_text()
    assert not (tmp_path / "train" / ".resume").exists() and not (tmp_path / ".train.partial").exists()


def test_ctrl_c_asks_for_a_checkpoint_and_twice_ends_at_once(monkeypatch, capfd):
    """The first SIGINT is a stop request answered at the next safe point, and says so; the second
    does not wait for it (a terminal's user), while SIGTERM again is the same request."""
    monkeypatch.setattr(preemption, "_requested", None)
    with preemption.listening():
        os.kill(os.getpid(), signal.SIGINT)
        assert preemption.requested() == "SIGINT"
        assert "Ctrl-C again to end it at once" in capfd.readouterr().err
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.requested() == "SIGINT"  # one request, named by what asked first
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
