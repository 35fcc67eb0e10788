"""Bad input: one line naming the problem and what is allowed, exit code 1, and nothing written."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_stage_inputs
from typer.testing import CliRunner

from naseval.core.params import read_params
from stages.__main__ import app

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path, tiny_corpus):
    """Prepared tiny data, a tiny params.yaml and a valid top.json: each case breaks one thing."""
    tiny_stage_inputs(tmp_path, tiny_corpus)
    return tmp_path


def edit_params(root, change):
    params = read_params(root / "params.yaml")
    change(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def search(root):
    return ["search", "--policy", "random_ws", "--seed", "0", "--data", str(root / "data"), "--out", str(root / "out")]


def train(root):
    return ["train", "--cell", str(root / "top.json"), "--seed", "0", "--data", str(root / "data"),
            "--out", str(root / "out")]


def ground_truth(root):
    return ["ground-truth", "--seed", "0", "--data", str(root / "data"), "--out", str(root / "out")]


def analyze(root):
    return ["analyze", "--data", str(root / "data"), "--runs", str(root / "runs"), "--ground-truth",
            str(root / "gt"), "--metrics", str(root / "out" / "summary.json"), "--plots", str(root / "out"),
            "--figures", str(root / "out" / "figures"), "--report", str(root / "out" / "report.md")]


def prepare(root):
    return ["prepare", "--out", str(root / "out")]


def ptb_dir_with(root, monkeypatch, files):
    folder = root / "ptb"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    monkeypatch.setenv("NASEVAL_PTB_DIR", str(folder))


def write_top(root, **fields):
    top = json.loads((root / "top.json").read_text()) | fields
    (root / "top.json").write_text(json.dumps(top))


def checkpoint_file(root):
    path = root / ".out.partial" / ".resume" / "train.pt"
    path.parent.mkdir(parents=True)
    return path


def a_foreign_checkpoint(root):
    torch.save({"format": "naseval-checkpoint-1", "fingerprint": "another-run", "state": {}, "tracked": {}},
               checkpoint_file(root))


CASES = {  # name -> (break the workspace, the command, what the message says)
    "unknown policy": (
        None, lambda r: [*search(r)[:2], "nope", *search(r)[3:]], "unknown policy 'nope' (known: darts, enas"),
    "unknown op": (
        lambda r, m: edit_params(r, lambda p: p["space"].update(ops=["tanh", "swish"])), search,
        "space.ops: unknown op 'swish' (known: tanh, relu, sigmoid, identity)"),
    "invalid genotype": (
        lambda r, m: write_top(r, genotype="tanh:0 relu:7"), train,
        "invalid genotype: node 1 has predecessor 7 (allowed: 0..1)"),
    "genotype of another space": (
        lambda r, m: write_top(r, genotype="tanh:0"), train, "tanh:0"),
    "nodes < 1": (
        lambda r, m: edit_params(r, lambda p: p["space"].update(nodes=0)), search,
        "space.nodes: expected an integer >= 1, got 0"),
    "empty seeds": (
        lambda r, m: edit_params(r, lambda p: p.update(seeds=[])), analyze,
        "seeds: expected a non-empty list of integers, got []"),
    "duplicate seeds": (
        lambda r, m: edit_params(r, lambda p: p.update(seeds=[0, 0])), analyze,
        "seeds: expected distinct seeds, got [0, 0]"),
    "negative learning rate": (
        lambda r, m: edit_params(r, lambda p: p["train"].update(lr=-1)), train,
        "train.lr: expected a number > 0, got -1"),
    "zero batch size": (
        lambda r, m: edit_params(r, lambda p: p["train"].update(batch_size=0)), train,
        "train.batch_size: expected an integer >= 1, got 0"),
    "zero epochs": (
        lambda r, m: edit_params(r, lambda p: p["train"].update(epochs=0)), ground_truth,
        "train.epochs: expected an integer >= 1, got 0"),
    "unknown implementation": (
        lambda r, m: edit_params(r, lambda p: p["train"].update(implementation="turbo")), ground_truth,
        "train.implementation: expected one of fast, reference, got 'turbo'"),
    "unknown precision": (
        lambda r, m: edit_params(r, lambda p: p["train"].update(precision="fp8")), train,
        "train.precision: expected one of fp32, bf16, got 'fp8'"),
    "wrong type": (
        lambda r, m: edit_params(r, lambda p: p["search"]["supernet"]["train"].update(epochs="ten")), search,
        "search.supernet.train.epochs: expected an integer, got 'ten'"),
    "unknown supernet override": (
        lambda r, m: edit_params(r, lambda p: p["search"]["random_ws"].update(supernet={"train": {"epoch": 3}})),
        search, "unknown key search.random_ws.supernet.train.epoch (known: epochs, batch_size"),
    "an evaluator the policy has no meaning with": (
        lambda r, m: edit_params(r, lambda p: p["search"]["random_ws"].update(evaluator="oracle")), search,
        "search.random_ws.evaluator: expected shared_weights or few_shot or fair_sampling or landmark (without a "
        "supernet it is random_search), got 'oracle'"),
    "an evaluator that does not exist": (
        lambda r, m: edit_params(r, lambda p: p["search"]["random_ws"].update(evaluator="magic")), search,
        "search.random_ws.evaluator: expected shared_weights or few_shot"),
    "unknown params key": (
        lambda r, m: edit_params(r, lambda p: p["train"].update(learning_rate=1)), train,
        "unknown key train.learning_rate (known: epochs"),
    "missing PTB file": (
        lambda r, m: ptb_dir_with(r, m, {"ptb.train.txt": "a b\n", "ptb.valid.txt": "a\n"}), prepare,
        "ptb.test.txt"),
    "PTB checksum mismatch": (
        lambda r, m: ptb_dir_with(r, m, {f"ptb.{s}.txt": "not ptb\n" for s in ("train", "valid", "test")}),
        prepare, "corrupted PTB file"),
    "empty corpus": (
        lambda r, m: np.save(r / "data" / "valid.npy", np.array([], dtype=np.int64)), train,
        "empty corpus in"),
    "missing prepared data": (
        lambda r, m: (r / "data" / "vocab.txt").unlink(), search, "prepared data not found in"),
    "negative search seed": (
        None, lambda r: [*search(r)[:4], "-1", *search(r)[5:]], "seed: expected an integer in 0..4294967295, got -1"),
    "seed beyond numpy's range": (
        None, lambda r: [*train(r)[:4], str(2**32), *train(r)[5:]], "seed: expected an integer in 0..4294967295"),
    "negative ground-truth seed": (
        lambda r, m: edit_params(r, lambda p: p["ground_truth"].update(seeds=[0, -2])), ground_truth,
        "ground_truth.seeds: expected an integer in 0..4294967295, got -2"),
    "negative search seeds": (
        lambda r, m: edit_params(r, lambda p: p.update(seeds=[-1])), analyze,
        "seeds: expected an integer in 0..4294967295, got -1"),
    "malformed top.json": (
        lambda r, m: (r / "top.json").write_text('{"genotype": 5}'), train,
        "top.json: status: expected one of ok, failed, got None"),
    "top.json with a genotype of the wrong type": (
        lambda r, m: write_top(r, genotype=5), train, "top.json: genotype: expected a string, got 5"),
    "unknown cell output": (
        lambda r, m: edit_params(r, lambda p: p["space"].update(cell_output="sum")), search,
        "space.cell_output: expected one of mean, loose_ends, got 'sum'"),
    "DARTS with loose ends": (
        lambda r, m: edit_params(r, lambda p: p["space"].update(cell_output="loose_ends")),
        lambda r: [*search(r)[:2], "darts", *search(r)[3:]], "darts: space.cell_output 'loose_ends' is not possible"),
    "truncated input JSON": (
        lambda r, m: (r / "top.json").write_text('{"status": "ok", "gen'), train, "top.json is not valid JSON"),
    "truncated checkpoint": (
        lambda r, m: checkpoint_file(r).write_bytes(b"PK\x03\x04 half a file"), train, "unreadable checkpoint"),
    "foreign checkpoint": (
        lambda r, m: a_foreign_checkpoint(r), train, "train.pt belongs to another run"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_non_zero_and_writes_nothing(case, workspace, monkeypatch):
    break_it, command, message = CASES[case]
    if break_it:
        break_it(workspace, monkeypatch)
    before = sorted(p.name for p in workspace.iterdir() if not p.name.startswith("."))
    result = runner.invoke(app, [*command(workspace), "--params", str(workspace / "params.yaml")])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert result.output.strip().endswith(errors[0])  # the last line; a stage may have logged its start
    assert not (workspace / "out").exists()
    assert sorted(p.name for p in workspace.iterdir()) == before  # no scratch or partial folder left either
