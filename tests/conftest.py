"""Shared fixtures: a small generated corpus and the shared PTB copy."""

import os
from pathlib import Path

import numpy as np
import pytest

from naseval.core.data import Corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_dvc_analytics(monkeypatch):
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def find_ptb() -> Path:
    """The real PTB: NASEVAL_PTB_DIR, else the shared copy beside the checkout; skips without it."""
    candidates = [os.environ.get("NASEVAL_PTB_DIR"), ROOT.parent / "shared" / "data" / "ptb"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "ptb.train.txt").is_file():
            return Path(candidate).resolve()
    pytest.skip("PTB not found: set NASEVAL_PTB_DIR")


@pytest.fixture
def ptb_dir() -> Path:
    return find_ptb()


@pytest.fixture
def tiny_corpus() -> Corpus:
    return make_tiny_corpus()


def make_tiny_corpus() -> Corpus:
    """A corpus with learnable structure: a repeating sentence with a little noise."""
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(20)] + ["<eos>", "<unk>"]
    pattern = np.tile(np.arange(21), 200)
    noise = rng.random(len(pattern)) < 0.05
    stream = np.where(noise, rng.integers(0, 22, len(pattern)), pattern).astype(np.int64)
    return Corpus(vocabulary, {"train": stream[:3000], "valid": stream[3000:3600], "test": stream[3600:4200]})


TOP_CELL = {"status": "ok", "policy": "random", "seed": 0, "cell_id": 13, "genotype": "sigmoid:0 relu:0",
            "cell_output": "mean"}  # an extract stage's output, for running the train stage alone


def tiny_stage_inputs(root: Path, corpus: Corpus, **train) -> dict:
    """What stages read, at toy size, under `root`: prepared data, params.yaml (hidden 8, batches of 8,
    for the cells and the supernet;
    `train` overrides the recipe) and top.json. Returns the params for further edits."""
    import json

    import yaml

    from naseval.core.data import save_corpus
    from naseval.core.params import read_params

    save_corpus(corpus, root / "data")
    params = read_params(ROOT / "params.yaml")
    params["model"] = {"hidden_size": 8}
    params["train"] |= {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "bptt": 10, **train}
    params["search"]["supernet"] = {"model": {"hidden_size": 8},
                                    "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "bptt": 10}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "top.json").write_text(json.dumps(TOP_CELL))
    return params
