"""`enas`: reinforcement learning over shared weights (Pham et al. 2018, ENAS, PTB recurrent cell).

An LSTM controller emits the cell node by node: for each node its predecessor (attention over
the controller states of the earlier nodes, with melodyguan/enas's prior for near states) and
its op. Shared weights and controller train in turns: one epoch of the supernet on cells sampled
from the controller, then a controller phase of REINFORCE steps with reward c / (validation
perplexity of the sampled cell on the next validation minibatch under the shared weights), an
entropy bonus and a moving-average baseline; each phase restarts the reward minibatches, their
recurrent state and the baseline, as carpedm20/ENAS-pytorch's trainer. As carpedm20's shared
model, node i owns one matrix per predecessor, the output the decoder reads can be batch-normed
(`batch_norm`) and the recurrent state's rows are clipped to a norm of 25 (`hidden_norm_clip`).
The original's cells output the mean of their loose ends: here the space's `cell_output` says
which rule every stage uses (loose_ends is the original's).

Without weight sharing (`evaluator: oracle`) the reward is c / the cell's perplexity trained
from scratch, and the search ends when the controller's steps are done or the oracle's budget
of cells is spent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from naseval.core.params import require
from naseval.core.runtime import seed_everything
from naseval.core.space import Genotype, SearchSpace, format_genotype
from naseval.policies.base import SearchPolicy, SearchTask, check_evaluator, register
from naseval.policies.result import SearchResult, Trace, epoch_rows, ranked_candidates
from naseval.search.oracle import BudgetSpent
from naseval.search.supernet import RankingHistory

CONTROLLER_INIT_RANGE = 0.1  # ENAS initializes every controller weight uniformly in +-0.1


@dataclass(frozen=True)
class ControllerConfig:
    hidden_size: int = 100
    temperature: float = 5.0  # logits / temperature ...
    tanh_constant: float = 2.5  # ... then tanh_constant * tanh(logits)
    lr: float = 3.5e-4  # Adam
    steps_per_epoch: int = 20  # REINFORCE steps after each epoch of the shared weights
    reward_c: float = 80.0  # reward = reward_c / validation perplexity
    entropy_weight: float = 1e-4  # added to the reward, times the entropy of the sampled decisions
    baseline_decay: float = 0.95

    def __post_init__(self) -> None:
        for key in ("hidden_size", "steps_per_epoch"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        for key in ("temperature", "tanh_constant", "lr", "reward_c"):
            require(getattr(self, key) > 0, key, getattr(self, key), "a number > 0")
        require(self.entropy_weight >= 0, "entropy_weight", self.entropy_weight, "a number >= 0")
        require(0 <= self.baseline_decay < 1, "baseline_decay", self.baseline_decay, "a number in [0, 1)")


@dataclass(frozen=True)
class EnasConfig:
    """params.yaml `search.enas`."""

    controller: ControllerConfig = field(default_factory=ControllerConfig)
    derive_samples: int = 100  # cells sampled from the final controller and scored
    score_all_up_to: int = 64  # spaces this small are also ranked whole
    ranking_every: int = 2  # epochs between rankings of the whole space during training; 0: none
    evaluator: str = "shared_weights"  # or landmark; or oracle: rewards from cells trained from scratch
    budget: int = 16  # cells the oracle may train (unused under shared weights)
    batch_norm: bool = True  # of the shared model's cell output (carpedm20's); false: none
    hidden_norm_clip: float | None = 25.0  # the shared model's recurrent state, per row (carpedm20's); null: none

    def __post_init__(self) -> None:
        check_evaluator(self.evaluator, EnasPolicy.evaluators,
                        " (the controller draws the cells: few_shot and fair_sampling would replace its draw)")
        for key in ("derive_samples", "score_all_up_to", "budget"):
            require(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        if self.hidden_norm_clip is not None:
            require(self.hidden_norm_clip > 0, "hidden_norm_clip", self.hidden_norm_clip, "a number > 0, or null")
        require(self.ranking_every >= 0, "ranking_every", self.ranking_every, "an integer >= 0")


@dataclass
class Decisions:
    genotype: Genotype
    log_prob: torch.Tensor  # of the whole cell: the sum over its decisions
    entropy: torch.Tensor  # sum of the entropies of each decision's distribution


class Controller(nn.Module):
    """ENAS's RNN controller for the DARTS space: per node, a predecessor then an op."""

    def __init__(self, space: SearchSpace, config: ControllerConfig):
        super().__init__()
        self.space, self.config = space, config
        H = config.hidden_size
        self.lstm = nn.LSTMCell(H, H)
        self.start = nn.Parameter(torch.empty(1, H))
        self.op_embedding = nn.Parameter(torch.empty(len(space.ops), H))
        self.op_logits = nn.Linear(H, len(space.ops), bias=False)
        self.attention_key = nn.Linear(H, H, bias=False)
        self.attention_query = nn.Linear(H, H, bias=False)
        self.attention_score = nn.Linear(H, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -CONTROLLER_INIT_RANGE, CONTROLLER_INIT_RANGE)

    def _decide(self, logits: torch.Tensor, choose: Callable[[torch.Tensor], int], prior: torch.Tensor | None = None):
        logits = self.config.tanh_constant * torch.tanh(logits / self.config.temperature)
        if prior is not None:
            logits = logits + prior
        log_probs = F.log_softmax(logits, dim=-1)
        choice = choose(log_probs)
        return choice, log_probs[choice], -(log_probs.exp() * log_probs).sum()

    def forward(self, choose: Callable[[int, str, torch.Tensor], int]) -> Decisions:
        """Walk the decisions; `choose(node, "pred" | "op", log_probs)` picks each one.

        As M's controller (ptb_enas_controller.py:113-143): a predecessor's logit, after the
        temperature and tanh, is lowered by (distance)^2 / 6, and the chosen predecessor's state
        is fed back divided by (0.1 + distance). Node n sits at distance n + 1 - p from state p
        (s0 is state 0), as M's layer n + 1 from its layer p."""
        h, c = self.lstm(self.start)
        anchors, keys = [h], [self.attention_key(h)]  # one per state a node can read: s0, then nodes
        genotype, log_prob, entropy = [], h.new_zeros(()), h.new_zeros(())
        for node in range(self.space.nodes):
            distance = torch.arange(node + 1, 0, -1, dtype=h.dtype, device=h.device)  # to states 0..node
            pred = 0
            if node > 0:  # node 0 can only read s0
                query = torch.tanh(torch.cat(keys) + self.attention_query(h))
                pred, lp, ent = self._decide(self.attention_score(query).view(-1),
                                             lambda lp: choose(node, "pred", lp), prior=-distance.square() / 6)
                log_prob, entropy = log_prob + lp, entropy + ent
            h, c = self.lstm(anchors[pred] / (0.1 + distance[pred]), (h, c))
            op, lp, ent = self._decide(self.op_logits(h).view(-1), lambda lp: choose(node, "op", lp))
            log_prob, entropy = log_prob + lp, entropy + ent
            h, c = self.lstm(self.op_embedding[op : op + 1], (h, c))
            anchors.append(h)
            keys.append(self.attention_key(h))
            genotype.append((self.space.ops[op], pred))
        return Decisions(tuple(genotype), log_prob, entropy)

    def sample(self, rng: np.random.Generator) -> Decisions:
        def draw(node, kind, log_probs):
            p = log_probs.detach().exp().double().cpu().numpy()
            return int(min(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"), len(p) - 1))

        return self(draw)

    def score(self, genotype: Genotype) -> Decisions:
        """The log-probability of a given cell."""
        return self(lambda node, kind, log_probs: self.space.ops.index(genotype[node][0]) if kind == "op"
                    else genotype[node][1])

    def mode(self) -> Decisions:
        """The greedy cell: the most probable decision at every step."""
        return self(lambda node, kind, log_probs: int(log_probs.argmax()))


class Reinforce:
    """REINFORCE with an entropy bonus and an exponential moving-average baseline (ENAS)."""

    def __init__(self, controller: Controller, config: ControllerConfig):
        self.controller, self.config = controller, config
        self.optimizer = torch.optim.Adam(controller.parameters(), lr=config.lr)
        self.baseline: float | None = None

    def restart(self) -> None:
        """A new controller phase: the baseline starts again from its first reward (carpedm20
        trainer.py:388)."""
        self.baseline = None

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]

    def step(self, rng: np.random.Generator, reward_of: Callable[[Genotype], float]) -> dict[str, float]:
        decisions = self.controller.sample(rng)
        reward = reward_of(decisions.genotype) + self.config.entropy_weight * decisions.entropy.item()
        decay = self.config.baseline_decay
        self.baseline = reward if self.baseline is None else decay * self.baseline + (1 - decay) * reward
        loss = -decisions.log_prob * (reward - self.baseline)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"reward": reward, "entropy": decisions.entropy.item()}


def cell_probability(controller: Controller, genotype: Genotype) -> float:
    with torch.no_grad():
        return math.exp(controller.score(genotype).log_prob.item())


@register
class EnasPolicy(SearchPolicy):
    name = "enas"
    Config = EnasConfig
    evaluators = ("shared_weights", "landmark", "oracle")

    def search(self, task: SearchTask) -> SearchResult:
        config, space = self.config, task.space
        rng = seed_everything(task.seed)
        evaluator = task.evaluator(config.evaluator, rng, config.budget, sharing="by_edge",
                                   output_norm=config.batch_norm, hidden_norm_clip=config.hidden_norm_clip)
        controller = Controller(space, config.controller).to(evaluator.device)
        reinforce = Reinforce(controller, config.controller)

        def reward_of(genotype: Genotype) -> float:
            return config.controller.reward_c / evaluator.quick_score(genotype)

        def sample_cell(step) -> Genotype:
            with torch.no_grad():
                return controller.sample(rng).genotype

        def mode() -> Genotype:
            with torch.no_grad():
                return controller.mode().genotype

        def controller_ranking() -> dict[int, float]:
            with torch.no_grad():
                return {space.to_id(g): -controller.score(g).log_prob.item() for g in space.enumerate()}

        enumerable = space.size <= config.score_all_up_to
        history = RankingHistory(config.ranking_every if enumerable else 0, lambda: {
            **evaluator.rank_all(), "controller_neg_log_prob": controller_ranking()})

        def train_controller(epoch: int) -> dict:
            evaluator.restart_quick_scores()
            reinforce.restart()
            stats = []
            for _ in range(config.controller.steps_per_epoch):
                try:
                    stats.append(reinforce.step(rng, reward_of))
                except BudgetSpent:  # the oracle refused a new cell: the search ends with this epoch
                    break
            history(epoch)
            best = mode()
            return {
                "cell_id": space.to_id(best), "cost": evaluator.cost,
                "mode_probability": cell_probability(controller, best), "controller_steps": len(stats),
                "mean_reward": float(np.mean([s["reward"] for s in stats])) if stats else None,
                "controller_entropy": float(np.mean([s["entropy"] for s in stats])) if stats else None,
            }

        # Validation scores the greedy cell after the epoch's controller phase: the run's pick.
        rows = evaluator.train(sample_cell, lambda: [mode()], "enas", after_epoch=train_controller,
                               checkpoint=task.tracking(controller=controller, reinforce=reinforce, history=history,
                                                        **evaluator.stateful()))
        trace = epoch_rows(Trace(space), rows)  # the greedy cell of each epoch, scored by validation

        with torch.no_grad():
            sampled = [controller.sample(rng).genotype for _ in range(config.derive_samples)]
        counts = Counter(sampled)
        derived = list(counts)  # distinct, in order of first draw
        rankings = {**evaluator.rank_all(), "controller_neg_log_prob": controller_ranking()} if enumerable else {}
        # Under a spent budget none of the samples may be trained: then the pick is among the cells it trained.
        picks = evaluator.affordable(derived) or evaluator.affordable(list(space.enumerate()))
        scores = rankings.get(evaluator.ranking_name) or evaluator.score(picks)
        best = mode()
        details = {
            "controller_mode": format_genotype(best),
            "controller_mode_probability": cell_probability(controller, best),
            "derive_samples": config.derive_samples,
            "distinct_sampled": len(counts),
            "most_sampled": [{"genotype": format_genotype(g), "count": n} for g, n in counts.most_common(5)],
        }
        return SearchResult(ranked_candidates(picks, scores, space), trace, rankings, details=details,
                            ranking_history=history.snapshots, evaluator=evaluator.facts())
