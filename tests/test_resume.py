"""Resume after interruption: a run that continues from its checkpoint ends exactly as one that
never stopped. In-process for every policy and for from-scratch training; with a real SIGKILL for
the train stage."""

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from conftest import ROOT, tiny_stage_inputs

from naseval.core.errors import NasevalError
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.policies import SearchTask, get_policy
from naseval.search.supernet import SupernetConfig
from naseval.training.checkpoint import Checkpoint
from naseval.training.recipe import TrainConfig, train_cell_reference

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
