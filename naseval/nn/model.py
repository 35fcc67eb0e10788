"""Word-level language model with one recurrent layer built from the DARTS recurrent cell.

The cell (Liu et al. 2019, DARTS, RNN search space):
    [c0, h0] = [x * mx, h_prev * mh] W0          s0  = h_prev + sigmoid(c0) * (tanh(h0) - h_prev)
    [c, h]   = (s_p * mh) W_i                    s_i = s_p + sigmoid(c) * (f_i(h) - s_p)
    h_t      = mean of the intermediate nodes' states (or of the loose ends, as ENAS)
The genotype is an argument of forward(), so one module serves both a fixed cell and a
weight-sharing supernet whose cell changes from one minibatch to the next. Node i owns one
matrix W_i whatever its op and predecessor (DARTS, the paper's random search) or one per
predecessor (ENAS); MixedCell is DARTS's continuous relaxation of the same space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from naseval.core.params import require
from naseval.core.space import CELL_OUTPUTS, Genotype, loose_ends
from naseval.nn.decoder_loss import decoder_losses

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
INIT_RANGE = 0.04  # DARTS's and NAO's rnn/model.py INITRANGE, of the cell's matrices and the embedding


@dataclass(frozen=True)
class ModelConfig:
    """params.yaml `model`. Embedding and hidden sizes are equal because the decoder is tied."""

    hidden_size: int = 64
    dropout: float = 0.75  # on the cell's outputs
    dropouth: float = 0.25  # on the hidden state entering every node
    dropoutx: float = 0.75  # on the cell's input
    dropouti: float = 0.2  # on the embeddings' output
    dropoute: float = 0.1  # whole words of the embedding matrix

    def __post_init__(self) -> None:
        require(self.hidden_size >= 1, "hidden_size", self.hidden_size, "an integer >= 1")
        for key in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            value = getattr(self, key)
            require(0.0 <= value < 1.0, key, value, "a probability in [0, 1)")


def variational_mask(like: torch.Tensor, shape: tuple[int, ...], p: float) -> torch.Tensor:
    """One dropout mask reused at every time step (Gal & Ghahramani), scaled to keep the mean."""
    return like.new_empty(shape).bernoulli_(1 - p) / (1 - p)


# How a supernet's cell shares node i's matrix among the (predecessor, op) choices of node i
# (named apart from DARTS's `relaxation: per_node`, which is about its architecture weights).
SHARING = ("by_node", "by_edge", "by_choice")


def matrices_per_node(sharing: str, node: int) -> int:
    """1 per node, one per predecessor, or one per (predecessor, known op)."""
    return {"by_node": 1, "by_edge": node + 1, "by_choice": (node + 1) * len(ACTIVATIONS)}[sharing]


class RecurrentCell(nn.Module):
    """The cell of a fixed genotype, or the supernet of every genotype (pass one per forward).

    `sharing`: "by_node" gives node i one matrix whatever its predecessor and op (DARTS, Yu et
    al.'s random search); "by_edge" one per predecessor (ENAS); "by_choice" one per
    (predecessor, op) pair (NAO). `output`: the cell's output is the mean of all intermediate
    nodes (DARTS) or of the loose ends, the nodes that no other node reads (ENAS).
    """

    def __init__(self, hidden_size: int, nodes: int, dropoutx: float, dropouth: float,
                 output: str = "mean", sharing: str = "by_node", output_norm: bool = False,
                 hidden_norm_clip: float | None = None):
        super().__init__()
        require(output in CELL_OUTPUTS, "cell_output", output, f"one of {', '.join(CELL_OUTPUTS)}")
        require(sharing in SHARING, "sharing", sharing, f"one of {', '.join(SHARING)}")
        self.hidden_size, self.nodes = hidden_size, nodes
        self.dropoutx, self.dropouth = dropoutx, dropouth
        self.output, self.sharing = output, sharing
        # ENAS's shared model (carpedm20 shared_rnn.py:185-186,350-356): batch norm of what the
        # decoder reads, not of the recurrent state; and each row of the recurrent state rescaled
        # to a norm of at most `hidden_norm_clip` (:237-260).
        self.output_norm = OutputNorm(hidden_size) if output_norm else None
        self.hidden_norm_clip = hidden_norm_clip
        counts = [matrices_per_node(sharing, i) for i in range(nodes)]
        self.offsets = [sum(counts[:i]) for i in range(nodes)]  # node i's first matrix in Ws
        r = INIT_RANGE
        self.W0 = nn.Parameter(torch.empty(2 * hidden_size, 2 * hidden_size).uniform_(-r, r))
        self.Ws = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size).uniform_(-r, r)) for _ in range(sum(counts))
        )

    def arch_of(self, genotype: Genotype) -> Any:
        """What `forward` takes to run the discrete cell `genotype`: the genotype itself."""
        return genotype

    def node_weight(self, node: int, pred: int, op: str) -> torch.Tensor:
        if self.sharing == "by_node":
            return self.Ws[node]
        if self.sharing == "by_edge":
            return self.Ws[self.offsets[node] + pred]
        return self.Ws[self.offsets[node] + pred * len(ACTIVATIONS) + list(ACTIVATIONS).index(op)]

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, arch) -> torch.Tensor:
        """inputs (T, B, H), hidden (B, H) -> the cell's output at every step (T, B, H).

        `arch` is a genotype here; subclasses may take another description of the cell.
        """
        T, B, H = inputs.shape
        if self.training:
            x_mask = variational_mask(inputs, (B, H), self.dropoutx)
            h_mask = variational_mask(inputs, (B, H), self.dropouth)
            inputs = inputs * x_mask
        else:
            h_mask = None
        # The input half of [x, h] W0 does not depend on the recurrence: one matmul for all steps.
        x_proj = inputs @ self.W0[:H]  # (T, B, 2H)
        W0_h = self.W0[H:]
        plan = self.plan(arch)
        outputs = []
        for x_t in x_proj.unbind(0):  # unbind, not x_proj[t]: indexing backward zero-fills (T, B, 2H) per step
            hidden = clip_rows(hidden, self.hidden_norm_clip)
            hidden = self.step(self.first_state(x_t, hidden, h_mask, W0_h), h_mask, plan)
            outputs.append(hidden)
        return torch.stack(outputs)

    def first_state(self, x_proj, h_prev, h_mask, W0_h) -> torch.Tensor:
        """s0 = h_prev + sigmoid(c0) * (tanh(h0) - h_prev), [c0, h0] = [x, h_prev] W0."""
        masked = h_prev if h_mask is None else h_prev * h_mask
        c0, h0 = (x_proj + masked @ W0_h).chunk(2, dim=-1)
        return h_prev + torch.sigmoid(c0) * (torch.tanh(h0) - h_prev)

    def plan(self, genotype: Genotype):
        """Per node: (activation, predecessor, matrix); then which nodes the output averages."""
        nodes = [(ACTIVATIONS[op], pred, self.node_weight(i, pred, op))
                 for i, (op, pred) in enumerate(strict_nodes(genotype, self.nodes))]
        outputs = loose_ends(genotype) if self.output == "loose_ends" else list(range(self.nodes))
        return nodes, [i + 1 for i in outputs]  # + 1: states[0] is s0

    def step(self, s0, h_mask, plan) -> torch.Tensor:
        nodes, outputs = plan
        states = [s0]
        for activation, pred, W in nodes:
            s_prev = states[pred]
            masked = s_prev if h_mask is None else s_prev * h_mask
            c, h = (masked @ W).chunk(2, dim=-1)
            states.append(s_prev + torch.sigmoid(c) * (activation(h) - s_prev))
        return torch.stack([states[i] for i in outputs]).mean(dim=0)


def batch_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalized over the batch, the second-to-last dimension, with the batch's own statistics
    and no affine part: x (..., B, H), each leading index (a time step, a cell) on its own."""
    mean, var = x.mean(dim=-2, keepdim=True), x.var(dim=-2, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


class OutputNorm(nn.Module):
    """carpedm20 ENAS's `nn.BatchNorm1d` of the cell's output at each time step (affine), always
    with the batch's statistics: C computes its rewards in train mode, and running statistics of a
    supernet would mix every cell it sampled."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        """outputs (..., B, H), normalized per time step (and per cell) over the batch."""
        return batch_norm(outputs) * self.weight + self.bias


def clip_rows(hidden: torch.Tensor, max_norm: float | None) -> torch.Tensor:
    """Each row (the last dimension) whose norm exceeds `max_norm` rescaled to it, by a factor
    that carries no gradient (C's constant mask); None leaves `hidden` as it is."""
    if max_norm is None:
        return hidden
    scale = (max_norm / hidden.detach().norm(dim=-1, keepdim=True)).clamp(max=1.0)
    return hidden * scale


def strict_nodes(genotype: Genotype, nodes: int) -> Genotype:
    """A short genotype must not silently run fewer nodes than the cell has."""
    if len(genotype) != nodes:
        raise ValueError(f"genotype has {len(genotype)} nodes, the cell has {nodes}")
    return genotype


class MixedCell(RecurrentCell):
    """DARTS's continuous relaxation: node i's state is the weighted sum, over every
    (predecessor p, op k) pair, of s_p + sigmoid(c) * (f_k(h) - s_p), [c, h] = s_p W_i.

    `arch` is one (i + 1, |ops|) weight tensor per node (the softmax of the architecture
    parameters). As in DARTS's RNN search code, W_i is shared by all pairs of node i, and batch
    normalization without affine parameters (optional here) is applied to s0 and to every node.
    Unlike the original, batch norm always uses the batch's statistics: running statistics of
    the mixture do not fit the discrete cells that the supernet also scores.
    """

    def __init__(self, hidden_size: int, nodes: int, dropoutx: float, dropouth: float,
                 ops: tuple[str, ...], batch_norm: bool = True, output: str = "mean"):
        require(output == "mean", "cell_output", output, "mean: the relaxation averages every node, as DARTS's cells")
        super().__init__(hidden_size, nodes, dropoutx, dropouth)
        self.ops, self.activations = ops, [ACTIVATIONS[op] for op in ops]
        norm = nn.BatchNorm1d(hidden_size, affine=False, track_running_stats=False)
        self.norm = norm if batch_norm else nn.Identity()

    def arch_of(self, genotype: Genotype) -> list[torch.Tensor]:
        """The discrete cell `genotype` as mixing weights: one-hot on its (predecessor, op) pairs."""
        return one_hot(genotype, self.ops, like=self.W0)

    def plan(self, weights: list[torch.Tensor]):
        return strict_nodes(weights, self.nodes)

    def step(self, s0, h_mask, weights) -> torch.Tensor:
        states = self.norm(s0).unsqueeze(0)  # (1, B, H), grows by one node at a time
        for W, w in zip(self.Ws, weights, strict=True):
            masked = states if h_mask is None else states * h_mask
            c, h = (masked @ W).chunk(2, dim=-1)  # each (i + 1, B, H)
            c = torch.sigmoid(c)
            s = sum((w[:, k, None, None] * (states + c * (f(h) - states))).sum(0)
                    for k, f in enumerate(self.activations))
            states = torch.cat([states, self.norm(s).unsqueeze(0)])
        return states[1:].mean(dim=0)


def one_hot(genotype: Genotype, ops: tuple[str, ...], like: torch.Tensor) -> list[torch.Tensor]:
    """Per node, (node + 1, |ops|) mixing weights with a 1 on the genotype's (predecessor, op)."""
    weights = []
    for node, (op, pred) in enumerate(genotype):
        w = like.new_zeros(node + 1, len(ops))
        w[pred, ops.index(op)] = 1.0
        weights.append(w)
    return weights


def embedding_dropout(embedding: nn.Embedding, words: torch.Tensor, p: float) -> torch.Tensor:
    """Drop whole rows of the embedding matrix (AWD-LSTM's dropoute)."""
    weight = embedding.weight
    if p > 0:
        weight = weight * variational_mask(weight, (weight.size(0), 1), p)
    return F.embedding(words, weight)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Same mask at every time step: x (T, B, H)."""
    if not training or p == 0:
        return x
    return x * variational_mask(x, (1, x.size(1), x.size(2)), p)


PRECISIONS = ("fp32", "bf16")


def autocast(precision: str, device: torch.device):
    """bf16 matrix products with fp32 weights and fp32 softmax (torch's autocast), or plain fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class LanguageModel(nn.Module):
    """`fused_loss`: `loss` goes through `decoder_losses` instead of building every logit (the
    straightforward reference path); both give the same numbers. `precision` "bf16" runs `loss`
    under autocast."""

    def __init__(self, vocab_size: int, nodes: int, config: ModelConfig,
                 cell_class: type[RecurrentCell] = RecurrentCell, fused_loss: bool = True,
                 precision: str = "fp32", **cell_options):
        super().__init__()
        self.config, self.fused_loss, self.precision = config, fused_loss, precision
        H = config.hidden_size
        self.encoder = nn.Embedding(vocab_size, H)
        self.cell = cell_class(H, nodes, config.dropoutx, config.dropouth, **cell_options)
        self.decoder = nn.Linear(H, vocab_size)
        self.decoder.weight = self.encoder.weight  # tied (Press & Wolf; Inan et al.)
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.encoder.weight.new_zeros(batch_size, self.config.hidden_size)

    def features(self, words: torch.Tensor, hidden: torch.Tensor, arch) -> tuple[torch.Tensor, ...]:
        """words (T, B) -> what the decoder reads (T, B, H), next hidden (B, H), cell outputs
        before dropout. `arch` is what the cell takes: a genotype, or mixing weights for a MixedCell."""
        c = self.config
        p_embedding = c.dropoute if self.training else 0.0
        x = locked_dropout(embedding_dropout(self.encoder, words, p_embedding), c.dropouti, self.training)
        raw = self.cell(x, hidden, arch)  # (T, B, H)
        shown = raw if self.cell.output_norm is None else self.cell.output_norm(raw)
        return locked_dropout(shown, c.dropout, self.training), raw[-1], raw

    def forward(self, words: torch.Tensor, hidden: torch.Tensor, arch) -> tuple[torch.Tensor, ...]:
        """words (T, B) -> logits (T, B, V), next hidden (B, H), cell outputs before dropout."""
        out, next_hidden, raw = self.features(words, hidden, arch)
        return self.decoder(out), next_hidden, raw

    def loss(self, words: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor, arch) -> tuple[torch.Tensor, ...]:
        """Mean cross-entropy of predicting `targets` (T, B), next hidden, cell outputs before dropout."""
        with autocast(self.precision, words.device):
            out, next_hidden, raw = self.features(words, hidden, arch)
            if self.fused_loss:
                unsqueezed = (t.unsqueeze(0) for t in (out, self.decoder.weight, self.decoder.bias))
                return decoder_losses(*unsqueezed, targets)[0], next_hidden.float(), raw
            logits = self.decoder(out).float()
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten()), next_hidden.float(), raw
