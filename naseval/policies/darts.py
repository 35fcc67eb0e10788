"""`darts`: differentiable architecture search (Liu et al. 2019, DARTS, PTB recurrent cell).

Every node mixes all (predecessor, op) pairs with weights derived from its architecture
parameters alpha (MixedCell). Weights and alpha alternate every minibatch: first alpha takes an
Adam step on a validation minibatch, with the gradient of the validation loss after one virtual
SGD step of the weights (second order; the Hessian-vector product by finite differences) or at
the current weights (first order), then the weights take their SGD step on the training minibatch.

Two relaxations (`relaxation`):
* `per_edge`, the original (rnn/model_search.py): a softmax per edge over the ops and `none`;
  `none` contributes nothing, so the weight an edge puts on it is what the edge drops from the
  node's sum. The cell is derived with the original's genotype(): per node the edge whose best
  non-`none` op weighs most, with that op.
* `per_node`: one softmax per node over all its (predecessor, op) pairs, without `none`: the
  weights of a node form one distribution over its choices, and a one-hot alpha is a discrete
  cell.
Both derive the cell that maximizes the product over nodes of its choice's weight, and rank
cells by that product (`alpha_neg_log_prob`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from naseval.core.data import batchify
from naseval.core.errors import NasevalError, TrainingDiverged
from naseval.core.params import require
from naseval.core.runtime import seed_everything
from naseval.core.space import Genotype, SearchSpace, format_genotype
from naseval.nn.model import LanguageModel, MixedCell, one_hot  # noqa: F401 (one_hot: the tests' import)
from naseval.policies.base import SearchPolicy, SearchTask, register
from naseval.policies.result import SearchResult, Trace, epoch_rows, ranked_candidates
from naseval.search.evaluators import SHARED_WEIGHTS_RANKING
from naseval.search.supernet import RankingHistory, ValidationStream
from naseval.training.recipe import Step, TrainConfig, evaluate, perplexity

ORDERS = ("first", "second")
RELAXATIONS = ("per_edge", "per_node")


@dataclass(frozen=True)
class DartsConfig:
    """params.yaml `search.darts`."""

    order: str = "second"  # of the architecture gradient
    relaxation: str = "per_edge"  # the original's; or per_node (see the module's docstring)
    arch_lr: float = 3e-3  # Adam on alpha
    arch_weight_decay: float = 1e-3
    init_scale: float = 1e-3  # alpha starts at init_scale * N(0, 1)
    batch_norm: bool = True  # on s0 and every node, without affine parameters
    hessian_epsilon: float = 1e-2  # finite-difference step, divided by the gradient's norm
    score_all_up_to: int = 64  # spaces this small are ranked whole
    ranking_every: int = 2  # epochs between rankings of the whole space during training; 0: none

    def __post_init__(self) -> None:
        require(self.order in ORDERS, "order", self.order, f"one of {', '.join(ORDERS)}")
        require(self.relaxation in RELAXATIONS, "relaxation", self.relaxation, f"one of {', '.join(RELAXATIONS)}")
        for key in ("arch_lr", "init_scale", "hessian_epsilon"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a number > 0")
        require(self.arch_weight_decay >= 0, "arch_weight_decay", self.arch_weight_decay, "a number >= 0")
        require(self.score_all_up_to >= 1, "score_all_up_to", self.score_all_up_to, "an integer >= 1")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


def alpha_shape(node: int, space: SearchSpace, relaxation: str) -> tuple[int, int]:
    """Node `node`'s alpha: a row per predecessor, a column per op (per_edge: column 0 is `none`)."""
    return node + 1, len(space.ops) + (relaxation == "per_edge")


def choice_log_probs(alphas: list[torch.Tensor], relaxation: str) -> list[torch.Tensor]:
    """Per node, the log weight of each (predecessor, op) choice: (node + 1, |ops|)."""
    if relaxation == "per_node":
        return [F.log_softmax(a.flatten(), dim=0).view_as(a) for a in alphas]
    return [F.log_softmax(a, dim=-1)[:, 1:] for a in alphas]  # `none`'s weight multiplies nothing


def mixing_weights(alphas: list[torch.Tensor], relaxation: str) -> list[torch.Tensor]:
    """Per node, the weight MixedCell gives each (predecessor, op) pair."""
    return [log_probs.exp() for log_probs in choice_log_probs(alphas, relaxation)]


def argmax_cell(alphas: list[torch.Tensor], space: SearchSpace, relaxation: str) -> Genotype:
    """Per node, the heaviest (predecessor, op) choice. per_edge: the original's genotype(), as the
    edge whose best non-`none` op weighs most, taken with that op, is this very choice."""
    genotype = []
    for log_probs in choice_log_probs(alphas, relaxation):
        pred, op = divmod(int(log_probs.flatten().argmax()), len(space.ops))
        genotype.append((space.ops[op], pred))
    return tuple(genotype)


def neg_log_prob(alphas: list[torch.Tensor], genotype: Genotype, space: SearchSpace, relaxation: str) -> float:
    """The alpha-implied score of a cell: -sum over nodes of the log weight of its (pred, op)."""
    return -sum(
        log_probs[pred, space.ops.index(op)].item()
        for log_probs, (op, pred) in zip(choice_log_probs(alphas, relaxation), genotype, strict=True)
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


def clip_coefficient(grads: list[torch.Tensor], max_norm: float) -> float:
    """What gradient clipping multiplies `grads` by: min(1, max_norm / |grads|)."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    return min(1.0, max_norm / (norm.item() + 1e-6))


def hessian_vector_product(model: LanguageModel, params: dict[str, torch.Tensor], alphas: list[torch.Tensor],
                           vector: list[torch.Tensor], batch, epsilon: float,
                           relaxation: str) -> list[torch.Tensor]:
    """grad_alpha (grad_w L(w, alpha) . vector) by central differences of grad_alpha L along vector."""
    r = epsilon / torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vector])).item()

    def alpha_gradient_at(sign: float) -> tuple[torch.Tensor, ...]:
        shifted = {name: w + sign * r * v for (name, w), v in zip(params.items(), vector, strict=True)}
        loss, _ = lm_loss(model, shifted, mixing_weights(alphas, relaxation), batch)
        return torch.autograd.grad(loss, alphas)

    plus, minus = alpha_gradient_at(1.0), alpha_gradient_at(-1.0)
    return [(p - m) / (2 * r) for p, m in zip(plus, minus, strict=True)]


def architecture_gradient(model: LanguageModel, alphas: list[torch.Tensor], train_batch, valid_batch,
                          lr: float, weight_decay: float, clip: float, order: str, epsilon: float,
                          relaxation: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """d L_valid / d alpha, and the next hidden state of the validation stream.

    Second order: at w' = w - lr * (c * grad_w L_train + weight_decay * w) (DARTS eq. 7), where c
    is the clipping coefficient of grad_w L_train, minus lr * c times the Hessian-vector product
    grad^2_{alpha,w} L_train . grad_{w'} L_valid (eq. 8, with the chain rule through the clipped
    step, as the original's architect.py; c is held constant, as clipping's norm is not
    differentiated). The original multiplies by its raw clip_coef, above 1 when the gradient is
    below the clip, where the step is not scaled; here c = min(1, clip / |grad|) throughout. The
    vector grad_{w'} L_valid is clipped too, as the original does.
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    if order == "first":
        loss, hidden = lm_loss(model, params, mixing_weights(alphas, relaxation), valid_batch)
        return list(torch.autograd.grad(loss, alphas)), hidden.detach()

    frozen = [w.detach() for w in mixing_weights(alphas, relaxation)]
    weights = {name: w.clone().requires_grad_() for name, w in params.items()}
    loss, _ = lm_loss(model, weights, frozen, train_batch)
    grads = torch.autograd.grad(loss, list(weights.values()))
    coefficient = clip_coefficient(grads, clip)
    unrolled = {name: (w - lr * (coefficient * g + weight_decay * w)).requires_grad_()
                for (name, w), g in zip(params.items(), grads, strict=True)}
    loss, hidden = lm_loss(model, unrolled, mixing_weights(alphas, relaxation), valid_batch)
    grads = torch.autograd.grad(loss, [*alphas, *unrolled.values()])
    alpha_grads, valid_grads = grads[: len(alphas)], grads[len(alphas):]
    valid_grads = [g * clip_coefficient(valid_grads, clip) for g in valid_grads]
    implicit = hessian_vector_product(model, params, alphas, valid_grads, train_batch, epsilon, relaxation)
    return [g - lr * coefficient * h for g, h in zip(alpha_grads, implicit, strict=True)], hidden.detach()


class Architect:
    """Alpha, its Adam optimizer and the validation stream its steps read (DARTS architect.py)."""

    def __init__(self, model: LanguageModel, space: SearchSpace, config: DartsConfig, train: TrainConfig,
                 search_data: torch.Tensor):
        self.model, self.space, self.config, self.train = model, space, config, train
        device = search_data.device
        shapes = [alpha_shape(node, space, config.relaxation) for node in range(space.nodes)]
        self.alphas = [nn.Parameter(config.init_scale * torch.randn(shape).to(device)) for shape in shapes]
        self.optimizer = torch.optim.Adam(self.alphas, lr=config.arch_lr, betas=(0.9, 0.999),
                                          weight_decay=config.arch_weight_decay)
        self.batches = ValidationStream(search_data, train.bptt)
        self.hidden = model.init_hidden(search_data.size(1))

    def restart(self) -> None:
        """Each epoch's alpha steps read the validation stream from its start with a zero hidden
        state, as the original's train_search.py (its hidden_valid is made in every epoch)."""
        self.batches.start = 0
        self.hidden = torch.zeros_like(self.hidden)

    def weights(self) -> list[torch.Tensor]:
        return [w.detach() for w in mixing_weights(self.alphas, self.config.relaxation)]

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
        train = self.train
        grads, self.hidden = architecture_gradient(
            self.model, self.alphas, (step.inputs, step.targets, step.hidden), (x, y, self.hidden),
            step.lr, train.weight_decay, train.clip, self.config.order, self.config.hessian_epsilon,
            self.config.relaxation)
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad
        self.optimizer.step()
        return self.weights()


@register
class DartsPolicy(SearchPolicy):
    name = "darts"
    Config = DartsConfig
    evaluators = ("shared_weights",)

    def search(self, task: SearchTask) -> SearchResult:
        config, space, relaxation = self.config, task.space, self.config.relaxation
        if space.cell_output != "mean":
            raise NasevalError(f"darts: space.cell_output {space.cell_output!r} is not possible: DARTS's relaxation "
                               "averages every node, as its cells do (allowed: mean)")
        rng = seed_everything(task.seed)
        evaluator = task.evaluator(self.evaluator_name, rng, cell_class=MixedCell, ops=space.ops,
                                   batch_norm=config.batch_norm)
        # The architecture step is the policy's; the supernet and its training are the evaluator's.
        model, valid_data, bptt = evaluator.model, evaluator.valid_data, task.supernet.train.bptt
        # Alpha steps read validation minibatches as large as the training ones (DARTS search_data).
        search_data = batchify(task.corpus.splits["valid"], task.supernet.train.batch_size, valid_data.device)
        architect = Architect(model, space, config, task.supernet.train, search_data)

        def alpha_ranking(cells: list[Genotype]) -> dict[int, float]:
            return {space.to_id(g): neg_log_prob(architect.alphas, g, space, relaxation) for g in cells}

        def rank(cells: list[Genotype]) -> dict[str, dict[int, float]]:
            return {"alpha_neg_log_prob": alpha_ranking(cells), SHARED_WEIGHTS_RANKING: evaluator.score(cells)}

        enumerable = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if enumerable else 0, lambda: rank(list(space.enumerate())))

        def after_epoch(epoch: int) -> dict:
            history(epoch)
            architect.restart()
            best = argmax_cell(architect.alphas, space, relaxation)
            return {
                "cell_id": space.to_id(best), "cost": evaluator.cost,
                "score": perplexity(evaluate(model, valid_data, model.cell.arch_of(best), bptt)),
                "alpha_probability": float(np.exp(-neg_log_prob(architect.alphas, best, space, relaxation))),
            }

        rows = evaluator.train(architect.step, lambda: [architect.weights()], "darts", after_epoch=after_epoch,
                               checkpoint=task.tracking(architect=architect, history=history, **evaluator.stateful()))
        # Each epoch's argmax cell, scored under the shared weights (validation scored the mixture).
        trace = epoch_rows(Trace(space), rows, score="score")

        best = argmax_cell(architect.alphas, space, relaxation)
        cells = list(space.enumerate()) if enumerable else [best]
        rankings = rank(cells) if enumerable else {}
        alpha_scores = rankings["alpha_neg_log_prob"] if enumerable else alpha_ranking(cells)
        details = {
            "argmax": format_genotype(best),
            "relaxation": relaxation,
            "mixing_weights": [w.cpu().tolist() for w in architect.weights()],  # per node: [pred][op]
            "alphas": [a.detach().cpu().tolist() for a in architect.alphas],  # per_edge: column 0 is `none`
        }
        return SearchResult(ranked_candidates(cells, alpha_scores, space), trace, rankings, details=details,
                            ranking_history=history.snapshots, evaluator=evaluator.facts())
