"""Regularized evolution: one-decision mutations, aging, and better cells than chance on a landscape with an optimum."""

import numpy as np
import pytest

from naseval.analysis.ranking import ranks
from naseval.core.errors import NasevalError
from naseval.core.params import build
from naseval.core.space import SearchSpace
from naseval.policies import SearchTask, get_policy
from naseval.policies.evolution import EvolutionConfig, mutate
from naseval.search.oracle import OracleTable

SPACE = SearchSpace(3)  # 384 cells
OPTIMUM = (("relu", 0), ("tanh", 1), ("sigmoid", 1))


def distance(genotype, other) -> int:
    return sum(a != b for node, other_node in zip(genotype, other, strict=True) for a, b in zip(node, other_node,
                                                                                              strict=True))


def landscape(noise: float = 1.0) -> OracleTable:
    """Perplexity 100 at the optimum, +10 per decision away from it, plus a little training noise."""
    rng = np.random.default_rng(0)
    return OracleTable({seed: {SPACE.to_id(g): 100.0 + 10 * distance(g, OPTIMUM) + rng.normal(0, noise)
                               for g in SPACE.enumerate()} for seed in (3, 4)}, "mean", SPACE.size)


def test_a_mutation_changes_exactly_one_decision():
    rng = np.random.default_rng(0)
    for _ in range(200):
        parent = SPACE.sample(rng)
        child = mutate(parent, SPACE, rng)
        assert SPACE.validate(child) == child and distance(parent, child) == 1


def test_the_population_ages_out_its_oldest_and_the_budget_bounds_the_cells_trained():
    config = EvolutionConfig(budget=24, population_size=6, sample_size=3)
    result = get_policy("evolution")(config).search(SearchTask(SPACE, None, 0, oracle=landscape()))
    assert result.evaluator["cells_trained"] == 24 == result.details["distinct_scored"]
    assert len(result.trace) == 6 + result.details["cycles"]
    assert [row["best_score"] for row in result.trace] == sorted((row["best_score"] for row in result.trace),
                                                                 reverse=True)


def test_regularized_evolution_beats_random_sampling_and_random_search_on_a_landscape_with_an_optimum():
    table = landscape()
    truth = {cell: np.mean([table.valid_ppl[s][cell] for s in (3, 4)]) for cell in range(SPACE.size)}
    true_rank = ranks(truth)
    found = {}
    for name, params in (("evolution", {"budget": 40, "population_size": 10, "sample_size": 5}),
                         ("random_search", {"budget": 40}), ("random", {})):
        policy = get_policy(name)
        config = build(policy.Config, params, f"search.{name}")
        found[name] = [true_rank[SPACE.to_id(policy(config).search(SearchTask(SPACE, None, seed, oracle=table))
                                             .candidates[0].genotype)] for seed in range(20)]
    assert np.median(found["evolution"]) < np.median(found["random_search"]) < np.median(found["random"])
    assert sum(rank <= 10 for rank in found["evolution"]) > sum(rank <= 10 for rank in found["random_search"])


def test_a_population_larger_than_the_budget_is_refused():
    with pytest.raises(NasevalError, match="population_size: expected at most budget"):
        EvolutionConfig(budget=4, population_size=8, sample_size=2)
