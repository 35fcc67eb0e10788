"""Word-level language model with one recurrent layer built from the DARTS recurrent cell.

The cell (Liu et al. 2019, DARTS, RNN search space):
    [c0, h0] = [x * mx, h_prev * mh] W0          s0  = h_prev + sigmoid(c0) * (tanh(h0) - h_prev)
    [c, h]   = (s_p * mh) W_i                    s_i = s_p + sigmoid(c) * (f_i(h) - s_p)
    h_t      = mean of the intermediate nodes' states
Node i owns one matrix W_i whatever its op and predecessor, so one module serves both a fixed
cell and the weight-sharing supernet of the paper's code: the genotype is an argument of
forward() and may change from one minibatch to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from naseval.params import require
from naseval.space import Genotype

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
CELL_INIT_RANGE = 0.04  # DARTS rnn/model.py INITRANGE
EMBEDDING_INIT_RANGE = 0.1  # AWD-LSTM / DARTS init_weights


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


class RecurrentCell(nn.Module):
    def __init__(self, hidden_size: int, nodes: int, dropoutx: float, dropouth: float):
        super().__init__()
        self.hidden_size = hidden_size
        self.dropoutx, self.dropouth = dropoutx, dropouth
        r = CELL_INIT_RANGE
        self.W0 = nn.Parameter(torch.empty(2 * hidden_size, 2 * hidden_size).uniform_(-r, r))
        self.Ws = nn.ParameterList(
            nn.Parameter(torch.empty(hidden_size, 2 * hidden_size).uniform_(-r, r))
            for _ in range(nodes)
        )

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, genotype: Genotype) -> torch.Tensor:
        """inputs (T, B, H), hidden (B, H) -> the cell's output at every step (T, B, H)."""
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
        activations = [(ACTIVATIONS[op], pred) for op, pred in genotype]
        outputs = []
        for x_t in x_proj.unbind(0):  # unbind, not x_proj[t]: indexing backward zero-fills (T, B, 2H) per step
            hidden = self._step(x_t, hidden, h_mask, W0_h, activations)
            outputs.append(hidden)
        return torch.stack(outputs)

    def _step(self, x_proj, h_prev, h_mask, W0_h, activations) -> torch.Tensor:
        masked = h_prev if h_mask is None else h_prev * h_mask
        c0, h0 = (x_proj + masked @ W0_h).chunk(2, dim=-1)
        states = [h_prev + torch.sigmoid(c0) * (torch.tanh(h0) - h_prev)]
        for W, (activation, pred) in zip(self.Ws, activations, strict=True):
            s_prev = states[pred]
            masked = s_prev if h_mask is None else s_prev * h_mask
            c, h = (masked @ W).chunk(2, dim=-1)
            states.append(s_prev + torch.sigmoid(c) * (activation(h) - s_prev))
        return torch.stack(states[1:]).mean(dim=0)


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


class LanguageModel(nn.Module):
    def __init__(self, vocab_size: int, nodes: int, config: ModelConfig):
        super().__init__()
        self.config = config
        H = config.hidden_size
        self.encoder = nn.Embedding(vocab_size, H)
        self.cell = RecurrentCell(H, nodes, config.dropoutx, config.dropouth)
        self.decoder = nn.Linear(H, vocab_size)
        self.decoder.weight = self.encoder.weight  # tied (Press & Wolf; Inan et al.)
        nn.init.uniform_(self.encoder.weight, -EMBEDDING_INIT_RANGE, EMBEDDING_INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.encoder.weight.new_zeros(batch_size, self.config.hidden_size)

    def forward(
        self, words: torch.Tensor, hidden: torch.Tensor, genotype: Genotype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """words (T, B) -> logits (T, B, V), next hidden (B, H), cell outputs before dropout."""
        c = self.config
        p_embedding = c.dropoute if self.training else 0.0
        x = locked_dropout(embedding_dropout(self.encoder, words, p_embedding), c.dropouti, self.training)
        raw = self.cell(x, hidden, genotype)  # (T, B, H)
        logits = self.decoder(locked_dropout(raw, c.dropout, self.training))
        return logits, raw[-1], raw
