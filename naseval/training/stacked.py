"""Training A cells from scratch at once: `recipe.train_cell_reference`'s recipe with every decision per cell.

Each cell gets what it would get alone with the same seed: the same initial weights, dropout
masks and sequence lengths; its own gradient clipping, switch to averaged SGD, best state,
divergence check, rollback and history. A cell whose training loss is not finite rolls back to
its best epoch (`recipe.Rollback`); one that cannot, or whose validation diverges, leaves the
batch; the others go on unchanged.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from naseval.core import preemption
from naseval.core.data import Corpus, get_batch
from naseval.core.errors import TrainingDiverged
from naseval.core.preemption import CheckpointTimer
from naseval.core.runtime import seed_everything
from naseval.core.space import Genotype, format_genotype
from naseval.nn.model import ModelConfig
from naseval.nn.stacked import StackedLanguageModel, evaluate_stacked
from naseval.training.checkpoint import Checkpoint, random_states, restore_random_states
from naseval.training.recipe import (
    MAX_ROLLBACKS,
    CellResult,
    TrainConfig,
    build_model_and_data,
    lr_factor,
    perplexity,
    sequence_length,
    unlearned,
)

log = logging.getLogger("naseval")


def per_cell(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(A,) -> (A, 1, ..., 1), to scale each cell's slice of `like`."""
    return values.view(-1, *[1] * (like.dim() - 1))


class StackedNTASGD:
    """SGD, then averaged SGD from each cell's own switch on, for parameters with a leading cell
    dimension. Step for step it is torch's SGD and ASGD (t0=0, lambd=0) as `recipe.fit` uses
    them, including ASGD's quirks: its step uses the learning rate of the step before, and its
    average starts at the second step."""

    def __init__(self, params: Sequence[torch.nn.Parameter], weight_decay: float, count: int):
        self.params, self.weight_decay = list(params), weight_decay
        device = self.params[0].device
        self.averaging = torch.zeros(count, dtype=torch.bool, device=device)
        self.steps = torch.zeros(count, device=device)  # ASGD steps since the switch
        self.eta = torch.full((count,), math.nan, device=device)  # ASGD's stored learning rate
        self.averages = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        fresh = self.averaging & self.eta.isnan()
        self.eta[fresh] = lr
        eta = torch.where(self.averaging, self.eta, lr)
        self.steps += self.averaging
        # ASGD's mu: 1 for its first two steps (a copy), then 1 / (steps - 1)
        mu = torch.where(self.steps <= 2, 1.0, 1.0 / (self.steps - 1).clamp(min=1)) * self.averaging
        averaging = bool(self.averaging.any())  # until some cell switches, no average to keep
        for p, average in zip(self.params, self.averages, strict=True):
            p.sub_(per_cell(eta, p) * p.grad.add(p, alpha=self.weight_decay))
            if averaging:
                copy = per_cell(self.averaging & (self.steps <= 2), p)
                average.copy_(torch.where(copy, p, average + (p - average) * per_cell(mu, p)))
        self.eta[self.averaging] = lr

    def start_averaging(self, cells: torch.Tensor) -> None:
        self.averaging |= cells

    @contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The averaged parameters of the cells that average, for the duration (as `recipe.averaged_weights`)."""
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, average in zip(self.params, self.averages, strict=True):
                p.copy_(torch.where(per_cell(self.averaging, p), average, p))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, original in zip(self.params, saved, strict=True):
                    p.copy_(original)

    def snapshot(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each cell's switch, step count and stored rate: with its weights, its whole state."""
        return self.averaging.clone(), self.steps.clone(), self.eta.clone()

    def restore(self, cells: torch.Tensor, snapshot: tuple[torch.Tensor, ...], weights: Sequence[torch.Tensor]) -> None:
        """`cells` back to `snapshot`'s scalars, with `weights` (their best, validated weights: the
        averages where they averaged) as both their parameters and their averages, as a DARTS
        rollback reloads the averaged model and ASGD's `ax` saved together."""
        for mine, saved in zip((self.averaging, self.steps, self.eta), snapshot, strict=True):
            mine[cells] = saved[cells]
        with torch.no_grad():
            for p, average, best in zip(self.params, self.averages, weights, strict=True):
                p[cells] = best[cells]
                average[cells] = best[cells]

    def keep(self, index: torch.Tensor, params: Sequence[torch.nn.Parameter]) -> None:
        """Keep the cells at `index`, whose parameters are now `params`."""
        self.params = list(params)
        self.averaging, self.steps, self.eta = (t[index] for t in (self.averaging, self.steps, self.eta))
        self.averages = [a[index] for a in self.averages]

    def state_dict(self) -> dict[str, Any]:
        """Its state; the averages only once some cell averages: until then they are a copy of
        nothing a step reads (a checkpoint's largest part at paper scale, with the weights)."""
        averages = self.averages if bool(self.averaging.any()) else None
        return {"averaging": self.averaging, "steps": self.steps, "eta": self.eta, "averages": averages}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaging, self.steps, self.eta = state["averaging"], state["steps"], state["eta"]
        self.averages = state["averages"] or [p.detach().clone() for p in self.params]


def clip_per_cell(params: Sequence[torch.nn.Parameter], max_norm: float) -> None:
    """`clip_grad_norm_` for each cell's gradients on its own."""
    norms = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in params]).sum(0).sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(per_cell(scale, p.grad))


@dataclass
class CellOutcome:
    genotype: str
    valid_ppl: float | None
    test_ppl: float | None
    history: list[dict]
    failure: str | None = None  # why the cell diverged; None when it trained
    best_state: dict[str, torch.Tensor] | None = None  # as `LanguageModel.state_dict()`; None when it failed


class StackedTraining:
    """The cells still training: the model, its optimizer, and each cell's bookkeeping."""

    def __init__(self, model: StackedLanguageModel, config: TrainConfig):
        count = len(model.genotypes)
        self.model, self.config = model, config
        self.optimizer = StackedNTASGD(list(model.parameters()), config.weight_decay, count)
        self.positions = list(range(count))  # each cell's index in the caller's list
        self.best_ppl = [math.inf] * count
        self.best_state = [p.detach().clone() for p in model.parameters()]
        self.best_optimizer = self.optimizer.snapshot()  # each cell's, at its best epoch
        self.rollbacks = [0] * count
        self.histories: list[list[dict]] = [[] for _ in range(count)]
        self.valid_losses: list[list[float]] = [[] for _ in range(count)]
        self.failures: dict[int, tuple[str, list[dict]]] = {}  # caller's index -> reason, history

    def fail(self, reasons: dict[int, str]) -> list[int]:
        """Drop the cells at batch positions `reasons`' keys, recording why; the positions kept."""
        if not reasons:
            return list(range(len(self.positions)))
        for a, reason in reasons.items():
            self.failures[self.positions[a]] = (reason, self.histories[a])
        keep = [a for a in range(len(self.positions)) if a not in reasons]
        index = torch.tensor(keep, dtype=torch.long, device=self.best_state[0].device)
        self.model.keep(keep)
        self.optimizer.keep(index, list(self.model.parameters()))
        self.best_state = [b[index] for b in self.best_state]
        self.best_optimizer = tuple(t[index] for t in self.best_optimizer)
        for name in ("positions", "best_ppl", "rollbacks", "histories", "valid_losses"):
            setattr(self, name, [getattr(self, name)[a] for a in keep])
        return keep

    def roll_back(self, reasons: dict[int, str]) -> dict[int, str]:
        """Count a rollback for each cell at batch positions `reasons`' keys where policy and its
        history allow one (train_epoch restores them after the step); the reasons of those that
        cannot, which must fail."""
        if self.config.nan_policy == "fail":
            return reasons
        back = [a for a in reasons if math.isfinite(self.best_ppl[a]) and self.rollbacks[a] < MAX_ROLLBACKS]
        for a in back:
            self.rollbacks[a] += 1
            log.warning("cell %d: %s: rolled back to its best epoch (rollback %d)", self.positions[a], reasons[a],
                        self.rollbacks[a])
        return {a: reason if self.rollbacks[a] < MAX_ROLLBACKS else f"{reason}, after {MAX_ROLLBACKS} rollbacks"
                for a, reason in reasons.items() if a not in back}

    def train_epoch(self, data: torch.Tensor, rng: np.random.Generator, progress: tqdm, epoch: int,
                    within: dict[str, Any] | None = None,
                    safe_point: Callable[[dict[str, Any]], None] | None = None) -> list[float]:
        """One pass over `data`, the `epoch`-th; each surviving cell's mean training loss per token.
        `within`: where a checkpoint taken inside this epoch left it. `safe_point(within)` is
        called after every step with what a checkpoint must keep to continue from there."""
        model, config = self.model, self.config
        model.train()
        if within:
            start, count, hidden = within["start"], within["count"], within["hidden"]
            totals = within["totals"].cpu()  # kept on the CPU (below); the checkpoint came back on the device
        else:
            hidden = model.init_hidden(data.size(1))
            totals, count, start = torch.zeros(len(self.positions), dtype=torch.float64), 0, 0
        while start < data.size(0) - 2 and self.positions:
            seq_len = sequence_length(config, rng)
            x, y = get_batch(data, start, seq_len)
            losses, hidden, raw = model(x, y, hidden.detach())
            tar = config.tar * (raw[:, 1:] - raw[:, :-1]).pow(2).flatten(1).mean(1)
            model.zero_grad(set_to_none=True)
            (losses + tar).sum().backward()
            diverged = {a: f"training diverged: loss {loss} at row {start}"
                        for a, loss in enumerate(losses.tolist()) if not math.isfinite(loss)}
            failing = self.roll_back(diverged) if diverged else {}
            if failing:
                keep = self.fail(failing)
                losses, hidden, totals = losses[keep], hidden[keep], totals[keep]
                if not self.positions:
                    break
            clip_per_cell(list(model.parameters()), config.clip)
            lr = config.lr * lr_factor(config, epoch, start, data.size(0), seq_len)
            self.optimizer.step(lr * seq_len / config.bptt)
            finite = torch.isfinite(losses)
            if not finite.all():  # rolled back: the step their NaN took is undone, the state starts anew
                rolled = (~finite).nonzero().flatten()
                self.optimizer.restore(rolled, self.best_optimizer, self.best_state)
                hidden = hidden.detach().index_fill(0, rolled, 0.0)
            totals += losses.detach().double().cpu().nan_to_num(0.0, 0.0, 0.0) * y.numel()
            count += y.numel()
            start += x.size(0)
            progress.update(y.numel() * len(self.positions))
            if safe_point and start < data.size(0) - 2:
                safe_point({"start": start, "count": count, "totals": totals, "hidden": hidden.detach()})
        return (totals / max(count, 1)).tolist()

    def end_epoch(self, epoch: int, train_losses: list[float], valid_data: torch.Tensor, seconds: float) -> None:
        """Validate (averaged weights where a cell averages), keep best states, record, switch."""
        config = self.config
        averaging = self.optimizer.averaging.tolist()
        with self.optimizer.averaged_weights():
            valid = evaluate_stacked(self.model, valid_data, config.bptt).tolist()
            improved = [a for a, loss in enumerate(valid) if perplexity(loss) < self.best_ppl[a]]
            for a in improved:
                self.best_ppl[a] = perplexity(valid[a])
            index = torch.tensor(improved, dtype=torch.long, device=self.best_state[0].device)
            for best, p in zip(self.best_state, self.model.parameters(), strict=True):
                best[index] = p.detach()[index]
            for best, now in zip(self.best_optimizer, self.optimizer.snapshot(), strict=True):
                best[index] = now[index]
        switch = torch.zeros_like(self.optimizer.averaging)
        for a, loss in enumerate(valid):
            losses = self.valid_losses[a]
            if not averaging[a] and len(losses) > config.nonmono and loss > min(losses[: -config.nonmono]):
                switch[a] = True
            losses.append(loss)
            self.histories[a].append({"epoch": epoch, "train_ppl": perplexity(train_losses[a]),
                                      "valid_ppl": perplexity(loss), "averaged": averaging[a],
                                      "rollbacks": self.rollbacks[a], "seconds": round(seconds, 3)})
        self.optimizer.start_averaging(switch)
        diverged = {a: f"training diverged: validation loss {loss} at epoch {epoch}"
                    for a, loss in enumerate(valid) if not math.isfinite(loss)}
        if diverged:
            self.fail(diverged)

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in
                ("positions", "best_ppl", "best_state", "best_optimizer", "rollbacks", "histories", "valid_losses",
                 "failures")} | {
            "model": [p.detach() for p in self.model.parameters()], "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.keep(state["positions"])
        with torch.no_grad():
            for p, saved in zip(self.model.parameters(), state["model"], strict=True):
                p.copy_(saved)
        self.optimizer.params = list(self.model.parameters())
        self.optimizer.load_state_dict(state["optimizer"])
        for name in ("positions", "best_ppl", "best_state", "best_optimizer", "rollbacks", "histories", "valid_losses",
                     "failures"):
            setattr(self, name, state[name])


def train_cells_stacked(
    genotypes: Sequence[Genotype],
    corpus: Corpus,
    nodes: int,
    model_config: ModelConfig,
    config: TrainConfig,
    seed: int,
    description: str = "train",
    show_progress: bool = True,
    cell_output: str = "mean",
    checkpoint: Checkpoint | None = None,
) -> list[CellOutcome]:
    """Train every genotype from scratch with `seed`, all at once; one outcome per genotype, as
    `recipe.train_cell_reference` would report each (a diverged cell has a failure instead of an error)."""
    rng = seed_everything(seed)
    template, (train_data, valid_data, test_data) = build_model_and_data(
        corpus, nodes, model_config, config, output=cell_output)
    batch = StackedTraining(StackedLanguageModel(template, genotypes), config)
    saved = checkpoint.load(template.decoder.weight.device) if checkpoint else None
    if saved:
        batch.load_state_dict(saved["batch"])
        restore_random_states(saved["random"], rng)
        log.info("%s: resumed from %s after epoch %d%s", description, checkpoint.path, saved["epoch"],
                 f" and row {saved['within']['start']} of the next" if saved["within"] else "")
    done, within = (saved["epoch"], saved["within"]) if saved else (0, None)
    timer = CheckpointTimer()

    def save(epoch: int, position: dict[str, Any] | None) -> None:
        """Save after `epoch` epochs and, with a `position`, part of the next; stop if asked to."""
        checkpoint.save({"epoch": epoch, "within": position, "batch": batch.state_dict(), "random": random_states(rng)})
        where = f"epoch {epoch + 1}, row {position['start']}" if position else f"the end of epoch {epoch}"
        timer.saved(f"checkpoint saved at {where}")

    def save_if_due(epoch: int, position: dict[str, Any]) -> None:
        """A safe point within the `epoch`-th epoch."""
        if timer.due(epoch_end=False):
            save(epoch - 1, position)

    tokens_per_epoch = (train_data.size(0) - 1) * train_data.size(1)
    with preemption.listening(), tqdm(total=tokens_per_epoch * config.epochs * len(genotypes), desc=description,
                                      unit="tok", unit_scale=True, leave=False, mininterval=1.0,
                                      disable=not show_progress) as progress:
        for epoch in range(done + 1, config.epochs + 1):
            started = time.perf_counter()
            safe_point = functools.partial(save_if_due, epoch) if checkpoint else None
            train_losses = batch.train_epoch(train_data, rng, progress, epoch, within, safe_point)
            within = None
            if batch.positions:
                batch.end_epoch(epoch, train_losses, valid_data, time.perf_counter() - started)
            log.info("%s epoch %d: %d cells, %.0f tok/s", description, epoch, len(batch.positions),
                     tokens_per_epoch * len(batch.positions) / (time.perf_counter() - started))
            if checkpoint and timer.due(epoch_end=True):
                save(epoch, None)
    return outcomes(batch, genotypes, test_data, template.decoder.out_features)


def outcomes(batch: StackedTraining, genotypes: Sequence[Genotype], test_data: torch.Tensor,
             vocab_size: int) -> list[CellOutcome]:
    """Each genotype's result: the best state's valid and test ppl, or why it failed."""
    batch.fail({a: reason for a, ppl in enumerate(batch.best_ppl) if (reason := unlearned(ppl, vocab_size))})
    results = [None] * len(genotypes)
    if batch.positions:
        with torch.no_grad():
            for p, best in zip(batch.model.parameters(), batch.best_state, strict=True):
                p.copy_(best)
        test = evaluate_stacked(batch.model, test_data, batch.config.bptt).tolist()
        for a, i in enumerate(batch.positions):
            results[i] = CellOutcome(format_genotype(genotypes[i]), batch.best_ppl[a], perplexity(test[a]),
                                     batch.histories[a], best_state=language_model_state(batch.best_state, a))
    for i, (reason, history) in batch.failures.items():
        results[i] = CellOutcome(format_genotype(genotypes[i]), None, None, history, reason)
    return results


def language_model_state(stacked: list[torch.Tensor], a: int) -> dict[str, torch.Tensor]:
    """Cell `a`'s slice of a `StackedLanguageModel`'s parameters (embedding, bias, W0, Ws...), as the
    state dict of the `LanguageModel` it was copied from; the decoder is tied to the embedding."""
    embedding, bias, W0, *Ws = (p[a] for p in stacked)
    return {"encoder.weight": embedding, "cell.W0": W0, **{f"cell.Ws.{i}": W for i, W in enumerate(Ws)},
            "decoder.weight": embedding, "decoder.bias": bias}


def train_cell_stacked(genotype: Genotype, *args, **options) -> CellResult:
    """`recipe.train_cell_reference`'s recipe on the batched model, for one cell: the train stage's `fast`
    implementation, the faster of the two paths at one thread."""
    outcome = train_cells_stacked([genotype], *args, **options)[0]
    if outcome.failure:
        raise TrainingDiverged(outcome.failure)
    return CellResult(outcome.genotype, outcome.valid_ppl, outcome.test_ppl, outcome.history, outcome.best_state)


def bytes_per_cell(vocab_size: int, nodes: int, model_config: ModelConfig, config: TrainConfig) -> int:
    """A rough upper bound of what one more cell in a training batch holds: its parameters four
    times (weights, gradients, best state, averages) plus the decoder's gradients, and the
    activations that backward keeps for the longest sequence (about eight per node and hidden unit)."""
    H = model_config.hidden_size
    parameters = vocab_size * H + vocab_size + 4 * H * H + nodes * 2 * H * H
    activations = (config.bptt + config.max_seq_len_delta) * config.batch_size * H * (6 + 8 * nodes)
    return 4 * (6 * parameters + activations)
