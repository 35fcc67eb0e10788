"""Is the ground truth a ruler of architectures? Validity checks beside its reliability.

A ground truth that its seeds reproduce can still rank the wrong thing: at a small budget it
can rank how fast a cell starts learning rather than how good the cell is. Four checks:

* `tau_vs_published`: Kendall tau of the ground-truth mean against the paper-scale order Yu et
  al. published for the 2-node space (naseval/reference/), matched by genotype; only where the
  space and output rule are the published ones.
* `isomorphs`: cells that are one architecture under two names (`SearchSpace.isomorphs`) should
  rank alike; their mean rank gap is set against that of random ranks. It needs no outside data.
* `cells_not_learned`: per seed, the cells whose validation perplexity is not below the unigram
  perplexity of the validation text: they have not learned to use any context, so their order
  among themselves and against the others is the order of how soon they would start.
* `fidelity`: the ground truth after each epoch against the final one (how early the order is
  settled: what a multi-fidelity user asks).

Taus are also given over distinct functions (each isomorphism class once, its cells' scores
averaged), so that a space's duplicates do not inflate the number of cells.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from naseval.analysis.ranking import Scores, kendall_tau, mean_scores, ranks
from naseval.analysis.reliability import kendall_tau_interval
from naseval.core.space import SearchSpace, parse_genotype

PUBLISHED_FILE = Path(__file__).resolve().parents[1] / "reference" / "yu2020_ptb_2node.json"


@dataclass(frozen=True)
class PublishedRanking:
    source: str
    space: SearchSpace
    ranking: tuple[str, ...]  # genotypes, best first

    def ranks_in(self, space: SearchSpace) -> Scores:
        """Cell id of `space` -> published rank (1 is best)."""
        return {space.to_id(parse_genotype(text, space)): rank for rank, text in enumerate(self.ranking, start=1)}

    def absent_because(self, space: SearchSpace) -> str | None:
        """Why the published order cannot judge `space`'s ground truth; None when it can."""
        published = self.space
        if (space.nodes, set(space.ops), space.cell_output) != (published.nodes, set(published.ops),
                                                                  published.cell_output):
            return (f"the published order is of the {published.nodes}-node space of {', '.join(published.ops)} "
                    f"with the {published.cell_output} output; this space has {space.nodes} nodes, ops "
                    f"{', '.join(space.ops)} and the {space.cell_output} output")
        return None


@functools.cache
def published_ranking() -> PublishedRanking:
    data = json.loads(PUBLISHED_FILE.read_text())
    space = SearchSpace(**{**data["space"], "ops": tuple(data["space"]["ops"])})
    return PublishedRanking(data["source"], space, tuple(data["ranking"]))


def published_ranks(space: SearchSpace) -> Scores:
    """Cell id -> published rank where the published order judges `space`; else empty."""
    published = published_ranking()
    return {} if published.absent_because(space) else published.ranks_in(space)


def by_function(scores: Scores, classes: list[int]) -> Scores:
    """Each isomorphism class once (keyed by its smallest cell id): the mean of its cells' scores."""
    members: dict[int, list[float]] = {}
    for cell, score in scores.items():
        members.setdefault(classes[cell], []).append(score)
    return {cls: float(np.mean(values)) for cls, values in members.items()}


def isomorph_agreement(scores: Scores, classes: list[int], resamples: int, rng: np.random.Generator
                       ) -> dict[str, Any] | None:
    """The mean rank gap of every pair of isomorphic cells against random ranks: its expectation
    ((n + 1) / 3 for two distinct ranks of n) and a permutation p-value (random ranks giving a
    gap as small); None when the space has no isomorphic pair among the scored cells."""
    cells = sorted(scores)
    position = {cell: i for i, cell in enumerate(cells)}
    pairs = [(position[a], position[b]) for a in cells for b in cells
             if a < b and classes[a] == classes[b]]
    if not pairs:
        return None
    first, second = (np.array(side) for side in zip(*pairs, strict=True))
    rank = ranks(scores)
    observed = np.array([rank[cell] for cell in cells], dtype=float)
    gap = float(np.abs(observed[first] - observed[second]).mean())
    shuffled = np.argsort(rng.random((resamples, len(cells))), axis=1).astype(float) + 1
    random_gaps = np.abs(shuffled[:, first] - shuffled[:, second]).mean(axis=1)
    return {"pairs": len(pairs), "mean_rank_gap": gap, "random_rank_gap": (len(cells) + 1) / 3,
            "p": float((1 + np.sum(random_gaps <= gap)) / (1 + resamples))}


def cells_not_learned(per_seed: dict[int, Scores], unigram_ppl: float) -> dict[str, list[int]]:
    """Per seed, the cells whose validation perplexity is not below the unigram perplexity."""
    return {str(seed): sorted(cell for cell, ppl in scores.items() if ppl >= unigram_ppl)
            for seed, scores in sorted(per_seed.items())}


def result_after(curve: list[float], epochs: int) -> float:
    """What a run of `epochs` epochs reports: the best validation perplexity so far (the best
    state and NT-ASGD's switch depend only on earlier epochs)."""
    return min(curve[:epochs])


def fidelity(curves: dict[int, dict[int, list[float]]]) -> list[dict[str, Any]]:
    """Per epoch, Kendall tau of the seeds' mean after that epoch against their mean at the end."""
    lengths = {len(curve) for scores in curves.values() for curve in scores.values()}
    if not lengths:
        return []
    last = min(lengths)
    final = mean_scores([{c: result_after(curve, last) for c, curve in s.items()} for s in curves.values()])
    rows = []
    for epoch in range(1, last + 1):
        at = mean_scores([{c: result_after(curve, epoch) for c, curve in s.items()} for s in curves.values()])
        rows.append({"epoch": epoch, "kendall_tau_with_final": kendall_tau(at, final)})
    return rows


def validity(per_seed: dict[int, Scores], space: SearchSpace, resamples: int, confidence: float,
             rng: np.random.Generator) -> dict[str, Any]:
    """Agreement with the published order and of isomorphic cells (`per_seed`: seed -> cell id ->
    validation perplexity)."""
    classes = space.function_classes()
    mean = mean_scores(list(per_seed.values()))
    summary: dict[str, Any] = {"distinct_functions": len({classes[cell] for cell in mean})}
    published = published_ranking()
    reason = published.absent_because(space)
    if reason:
        summary |= {"tau_vs_published": None, "published_absent": reason}
    else:
        published_ranks = published.ranks_in(space)
        seeds = [per_seed[s] for s in sorted(per_seed)]
        summary |= {
            "tau_vs_published": kendall_tau(mean, published_ranks),
            "tau_vs_published_interval": (kendall_tau_interval(published_ranks, seeds, resamples, confidence, rng)
                                          if len(seeds) > 1 else None),
            "tau_vs_published_distinct_functions": kendall_tau(by_function(mean, classes),
                                                               by_function(published_ranks, classes)),
            "tau_vs_published_per_seed": {str(s): kendall_tau(per_seed[s], published_ranks) for s in sorted(per_seed)},
            "published_source": published.source,
            "published_isomorphs": isomorph_agreement(published_ranks, classes, resamples, rng),
        }
    summary["isomorphs"] = isomorph_agreement(mean, classes, resamples, rng)
    return summary
