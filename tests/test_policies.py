"""The contract every registered policy honours under each evaluator, checked on a toy space and corpus."""

import math

import numpy as np
import pytest

import naseval.search.evaluators
from naseval.core.errors import NasevalError
from naseval.core.params import build
from naseval.core.records import TRACE_FIELDS
from naseval.core.space import SearchSpace
from naseval.nn.model import ModelConfig
from naseval.policies import SearchTask, get_policy, policy_names
from naseval.policies.random_ws import RandomWSConfig
from naseval.search.evaluators import SHARED_WEIGHTS_RANKING
from naseval.search.family import EVALUATORS, NEEDS_ORACLE, EvaluatorSettings
from naseval.search.few_shot import FewShotConfig
from naseval.search.oracle import OracleTable
from naseval.search.supernet import SupernetConfig
from naseval.training.recipe import TrainConfig

TOY_SUPERNET = SupernetConfig(ModelConfig(hidden_size=8),
                              TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10))
# held-out seeds that tell apart who answered: seed 3 scores cell c at 100 + c, seed 4 at 200 + c
# (short training too: each curve falls to the seed's result in its second epoch, and stays)
TOY_ORACLE = OracleTable({3: {c: 100.0 + c for c in range(32)}, 4: {c: 200.0 + c for c in range(32)}}, "mean", 32,
                         {seed: {c: [offset + c + 50, offset + c, offset + c] for c in range(32)}
                          for seed, offset in ((3, 100.0), (4, 200.0))})


# Few-shot fine-tunes each of its 4 sub-supernets for 1 epoch, not 5: the contract is the same.
TOY_EVALUATORS = EvaluatorSettings(few_shot=FewShotConfig(finetune_epochs=1))


def toy_task(corpus, seed=0, nodes=2, oracle=TOY_ORACLE, supernet=TOY_SUPERNET):
    return SearchTask(SearchSpace(nodes), corpus, seed, supernet, oracle=oracle, evaluators=TOY_EVALUATORS)


def check_trace(trace, evaluator):
    """The one schema: TRACE_FIELDS first, steps 1, 2, ..., the best so far the lowest score so far,
    a cost that never falls."""
    assert trace
    for step, row in enumerate(trace, 1):
        assert tuple(row)[:len(TRACE_FIELDS)] == TRACE_FIELDS and row["step"] == step
        scored = [r["score"] for r in trace[:step] if r["score"] is not None]
        assert row["best_score"] == (min(scored) if scored else None)
        if scored:
            assert row["best_cell_id"] in {r["cell_id"] for r in trace[:step] if r["score"] == row["best_score"]}
    costs = [row["cost"] for row in trace]
    assert costs == sorted(costs) and (costs[-1] > 0) == (evaluator != "none")


# What makes the contract quick to check: a predictor trained for 20 epochs, not 300, and DARTS's
# first-order step (tests/test_darts.py checks the second order).
QUICK = {"nao": {"epd": {"epochs": 20}}, "darts": {"order": "first"}}


def configured(policy_cls, evaluator):
    """The policy's Config with `evaluator`; a policy with one evaluator, or none, has no key."""
    chosen = {"evaluator": evaluator} if len(policy_cls.evaluators) > 1 else {}
    return build(policy_cls.Config, {**QUICK.get(policy_cls.name, {}), **chosen}, "search")


@pytest.mark.parametrize("evaluator", EVALUATORS)
@pytest.mark.parametrize("name", policy_names())
def test_policy_contract(name, evaluator, tiny_corpus, monkeypatch):
    policy_cls = get_policy(name)
    assert policy_cls.name == name
    assert policy_cls.__module__ == f"naseval.policies.{name}"  # dvc.yaml depends on that file
    if evaluator not in policy_cls.evaluators:  # refused in one line: not allowed, or no such key
        with pytest.raises(NasevalError, match=r"evaluator"):
            build(policy_cls.Config, {"evaluator": evaluator}, f"search.{name}")
        if policy_cls.evaluators:
            return
    assert policy_cls(configured(policy_cls, evaluator)).evaluator_name == (evaluator if policy_cls.evaluators
                                                                              else "none")
    if evaluator == "oracle" and policy_cls.evaluators:
        def no_supernet(*args, **kwargs):
            raise AssertionError("a search without weight sharing built a supernet")
        monkeypatch.setattr(naseval.search.evaluators, "build_model_and_data", no_supernet)
    # an evaluator that does not read the held-out seeds must not need them
    task = toy_task(tiny_corpus, oracle=TOY_ORACLE if evaluator in NEEDS_ORACLE else None)
    result = policy_cls(configured(policy_cls, evaluator)).search(task)

    assert result.candidates
    for candidate in result.candidates:
        assert task.space.validate(candidate.genotype) == candidate.genotype
    scores = [c.score for c in result.candidates]
    if any(s is not None for s in scores):
        assert all(math.isfinite(s) for s in scores) and scores == sorted(scores)

    check_trace(result.trace, evaluator if policy_cls.evaluators else "none")
    for scores_by_cell in result.rankings.values():
        assert set(scores_by_cell) <= set(range(task.space.size))
        assert all(math.isfinite(s) for s in scores_by_cell.values())

    again = policy_cls(configured(policy_cls, evaluator)).search(task)
    assert again.candidates == result.candidates and again.rankings == result.rankings

    if not policy_cls.evaluators:
        assert result.evaluator is None
    elif evaluator in ("oracle", "short_training"):
        facts = result.evaluator
        assert facts["name"] == evaluator and facts["seeds"] == [3, 4]
        assert 1 <= facts["cells_trained"] <= facts["budget"] and facts["queries"] >= facts["cells_trained"]
        for candidate in result.candidates:  # each score is one held-out seed's result for that cell
            assert candidate.score - task.space.to_id(candidate.genotype) in (100.0, 200.0)
        assert SHARED_WEIGHTS_RANKING not in result.rankings
        per_cell = {"oracle": 3, "short_training": 2}[evaluator]  # the toy curves' epochs; short training reads 2
        assert facts["training_epochs"] == per_cell * facts["cells_trained"]
    else:
        facts = result.evaluator
        assert facts["name"] == evaluator and facts["cost"] == result.trace[-1]["cost"]
        assert facts["training_epochs"] >= 0 and facts["cost_unit"]


def test_random_is_uniform_across_seeds(tiny_corpus):
    policy = get_policy("random")(get_policy("random").Config())
    picks = [policy.search(toy_task(tiny_corpus, seed)).candidates[0].genotype for seed in range(400)]
    space = SearchSpace(2)
    counts = np.bincount([space.to_id(g) for g in picks], minlength=32)
    assert (counts > 0).sum() >= 28 and counts.max() < 35  # 12.5 expected per cell


def test_random_ws_ranks_every_cell_of_a_small_space(tiny_corpus):
    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=3, batch_size=8, eval_batch_size=8,
                                                                     bptt=10))
    result = get_policy("random_ws")(RandomWSConfig(ranking_every=2)).search(toy_task(tiny_corpus, supernet=supernet))
    [snapshot] = result.ranking_history  # epoch 2 only
    assert snapshot["epoch"] == 2 and set(snapshot["rankings"]["shared_weights_valid_ppl"]) == set(range(32))
    assert snapshot["rankings"]["shared_weights_valid_ppl"] != result.rankings["shared_weights_valid_ppl"]
    assert set(result.rankings["shared_weights_valid_ppl"]) == set(range(32))
    assert len(result.candidates) == 32
    assert [row["cost"] for row in result.trace] == [2, 3]  # the pick of the ranking at epoch 2, then the pick
    assert result.trace[0]["score"] == min(snapshot["rankings"]["shared_weights_valid_ppl"].values())
    best = result.candidates[0]
    assert best.score == min(result.rankings["shared_weights_valid_ppl"].values())


def test_random_ws_samples_candidates_in_a_large_space(tiny_corpus):
    config = RandomWSConfig(score_all_up_to=10, num_candidates=5)
    result = get_policy("random_ws")(config).search(toy_task(tiny_corpus, nodes=3))
    assert len({c.genotype for c in result.candidates}) == 5
    assert result.rankings == {} and result.ranking_history == []  # nothing to rank whole


def test_random_ws_scores_the_whole_validation_split_at_its_scoring_batch(tiny_corpus, monkeypatch):
    """randomNAS scores at batch 1,024 and Yu et al. at 256, whatever validation used in training."""
    from naseval.core.data import batchify
    from naseval.search.supernet import score_cells

    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=1, batch_size=8, eval_batch_size=8,
                                                                     bptt=10))
    built = {}
    real = naseval.search.evaluators.SharedWeights.__init__

    def keep(self, *args, **options):
        real(self, *args, **options)
        built["evaluator"] = self

    monkeypatch.setattr(naseval.search.evaluators.SharedWeights, "__init__", keep)
    config = RandomWSConfig(ranking_every=0, score_batch_size=3)
    result = get_policy("random_ws")(config).search(toy_task(tiny_corpus, supernet=supernet))
    evaluator = built["evaluator"]
    assert evaluator.score_data.size(1) == 3 and evaluator.valid_data.size(1) == 8
    space = SearchSpace(2)
    direct = score_cells(evaluator.model, batchify(tiny_corpus.splits["valid"], 3, evaluator.score_data.device),
                         space.enumerate(), space, 10)
    assert result.rankings[SHARED_WEIGHTS_RANKING] == direct
    assert direct != score_cells(evaluator.model, evaluator.valid_data, space.enumerate(), space, 10)
