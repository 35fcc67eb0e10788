import math
import re

import numpy as np
import pytest
import torch

from naseval.core.data import batchify
from naseval.core.errors import NasevalError, TrainingDiverged
from naseval.nn.model import LanguageModel, ModelConfig
from naseval.training.recipe import (
    MAX_ROLLBACKS,
    Rollback,
    TrainConfig,
    averaged_weights,
    evaluate,
    fit,
    lr_factor,
    perplexity,
    sequence_length,
    train_cell_reference,
)

SMALL_MODEL = ModelConfig(hidden_size=16, dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1, dropoute=0.0)
# 6 epochs: from DARTS's init (+-0.04) the toy model sits on the unigram plateau (ppl 21.4) for 3
# epochs, then learns the pattern (9.8, 3.2, 1.9; measured).
SMALL_TRAIN = TrainConfig(epochs=6, batch_size=8, eval_batch_size=8, bptt=10, lr=5.0)
GENOTYPE = (("tanh", 0), ("relu", 1))


def test_training_learns_a_repeating_sequence(tiny_corpus):
    result = train_cell_reference(GENOTYPE, tiny_corpus, 2, SMALL_MODEL, SMALL_TRAIN, seed=0, show_progress=False)
    assert result.valid_ppl < 8  # the uniform model has 22; the pattern is almost deterministic
    assert result.test_ppl < 8
    assert result.valid_ppl == min(h["valid_ppl"] for h in result.history)
    assert len(result.history) == 6


def test_same_seed_same_result_other_seed_other_result(tiny_corpus):
    config = TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10)
    def run(seed):
        return train_cell_reference(GENOTYPE, tiny_corpus, 2, SMALL_MODEL, config, seed, show_progress=False)
    first, again, other = run(3), run(3), run(4)
    assert first.test_ppl == again.test_ppl and first.valid_ppl == again.valid_ppl
    assert first.test_ppl != other.test_ppl


def test_nan_loss_raises_a_clear_error(tiny_corpus):
    model = LanguageModel(22, 2, SMALL_MODEL)
    with torch.no_grad():
        model.cell.W0.fill_(float("nan"))
    data = batchify(tiny_corpus.splits["train"], 8, torch.device("cpu"))
    with pytest.raises(TrainingDiverged, match="training diverged: loss nan"):
        fit(model, data, SMALL_TRAIN, np.random.default_rng(0), lambda step: GENOTYPE, lambda: 0.0,
            show_progress=False)


def nan_loss_when(model: LanguageModel, when) -> None:
    """Make `model.loss` return a NaN loss while training whenever `when()` says so, as a
    divergence would."""
    real = model.loss

    def loss(*args):
        value, hidden, raw = real(*args)
        return (value * math.nan if model.training and when() else value), hidden, raw

    model.loss = loss


def test_a_nan_loss_rolls_back_to_the_best_epoch_and_training_goes_on(tiny_corpus, monkeypatch):
    torch.manual_seed(0)
    model = LanguageModel(22, 2, SMALL_MODEL)
    data = batchify(tiny_corpus.splits["train"], 8, torch.device("cpu"))
    valid = batchify(tiny_corpus.splits["valid"], 8, torch.device("cpu"))
    validated = []

    def once_in_epoch_3() -> bool:
        if len(validated) == 2:
            validated.append("nan")
            return True
        return False

    nan_loss_when(model, once_in_epoch_3)
    restored = []
    real_call = Rollback.__call__

    def spy(self, model, reason):
        optimizer = real_call(self, model, reason)
        restored.append((reason, all(torch.equal(v, self.best[0][k]) for k, v in model.state_dict().items())))
        return optimizer

    monkeypatch.setattr(Rollback, "__call__", spy)
    config = TrainConfig(epochs=5, batch_size=8, eval_batch_size=8, bptt=10, lr=5.0, sequence_length="fixed")
    result = fit(model, data, config, np.random.default_rng(0), lambda step: GENOTYPE,
                 lambda: validated.append("epoch") or evaluate(model, valid, GENOTYPE, 10), show_progress=False)
    assert len(restored) == 1 and restored[0][0].startswith("training diverged: loss nan at row") and restored[0][1]
    assert [row["rollbacks"] for row in result.history] == [0, 0, 1, 1, 1]
    assert math.isfinite(result.best_valid_ppl) and len(result.history) == 5


def test_a_nan_loss_fails_the_run_under_nan_policy_fail_or_before_any_best_epoch(tiny_corpus):
    data = batchify(tiny_corpus.splits["train"], 8, torch.device("cpu"))
    for policy, after_epochs in (("fail", 1), ("rollback", 0)):
        model = LanguageModel(22, 2, SMALL_MODEL)
        validated = []
        nan_loss_when(model, lambda: len(validated) >= after_epochs)  # noqa: B023
        config = TrainConfig(epochs=3, batch_size=8, eval_batch_size=8, bptt=10, lr=5.0, nan_policy=policy)
        with pytest.raises(TrainingDiverged, match="training diverged: loss nan at row"):
            fit(model, data, config, np.random.default_rng(0), lambda step: GENOTYPE,
                lambda: validated.append(1) or 3.0, show_progress=False)  # noqa: B023
    model = LanguageModel(22, 2, SMALL_MODEL)
    validated = []
    nan_loss_when(model, lambda: len(validated) >= 1)  # every step from the second epoch on
    config = TrainConfig(epochs=3, batch_size=8, eval_batch_size=8, bptt=10, lr=5.0)
    with pytest.raises(TrainingDiverged, match=f"after {MAX_ROLLBACKS} rollbacks"):
        fit(model, data, config, np.random.default_rng(0), lambda step: GENOTYPE,
            lambda: validated.append(1) or 3.0, show_progress=False)


def test_switches_to_averaged_sgd_when_validation_stalls(tiny_corpus):
    model = LanguageModel(22, 2, SMALL_MODEL)
    data = batchify(tiny_corpus.splits["train"][:400], 8, torch.device("cpu"))
    # After epoch 5, 4.7 is worse than the best (4.0) of all but the last 2 epochs: switch.
    stalled = iter([5.0, 4.0, 4.5, 4.6, 4.7, 4.8])
    config = TrainConfig(epochs=6, batch_size=8, bptt=10, nonmono=2)
    result = fit(model, data, config, np.random.default_rng(0), lambda step: GENOTYPE, lambda: next(stalled),
                 show_progress=False)
    assert [h["averaged"] for h in result.history] == [False] * 5 + [True]
    assert result.best_valid_ppl == pytest.approx(math.exp(4.0))


def test_averaged_weights_are_swapped_in_and_back():
    param = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = torch.optim.ASGD([param], lr=0.5, t0=0, lambd=0.0)
    for _ in range(3):
        optimizer.zero_grad()
        (param * 1.0).sum().backward()
        optimizer.step()
    # iterates 0.5, 0.0, -0.5; torch's ASGD averages from its second step on: (0.0 - 0.5) / 2
    with averaged_weights(optimizer):
        assert param.item() == pytest.approx(-0.25)
    assert param.item() == pytest.approx(-0.5)


def test_sequence_length_jitter_stays_in_bounds():
    rng = np.random.default_rng(0)
    config = TrainConfig(bptt=35, max_seq_len_delta=20)
    lengths = [sequence_length(config, rng) for _ in range(5000)]
    assert min(lengths) >= 5 and max(lengths) <= 55
    assert 33 < np.median(lengths) < 37
    assert np.mean(np.array(lengths) < 25) > 0.03  # the half-length draws


def test_fixed_sequence_length_is_bptt_or_half_of_it_as_the_search_scripts():
    rng = np.random.default_rng(0)
    lengths = [sequence_length(TrainConfig(bptt=35, sequence_length="fixed"), rng) for _ in range(5000)]
    assert set(lengths) == {35, 17}
    assert 0.03 < lengths.count(17) / len(lengths) < 0.07


def test_the_test_split_is_batched_at_test_batch_size(tiny_corpus):
    from naseval.training.recipe import build_model_and_data

    config = TrainConfig(batch_size=8, eval_batch_size=4, test_batch_size=1)
    _, (train, valid, test) = build_model_and_data(tiny_corpus, 2, ModelConfig(hidden_size=8), config)
    assert (train.size(1), valid.size(1), test.size(1)) == (8, 4, 1)
    assert test.numel() == len(tiny_corpus.splits["test"])  # one sequence: no token dropped


def test_evaluate_is_deterministic_and_ignores_dropout(tiny_corpus):
    torch.manual_seed(0)
    model = LanguageModel(22, 2, ModelConfig(hidden_size=8))
    data = batchify(tiny_corpus.splits["valid"], 4, torch.device("cpu"))
    assert evaluate(model, data, GENOTYPE, 10) == evaluate(model, data, GENOTYPE, 10)
    assert evaluate(model, data, GENOTYPE, 10) == pytest.approx(math.log(22), rel=0.05)


def test_a_nan_loss_is_an_infinite_perplexity_so_that_the_cell_ranks_last():
    assert perplexity(float("nan")) == float("inf")
    assert perplexity(1e6) == pytest.approx(math.exp(700.0))
    assert sorted([perplexity(float("nan")), perplexity(1.0)])[0] == pytest.approx(math.e)


@pytest.mark.parametrize("valid_losses, diverged", [
    ([math.log(5000.0), math.log(2199.0)], None),  # a spike that comes back is not a divergence
    ([math.log(2201.0), math.log(2300.0)],
     "validation perplexity never below 2201 (a uniform guess over 22 words scores 22)"),
    ([math.log(30.0), float("inf")], "validation loss inf at epoch 2"),
    ([float("nan"), math.log(30.0)], "validation loss nan at epoch 1"),
])
def test_validation_nan_or_never_near_a_uniform_guess_is_a_diverged_run(tiny_corpus, valid_losses, diverged):
    model = LanguageModel(22, 2, SMALL_MODEL)  # uniform over 22 words: ppl 22; the bound is 2200
    data = batchify(tiny_corpus.splits["train"], 8, torch.device("cpu"))
    train = TrainConfig(epochs=2, batch_size=8, eval_batch_size=8, bptt=10)
    losses = iter(valid_losses)

    def run():
        return fit(model, data, train, np.random.default_rng(0), lambda step: GENOTYPE, lambda: next(losses),
                   show_progress=False)

    if diverged:
        with pytest.raises(TrainingDiverged, match=re.escape(f"training diverged: {diverged}")):
            run()
    else:
        assert run().best_valid_ppl == pytest.approx(2199.0)


def test_deterministic_mode_runs_and_changes_nothing_on_the_cpu(tiny_corpus, monkeypatch):
    config = TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10)
    plain = train_cell_reference(GENOTYPE, tiny_corpus, 2, SMALL_MODEL, config, 3, show_progress=False)
    monkeypatch.setenv("NASEVAL_DETERMINISTIC", "1")
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # so that the test leaves the environment as it was
    try:
        strict = train_cell_reference(GENOTYPE, tiny_corpus, 2, SMALL_MODEL, config, 3, show_progress=False)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    assert (strict.valid_ppl, strict.test_ppl) == (plain.valid_ppl, plain.test_ppl)


def test_the_learning_rate_schedule_and_warm_up():
    constant = TrainConfig(epochs=4)
    assert [lr_factor(constant, epoch, row, 100, 10) for epoch, row in [(1, 0), (2, 50), (4, 90)]] == [1.0] * 3
    cosine = TrainConfig(epochs=4, lr_schedule="cosine", warmup_epochs=1.0)
    assert lr_factor(cosine, 1, 0, 100, 10) == pytest.approx(0.1)  # warm-up: the step ends a tenth in
    assert lr_factor(cosine, 1, 50, 100, 10) == pytest.approx(0.6 * (1 + math.cos(math.pi * 0.5 / 4)) / 2)
    assert lr_factor(cosine, 3, 0, 100, 10) == pytest.approx(0.5)  # half way: half the rate
    assert lr_factor(cosine, 4, 99, 100, 10) < 0.001
    with pytest.raises(NasevalError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(NasevalError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=3)
