"""`nao`: neural architecture optimization (Luo et al. 2018, NAO), for the PTB recurrent cell.

An encoder maps a cell, written as a token sequence, to a continuous embedding; a predictor
estimates its performance from the embedding; a decoder maps embeddings back to cells. Search
runs in rounds over a pool of cells: train NAO's weight-sharing child model (one matrix per
node, predecessor and op) on cells of the pool, score the pool by validation perplexity under
the shared weights, train the encoder-predictor-decoder on (cell, score), then move the best
cells' embeddings along the predictor's gradient, with a step that grows until enough new
cells decode. The pool keeps its size, as the original's (NAO-WS/rnn/train_search.py): each
round keeps its best cells, drops the worst to make room, and adds the new cells and a few drawn
at random.

As in the original, every round trains the child model, whatever the pool holds: a round whose
decoder finds no new cell (or whose pool is already the whole space) adds only its random cells
and goes on. The original's pool holds 1,000 cells, of which it replaces 300 new and 50 random
ones a round; a small space cannot hold that many, so the counts are clamped to the space (and
recorded in the result's details).

Without weight sharing (`evaluator: oracle`) the pool is scored by the cells' results trained
from scratch; the rounds stop when the oracle's budget of cells is spent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from naseval.core import preemption
from naseval.core.params import require
from naseval.core.runtime import seed_everything
from naseval.core.space import Genotype, SearchSpace
from naseval.policies.base import SearchPolicy, SearchTask, check_evaluator, register
from naseval.policies.result import SearchResult, Trace, ranked_candidates
from naseval.search.supernet import RankingHistory
from naseval.training.checkpoint import random_states, restore_random_states

START = 0  # the decoder's first input token
VALIDATION_CELLS = 4  # pool cells whose mean validation loss tracks the child model


@dataclass(frozen=True)
class EpdConfig:
    """The encoder-predictor-decoder and its training (NAO's controller)."""

    embedding_size: int = 48  # per token; the encoder reads a node's two tokens joined, 2 x 48 = 96 wide
    hidden_size: int = 96  # encoder and decoder LSTMs, and the decoder's token embedding
    dropout: float = 0.1  # on the encoder's token embeddings (the original's encoder_dropout)
    grad_bound: float = 5.0  # gradient-norm clip of each step (the original's max_gradient_norm)
    mlp_layers: int = 4
    mlp_hidden_size: int = 200
    trade_off: float = 0.8  # loss = trade_off * prediction MSE + (1 - trade_off) * reconstruction NLL
    lr: float = 1e-3  # Adam
    weight_decay: float = 1e-4
    epochs: int = 300  # over the pool, per round
    batch_size: int = 100

    def __post_init__(self) -> None:
        for key in ("embedding_size", "hidden_size", "mlp_layers", "mlp_hidden_size", "epochs", "batch_size"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(0 <= self.trade_off <= 1, "trade_off", self.trade_off, "a number in [0, 1]")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        require(self.grad_bound > 0, "grad_bound", self.grad_bound, "a number > 0")
        require(self.lr > 0, "lr", self.lr, "a number > 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")


@dataclass(frozen=True)
class NaoConfig:
    """params.yaml `search.nao`."""

    epd: EpdConfig = field(default_factory=EpdConfig)
    rounds: int = 3  # child training phases; new cells are proposed between them
    seed_cells: int = 1000  # the first pool, drawn at random; the pool keeps this size
    top_cells: int = 100  # the pool's best, whose embeddings are moved
    new_cells: int = 300  # proposed per round; they replace the pool's worst
    random_cells: int = 50  # drawn at random per round; they replace the next worst
    max_step_size: int = 30  # the step grows 1, 2, ... up to this until enough new cells decode (the original: 30)
    score_all_up_to: int = 64  # spaces this small are also ranked whole
    ranking_every: int = 1  # rounds between rankings of the whole space by the child model; 0: none
    evaluator: str = "shared_weights"  # or oracle: the pool scored by its cells trained from scratch
    budget: int = 16  # cells the oracle may train, the first pool clamped to it (unused under shared weights)

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, NaoPolicy.evaluators,
                        " (its supernet trains anew each round: the other supernets' training is one phase)")
        for key in ("rounds", "seed_cells", "top_cells", "new_cells", "max_step_size", "score_all_up_to", "budget"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        require(self.random_cells >= 0, "random_cells", self.random_cells, "an integer >= 0")
        replaced = self.new_cells + self.random_cells
        require(replaced < self.seed_cells, "new_cells + random_cells", replaced,
                f"fewer than seed_cells ({self.seed_cells}): the pool keeps its best")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


class Tokens:
    """A cell as 2 tokens per node: its predecessor, then its op. Token 0 starts decoding."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.pred_offset, self.op_offset = 1, 1 + space.nodes
        self.vocab_size = 1 + space.nodes + len(space.ops)
        self.length = 2 * space.nodes
        self.allowed = torch.zeros(self.length, self.vocab_size, dtype=torch.bool)  # per position
        for node in range(space.nodes):
            self.allowed[2 * node, self.pred_offset : self.pred_offset + node + 1] = True
            self.allowed[2 * node + 1, self.op_offset :] = True

    def encode(self, genotypes: list[Genotype]) -> torch.Tensor:
        return torch.tensor([
            [t for op, pred in g for t in (self.pred_offset + pred, self.op_offset + self.space.ops.index(op))]
            for g in genotypes
        ])

    def decode(self, tokens: torch.Tensor) -> list[Genotype]:
        return [
            tuple((self.space.ops[int(row[2 * i + 1]) - self.op_offset], int(row[2 * i]) - self.pred_offset)
                  for i in range(self.space.nodes))
            for row in tokens
        ]


class EncoderPredictorDecoder(nn.Module):
    """The original's shapes (NAO-WS/rnn/encoder, decoder): the encoder embeds each token and takes
    one LSTM step per node on its two embeddings joined; the decoder embeds its tokens as wide as
    its hidden state and scores the whole vocabulary, so its training loss runs over every token.
    Only decoding keeps to the tokens valid at each position."""

    def __init__(self, tokens: Tokens, config: EpdConfig):
        super().__init__()
        self.tokens = tokens
        E, H = config.embedding_size, config.hidden_size
        self.encoder_embedding = nn.Embedding(tokens.vocab_size, E)
        self.encoder_dropout = nn.Dropout(config.dropout)
        self.encoder = nn.LSTM(2 * E, H, batch_first=True)
        layers: list[nn.Module] = []
        width = H
        for _ in range(config.mlp_layers):
            layers += [nn.Linear(width, config.mlp_hidden_size), nn.ReLU()]
            width = config.mlp_hidden_size
        self.predictor = nn.Sequential(*layers, nn.Linear(width, 1))
        self.decoder_embedding = nn.Embedding(tokens.vocab_size, H)
        self.decoder = nn.LSTMCell(H, H)
        self.attention_combine = nn.Linear(2 * H, H)
        self.output = nn.Linear(H, tokens.vocab_size)

    def encode(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, 2N) -> encoder outputs (B, N, H), one per node, and the cell's embedding (B, H),
        unit norm."""
        embedded = self.encoder_dropout(self.encoder_embedding(tokens))
        outputs, _ = self.encoder(embedded.view(tokens.size(0), self.tokens.space.nodes, -1))
        outputs = F.normalize(outputs, dim=-1)
        return outputs, embedding_of(outputs)

    def predict(self, embedding: torch.Tensor) -> torch.Tensor:
        """Predicted performance in (0, 1), higher is better."""
        return torch.sigmoid(self.predictor(embedding)).squeeze(-1)

    def decode(self, outputs: torch.Tensor, embedding: torch.Tensor,
               targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, L, V) of each position over the whole vocabulary, and the tokens: `targets` fed
        back when given (teacher forcing), else the greedy choices among the tokens valid there."""
        B = outputs.size(0)
        h, c = embedding, embedding
        previous = torch.full((B,), START, dtype=torch.long, device=outputs.device)
        all_logits, chosen = [], []
        for position in range(self.tokens.length):
            h, c = self.decoder(self.decoder_embedding(previous), (h, c))
            weights = torch.softmax(torch.einsum("bh,blh->bl", h, outputs), dim=-1)
            context = torch.einsum("bl,blh->bh", weights, outputs)
            logits = self.output(torch.tanh(self.attention_combine(torch.cat([h, context], dim=-1))))
            allowed = self.tokens.allowed[position].to(logits.device)
            choice = logits.masked_fill(~allowed, float("-inf")).argmax(-1)
            all_logits.append(logits)
            chosen.append(choice)
            previous = targets[:, position] if targets is not None else choice
        return torch.stack(all_logits, 1), torch.stack(chosen, 1)


def embedding_of(outputs: torch.Tensor) -> torch.Tensor:
    return F.normalize(outputs.mean(dim=1), dim=-1)


def performance_targets(perplexities: list[float]) -> torch.Tensor:
    """Lower perplexity -> higher target, scaled to [0, 1] over the pool (NAO's normalization)."""
    ppl = torch.tensor(perplexities, dtype=torch.float)
    spread = (ppl.max() - ppl.min()).clamp_min(1e-12)
    return (ppl.max() - ppl) / spread


def train_epd(epd: EncoderPredictorDecoder, optimizer: torch.optim.Optimizer, genotypes: list[Genotype],
              targets: torch.Tensor, config: EpdConfig, rng: np.random.Generator) -> dict[str, float]:
    """Train on (cell, target) pairs for `config.epochs`; the last epoch's mean losses."""
    tokens = epd.tokens.encode(genotypes)
    epd.train()
    for _ in range(config.epochs):
        order = rng.permutation(len(genotypes))
        mse_sum = nll_sum = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = torch.as_tensor(order[start : start + config.batch_size])
            x, y = tokens[batch], targets[batch]
            outputs, embedding = epd.encode(x)
            mse = F.mse_loss(epd.predict(embedding), y)
            logits, _ = epd.decode(outputs, embedding, targets=x)
            nll = F.cross_entropy(logits.flatten(0, 1), x.flatten())
            optimizer.zero_grad(set_to_none=True)
            (config.trade_off * mse + (1 - config.trade_off) * nll).backward()
            nn.utils.clip_grad_norm_(epd.parameters(), config.grad_bound)
            optimizer.step()
            mse_sum, nll_sum = mse_sum + mse.item() * len(batch), nll_sum + nll.item() * len(batch)
    return {"epd_mse": mse_sum / len(genotypes), "epd_nll": nll_sum / len(genotypes)}


def predicted(epd: EncoderPredictorDecoder, genotypes: list[Genotype]) -> torch.Tensor:
    epd.eval()
    with torch.no_grad():
        return epd.predict(epd.encode(epd.tokens.encode(genotypes))[1])


def move_and_decode(epd: EncoderPredictorDecoder, genotypes: list[Genotype],
                    step_size: float) -> tuple[list[Genotype], torch.Tensor]:
    """One step of size `step_size` along the predictor's gradient from each cell's encoder
    outputs; the decoded cells and their predicted performance after the step."""
    epd.eval()
    outputs, embedding = epd.encode(epd.tokens.encode(genotypes))
    outputs = outputs.detach().requires_grad_()
    gradient, = torch.autograd.grad(epd.predict(embedding_of(outputs)).sum(), outputs)
    with torch.no_grad():
        moved = F.normalize(outputs + step_size * gradient, dim=-1)
        _, tokens = epd.decode(moved, embedding_of(moved))
        return epd.tokens.decode(tokens), epd.predict(embedding_of(moved))


def propose(epd: EncoderPredictorDecoder, top: list[Genotype], known: set[Genotype], wanted: int,
            max_step_size: int) -> tuple[list[Genotype], int]:
    """New cells decoded from the top cells' moved embeddings, the step growing 1, 2, ... until
    `wanted` are found or `max_step_size` is reached; the cells and the last step size."""
    found: dict[Genotype, None] = {}
    step_size = 0
    while len(found) < wanted and step_size < max_step_size:
        step_size += 1
        cells, _ = move_and_decode(epd, top, float(step_size))
        for cell in cells:
            if cell not in known and len(found) < wanted:
                found[cell] = None
    return list(found), step_size


def clamped(asked: int, allowed: int, key: str, notes: dict[str, Any]) -> int:
    if asked > allowed:
        notes[key] = {"asked": asked, "used": allowed}
    return min(asked, allowed)


def random_cells_outside(space: SearchSpace, known: set[Genotype], count: int,
                         rng: np.random.Generator) -> list[Genotype]:
    """Up to `count` distinct cells drawn uniformly from those not in `known`."""
    count = min(count, space.size - len(known))
    found: dict[Genotype, None] = {}
    while len(found) < count:
        cell = space.sample(rng)
        if cell not in known:
            found[cell] = None
    return list(found)


def next_pool(ranked: list[Genotype], new: list[Genotype], random: list[Genotype]) -> list[Genotype]:
    """The pool of the next round, of the same size: the best of `ranked` (best first), then the
    new and the random cells in place of the worst (NAO-WS's `old_archs[:-n] + new + random`)."""
    return ranked[: len(ranked) - len(new) - len(random)] + new + random


@register
class NaoPolicy(SearchPolicy):
    name = "nao"
    Config = NaoConfig
    evaluators = ("shared_weights", "oracle")

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng = seed_everything(task.seed)
        evaluator = task.evaluator(config.evaluator, rng, config.budget, sharing="by_choice")
        epd = EncoderPredictorDecoder(Tokens(space), config.epd)
        optimizer = torch.optim.Adam(epd.parameters(), lr=config.epd.lr, weight_decay=config.epd.weight_decay)
        clamps: dict[str, Any] = {}
        affordable = int(min(space.size, evaluator.remaining))
        pool = space.sample_distinct(clamped(config.seed_cells, affordable, "seed_cells", clamps), rng)
        def sample_from_pool(step) -> Genotype:
            return pool[int(rng.integers(len(pool)))]

        enumerable = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if enumerable else 0, lambda: evaluator.rank_all(scores))
        trace, stop, done = Trace(space), f"ran {config.rounds} rounds", 0
        # Checkpoints at the end of each round: the child model, the EPD and the pool.
        checkpoint = task.tracking(epd=epd, optimizer=optimizer, history=history, **evaluator.stateful())
        saved = checkpoint.load(evaluator.device) if checkpoint else None
        if saved:
            pool, scores, clamps = saved["pool"], saved["scores"], saved["clamps"]
            trace = Trace(space, saved["trace"])
            restore_random_states(saved["random"], rng)
            done = len(trace.rows)
        with preemption.listening():  # a stop request is answered at a round's end, where it checkpoints
            for round_ in range(done + 1, config.rounds + 1):
                rows = evaluator.train(sample_from_pool, lambda: pool[:VALIDATION_CELLS], f"nao round {round_}")
                scores = evaluator.score(pool)
                best = min(pool, key=lambda g: scores[space.to_id(g)])
                row = trace.add(best, scores[space.to_id(best)], evaluator.cost, round=round_,
                                epoch=round_ * task.supernet.train.epochs, pool=len(pool),
                                child_valid_ppl=rows[-1]["valid_ppl"] if rows else None,
                                epd_mse=None, epd_nll=None, new_cells=0, random_cells=0, step_size=None)
                history(round_, epoch=row["epoch"])
                if round_ == config.rounds:
                    break
                budget_left = int(min(space.size, evaluator.remaining))
                if budget_left == 0:
                    stop = f"the oracle's budget of {config.budget} cells was spent after round {round_}"
                    break
                row |= train_epd(epd, optimizer, pool, performance_targets([scores[space.to_id(g)] for g in pool]),
                                 config.epd, rng)
                ranked = sorted(pool, key=lambda g: scores[space.to_id(g)])
                top = ranked[: clamped(config.top_cells, len(pool), "top_cells", clamps)]
                wanted = min(clamped(config.new_cells, space.size - len(pool), "new_cells", clamps), budget_left)
                new, row["step_size"] = propose(epd, top, set(pool), wanted, config.max_step_size)
                row["new_cells"] = len(new)
                drawn = random_cells_outside(space, set(pool) | set(new),
                                             min(config.random_cells, budget_left - len(new)), rng)
                row["random_cells"] = len(drawn)
                pool = next_pool(ranked, new, drawn)
                if checkpoint:
                    checkpoint.save({"pool": pool, "trace": trace.rows, "scores": scores, "clamps": clamps,
                                     "random": random_states(rng)})
                    preemption.stop_if_requested(f"checkpoint saved at the end of round {round_}")

        rankings = {}
        if enumerable:
            cells = list(space.enumerate())
            train_epd(epd, optimizer, pool, performance_targets([scores[space.to_id(g)] for g in pool]),
                      config.epd, rng)
            rankings = evaluator.rank_all(scores)  # the pool's scores are current
            rankings["predictor_neg_performance"] = dict(zip(
                (space.to_id(g) for g in cells), (-predicted(epd, cells)).tolist(), strict=True))
        details = {"stopped": stop, "pool": len(pool), "clamped": clamps}
        return SearchResult(ranked_candidates(pool, scores, space), trace.rows, rankings, details=details,
                            ranking_history=history.snapshots, evaluator=evaluator.facts())
