"""Many cells at once: A genotypes run as one model with a leading cell dimension.

A recurrent cell's matrices are small (hidden x 2 hidden), so one cell per step leaves the
machine waiting on per-op overhead (Python, kernel launches). Stacking A cells turns each
node's product into one batched product, each predecessor choice into one gather and each
activation into one call per op. Two users:

* `StackedLanguageModel`: A cells with weights of their own, trained from scratch together
  (the ground truth). All cells share one seed, so they start from the same weights and see
  the same dropout masks as `LanguageModel` would give each of them alone.
* `evaluate_cells`: A cells scored under one supernet's shared weights.

`LanguageModel` stays the straightforward reference; tests check that both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from naseval.core.data import get_batch
from naseval.core.space import Genotype, loose_ends
from naseval.nn.decoder_loss import decoder_losses
from naseval.nn.model import (
    ACTIVATIONS,
    LanguageModel,
    MixedCell,
    RecurrentCell,
    autocast,
    batch_norm,
    clip_rows,
    variational_mask,
)


class CellPlan:
    """Per node: each cell's predecessor and each op's cells; per cell: which nodes it averages."""

    def __init__(self, genotypes: Sequence[Genotype], nodes: int, output: str, device: torch.device):
        self.genotypes = list(genotypes)
        count = len(self.genotypes)
        self.cells = torch.arange(count, device=device)
        self.preds, self.op_groups = [], []
        for node in range(nodes):
            preds = [genotype[node][1] for genotype in self.genotypes]
            self.preds.append(preds[0] if len(set(preds)) == 1 else torch.tensor(preds, device=device))
            ops = [genotype[node][0] for genotype in self.genotypes]
            groups = [(ACTIVATIONS[op], torch.tensor([a for a, o in enumerate(ops) if o == op], device=device))
                      for op in dict.fromkeys(ops)]
            order = torch.cat([cells for _, cells in groups]) if groups else self.cells
            self.op_groups.append((groups, torch.argsort(order)))
        self.output_weights = None  # the mean of all nodes; with loose ends, each cell's own mean:
        if output == "loose_ends":
            self.output_weights = torch.zeros(nodes, count, 1, 1, device=device)
            for a, genotype in enumerate(self.genotypes):
                ends = loose_ends(genotype)
                self.output_weights[ends, a] = 1.0 / len(ends)

    def predecessor(self, states: list[torch.Tensor], node: int) -> torch.Tensor:
        pred = self.preds[node]
        if isinstance(pred, int):
            return states[pred]
        return torch.stack(states)[pred, self.cells]

    def activate(self, h: torch.Tensor, node: int) -> torch.Tensor:
        groups, inverse = self.op_groups[node]
        if len(groups) == 1:
            return groups[0][0](h)
        return torch.cat([f(h.index_select(0, cells)) for f, cells in groups]).index_select(0, inverse)

    def output(self, states: list[torch.Tensor]) -> torch.Tensor:
        nodes = torch.stack(states[1:])  # (nodes, A, B, H)
        if self.output_weights is None:
            return nodes.mean(dim=0)
        return (nodes * self.output_weights).sum(dim=0)


Norm = Callable[[torch.Tensor], torch.Tensor]
LossStep = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def blend(state: torch.Tensor, update: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """state + gate * (update - state) in one op, kept in the state's precision (fp32 under autocast)."""
    return torch.lerp(state, update.to(state.dtype), gate.to(state.dtype))


def run_cells(x_proj: torch.Tensor, hidden: torch.Tensor, W0_h: torch.Tensor, node_weights: list[torch.Tensor],
              plan: CellPlan, h_mask: torch.Tensor | None, norm: Norm | None = None,
              hidden_norm_clip: float | None = None) -> torch.Tensor:
    """The recurrence of A cells. x_proj (T, B, 2H) shared or (A, T, B, 2H) per cell; hidden
    (A, B, H); W0_h and each node's matrix (H, 2H) shared or (A, H, 2H) per cell -> (A, T, B, H).
    `norm` acts on s0 and every node (DARTS's batch norm); `hidden_norm_clip` as RecurrentCell's."""
    steps = x_proj.unbind(-3)
    outputs = []
    for x_t in steps:
        hidden = clip_rows(hidden, hidden_norm_clip)
        masked = hidden if h_mask is None else hidden * h_mask
        c0, h0 = (x_t + torch.matmul(masked, W0_h)).chunk(2, dim=-1)
        s0 = blend(hidden, torch.tanh(h0), torch.sigmoid(c0))
        states = [s0 if norm is None else norm(s0)]
        for node, W in enumerate(node_weights):
            s_prev = plan.predecessor(states, node)
            masked = s_prev if h_mask is None else s_prev * h_mask
            c, h = torch.matmul(masked, W).chunk(2, dim=-1)
            s = blend(s_prev, plan.activate(h, node), torch.sigmoid(c))
            states.append(s if norm is None else norm(s))
        hidden = plan.output(states)
        outputs.append(hidden)
    return torch.stack(outputs, dim=1)


class StackedLanguageModel(nn.Module):
    """A copies of `template`'s weights, one per genotype, trained as one model.

    Every tensor has a leading cell dimension. Dropout masks are drawn in `LanguageModel`'s
    order and shapes and shared by the A cells, which is what each cell alone would draw with
    the same seed; so is the template's initialization. Cells can be dropped (a diverged one)
    without disturbing the others.
    """

    def __init__(self, template: LanguageModel, genotypes: Sequence[Genotype]):
        super().__init__()
        cell = template.cell
        if (type(cell) is not RecurrentCell or cell.sharing != "by_node" or cell.output_norm is not None
                or cell.hidden_norm_clip is not None):
            raise ValueError("only fixed cells with one matrix per node, no batch norm and no clip can be batched")
        self.config, self.nodes, self.output_rule = template.config, cell.nodes, cell.output
        self.precision = template.precision
        self.dropoutx, self.dropouth = cell.dropoutx, cell.dropouth
        count = len(genotypes)

        def stacked(weight: torch.Tensor) -> nn.Parameter:
            return nn.Parameter(weight.detach().unsqueeze(0).repeat(count, *[1] * weight.dim()))

        self.embedding = stacked(template.encoder.weight)  # (A, V, H), tied to the decoder
        self.bias = stacked(template.decoder.bias)
        self.W0 = stacked(cell.W0)
        self.Ws = nn.ParameterList(stacked(W) for W in cell.Ws)
        self.plan = CellPlan(genotypes, self.nodes, self.output_rule, self.embedding.device)

    @property
    def genotypes(self) -> list[Genotype]:
        return self.plan.genotypes

    def keep(self, cells: Sequence[int]) -> None:
        """Keep only the cells at positions `cells`, in that order. The parameters are new objects:
        autograd does not allow a parameter to change shape."""
        index = torch.tensor(list(cells), dtype=torch.long, device=self.embedding.device)

        def kept(p: nn.Parameter) -> nn.Parameter:
            sliced = nn.Parameter(p.detach().index_select(0, index))
            sliced.grad = None if p.grad is None else p.grad.index_select(0, index)
            return sliced

        self.embedding, self.bias, self.W0 = kept(self.embedding), kept(self.bias), kept(self.W0)
        self.Ws = nn.ParameterList(kept(W) for W in self.Ws)
        self.plan = CellPlan([self.genotypes[a] for a in cells], self.nodes, self.output_rule, index.device)

    def init_hidden(self, batch_size: int) -> torch.Tensor:
        return self.embedding.new_zeros(len(self.genotypes), batch_size, self.config.hidden_size)

    def forward(self, words: torch.Tensor, targets: torch.Tensor,
                hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """words and targets (T, B), hidden (A, B, H) -> each cell's mean cross-entropy (A,), next
        hidden, cell outputs before dropout (A, T, B, H)."""
        with autocast(self.precision, words.device):
            losses, next_hidden, raw = self._forward(words, targets, hidden)
        return losses, next_hidden.float(), raw

    def _forward(self, words: torch.Tensor, targets: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c, training = self.config, self.training
        count, (T, B), H = len(self.genotypes), words.shape, c.hidden_size
        lookup = self.embedding
        if training and c.dropoute > 0:
            lookup = lookup * variational_mask(lookup, (lookup.size(1), 1), c.dropoute)
        x = shared_locked_dropout(lookup.index_select(1, words.flatten()).view(count, T, B, H), c.dropouti, training)
        h_mask = None
        if training:
            x = x * variational_mask(x, (B, H), self.dropoutx)
            h_mask = variational_mask(x, (B, H), self.dropouth)
        x_proj = torch.bmm(x.view(count, T * B, H), self.W0[:, :H]).view(count, T, B, 2 * H)
        raw = run_cells(x_proj, hidden, self.W0[:, H:], list(self.Ws), self.plan, h_mask)
        out = shared_locked_dropout(raw, c.dropout, training)
        return decoder_losses(out, self.embedding, self.bias, targets), raw[:, -1], raw


def shared_locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`locked_dropout` of each cell's (T, B, H) slice of x (A, T, B, H), with one mask for all."""
    if not training or p == 0:
        return x
    return x * variational_mask(x, (1, x.size(2), x.size(3)), p)


@torch.no_grad()
def mean_losses(data: torch.Tensor, bptt: int, hidden: torch.Tensor, step: LossStep) -> torch.Tensor:
    """Each cell's mean cross-entropy per token over batchified `data`, carrying the hidden state
    from one `step(inputs, targets, hidden) -> (losses, hidden)` to the next: (A,)."""
    total, count = torch.zeros(hidden.size(0), dtype=torch.float64, device=data.device), 0
    for start in range(0, data.size(0) - 1, bptt):
        x, y = get_batch(data, start, bptt)
        losses, hidden = step(x, y, hidden)
        total += losses.double() * y.numel()
        count += y.numel()
    return (total / count).cpu()


@torch.no_grad()
def evaluate_stacked(model: StackedLanguageModel, data: torch.Tensor, bptt: int) -> torch.Tensor:
    """Each cell's mean cross-entropy per token on batchified `data`: (A,)."""
    model.eval()
    return mean_losses(data, bptt, model.init_hidden(data.size(1)), lambda x, y, hidden: model(x, y, hidden)[:2])


def node_weights_of(cell: RecurrentCell, genotypes: Sequence[Genotype]) -> list[torch.Tensor]:
    """Each node's matrix under the supernet's sharing: one shared (H, 2H), or one per cell (A, H, 2H)."""
    if cell.sharing == "by_node":
        return list(cell.Ws)
    return [torch.stack([cell.node_weight(node, *reversed(g[node])) for g in genotypes])
            for node in range(cell.nodes)]


@torch.no_grad()
def evaluate_cells(model: LanguageModel, data: torch.Tensor, genotypes: Sequence[Genotype], bptt: int) -> torch.Tensor:
    """Each genotype's mean cross-entropy per token under the supernet `model`'s shared weights,
    as `recipe.evaluate(model, data, genotype)` gives one at a time (a MixedCell scores the
    genotype's one-hot mixing weights): (A,)."""
    model.eval()
    cell = model.cell
    mixed = isinstance(cell, MixedCell)
    norm = batch_norm if mixed and not isinstance(cell.norm, nn.Identity) else None
    plan = CellPlan(genotypes, cell.nodes, "mean" if mixed else cell.output, data.device)
    node_weights = node_weights_of(cell, genotypes)
    H, E, decoder, count = cell.hidden_size, model.encoder.weight, model.decoder, len(genotypes)

    def step(x: torch.Tensor, y: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(model.precision, data.device):
            x_proj = F.embedding(x, E) @ cell.W0[:H]  # (T, B, 2H), the same for every cell
            raw = run_cells(x_proj, hidden, cell.W0[H:], node_weights, plan, None, norm, cell.hidden_norm_clip)
            shown = raw if cell.output_norm is None else cell.output_norm(raw)  # ENAS's, per cell and step
            losses = decoder_losses(shown, decoder.weight.expand(count, -1, -1), decoder.bias.expand(count, -1), y)
        return losses, raw[:, -1].float()

    return mean_losses(data, bptt, E.new_zeros(count, data.size(1), H), step)


