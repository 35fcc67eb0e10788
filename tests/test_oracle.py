"""The oracle: answers from held-out seeds only, once per cell, within its budget."""

import numpy as np
import pytest

from naseval.analysis.ranking import ranks
from naseval.analysis.summary import GroundTruth
from naseval.core.errors import NasevalError
from naseval.core.params import build
from naseval.core.space import SearchSpace
from naseval.policies import SearchTask, get_policy
from naseval.search.oracle import BudgetSpent, Oracle, OracleTable

SPACE = SearchSpace(2)


def noisy_tables(truth: dict[int, float], seeds: list[int], noise: float, rng: np.random.Generator) -> dict:
    """One training seed's results per seed: the truth plus independent noise per cell."""
    return {seed: {cell: ppl + rng.normal(0, noise) for cell, ppl in truth.items()} for seed in seeds}


def test_answers_come_from_held_out_seeds_once_per_cell_within_the_budget():
    table = OracleTable({3: {c: 100.0 + c for c in range(32)}, 4: {c: 200.0 + c for c in range(32)}}, "mean", 32)
    oracle = Oracle(table, budget=3, rng=np.random.default_rng(0), space=SPACE)
    cells = [SPACE.from_id(i) for i in (5, 9, 5, 30)]
    first = [oracle.score(g) for g in cells[:3]]
    assert first[0] == first[2]  # asked again: the same training, at no cost
    assert {answer - cell for answer, cell in zip(first, (5, 9, 5), strict=True)} <= {100.0, 200.0}
    assert set(oracle.answered_by.values()) <= {3, 4}
    assert oracle.spent == 2 and oracle.queries == 3
    oracle.score(cells[3])
    with pytest.raises(BudgetSpent):
        oracle.score(SPACE.from_id(0))
    assert oracle.refused and oracle.facts() == {"seeds": [3, 4], "budget": 3, "cells_trained": 3, "queries": 5}


def test_each_cell_draws_its_seed_with_the_search_seed():
    table = OracleTable({3: {c: 100.0 for c in range(32)}, 4: {c: 200.0 for c in range(32)}}, "mean", 32)
    def answers(seed):
        oracle = Oracle(table, 32, np.random.default_rng(seed), SPACE)
        return tuple(oracle.score(g) for g in SPACE.enumerate())

    draws = {seed: answers(seed) for seed in range(3)}
    assert all(set(a) == {100.0, 200.0} for a in draws.values())  # both seeds answer within one search
    assert len(set(draws.values())) == 3  # and other search seeds meet other draws
    assert draws[0] == answers(0)


def test_a_seed_whose_training_diverged_does_not_answer_for_that_cell():
    table = OracleTable({3: {c: 100.0 for c in range(32) if c != 7}, 4: {c: 200.0 for c in range(32)}}, "mean", 32)
    answers = {Oracle(table, 32, np.random.default_rng(seed), SPACE).score(SPACE.from_id(7)) for seed in range(20)}
    assert answers == {200.0}


@pytest.mark.parametrize("table, message", [
    (OracleTable({}, "mean", 32), "no held-out seed"),
    (OracleTable({3: {0: 1.0}}, "loose_ends", 32), "cell output loose_ends"),
    (OracleTable({3: {0: 1.0}}, "mean", 384), "trained for 384 cells"),
])
def test_a_table_it_cannot_answer_from_is_refused_in_one_line(table, message):
    with pytest.raises(NasevalError, match=message):
        Oracle(table, 8, np.random.default_rng(0), SPACE)


def test_asking_for_every_cell_does_not_give_a_perfect_ground_truth_rank():
    """random_search with a budget of the whole space asks the oracle for every cell; judged by the
    ground-truth seeds it never saw, its pick is not the judged best in every search seed."""
    rng = np.random.default_rng(1)
    truth = {cell: 140.0 + 0.8 * cell for cell in range(32)}  # neighbouring cells 0.8 apart, noise sd 3
    judging = GroundTruth(noisy_tables(truth, [0, 1, 2], 3.0, rng))
    table = OracleTable(noisy_tables(truth, [3, 4], 3.0, rng), "mean", 32)
    policy = get_policy("random_search")
    config = build(policy.Config, {"evaluator": "oracle", "budget": 32}, "search.random_search")
    judged = ranks(judging.mean)
    picks = []
    for seed in range(20):
        result = policy(config).search(SearchTask(SPACE, None, seed, oracle=table))
        assert result.evaluator["cells_trained"] == 32
        picks.append(SPACE.to_id(result.candidates[0].genotype))
    picked_ranks = [judged[cell] for cell in picks]
    assert min(picked_ranks) == 1 and sum(rank == 1 for rank in picked_ranks) < 20
    assert np.mean(picked_ranks) > 1.5
    # a policy that read the judging seeds themselves would have found the judged best every time
    assert min(judging.mean, key=judging.mean.get) == min(judged, key=judged.get)
