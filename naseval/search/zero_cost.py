"""Zero-cost proxies: a cell's score at initialization from one minibatch, without training.

Every cell is measured with the same initial weights (the supernet's, drawn with the seed: all
cells of a space share their parameter shapes) on the same minibatch of the training split at a
random position, without dropout, so that scores differ by architecture alone. Higher is better
for each proxy; as a score (lower is better, as perplexities) it is negated.

- `params`: the number of parameters (Abdelfattah et al. 2021's baseline). In the DARTS space
  every node has one matrix whatever its op, so every cell has the same count: the proxy ties all
  cells and has no Kendall tau (the analysis counts it as tau 0, no information).
- `grad_norm`: the sum over parameter tensors of the L2 norm of the loss's gradient (NASLib's
  `grad_norm`).
- `snip`: the sum of |weight x gradient| of the loss (Lee et al. 2019; NASLib's `snip`).
- `synflow`: Tanaka et al. 2020's synaptic flow: weights replaced by their absolute values, in
  double precision, R the sum of the output logits, the sum of weight x dR/dweight. The original
  feeds an input of ones; a language model's input is tokens, so the minibatch's tokens go in (as
  Serianni and Kalita 2023, whose variant also keeps the weights' signs).
- `hidden_covariance`: the recurrent form of NASWOT's jacobian covariance (Serianni and Kalita,
  ACL 2023, RNN_metrics.ipynb): the recurrent states each step starts from (the zero state first),
  over the minibatch's bptt steps, as samples (batch x steps) of the hidden units; C their
  correlation matrix (hidden x hidden) with eigenvalues v; the score -sum(log(v + k) + 1 / (v + k)),
  k = 1e-5. A unit that never varies has no correlation: its entries count as 0.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from naseval.core.data import Corpus, batchify, get_batch
from naseval.core.params import require
from naseval.core.space import Genotype, SearchSpace
from naseval.nn.model import LanguageModel
from naseval.search.evaluators import Evaluator
from naseval.search.supernet import SupernetConfig
from naseval.training.recipe import build_model_and_data

HIDDEN_COVARIANCE_K = 1e-5


@dataclass(frozen=True)
class ZeroCostConfig:
    """params.yaml `search.evaluators.zero_cost`: the one minibatch every proxy reads."""

    batch_size: int = 64  # sequences side by side
    bptt: int = 35  # steps

    def __post_init__(self) -> None:
        for key in ("batch_size", "bptt"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")


def gradients(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, cell: Genotype) -> list[tuple]:
    """(weight, gradient of the loss) per parameter tensor that the cell uses."""
    model.zero_grad(set_to_none=True)
    loss, _, _ = model.loss(x, y, model.init_hidden(x.size(1)), cell)
    loss.backward()
    return [(p.detach(), p.grad.detach()) for p in model.parameters() if p.grad is not None]


def params(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, cell: Genotype) -> float:
    return float(sum(p.numel() for p in model.parameters()))


def grad_norm(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, cell: Genotype) -> float:
    return float(sum(g.norm() for _, g in gradients(model, x, y, cell)))


def snip(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, cell: Genotype) -> float:
    return float(sum((w * g).abs().sum() for w, g in gradients(model, x, y, cell)))


def synflow(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, cell: Genotype) -> float:
    linear = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in linear.parameters():
            p.abs_()
    logits, _, _ = linear(x, linear.init_hidden(x.size(1)), cell)
    logits.sum().backward()
    return float(sum((p.detach() * p.grad).sum() for p in linear.parameters() if p.grad is not None))


@torch.no_grad()
def hidden_covariance(model: LanguageModel, x: torch.Tensor, y: torch.Tensor, cell: Genotype) -> float:
    start = model.init_hidden(x.size(1))
    _, _, outputs = model.features(x, start, cell)  # (T, B, H): the state after each step
    states = torch.cat([start.unsqueeze(0), outputs[:-1]])  # the state each step starts from
    samples = states.reshape(-1, states.size(-1)).double().numpy()  # (T * B, H)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.nan_to_num(np.corrcoef(samples, rowvar=False))
    v = np.linalg.eigvalsh(correlation)
    k = HIDDEN_COVARIANCE_K
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


Proxy = Callable[[LanguageModel, torch.Tensor, torch.Tensor, Genotype], float]
PROXIES: dict[str, Proxy] = {"params": params, "grad_norm": grad_norm, "snip": snip, "synflow": synflow,
                             "hidden_covariance": hidden_covariance}


class ZeroCost(Evaluator):
    """A proxy as an evaluator: nothing to train; a cell's score is minus its proxy value. Its cost
    is the cells it scored for the policy (one minibatch each; `training_epochs`: their tokens
    over the training split's, none for `params`); ranking the whole space afterwards, for the
    analysis, is not charged, as a supernet's is not."""

    cost_unit = "cells measured"

    def __init__(self, name: str, space: SearchSpace, corpus: Corpus, supernet: SupernetConfig,
                 rng: np.random.Generator, settings: ZeroCostConfig = ZeroCostConfig()):
        self.name, self.space, self.proxy = name, space, PROXIES[name]
        self.model, _ = build_model_and_data(corpus, space.nodes, supernet.model, supernet.train,
                                             output=space.cell_output)
        self.model.eval()  # no dropout: the scores differ by architecture alone
        self.initial = copy.deepcopy(self.model.state_dict())
        train = batchify(corpus.splits["train"], settings.batch_size, torch.device("cpu"))
        start = int(rng.integers(0, max(1, train.size(0) - 1 - settings.bptt)))
        self.x, self.y = get_batch(train, start, settings.bptt)
        self.x, self.y = self.x.to(self.device), self.y.to(self.device)
        self.tokens_per_epoch = train.numel()
        self.measured: dict[int, float] = {}  # cell id -> proxy value
        self.charged: set[int] = set()  # the cells scored for the policy

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def ranking_name(self):
        return f"{self.name}_score"

    def value(self, cell: Genotype) -> float:
        """The proxy's value (higher is better), measured once per cell."""
        cell_id = self.space.to_id(cell)
        if cell_id not in self.measured:
            self.model.load_state_dict(self.initial)
            self.measured[cell_id] = self.proxy(self.model, self.x, self.y, cell)
        return self.measured[cell_id]

    def train(self, cell_for_step, validation_cells, label, after_epoch=None, checkpoint=None):
        return []  # nothing to train

    def score(self, cells):
        self.charged |= {self.space.to_id(g) for g in cells}
        return {self.space.to_id(g): -self.value(g) for g in cells}

    def quick_score(self, cell):
        return self.score([cell])[self.space.to_id(cell)]

    def rank_all(self, already=None):
        return {self.ranking_name: {self.space.to_id(g): -self.value(g) for g in self.space.enumerate()}}

    @property
    def cost(self):
        return len(self.charged)

    @property
    def training_epochs(self):
        reads = self.name != "params"  # counting parameters reads no data
        return float(len(self.charged) * reads * self.y.numel() / self.tokens_per_epoch)

