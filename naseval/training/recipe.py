"""Training and evaluation with the AWD-LSTM / DARTS recipe.

SGD with the learning rate scaled by the sequence length, switching to averaged SGD (NT-ASGD)
when validation has not improved on the best of all but the last `nonmono` epochs; gradient
clipping, weight decay, variable-length BPTT and temporal activation regularization (TAR).
The same loop trains a fixed cell (one genotype) and a weight-sharing supernet (a cell drawn
or an architecture step taken per minibatch), so `choose_arch`, `validate` and `after_epoch`
are arguments.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from naseval.core import preemption
from naseval.core.data import SPLITS, Corpus, batchify, get_batch
from naseval.core.errors import TrainingDiverged
from naseval.core.params import require
from naseval.core.preemption import CheckpointTimer
from naseval.core.runtime import DEVICES, resolve_device, seed_everything
from naseval.core.space import Genotype, format_genotype
from naseval.nn.model import PRECISIONS, LanguageModel, ModelConfig
from naseval.training.checkpoint import Checkpoint, random_states, restore_random_states

log = logging.getLogger("naseval")


IMPLEMENTATIONS = ("fast", "reference")
NAN_POLICIES = ("rollback", "fail")
MAX_ROLLBACKS = 10  # a cell that diverges more often fails: the original retries without end
SEQUENCE_LENGTHS = ("jittered", "fixed")
LR_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """params.yaml `train`: the from-scratch recipe (DARTS rnn/train.py defaults, scaled down)."""

    epochs: int = 3
    batch_size: int = 64
    eval_batch_size: int = 10
    test_batch_size: int = 1  # DARTS rnn/train.py scores the test set one sequence at a time
    bptt: int = 35
    # jittered: AWD-LSTM's, as DARTS rnn/train.py; fixed: bptt, or half of it one time in twenty,
    # as the DARTS and NAO search scripts (see `sequence_length`)
    sequence_length: str = "jittered"
    max_seq_len_delta: int = 20  # jittered only: read by nothing under fixed
    lr: float = 20.0
    # constant: the originals' (AWD-LSTM, DARTS); cosine: decays to 0 over the run, a naseval
    # switch that settles a short run's final weights (docs/reliability.md)
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0  # linear warm-up from 0 over these epochs; the originals have none
    weight_decay: float = 8e-7
    clip: float = 0.25
    nonmono: int = 5
    tar: float = 1e-3  # beta: weight of the temporal activation regularization
    device: str = "cpu"
    # CPU threads of one training process. Part of the recipe, not a resource knob: the order in
    # which parallel kernels sum floats depends on it, and at this budget that order is a seed.
    threads: int = 1
    implementation: str = "fast"  # or "reference": logits then cross-entropy, one cell at a time
    precision: str = "fp32"  # or "bf16": autocast, fp32 master weights
    # rollback: a non-finite training loss returns the cell to its best epoch's weights and optimizer
    # state, and training goes on (DARTS rnn/train.py:216-217,253-266); fail: the run fails at once
    nan_policy: str = "rollback"

    def __post_init__(self) -> None:
        require(self.implementation in IMPLEMENTATIONS, "implementation", self.implementation,
                f"one of {', '.join(IMPLEMENTATIONS)}")
        require(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        require(self.sequence_length in SEQUENCE_LENGTHS, "sequence_length", self.sequence_length,
                f"one of {', '.join(SEQUENCE_LENGTHS)}")
        require(self.nan_policy in NAN_POLICIES, "nan_policy", self.nan_policy, f"one of {', '.join(NAN_POLICIES)}")
        require(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, f"one of {', '.join(LR_SCHEDULES)}")
        require(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", self.warmup_epochs,
                f"a number from 0 to epochs ({self.epochs})")
        for key in ("epochs", "batch_size", "eval_batch_size", "test_batch_size", "bptt", "nonmono", "threads"):
            value = getattr(self, key)
            require(value >= 1, key, value, "an integer >= 1")
        require(self.max_seq_len_delta >= 0, "max_seq_len_delta", self.max_seq_len_delta, "an integer >= 0")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.clip > 0, "clip", self.clip, "a number > 0")
        for key in ("weight_decay", "tar"):
            require(getattr(self, key) >= 0, key, getattr(self, key), "a number >= 0")
        # only the name here: a profile for a GPU must load (and be checked) on a CPU machine
        require(self.device in DEVICES, "device", self.device, f"one of {', '.join(DEVICES)}")


def perplexity(loss: float) -> float:
    """exp(loss), capped below the float overflow at ~709; a NaN loss (a cell that blows up under
    shared weights) is infinitely bad, so that it ranks last instead of anywhere."""
    return math.inf if math.isnan(loss) else math.exp(min(loss, 700.0))


@torch.no_grad()
def evaluate(model: LanguageModel, data: torch.Tensor, arch: Any, bptt: int) -> float:
    """Mean cross-entropy per token of the cell `arch` (a genotype, or what the model's cell takes)
    on batchified `data` (rows, batch)."""
    model.eval()
    hidden = model.init_hidden(data.size(1))
    total, count = 0.0, 0
    for start in range(0, data.size(0) - 1, bptt):
        x, y = get_batch(data, start, bptt)
        loss, hidden, _ = model.loss(x, y, hidden, arch)
        total += loss.item() * y.numel()
        count += y.numel()
    return total / count


@contextmanager
def averaged_weights(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Under ASGD, swap in the averaged parameters for the duration (AWD-LSTM evaluates those)."""
    if not isinstance(optimizer, torch.optim.ASGD):
        yield
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p in optimizer.state]
    saved = [p.detach().clone() for p in params]
    for p in params:
        p.data.copy_(optimizer.state[p]["ax"])
    try:
        yield
    finally:
        for p, original in zip(params, saved, strict=True):
            p.data.copy_(original)


def sequence_length(config: TrainConfig, rng: np.random.Generator) -> int:
    """The next minibatch's length: `bptt`, 5% of the time half of it; jittered, AWD-LSTM's draw
    around that, N(length, 5) within [5, bptt + max_seq_len_delta]."""
    bptt = config.bptt if rng.random() < 0.95 else config.bptt / 2
    if config.sequence_length == "fixed":
        return int(bptt)
    return min(max(5, int(rng.normal(bptt, 5))), config.bptt + config.max_seq_len_delta)


def lr_factor(config: TrainConfig, epoch: int, row: int, rows: int, seq_len: int) -> float:
    """The schedule's multiple of `config.lr` for the step that reads rows `row` to `row + seq_len`
    of an epoch of `rows`; 1 throughout for the originals' constant rate without warm-up."""
    done = epoch - 1 + row / rows  # epochs of training before this step
    factor = (1 + math.cos(math.pi * done / config.epochs)) / 2 if config.lr_schedule == "cosine" else 1.0
    if done < config.warmup_epochs:
        factor *= min(1.0, (done + seq_len / rows) / config.warmup_epochs)
    return factor


@dataclass(frozen=True)
class Step:
    """What a policy sees before each weight update: the minibatch, its state and the step's lr."""

    inputs: torch.Tensor  # (T, B)
    targets: torch.Tensor  # (T, B)
    hidden: torch.Tensor  # (B, H), detached
    lr: float
    epochs_done: float = 0.0  # training before this step, in epochs (a schedule's clock)


ChooseArch = Callable[[Step], Any]  # -> what the model's cell takes: a genotype, mixing weights
# What a step minimizes: (model, step, what choose_arch returned) -> (loss, next hidden, cell outputs
# for the activation regularizer). By default the chosen cell's loss on the minibatch; an evaluator
# may train several cells at once (fair sampling) or add a regularizer (landmarks).
Objective = Callable[[LanguageModel, Step, Any], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def cell_loss(model: LanguageModel, step: Step, arch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The default objective: the chosen cell's mean cross-entropy on the step's minibatch."""
    return model.loss(step.inputs, step.targets, step.hidden, arch)


def train_epoch(model, data, optimizer, config, rng, choose_arch: ChooseArch, progress, epoch: int = 1,
                rollback: Rollback | None = None,
                objective: Objective = cell_loss) -> tuple[float, torch.optim.Optimizer]:
    """One pass over `data` (rows, batch), the `epoch`-th; the mean training loss per token, and
    the optimizer to go on with (another one after a rollback, which skips the step that diverged
    and starts the recurrent state anew)."""
    model.train()
    hidden = model.init_hidden(data.size(1))
    base_lr = optimizer.param_groups[0]["lr"]
    total, count, start = 0.0, 0, 0
    while start < data.size(0) - 2:
        seq_len = sequence_length(config, rng)
        lr = base_lr * lr_factor(config, epoch, start, data.size(0), seq_len) * seq_len / config.bptt
        optimizer.param_groups[0]["lr"] = lr
        x, y = get_batch(data, start, seq_len)
        hidden = hidden.detach()
        step = Step(x, y, hidden, lr, epoch - 1 + start / data.size(0))
        loss, hidden, raw = objective(model, step, choose_arch(step))
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            reason = f"training diverged: loss {loss_value} at row {start}"
            if rollback is None:
                raise TrainingDiverged(reason)
            optimizer = rollback(model, reason)
            hidden, start = model.init_hidden(data.size(1)), start + x.size(0)
            progress.update(y.numel())
            continue
        tar = config.tar * (raw[1:] - raw[:-1]).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        (loss + tar).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        total += loss_value * y.numel()
        count += y.numel()
        start += x.size(0)
        progress.update(y.numel())
    optimizer.param_groups[0]["lr"] = base_lr
    return total / max(count, 1), optimizer


class Rollback:
    """DARTS rnn/train.py's answer to a NaN loss (:216-217, 253-266): the model and the optimizer
    go back to the checkpoint of the best validation so far and training goes on. Unlike the
    original, the epoch count does not rewind to the best epoch (a batch of cells shares its
    epochs), and a cell fails after MAX_ROLLBACKS; with no best epoch yet, or under `nan_policy:
    fail`, the run fails."""

    def __init__(self, config: TrainConfig):
        self.config, self.count = config, 0
        self.best: tuple[dict, dict, bool] | None = None  # model state, optimizer state, averaging

    def remember(self, best_state: dict, optimizer: torch.optim.Optimizer) -> None:
        """The best epoch's weights (as validated) and its optimizer's state."""
        if self.config.nan_policy == "rollback":
            self.best = best_state, copy.deepcopy(optimizer.state_dict()), isinstance(optimizer, torch.optim.ASGD)

    def __call__(self, model: LanguageModel, reason: str) -> torch.optim.Optimizer:
        if self.best is None:
            raise TrainingDiverged(reason)
        if self.count == MAX_ROLLBACKS:
            raise TrainingDiverged(f"{reason}, after {MAX_ROLLBACKS} rollbacks")
        state, optimizer_state, averaging = self.best
        model.load_state_dict(state)
        optimizer = asgd(model, self.config) if averaging else sgd(model, self.config)
        optimizer.load_state_dict(copy.deepcopy(optimizer_state))  # kept whole for a later rollback
        self.count += 1
        log.warning("%s: rolled back to the best epoch's state (rollback %d)", reason, self.count)
        return optimizer

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "optimizer": None if self.best is None else self.best[1:]}

    def load_state_dict(self, state: dict[str, Any], best_state: dict | None) -> None:
        self.count = state["count"]
        self.best = None if state["optimizer"] is None else (best_state, *state["optimizer"])


@dataclass
class FitResult:
    best_valid_ppl: float
    best_state: dict
    history: list[dict]


def fit(
    model: LanguageModel,
    train_data: torch.Tensor,
    config: TrainConfig,
    rng: np.random.Generator,
    choose_arch: ChooseArch,
    validate: Callable[[], float],
    description: str = "train",
    show_progress: bool = True,
    after_epoch: Callable[[int], dict[str, Any]] | None = None,
    checkpoint: Checkpoint | None = None,
    objective: Objective = cell_loss,
) -> FitResult:
    """Train for `config.epochs`, keeping the state with the best validation perplexity.

    `after_epoch(epoch)` finishes each epoch's training before its validation (ENAS trains its
    controller there) and returns columns to add to that epoch's history row. Like validation,
    it sees the averaged weights once NT-ASGD has switched. With a `checkpoint`, an epoch ends by
    saving the whole state (every epoch, or as `preemption.CheckpointTimer` says), and a run that
    finds one continues from it; a stop request is answered at the next epoch's end. `objective`
    is what each step minimizes (`Objective`).
    """
    optimizer: torch.optim.Optimizer = sgd(model, config)
    best_ppl, best_state, history, valid_losses = math.inf, None, [], []
    rollback = Rollback(config)
    saved = checkpoint.load(next(model.parameters()).device) if checkpoint else None
    if saved:
        optimizer, best_ppl, best_state, history, valid_losses = resumed(saved, model, config, rng)
        rollback.load_state_dict(saved["rollback"], best_state)
        log.info("%s: resumed from %s after epoch %d", description, checkpoint.path, len(history))
    done = len(history)
    tokens_per_epoch = (train_data.size(0) - 1) * train_data.size(1)
    timer = CheckpointTimer()
    with preemption.listening(), tqdm(total=tokens_per_epoch * config.epochs, initial=tokens_per_epoch * done,
                                      desc=description, unit="tok", unit_scale=True, leave=False, mininterval=1.0,
                                      disable=not show_progress) as progress:
        for epoch in range(done + 1, config.epochs + 1):
            started = time.perf_counter()
            train_loss, optimizer = train_epoch(model, train_data, optimizer, config, rng, choose_arch, progress,
                                                epoch, rollback, objective)
            averaging = isinstance(optimizer, torch.optim.ASGD)
            with averaged_weights(optimizer):
                extra = after_epoch(epoch) if after_epoch else {}
                valid_loss = validate()
                check_not_diverged(valid_loss, epoch)
                if perplexity(valid_loss) < best_ppl:
                    best_ppl, best_state = perplexity(valid_loss), copy.deepcopy(model.state_dict())
                    rollback.remember(best_state, optimizer)
            if (not averaging and len(valid_losses) > config.nonmono
                    and valid_loss > min(valid_losses[: -config.nonmono])):
                optimizer = asgd(model, config)
            valid_losses.append(valid_loss)
            seconds = time.perf_counter() - started
            history.append({
                "epoch": epoch, "train_ppl": perplexity(train_loss), "valid_ppl": perplexity(valid_loss),
                "averaged": averaging, "rollbacks": rollback.count, "seconds": round(seconds, 3), **extra,
            })
            log.info("%s epoch %d: train ppl %.2f, valid ppl %.2f%s, %.0f tok/s", description, epoch,
                     perplexity(train_loss), perplexity(valid_loss), " (ASGD)" if averaging else "",
                     tokens_per_epoch / seconds)
            if checkpoint and timer.due(epoch_end=True):
                checkpoint.save({
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "averaging": isinstance(optimizer, torch.optim.ASGD), "best_ppl": best_ppl,
                    "best_state": best_state, "history": history, "valid_losses": valid_losses,
                    "rollback": rollback.state_dict(), "random": random_states(rng),
                })
                timer.saved(f"checkpoint saved at the end of epoch {epoch}")
    check_learned(best_ppl, model.decoder.out_features)
    return FitResult(best_ppl, best_state, history)


def resumed(saved: dict[str, Any], model: LanguageModel, config: TrainConfig, rng: np.random.Generator) -> tuple:
    """`fit`'s state as its checkpoint left it: optimizer, best ppl and state, history, valid losses."""
    model.load_state_dict(saved["model"])
    optimizer = asgd(model, config) if saved["averaging"] else sgd(model, config)
    optimizer.load_state_dict(saved["optimizer"])
    restore_random_states(saved["random"], rng)
    return optimizer, saved["best_ppl"], saved["best_state"], saved["history"], saved["valid_losses"]


DIVERGED_BEYOND_UNIFORM = 100.0  # a best validation perplexity this many times a uniform guess's: diverged


def check_not_diverged(valid_loss: float, epoch: int) -> None:
    if not math.isfinite(valid_loss):
        raise TrainingDiverged(f"training diverged: validation loss {valid_loss} at epoch {epoch}")


def unlearned(best_ppl: float, vocab_size: int) -> str | None:
    """Why a run whose best validation perplexity is a hundred times that of guessing uniformly
    over the vocabulary has diverged without a NaN, or None. Only the best epoch counts: at a high
    learning rate a spike of several hundred times uniform can come back (measured on the tests'
    toy corpus)."""
    if best_ppl > DIVERGED_BEYOND_UNIFORM * vocab_size:
        return (f"training diverged: validation perplexity never below {best_ppl:.4g} (a uniform guess over "
                f"{vocab_size} words scores {vocab_size})")
    return None


def check_learned(best_ppl: float, vocab_size: int) -> None:
    if reason := unlearned(best_ppl, vocab_size):
        raise TrainingDiverged(reason)


def sgd(model: LanguageModel, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def asgd(model: LanguageModel, config: TrainConfig) -> torch.optim.Optimizer:
    """NT-ASGD's averaging phase: plain SGD steps, averaged from the switch on (t0=0, lambd=0)."""
    return torch.optim.ASGD(model.parameters(), lr=config.lr, t0=0, lambd=0.0, weight_decay=config.weight_decay)


def build_model_and_data(
    corpus: Corpus, nodes: int, model_config: ModelConfig, config: TrainConfig, **cell_options
) -> tuple[LanguageModel, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A fresh model on the configured device, and train/valid/test batchified for `config`.

    `cell_options` go to LanguageModel: the cell's class, output rule, weight sharing.
    """
    device = resolve_device(config.device)
    torch.set_num_threads(config.threads)
    model = LanguageModel(len(corpus.vocabulary), nodes, model_config, fused_loss=config.implementation == "fast",
                          precision=config.precision, **cell_options).to(device)
    batch_sizes = (config.batch_size, config.eval_batch_size, config.test_batch_size)
    data = tuple(batchify(corpus.splits[s], b, device) for s, b in zip(SPLITS, batch_sizes, strict=True))
    return model, data


@dataclass
class CellResult:
    genotype: str
    valid_ppl: float
    test_ppl: float
    history: list[dict]
    best_state: dict  # the state dict with the best validation perplexity


def train_cell_reference(
    genotype: Genotype,
    corpus: Corpus,
    nodes: int,
    model_config: ModelConfig,
    config: TrainConfig,
    seed: int,
    description: str = "train",
    show_progress: bool = True,
    cell_output: str = "mean",
    checkpoint: Checkpoint | None = None,
) -> CellResult:
    """Train one cell from scratch and report the best-validation model's valid and test ppl.

    `cell_output` must be the rule the cell was searched with (ENAS: the loose ends' mean).
    """
    rng = seed_everything(seed)
    model, (train_data, valid_data, test_data) = build_model_and_data(corpus, nodes, model_config, config,
                                                                      output=cell_output)
    result = fit(model, train_data, config, rng, lambda step: genotype,
                 lambda: evaluate(model, valid_data, genotype, config.bptt), description, show_progress,
                 checkpoint=checkpoint)
    model.load_state_dict(result.best_state)
    return CellResult(
        genotype=format_genotype(genotype),
        valid_ppl=result.best_valid_ppl,
        test_ppl=perplexity(evaluate(model, test_data, genotype, config.bptt)),
        history=result.history,
        best_state=result.best_state,
    )
