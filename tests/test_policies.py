"""The contract every registered policy honours, checked on a toy space and corpus."""

import math

import numpy as np
import pytest

from naseval.model import ModelConfig
from naseval.policies import SearchTask, get_policy, policy_names
from naseval.policies.random_ws import RandomWSConfig
from naseval.space import SearchSpace
from naseval.train import TrainConfig

TOY_MODEL = ModelConfig(hidden_size=8)


def toy_task(corpus, seed=0, nodes=2):
    return SearchTask(SearchSpace(nodes), corpus, seed)


@pytest.mark.parametrize("name", policy_names())
def test_policy_contract(name, tiny_corpus):
    policy_cls = get_policy(name)
    assert policy_cls.name == name
    assert policy_cls.__module__ == f"naseval.policies.{name}"  # dvc.yaml depends on that file
    task = toy_task(tiny_corpus)
    result = policy_cls(policy_cls.Config()).search(task)

    assert result.candidates
    for candidate in result.candidates:
        assert task.space.validate(candidate.genotype) == candidate.genotype
    scores = [c.score for c in result.candidates]
    if any(s is not None for s in scores):
        assert all(math.isfinite(s) for s in scores) and scores == sorted(scores)

    assert result.trace and all(row.keys() == result.trace[0].keys() for row in result.trace)
    for scores_by_cell in result.rankings.values():
        assert set(scores_by_cell) <= set(range(task.space.size))
        assert all(math.isfinite(s) for s in scores_by_cell.values())

    again = policy_cls(policy_cls.Config()).search(task)
    assert again.candidates == result.candidates and again.rankings == result.rankings


def test_random_is_uniform_across_seeds(tiny_corpus):
    policy = get_policy("random")(get_policy("random").Config(num_candidates=1))
    picks = [policy.search(toy_task(tiny_corpus, seed)).candidates[0].genotype for seed in range(400)]
    space = SearchSpace(2)
    counts = np.bincount([space.to_id(g) for g in picks], minlength=32)
    assert (counts > 0).sum() >= 28 and counts.max() < 35  # 12.5 expected per cell


def test_random_ws_ranks_every_cell_of_a_small_space(tiny_corpus):
    config = RandomWSConfig(TOY_MODEL, TrainConfig(epochs=3, batch_size=8, eval_batch_size=8, bptt=10),
                            ranking_every=2)
    result = get_policy("random_ws")(config).search(toy_task(tiny_corpus))
    [snapshot] = result.ranking_history  # epoch 2 only
    assert snapshot["epoch"] == 2 and set(snapshot["rankings"]["shared_weights_valid_ppl"]) == set(range(32))
    assert snapshot["rankings"]["shared_weights_valid_ppl"] != result.rankings["shared_weights_valid_ppl"]
    assert set(result.rankings["shared_weights_valid_ppl"]) == set(range(32))
    assert len(result.candidates) == 32
    assert result.trace[-1]["epoch"] == 3
    best = result.candidates[0]
    assert best.score == min(result.rankings["shared_weights_valid_ppl"].values())


def test_random_ws_samples_candidates_in_a_large_space(tiny_corpus):
    config = RandomWSConfig(TOY_MODEL, TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10),
                            score_all_up_to=10, num_candidates=5)
    result = get_policy("random_ws")(config).search(toy_task(tiny_corpus, nodes=3))
    assert len({c.genotype for c in result.candidates}) == 5
    assert result.rankings == {} and result.ranking_history == []  # nothing to rank whole
