"""The batched path gives each cell what the straightforward one-cell-at-a-time path gives it."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from naseval.core.data import batchify
from naseval.core.space import SearchSpace
from naseval.nn.decoder_loss import decoder_losses
from naseval.nn.model import LanguageModel, MixedCell, ModelConfig, one_hot
from naseval.nn.stacked import StackedLanguageModel, evaluate_cells, evaluate_stacked
from naseval.training.checkpoint import Checkpoint
from naseval.training.recipe import TrainConfig, evaluate, train_cell_reference
from naseval.training.stacked import StackedNTASGD, train_cell_stacked, train_cells_stacked

SPACE = SearchSpace(3)
CELLS = [SPACE.from_id(i) for i in (0, 5, 17, 40, 99, 143)]  # mixed ops and predecessors
DROPOUTS = ModelConfig(hidden_size=8, dropout=0.3, dropouth=0.1, dropoutx=0.2, dropouti=0.1, dropoute=0.1)
# At lr 20 training on the toy corpus is chaotic: 1e-13 added to one weight changes the second
# epoch's perplexity by 0.3%, so float rounding alone would part the two paths.
TRAIN = TrainConfig(epochs=4, batch_size=8, eval_batch_size=8, bptt=10, lr=2.0)


@pytest.mark.parametrize("output", ["mean", "loose_ends"])
def test_a_batch_of_cells_computes_what_each_cell_computes_alone(output):
    torch.manual_seed(0)
    single = LanguageModel(30, 3, DROPOUTS, output=output, fused_loss=False)
    batched = StackedLanguageModel(single, CELLS)
    words, targets = torch.randint(0, 30, (7, 4)), torch.randint(0, 30, (7, 4))
    torch.manual_seed(5)  # the same dropout masks
    losses, hidden, _ = batched(words, targets, batched.init_hidden(4))
    losses.sum().backward()
    for a, genotype in enumerate(CELLS):
        torch.manual_seed(5)
        single.zero_grad()
        loss, alone_hidden, _ = single.loss(words, targets, single.init_hidden(4), genotype)
        loss.backward()
        torch.testing.assert_close(losses[a], loss)
        torch.testing.assert_close(hidden[a], alone_hidden)
        torch.testing.assert_close(batched.embedding.grad[a], single.encoder.weight.grad)
        torch.testing.assert_close(batched.Ws[1].grad[a], single.cell.Ws[1].grad)
    data = torch.randint(0, 30, (40, 4))
    losses = evaluate_stacked(batched, data, 5)
    assert losses.tolist() == pytest.approx([evaluate(single, data, g, 5) for g in CELLS], rel=1e-6)


def test_the_fused_decoder_loss_has_the_values_and_gradients_of_logits_and_cross_entropy(monkeypatch):
    monkeypatch.setattr("naseval.nn.decoder_loss.CHUNK_BYTES", 7 * 50 * 4)  # chunks of 7 rows: 3 chunks
    torch.manual_seed(0)
    hidden = torch.randn(2, 20, 6, requires_grad=True)
    weight, bias = torch.randn(2, 50, 6, requires_grad=True), torch.randn(2, 50, requires_grad=True)
    targets = torch.randint(0, 50, (20,))
    fused = decoder_losses(hidden, weight, bias, targets)
    (fused * torch.tensor([1.0, 3.0])).sum().backward()
    fused_grads = [t.grad.clone() for t in (hidden, weight, bias)]
    for t in (hidden, weight, bias):
        t.grad = None
    plain = torch.stack([F.cross_entropy(hidden[a] @ weight[a].t() + bias[a], targets) for a in range(2)])
    (plain * torch.tensor([1.0, 3.0])).sum().backward()
    torch.testing.assert_close(fused, plain)
    for mine, theirs in zip(fused_grads, (hidden.grad, weight.grad, bias.grad), strict=True):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("supernet", [
    {"sharing": "by_node"}, {"sharing": "by_edge", "output": "loose_ends"}, {"sharing": "by_choice"},
    {"sharing": "by_edge", "output_norm": True, "hidden_norm_clip": 0.5},  # ENAS's; the clip acts at this size
    {"cell_class": MixedCell, "ops": SPACE.ops, "batch_norm": False},
    {"cell_class": MixedCell, "ops": SPACE.ops, "batch_norm": True},
])
def test_cells_scored_together_under_shared_weights_score_as_one_by_one(supernet):
    torch.manual_seed(0)
    model = LanguageModel(30, 3, DROPOUTS, **supernet)
    data = torch.randint(0, 30, (40, 4))
    arch_of = (lambda g: one_hot(g, SPACE.ops, model.encoder.weight)) if "cell_class" in supernet else (lambda g: g)
    together = evaluate_cells(model, data, CELLS, 5)
    assert together.tolist() == pytest.approx([evaluate(model, data, arch_of(g), 5) for g in CELLS], rel=1e-6)


# nonmono 1 over 6 epochs: every cell switches to averaged SGD after epoch 4 (measured), so the
# stacked NT-ASGD is checked against torch's ASGD end to end, not only in its own unit test.
COSINE = dataclasses.replace(TRAIN, epochs=3, lr_schedule="cosine", warmup_epochs=0.5)


@pytest.mark.integration
@pytest.mark.parametrize("config", [TRAIN, dataclasses.replace(TRAIN, epochs=6, nonmono=1), COSINE],
                         ids=["sgd", "nt-asgd", "cosine-warmup"])
def test_cells_trained_together_end_as_each_trained_alone(tiny_corpus, config):
    together = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, config, seed=3, show_progress=False)
    switched = [[row["averaged"] for row in outcome.history] for outcome in together]
    assert all(not any(flags) for flags in switched) if config is TRAIN else True
    assert all(any(flags) for flags in switched) if config.nonmono == 1 else True
    if config is COSINE:  # the schedule is applied: a constant rate ends elsewhere
        constant = train_cells_stacked(CELLS[:1], tiny_corpus, 3, DROPOUTS, dataclasses.replace(config,
                                       lr_schedule="constant", warmup_epochs=0.0), seed=3, show_progress=False)
        assert constant[0].valid_ppl != pytest.approx(together[0].valid_ppl, rel=1e-5)
    for genotype, outcome in zip(CELLS, together, strict=True):
        alone = train_cell_reference(genotype, tiny_corpus, 3, DROPOUTS, config, seed=3, show_progress=False)
        assert outcome.failure is None
        assert [row["averaged"] for row in outcome.history] == [row["averaged"] for row in alone.history]
        assert outcome.valid_ppl == pytest.approx(alone.valid_ppl, rel=1e-5)
        assert outcome.test_ppl == pytest.approx(alone.test_ppl, rel=1e-5)
        for mine, theirs in zip(outcome.history, alone.history, strict=True):
            assert mine["train_ppl"] == pytest.approx(theirs["train_ppl"], rel=1e-5)
            assert mine["valid_ppl"] == pytest.approx(theirs["valid_ppl"], rel=1e-5)


@pytest.mark.parametrize("output", ["mean", "loose_ends"])
def test_one_cell_on_the_batched_path_gives_a_language_models_result_and_state(tiny_corpus, output):
    """The train stage's fast path: train_cell_reference's numbers, and a checkpoint a LanguageModel loads."""
    genotype = CELLS[3]
    fast = train_cell_stacked(genotype, tiny_corpus, 3, DROPOUTS, TRAIN, 3, show_progress=False, cell_output=output)
    reference = train_cell_reference(genotype, tiny_corpus, 3, DROPOUTS, TRAIN, 3, show_progress=False,
                                     cell_output=output)
    assert fast.valid_ppl == pytest.approx(reference.valid_ppl, rel=1e-5)
    assert fast.test_ppl == pytest.approx(reference.test_ppl, rel=1e-5)
    model = LanguageModel(len(tiny_corpus.vocabulary), 3, DROPOUTS, output=output)
    model.load_state_dict(fast.best_state)
    valid = batchify(tiny_corpus.splits["valid"], TRAIN.eval_batch_size, torch.device("cpu"))
    assert math.exp(evaluate(model, valid, genotype, TRAIN.bptt)) == pytest.approx(fast.valid_ppl, rel=1e-5)


def test_each_cell_switches_to_averaged_sgd_as_torch_would_alone():
    torch.manual_seed(0)
    start = [torch.randn(3, 4, 5), torch.randn(3, 2)]
    switch_at = [2, 4, 99]  # steps after which each cell starts averaging; the last never does
    grads = [[torch.randn_like(p) for p in start] for _ in range(8)]
    rates = [20.0 * length / 35 for length in (35, 30, 41, 12, 35, 38, 29, 33)]
    params = [torch.nn.Parameter(p.clone()) for p in start]
    stacked = StackedNTASGD(params, weight_decay=1e-3, count=3)
    for step, (grad, lr) in enumerate(zip(grads, rates, strict=True)):
        for p, g in zip(params, grad, strict=True):
            p.grad = g.clone()
        stacked.step(lr)
        stacked.start_averaging(torch.tensor([step + 1 == s for s in switch_at]))
    for cell, switch in enumerate(switch_at):
        alone = [torch.nn.Parameter(p[cell].clone()) for p in start]
        optimizer = torch.optim.SGD(alone, lr=20.0, weight_decay=1e-3)
        for step, (grad, lr) in enumerate(zip(grads, rates, strict=True)):
            optimizer.param_groups[0]["lr"] = lr
            for p, g in zip(alone, grad, strict=True):
                p.grad = g[cell].clone()
            optimizer.step()
            if step + 1 == switch:
                optimizer = torch.optim.ASGD(alone, lr=20.0, t0=0, lambd=0.0, weight_decay=1e-3)
        for p, q, average in zip(params, alone, stacked.averages, strict=True):
            torch.testing.assert_close(p[cell], q.detach())
            if switch < len(grads):
                torch.testing.assert_close(average[cell], optimizer.state[q]["ax"])


@pytest.mark.integration
def test_a_cell_that_diverges_leaves_the_batch_and_the_others_are_unchanged(tiny_corpus, monkeypatch):
    def nan_for_the_second_cell(hidden, weight, bias, targets):
        losses = decoder_losses(hidden, weight, bias, targets)
        if hidden.size(0) == len(CELLS):
            losses = losses + torch.tensor([0.0, math.nan] + [0.0] * (len(CELLS) - 2))
        return losses

    healthy = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, TRAIN, seed=3, show_progress=False)
    monkeypatch.setattr("naseval.nn.stacked.decoder_losses", nan_for_the_second_cell)
    outcomes = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, TRAIN, seed=3, show_progress=False)
    assert outcomes[1].failure == "training diverged: loss nan at row 0" and outcomes[1].test_ppl is None
    for a in (0, 2, 3, 4, 5):
        assert outcomes[a].failure is None
        assert outcomes[a].test_ppl == pytest.approx(healthy[a].test_ppl, rel=1e-5)


@pytest.mark.integration
def test_a_cell_whose_loss_turns_nan_rolls_back_to_its_best_epoch_and_the_others_are_unchanged(tiny_corpus,
                                                                                              monkeypatch):
    calls = iter(range(10**6))
    nan_call = 40  # in the second of four epochs (about 30 minibatches each): after a best epoch

    def nan_once_for_the_second_cell(hidden, weight, bias, targets):
        losses = decoder_losses(hidden, weight, bias, targets)
        if hidden.size(0) == len(CELLS) and torch.is_grad_enabled() and next(calls) == nan_call:
            losses = losses + torch.tensor([0.0, math.nan] + [0.0] * (len(CELLS) - 2))
        return losses

    restored = []
    real_restore = StackedNTASGD.restore

    def spy(self, cells, snapshot, weights):
        real_restore(self, cells, snapshot, weights)
        restored.append(all(torch.equal(p[cells], w[cells]) for p, w in zip(self.params, weights, strict=True)))

    healthy = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, TRAIN, seed=3, show_progress=False)
    monkeypatch.setattr("naseval.nn.stacked.decoder_losses", nan_once_for_the_second_cell)
    monkeypatch.setattr(StackedNTASGD, "restore", spy)
    outcomes = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, TRAIN, seed=3, show_progress=False)
    assert restored == [True]  # its weights are its best epoch's
    assert outcomes[1].failure is None and [row["rollbacks"] for row in outcomes[1].history] == [0, 1, 1, 1]
    assert math.isfinite(outcomes[1].test_ppl) and outcomes[1].test_ppl != healthy[1].test_ppl
    for a in (0, 2, 3, 4, 5):
        assert outcomes[a].test_ppl == healthy[a].test_ppl  # the others never knew


def test_a_nan_loss_fails_the_cell_under_nan_policy_fail(tiny_corpus, monkeypatch):
    def nan_for_the_second_cell_after_epoch_one(hidden, weight, bias, targets):
        losses = decoder_losses(hidden, weight, bias, targets)
        if hidden.size(0) == 2 and torch.is_grad_enabled() and next(calls) >= 35:
            losses = losses + torch.tensor([0.0, math.nan])
        return losses

    calls = iter(range(10**6))
    monkeypatch.setattr("naseval.nn.stacked.decoder_losses", nan_for_the_second_cell_after_epoch_one)
    config = dataclasses.replace(TRAIN, epochs=2, nan_policy="fail")
    outcomes = train_cells_stacked(CELLS[:2], tiny_corpus, 3, DROPOUTS, config, seed=3, show_progress=False)
    assert outcomes[0].failure is None and outcomes[1].failure.startswith("training diverged: loss nan at row")


@pytest.mark.integration
def test_a_batch_killed_after_an_epoch_resumes_from_its_checkpoint_and_ends_the_same(tmp_path, tiny_corpus):
    config = dataclasses.replace(TRAIN, epochs=3, nonmono=1)
    whole = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, config, seed=3, show_progress=False)
    checkpoint = Checkpoint(tmp_path / "cells.pt", "run")

    class Killed(Exception):
        pass

    def killed_after_epoch_2(state):
        Checkpoint.save(checkpoint, state)
        if state["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, config, seed=3, show_progress=False,
                    checkpoint=SimpleNamespace(load=checkpoint.load, save=killed_after_epoch_2, path=checkpoint.path))
    resumed = train_cells_stacked(CELLS, tiny_corpus, 3, DROPOUTS, config, seed=3, show_progress=False,
                          checkpoint=checkpoint)
    def numbers(outcomes):
        return [(o.valid_ppl, o.test_ppl, [{k: v for k, v in h.items() if k != "seconds"} for h in o.history])
                for o in outcomes]

    assert numbers(resumed) == numbers(whole)


@pytest.mark.parametrize("batched", [False, True])
def test_bf16_autocast_keeps_a_short_run_within_one_percent_of_fp32(tiny_corpus, batched):
    model = ModelConfig(hidden_size=16, dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.0)
    fp32 = TrainConfig(epochs=3, batch_size=8, eval_batch_size=8, bptt=10, lr=5.0)
    bf16 = dataclasses.replace(fp32, precision="bf16")
    genotype = SearchSpace(2).from_id(6)

    def valid_ppl(config):
        if batched:
            [outcome] = train_cells_stacked([genotype], tiny_corpus, 2, model, config, seed=0, show_progress=False)
            return outcome.valid_ppl
        return train_cell_reference(genotype, tiny_corpus, 2, model, config, seed=0, show_progress=False).valid_ppl

    full, half = valid_ppl(fp32), valid_ppl(bf16)
    assert half != full  # autocast did change the arithmetic
    assert half == pytest.approx(full, rel=0.01)
