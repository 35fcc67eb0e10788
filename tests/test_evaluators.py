"""The evaluator family, each on a constructed problem whose answer is known, and the evaluators
table of the analysis."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_policies import TOY_ORACLE, TOY_SUPERNET

from naseval.analysis.evaluators import EvaluatorRanking, evaluator_verdicts
from naseval.analysis.summary import AnalysisConfig, Experiment, GroundTruth, analyze
from naseval.core.errors import NasevalError
from naseval.core.runtime import seed_everything
from naseval.core.space import SearchSpace
from naseval.policies import SearchTask, get_policy
from naseval.policies.random_ws import RandomWSConfig
from naseval.search.fair_sampling import fair_paths
from naseval.search.family import EvaluatorSettings, make_evaluator
from naseval.search.few_shot import FewShotConfig
from naseval.search.landmark import LandmarkConfig, coefficient_at, landmark_penalty
from naseval.search.oracle import OracleTable
from naseval.search.short_training import ShortTrainingConfig, truncated
from naseval.search.space_ranking import RankConfig, rank_space
from naseval.search.zero_cost import PROXIES, hidden_covariance
from naseval.training.recipe import Step

SPACE = SearchSpace(2)


def evaluator(name, corpus, seed=0, oracle=TOY_ORACLE, settings=EvaluatorSettings(), budget=32):
    return make_evaluator(name, SPACE, corpus, TOY_SUPERNET, seed_everything(seed), oracle, budget, settings=settings)


def a_step(model, corpus, batch=4, length=10):
    data = torch.as_tensor(corpus.splits["train"][: batch * length + 1])
    x, y = data[:-1].view(batch, length).t().contiguous(), data[1:].view(batch, length).t().contiguous()
    return Step(x, y, model.init_hidden(batch), 1.0)


def test_few_shot_sub_supernets_cover_the_space_once_each_from_its_own_cells(tiny_corpus):
    few = evaluator("few_shot", tiny_corpus, settings=EvaluatorSettings(few_shot=FewShotConfig(finetune_epochs=1)))
    drawn = []

    def draw(step):
        drawn.append(SPACE.sample(few.rng))
        return drawn[-1]

    few.train(draw, lambda: SPACE.sample_distinct(4, few.rng), "supernet")
    assert list(few.parts) == list(SPACE.ops)
    by_part = {op: [g for g in SPACE.enumerate() if g[0][0] == op] for op in SPACE.ops}
    assert sorted(SPACE.to_id(g) for cells in by_part.values() for g in cells) == list(range(32))
    assert all(len(cells) == 8 for cells in by_part.values())
    scores = few.score(list(SPACE.enumerate()))
    assert sorted(scores) == list(range(32))
    shared = few.model.state_dict()
    for op, part in few.parts.items():  # each part starts from the shared weights and moves on its own
        assert any(not torch.equal(part.state_dict()[k], shared[k]) for k in shared)
    assert few.cost == TOY_SUPERNET.train.epochs + 4  # one-shot epochs, then 1 per sub-supernet
    with pytest.raises(NasevalError, match="split_node"):
        evaluator("few_shot", tiny_corpus, settings=EvaluatorSettings(few_shot=FewShotConfig(split_node=3)))


def test_a_few_shot_fine_tune_trains_only_the_cells_of_its_part(tiny_corpus, monkeypatch):
    import naseval.search.few_shot as few_shot

    seen = {}
    real_fit = few_shot.fit

    def recording_fit(model, data, config, rng, choose, validate, label, *args, **kwargs):
        seen[label] = [choose(None) for _ in range(50)]
        return real_fit(model, data, config, rng, choose, validate, label, *args, **kwargs)

    monkeypatch.setattr(few_shot, "fit", recording_fit)
    few = evaluator("few_shot", tiny_corpus, settings=EvaluatorSettings(few_shot=FewShotConfig(finetune_epochs=1)))
    few.train(lambda step: SPACE.sample(few.rng), lambda: [SPACE.from_id(0)], "supernet")
    assert len(seen) == 4
    for label, cells in seen.items():
        op = label.rsplit("= ", 1)[1]
        assert {g[0][0] for g in cells} == {op}  # uniform within the part: every cell of it shows up
        assert len({SPACE.to_id(g) for g in cells}) == 8


def test_fair_sampling_trains_every_op_of_every_node_once_per_step():
    ops = SPACE.ops
    rng = np.random.default_rng(0)
    for _ in range(20):
        permutations = [list(rng.permutation(len(ops))) for _ in range(2)]
        paths = fair_paths(ops, [0, 1], permutations)
        assert len(paths) == len(ops)
        for node in range(2):
            assert sorted(cell[node][0] for cell in paths) == sorted(ops)
            assert {cell[node][1] for cell in paths} == {[0, 1][node]}  # one topology per step


def test_fair_sampling_objective_is_the_mean_of_every_paths_loss(tiny_corpus):
    """Unlike Yu et al.'s port, where only the first path gets a gradient, every path counts."""
    fair = evaluator("fair_sampling", tiny_corpus)
    paths = fair.draw_paths()
    step = a_step(fair.model, tiny_corpus)
    fair.model.eval()  # no dropout: the paths' losses are comparable
    loss, state, outputs = fair.objective(fair.model, step, paths)
    separate = [fair.model.loss(step.inputs, step.targets, step.hidden, g) for g in paths]
    assert loss.item() == pytest.approx(np.mean([s[0].item() for s in separate]), rel=1e-6)
    assert torch.equal(state, separate[-1][1]) and outputs.shape[1] == 4 * step.inputs.shape[1]
    fair.model.zero_grad()
    loss.backward()
    step_gradient = fair.model.cell.W0.grad.clone()
    fair.model.zero_grad()
    sum(s[0] for s in separate).div(len(paths)).backward()  # each path's loss / 4, accumulated
    assert torch.allclose(step_gradient, fair.model.cell.W0.grad, atol=1e-7)
    fair.model.zero_grad()
    fair.model.loss(step.inputs, step.targets, step.hidden, paths[0])[0].backward()  # the port's: one path
    assert not torch.allclose(step_gradient, fair.model.cell.W0.grad / len(paths), atol=1e-7)
    fair.train(lambda step: None, lambda: [SPACE.from_id(0)], "fair")
    assert fair.cost == 1 and fair.training_epochs == 4.0  # one epoch of 4 paths a step


def test_the_landmark_penalty_is_zero_when_the_supernet_orders_the_landmarks_and_positive_otherwise(tiny_corpus):
    settings = EvaluatorSettings(landmark=LandmarkConfig(landmarks=6, warmup_epochs=0, schedule="constant",
                                                         coefficient=1.0))
    probe = evaluator("landmark", tiny_corpus, settings=settings)
    probe.model.eval()
    x, y = probe.pair_batches.next()
    zero = probe.model.init_hidden(x.size(1))
    losses = {SPACE.to_id(g): probe.model.loss(x, y, zero, g)[0].item() for g in SPACE.enumerate()}

    def held_out(order):  # an oracle table that ranks cells as `order` (cell id -> value)
        return OracleTable({3: order}, "mean", 32)

    for table, expect_zero in ((held_out(losses), True), (held_out({c: -v for c, v in losses.items()}), False)):
        landmark = evaluator("landmark", tiny_corpus, oracle=table, settings=settings)
        landmark.model.load_state_dict(probe.model.state_dict())
        landmark.model.eval()
        penalties = []
        for _ in range(30):
            landmark.pair_batches.restart()  # the minibatch the losses above were measured on
            step = a_step(landmark.model, tiny_corpus)
            arch = SPACE.from_id(0)
            plain = landmark.model.loss(step.inputs, step.targets, step.hidden, arch)[0].item()
            penalties.append(landmark.objective(landmark.model, step, arch)[0].item() - plain)
        if expect_zero:
            assert max(penalties) == pytest.approx(0.0, abs=1e-6)
        else:  # positive for every pair but those of cells computing the same function (equal losses)
            assert min(penalties) >= 0 and np.mean(np.array(penalties) > 1e-6) > 0.5
    assert landmark_penalty(torch.tensor(1.0), torch.tensor(2.0)).item() == 0.0
    assert landmark_penalty(torch.tensor(2.5), torch.tensor(2.0)).item() == pytest.approx(0.5)


def test_the_landmark_coefficient_follows_the_originals_cosine_increase():
    config = LandmarkConfig(coefficient=10.0, warmup_epochs=4)
    weights = [coefficient_at(config, epoch, 10) for epoch in range(1, 11)]
    assert weights[:5] == [0.0] * 5  # warm-up, then the first epoch after it starts at 0
    assert weights == sorted(weights) and weights[-1] == pytest.approx(5.0)  # the original stops halfway up
    assert coefficient_at(LandmarkConfig(schedule="constant", warmup_epochs=1), 2, 10) == 10.0


def test_landmarks_come_from_the_held_out_seeds_only(tiny_corpus):
    landmark = evaluator("landmark", tiny_corpus)
    facts = landmark.facts()
    assert facts["seeds"] == [3, 4] and len(facts["landmarks"]) == 8
    means = [np.mean([TOY_ORACLE.valid_ppl[s][c] for s in (3, 4)]) for c in facts["landmarks"]]
    assert means == sorted(means)  # best first
    with pytest.raises(NasevalError, match="oracle"):
        evaluator("landmark", tiny_corpus, oracle=None)


def test_short_training_reads_the_best_of_the_first_epochs_of_one_held_out_seed(tiny_corpus):
    table = OracleTable({3: {}}, "mean", 32, {3: {c: [300.0 + c, 200.0 + c, 100.0 + c] for c in range(32)}})
    assert truncated(table, 1).valid_ppl[3][5] == 305.0 and truncated(table, 2).valid_ppl[3][5] == 205.0
    short = evaluator("short_training", tiny_corpus, oracle=table,
                      settings=EvaluatorSettings(short_training=ShortTrainingConfig(epochs=2)))
    ranking = short.rank_all()[short.ranking_name]
    assert ranking == {c: 200.0 + c for c in range(32)}
    assert short.cost == 64 and short.training_epochs == 64.0
    with pytest.raises(NasevalError, match="at most the 3 epochs"):
        truncated(table, 4)


def test_params_counts_the_parameters_and_ties_every_cell_of_the_darts_space(tiny_corpus):
    params = evaluator("params", tiny_corpus)
    count = sum(p.numel() for p in params.model.parameters())
    assert params.rank_all()["params_score"] == {c: -float(count) for c in range(32)}
    assert params.training_epochs == 0.0  # it reads no data


@pytest.mark.parametrize("name", [p for p in PROXIES if p != "params"])
def test_a_proxy_scores_minus_its_value_from_the_same_initial_weights_for_every_cell(name, tiny_corpus):
    proxy = evaluator(name, tiny_corpus)
    cells = list(SPACE.enumerate())[:3]
    first = proxy.score(cells)
    proxy.measured.clear()  # measured again in the other order, after the other cells
    again = proxy.score(cells[::-1])
    assert first == again and all(math.isfinite(v) for v in first.values())
    proxy.model.load_state_dict(proxy.initial)
    value = PROXIES[name](proxy.model, proxy.x, proxy.y, cells[0])
    assert first[SPACE.to_id(cells[0])] == -value  # higher value, lower (better) score
    assert proxy.cost == 3


def test_hidden_covariance_prefers_decorrelated_hidden_units():
    """NASWOT's sign: a cell whose units vary independently scores higher than one whose units all
    move together."""
    rng = np.random.default_rng(0)

    def model_whose_states_are(states):
        def features(x, start, cell):
            return None, None, torch.as_tensor(states)
        return SimpleNamespace(init_hidden=lambda batch: torch.zeros(batch, states.shape[-1], dtype=torch.float64),
                               features=features)

    independent = rng.normal(size=(20, 8, 6))
    together = np.repeat(rng.normal(size=(20, 8, 1)), 6, axis=2) + 1e-3 * rng.normal(size=(20, 8, 6))
    x = torch.zeros(20, 8, dtype=torch.long)
    scores = [hidden_covariance(model_whose_states_are(s), x, x, None) for s in (independent, together)]
    assert scores[0] > scores[1]


def test_the_rank_stage_gives_random_ws_its_own_ranking_for_the_same_seed(tiny_corpus):
    record = rank_space("shared_weights", 1, SPACE, tiny_corpus, TOY_SUPERNET, EvaluatorSettings(), RankConfig(), None)
    policy = get_policy("random_ws")(RandomWSConfig(ranking_every=0))
    result = policy.search(SearchTask(SPACE, tiny_corpus, 1, TOY_SUPERNET))
    assert {int(c): s for c, s in record["scores"].items()} == result.rankings["shared_weights_valid_ppl"]
    assert record["training_epochs"] == record["cost"] == 1 and record["enumerated"]


def test_a_space_too_large_is_ranked_on_the_same_sample_for_every_evaluator(tiny_corpus):
    space = SearchSpace(3)
    config = RankConfig(score_all_up_to=64, sample_cells=10)
    records = [rank_space(name, seed, space, tiny_corpus, TOY_SUPERNET, EvaluatorSettings(), config, None)
               for name, seed in (("params", 0), ("snip", 1))]
    assert records[0]["scores"].keys() == records[1]["scores"].keys() and len(records[0]["scores"]) == 10
    assert not records[0]["enumerated"]


def test_bad_evaluator_settings_are_refused_in_one_line():
    with pytest.raises(NasevalError, match="landmarks: expected an integer >= 2"):
        LandmarkConfig(landmarks=1)
    with pytest.raises(NasevalError, match="schedule: expected one of cosine_increase, constant"):
        LandmarkConfig(schedule="linear")
    with pytest.raises(NasevalError, match="evaluators: expected one of"):
        RankConfig(evaluators=("shared_weights", "magic"))


# The analysis: four cells, two ground-truth seeds; an evaluator's rankings seed by seed.
TRUTH = GroundTruth({0: {0: 60.0, 1: 61.0, 2: 62.0, 3: 63.0}, 1: {0: 60.5, 1: 60.9, 2: 62.5, 3: 62.8}})


def ranking(name, seed, scores, facts=None):
    return EvaluatorRanking(name, seed, dict(enumerate(scores)), 10, "supernet epochs", 10.0, 2.0, "mean",
                            facts or {})


RANKINGS = [
    *(ranking("shared_weights", s, order) for s, order in enumerate([[3, 1, 2, 0], [0, 3, 2, 1], [2, 3, 0, 1]])),
    *(ranking("snip", s, order) for s, order in enumerate([[0, 1, 2, 3], [0, 1, 3, 2], [0, 1, 2, 3]])),
    *(ranking("params", s, [5, 5, 5, 5]) for s in range(3)),
]


def test_the_evaluators_table_scores_each_evaluator_against_the_ground_truth():
    result = analyze([], TRUTH, Experiment("random", "random", (0, 1, 2)), AnalysisConfig(bootstrap_resamples=200),
                     evaluator_rankings=RANKINGS, evaluator_names=("shared_weights", "snip", "params"))
    table = {row["name"]: row for row in result.summary["evaluators"]}
    assert list(table) == ["shared_weights", "snip", "params"]
    snip = table["snip"]
    assert snip["kendall_tau_by_seed"] == pytest.approx([1.0, 2 / 3, 1.0])
    assert snip["kendall_tau"] == pytest.approx(8 / 9) and snip["top_1_overlap"] == 1.0
    low, high = snip["kendall_tau_interval"]
    assert low < 8 / 9 < high
    assert snip["seed_to_seed_kendall_tau"] == pytest.approx(np.mean([2 / 3, 1.0, 2 / 3]))
    assert table["params"]["constant_ranking"] and table["params"]["kendall_tau"] is None
    assert table["params"]["top_1_overlap"] is None  # a tie broken by cell id is no top 1
    assert snip["cost"] == {"unit": "supernet epochs", "value": 10.0, "training_epochs": 10.0, "seconds": 2.0}
    # each against shared weights and against params (tau 0), none against itself: Holm over all four
    assert set(snip) >= {"vs_shared_weights", "vs_params"} and "vs_shared_weights" not in table["shared_weights"]
    tests = [row[key] for row in table.values() for key in ("vs_shared_weights", "vs_params") if key in row]
    assert len(tests) == 4 and "vs_params" not in table["params"]
    raw = sorted(t["welch_p"] for t in tests)
    assert min(t["welch_p_holm"] for t in tests) == pytest.approx(min(1.0, 4 * raw[0]))
    assert snip["vs_params"]["difference_of_means"] == pytest.approx(8 / 9)
    assert [row["evaluator"] for row in result.evaluator_rows].count("snip") == 3
    assert any("snip" in sentence for sentence in evaluator_verdicts(result.summary["evaluators"], 0.05))


def test_an_evaluator_that_learned_from_a_judging_seed_is_refused():
    leaking = [ranking("landmark", 0, [0, 1, 2, 3], {"seeds": [1, 3]})]
    with pytest.raises(NasevalError, match="landmark .*seeds 1, which judge it"):
        analyze([], TRUTH, Experiment("random", "random", (0,)), evaluator_rankings=leaking,
                evaluator_names=("landmark",))


def test_without_a_ground_truth_the_table_keeps_each_evaluators_stability_and_cost():
    result = analyze([], None, Experiment("random", "random", (0, 1, 2)), evaluator_rankings=RANKINGS,
                     evaluator_names=("snip", "params"))
    table = {row["name"]: row for row in result.summary["evaluators"]}
    assert table["snip"]["kendall_tau"] is None and table["snip"]["top_1_overlap"] is None
    assert table["snip"]["seed_to_seed_kendall_tau"] == pytest.approx(np.mean([2 / 3, 1.0, 2 / 3]))
    assert "vs_params" not in table["snip"] and table["params"]["constant_ranking"]
    assert result.evaluator_rows == []


def test_a_failed_ranking_is_left_out_and_listed():
    failed = EvaluatorRanking("snip", 3, {}, None, None, None, None, "mean", {}, failure="training diverged")
    result = analyze([], TRUTH, Experiment("random", "random", (0, 1, 2, 3)), AnalysisConfig(bootstrap_resamples=200),
                     evaluator_rankings=[*RANKINGS, failed], evaluator_names=("shared_weights", "snip", "params"))
    snip = next(row for row in result.summary["evaluators"] if row["name"] == "snip")
    assert snip["seeds"] == [0, 1, 2] and snip["failed"] == {"count": 1, "seeds": [3]}
    assert result.summary["evaluator_failures"] == {"snip/seed_3": "training diverged"}


def test_each_evaluator_is_also_held_against_the_published_paper_scale_order():
    from naseval.analysis.validity import published_ranks

    published = published_ranks(SPACE)
    rng = np.random.default_rng(0)
    truth = GroundTruth({seed: {c: 80.0 + rng.random() for c in range(32)} for seed in (0, 1)})
    as_published = [EvaluatorRanking("snip", s, dict(published), 32, "cells measured", 0.1, 1.0, "mean", {})
                    for s in (0, 1)]
    result = analyze([], truth, Experiment("random", "random", (0, 1)), AnalysisConfig(bootstrap_resamples=200),
                     space=SPACE, evaluator_rankings=as_published, evaluator_names=("snip",))
    assert result.summary["evaluators"][0]["kendall_tau_vs_published"] == pytest.approx(1.0)
