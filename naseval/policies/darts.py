"""`darts`: differentiable architecture search (Liu et al. 2019, DARTS, PTB recurrent cell).

Every node mixes all (predecessor, op) pairs with the softmax of its architecture parameters
alpha (MixedCell). Weights and alpha alternate every minibatch: first alpha takes an Adam step on
a validation minibatch, with the gradient of the validation loss after one virtual SGD step of
the weights (second order; the Hessian-vector product by finite differences) or at the current
weights (first order), then the weights take their SGD step on the training minibatch.

One deliberate difference: the original's softmax runs over the ops of each edge, and its "none"
op lets a node drop a predecessor. This space has no "none", so the softmax runs over all
(predecessor, op) pairs of a node, and a one-hot alpha is exactly a discrete cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from naseval.data import batchify
from naseval.errors import TrainingDiverged
from naseval.model import LanguageModel, MixedCell, ModelConfig
from naseval.params import require
from naseval.policies.base import SearchPolicy, SearchResult, SearchTask, register
from naseval.runtime import seed_everything
from naseval.space import Genotype, SearchSpace, format_genotype
from naseval.train import Step, TrainConfig, build_model_and_data, evaluate, fit, perplexity
from naseval.weight_sharing import Chunks, RankingHistory, ranked_candidates, score_cells

ORDERS = ("first", "second")


@dataclass(frozen=True)
class DartsConfig:
    """params.yaml `search.darts`."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the supernet
    train: TrainConfig = field(default_factory=TrainConfig)  # its weights' recipe
    order: str = "second"  # of the architecture gradient
    arch_lr: float = 3e-3  # Adam on alpha
    arch_weight_decay: float = 1e-3
    init_scale: float = 1e-3  # alpha starts at init_scale * N(0, 1)
    batch_norm: bool = True  # on s0 and every node, without affine parameters
    hessian_epsilon: float = 1e-2  # finite-difference step, divided by the gradient's norm
    score_all_up_to: int = 64  # spaces this small are ranked whole
    ranking_every: int = 2  # epochs between rankings of the whole space during training; 0: none

    def __post_init__(self) -> None:
        require(self.order in ORDERS, "order", self.order, f"one of {', '.join(ORDERS)}")
        for key in ("arch_lr", "init_scale", "hessian_epsilon"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a number > 0")
        require(self.arch_weight_decay >= 0, "arch_weight_decay", self.arch_weight_decay, "a number >= 0")
        require(self.score_all_up_to >= 1, "score_all_up_to", self.score_all_up_to, "an integer >= 1")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


def mixing_weights(alphas: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per node, the softmax over all of its (predecessor, op) pairs."""
    return [F.softmax(a.flatten(), dim=0).view_as(a) for a in alphas]


def one_hot(genotype: Genotype, space: SearchSpace, like: torch.Tensor) -> list[torch.Tensor]:
    weights = []
    for node, (op, pred) in enumerate(genotype):
        w = like.new_zeros(node + 1, len(space.ops))
        w[pred, space.ops.index(op)] = 1.0
        weights.append(w)
    return weights


def argmax_cell(alphas: list[torch.Tensor], space: SearchSpace) -> Genotype:
    genotype = []
    for a in alphas:
        pred, op = divmod(int(a.flatten().argmax()), len(space.ops))
        genotype.append((space.ops[op], pred))
    return tuple(genotype)


def neg_log_prob(alphas: list[torch.Tensor], genotype: Genotype, space: SearchSpace) -> float:
    """The alpha-implied score of a cell: -sum over nodes of log softmax at its (pred, op)."""
    return -sum(
        F.log_softmax(a.flatten(), dim=0).view_as(a)[pred, space.ops.index(op)].item()
        for a, (op, pred) in zip(alphas, genotype, strict=True)
    )


def lm_loss(model: LanguageModel, params: dict[str, torch.Tensor], weights: list[torch.Tensor],
            batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the supernet with `params` in place of its parameters; and its next hidden."""
    x, y, hidden = batch
    logits, next_hidden, _ = functional_call(model, params, (x, hidden, weights))
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"architecture step diverged: loss {loss.item()}")
    return loss, next_hidden


def clipped(grads: list[torch.Tensor], max_norm: float) -> list[torch.Tensor]:
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = min(1.0, max_norm / (norm.item() + 1e-6))
    return [g * scale for g in grads]


def hessian_vector_product(model: LanguageModel, params: dict[str, torch.Tensor], alphas: list[torch.Tensor],
                           vector: list[torch.Tensor], batch, epsilon: float) -> list[torch.Tensor]:
    """grad_alpha (grad_w L(w, alpha) . vector) by central differences of grad_alpha L along vector."""
    r = epsilon / torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vector])).item()

    def alpha_gradient_at(sign: float) -> tuple[torch.Tensor, ...]:
        shifted = {name: w + sign * r * v for (name, w), v in zip(params.items(), vector, strict=True)}
        loss, _ = lm_loss(model, shifted, mixing_weights(alphas), batch)
        return torch.autograd.grad(loss, alphas)

    plus, minus = alpha_gradient_at(1.0), alpha_gradient_at(-1.0)
    return [(p - m) / (2 * r) for p, m in zip(plus, minus, strict=True)]


def architecture_gradient(model: LanguageModel, alphas: list[torch.Tensor], train_batch, valid_batch,
                          lr: float, weight_decay: float, clip: float, order: str,
                          epsilon: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """d L_valid / d alpha, and the next hidden state of the validation stream.

    Second order: at w' = w - lr * (clip(grad_w L_train) + weight_decay * w) (DARTS eq. 7), minus
    lr times the Hessian-vector product grad^2_{alpha,w} L_train . grad_{w'} L_valid (eq. 8).
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    if order == "first":
        loss, hidden = lm_loss(model, params, mixing_weights(alphas), valid_batch)
        return list(torch.autograd.grad(loss, alphas)), hidden.detach()

    frozen = [w.detach() for w in mixing_weights(alphas)]
    weights = {name: w.clone().requires_grad_() for name, w in params.items()}
    loss, _ = lm_loss(model, weights, frozen, train_batch)
    grads = clipped(list(torch.autograd.grad(loss, list(weights.values()))), clip)
    unrolled = {name: (w - lr * (g + weight_decay * w)).requires_grad_()
                for (name, w), g in zip(params.items(), grads, strict=True)}
    loss, hidden = lm_loss(model, unrolled, mixing_weights(alphas), valid_batch)
    grads = torch.autograd.grad(loss, [*alphas, *unrolled.values()])
    alpha_grads, valid_grads = grads[: len(alphas)], clipped(list(grads[len(alphas):]), clip)
    implicit = hessian_vector_product(model, params, alphas, valid_grads, train_batch, epsilon)
    return [g - lr * h for g, h in zip(alpha_grads, implicit, strict=True)], hidden.detach()


class Architect:
    """Alpha, its Adam optimizer and the validation stream its steps read (DARTS architect.py)."""

    def __init__(self, model: LanguageModel, space: SearchSpace, config: DartsConfig, search_data: torch.Tensor):
        self.model, self.space, self.config = model, space, config
        device = search_data.device
        self.alphas = [nn.Parameter(config.init_scale * torch.randn(node + 1, len(space.ops)).to(device))
                       for node in range(space.nodes)]
        self.optimizer = torch.optim.Adam(self.alphas, lr=config.arch_lr, betas=(0.9, 0.999),
                                          weight_decay=config.arch_weight_decay)
        self.batches = Chunks(search_data, config.train.bptt)
        self.hidden = model.init_hidden(search_data.size(1))

    def weights(self) -> list[torch.Tensor]:
        return [w.detach() for w in mixing_weights(self.alphas)]

    def state_dict(self) -> dict[str, Any]:
        return {"alphas": [a.detach().clone() for a in self.alphas], "optimizer": self.optimizer.state_dict(),
                "batches": self.batches.state_dict(), "hidden": self.hidden}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for alpha, saved in zip(self.alphas, state["alphas"], strict=True):
                alpha.copy_(saved)  # in place: the optimizer holds these tensors
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.load_state_dict(state["batches"])
        self.hidden = state["hidden"].to(self.hidden.device)

    def step(self, step: Step) -> list[torch.Tensor]:
        """One alpha update before the weights' step on the same training minibatch."""
        x, y = self.batches.next()
        train = self.config.train
        grads, self.hidden = architecture_gradient(
            self.model, self.alphas, (step.inputs, step.targets, step.hidden), (x, y, self.hidden),
            step.lr, train.weight_decay, train.clip, self.config.order, self.config.hessian_epsilon)
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad
        self.optimizer.step()
        return self.weights()


@register
class DartsPolicy(SearchPolicy):
    name = "darts"
    Config = DartsConfig

    def search(self, task: SearchTask) -> SearchResult:
        config, space, bptt = self.config, task.space, self.config.train.bptt
        rng = seed_everything(task.seed)
        model, (train_data, valid_data, _) = build_model_and_data(
            task.corpus, space.nodes, config.model, config.train, cell_class=MixedCell, ops=space.ops,
            batch_norm=config.batch_norm)
        # Alpha steps read validation minibatches as large as the training ones (DARTS search_data).
        search_data = batchify(task.corpus.splits["valid"], config.train.batch_size, valid_data.device)
        architect = Architect(model, space, config, search_data)

        def as_arch(genotype: Genotype) -> list[torch.Tensor]:
            return one_hot(genotype, space, like=model.cell.W0)

        def alpha_ranking(cells: list[Genotype]) -> dict[int, float]:
            return {space.to_id(g): neg_log_prob(architect.alphas, g, space) for g in cells}

        def rank(cells: list[Genotype]) -> dict[str, dict[int, float]]:
            return {
                "alpha_neg_log_prob": alpha_ranking(cells),
                "shared_weights_valid_ppl": score_cells(model, valid_data, cells, space, bptt, as_arch),
            }

        enumerable = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if enumerable else 0, lambda: rank(list(space.enumerate())))

        def after_epoch(epoch: int) -> dict:
            history(epoch)
            best = argmax_cell(architect.alphas, space)
            return {
                "cell_id": space.to_id(best), "genotype": format_genotype(best),
                "score": perplexity(evaluate(model, valid_data, as_arch(best), bptt)),
                "alpha_probability": float(np.exp(-neg_log_prob(architect.alphas, best, space))),
            }

        fitted = fit(model, train_data, config.train, rng, architect.step,
                     lambda: evaluate(model, valid_data, architect.weights(), bptt), "darts",
                     after_epoch=after_epoch, checkpoint=task.tracking(architect=architect, history=history))

        best = argmax_cell(architect.alphas, space)
        cells = list(space.enumerate()) if enumerable else [best]
        rankings = rank(cells) if enumerable else {}
        alpha_scores = rankings["alpha_neg_log_prob"] if enumerable else alpha_ranking(cells)
        details = {
            "argmax": format_genotype(best),
            "mixing_weights": [w.cpu().tolist() for w in architect.weights()],  # per node: [pred][op]
        }
        return SearchResult(ranked_candidates(cells, alpha_scores, space), fitted.history, rankings,
                            details=details, ranking_history=history.snapshots)
