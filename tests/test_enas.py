import math

import numpy as np
import pytest
import torch

from naseval.core.space import SearchSpace, format_genotype
from naseval.nn.model import ModelConfig
from naseval.policies.base import SearchTask
from naseval.policies.enas import Controller, ControllerConfig, EnasConfig, EnasPolicy, Reinforce
from naseval.search import evaluators
from naseval.search.family import make_evaluator
from naseval.search.oracle import OracleTable
from naseval.search.supernet import SupernetConfig
from naseval.training.recipe import TrainConfig

SPACE = SearchSpace(2)


def probabilities(controller: Controller) -> dict:
    with torch.no_grad():
        return {g: math.exp(controller.score(g).log_prob.item()) for g in SPACE.enumerate()}


def test_controller_defines_a_distribution_over_the_space():
    torch.manual_seed(0)
    controller = Controller(SPACE, ControllerConfig(hidden_size=16, temperature=1.0))
    p = probabilities(controller)
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(p.values()) / min(p.values()) > 1.05  # not uniform: the decisions depend on the weights


def test_log_probability_of_the_first_op_matches_a_direct_computation():
    torch.manual_seed(0)
    config = ControllerConfig(hidden_size=16)
    controller = Controller(SPACE, config)
    with torch.no_grad():
        h, c = controller.lstm(controller.start)
        h, _ = controller.lstm(h / 1.1, (h, c))  # s0's state fed back, divided by 0.1 + its distance 1 (M's)
        logits = config.tanh_constant * torch.tanh(h @ controller.op_logits.weight.T / config.temperature)
        direct = torch.softmax(logits.view(-1), 0)
    p = probabilities(controller)
    for k, op in enumerate(SPACE.ops):  # marginal of node 0's op over the rest of the cell
        assert sum(v for g, v in p.items() if g[0][0] == op) == pytest.approx(direct[k].item(), abs=1e-6)


def test_predecessor_logits_carry_ms_distance_prior():
    """With attention that scores every state alike (a zero score vector), the predecessor's
    logits are M's prior alone: -(distance)^2 / 6, node n at distance n + 1 - p from state p."""
    space = SearchSpace(3)
    controller = Controller(space, ControllerConfig(hidden_size=16))
    with torch.no_grad():
        controller.attention_score.weight.zero_()
    p = {g: math.exp(controller.score(g).log_prob.item()) for g in space.enumerate()}
    for node in (1, 2):
        distance = torch.arange(node + 1, 0, -1, dtype=torch.float)
        expected = torch.softmax(-distance.square() / 6, 0)
        marginal = [sum(v for g, v in p.items() if g[node][1] == pred) for pred in range(node + 1)]
        assert marginal == pytest.approx(expected.tolist(), abs=1e-5)
    assert marginal[2] > marginal[1] > marginal[0]  # the nearest state is the likeliest


def test_sampled_log_probability_and_entropy_are_consistent():
    torch.manual_seed(1)
    controller = Controller(SPACE, ControllerConfig(hidden_size=16, temperature=1.0))
    p = probabilities(controller)
    rng = np.random.default_rng(0)
    with torch.no_grad():
        samples = [controller.sample(rng) for _ in range(4000)]
        for decisions in samples[:20]:
            SPACE.validate(decisions.genotype)
            assert decisions.log_prob.item() == pytest.approx(math.log(p[decisions.genotype]), abs=1e-5)
        # Chain rule: the expected sum of the decisions' entropies is the entropy of the cell.
        expected_entropy = sum(v * controller.score(g).entropy.item() for g, v in p.items())
    assert expected_entropy == pytest.approx(-sum(v * math.log(v) for v in p.values()), rel=1e-4)
    counts = {g: 0 for g in p}
    for decisions in samples:
        counts[decisions.genotype] += 1
    frequencies = np.array([counts[g] / len(samples) for g in p])
    assert np.abs(frequencies - np.array(list(p.values()))).max() < 0.02


def test_mode_is_the_greedy_cell():
    torch.manual_seed(2)
    controller = Controller(SPACE, ControllerConfig(hidden_size=16, temperature=1.0))
    with torch.no_grad():
        mode = controller.mode().genotype
    p = probabilities(controller)
    first_op = max(SPACE.ops, key=lambda op: sum(v for g, v in p.items() if g[0][0] == op))
    assert mode[0][0] == first_op


def test_reinforce_moves_probability_toward_the_rewarded_cell():
    torch.manual_seed(0)
    config = ControllerConfig(hidden_size=16, lr=0.01, entropy_weight=0.0)
    controller = Controller(SPACE, config)
    target = (("relu", 0), ("sigmoid", 1))
    before = probabilities(controller)[target]
    reinforce = Reinforce(controller, config)
    rng = np.random.default_rng(0)
    for _ in range(300):
        reinforce.step(rng, lambda g: 1.0 if g == target else 0.0)
    after = probabilities(controller)[target]
    assert before < 0.05 and after > 0.5


@pytest.mark.parametrize("cell_output", ["loose_ends", "mean"])
def test_enas_search_records_its_controller_and_searches_with_the_spaces_output_rule(tiny_corpus, cell_output,
                                                                                     monkeypatch):
    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=2, batch_size=8, eval_batch_size=8,
                                                                     bptt=10, lr=10.0))
    config = EnasConfig(ControllerConfig(hidden_size=16, steps_per_epoch=5), derive_samples=20)
    space = SearchSpace(SPACE.nodes, SPACE.ops, cell_output)
    model = {}
    real_build = evaluators.build_model_and_data

    def build(*args, **options):  # keep the supernet the search builds
        model["built"], data = real_build(*args, **options)
        return model["built"], data

    monkeypatch.setattr(evaluators, "build_model_and_data", build)
    result = EnasPolicy(config).search(SearchTask(space, tiny_corpus, 0, supernet))
    assert model["built"].cell.output == cell_output
    assert model["built"].cell.output_norm is not None and model["built"].cell.hidden_norm_clip == 25.0  # C's
    assert set(result.rankings) == {"shared_weights_valid_ppl", "controller_neg_log_prob"}
    p = {g: math.exp(-s) for g, s in result.rankings["controller_neg_log_prob"].items()}
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-5)
    assert result.details["controller_mode"] == result.trace[-1]["genotype"]
    assert 1 <= result.details["distinct_sampled"] == len(result.candidates) <= 20
    assert sum(row["count"] for row in result.details["most_sampled"]) <= 20
    assert [row["epoch"] for row in result.trace] == [1, 2]
    assert [point["epoch"] for point in result.ranking_history] == [2]  # ranking_every 2
    assert result.ranking_history[0]["rankings"].keys() == result.rankings.keys()
    assert format_genotype(result.candidates[0].genotype) in {
        format_genotype(g) for g in SPACE.enumerate()}


def test_a_new_controller_phase_restarts_the_baseline_so_its_first_step_has_no_gradient():
    torch.manual_seed(0)
    config = ControllerConfig(hidden_size=16)
    controller = Controller(SPACE, config)
    reinforce = Reinforce(controller, config)
    rng = np.random.default_rng(0)
    reinforce.step(rng, lambda g: 1.0)
    reinforce.step(rng, lambda g: 2.0)  # above the baseline: a gradient
    assert any(p.grad.abs().sum() > 0 for p in controller.parameters())
    reinforce.restart()
    reward = reinforce.step(rng, lambda g: 5.0)["reward"]
    assert reinforce.baseline == reward  # the phase's first reward is its baseline: advantage 0
    assert all(p.grad.abs().sum() == 0 for p in controller.parameters())


def test_rewards_carry_the_recurrent_state_and_a_new_phase_starts_from_zero(tiny_corpus):
    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=1, batch_size=8, bptt=10))
    evaluator = make_evaluator("shared_weights", SPACE, tiny_corpus, supernet, np.random.default_rng(0),
                                          None, 0, sharing="by_edge")
    cells = list(SPACE.enumerate())[:3]
    first = [evaluator.quick_score(g) for g in cells]
    model, stream = evaluator.model, evaluator.quick_batches
    stream.restart()
    hidden = model.init_hidden(8)
    with torch.no_grad():
        for g, score in zip(cells, first, strict=True):
            x, y = stream.next()
            loss, hidden, _ = model.loss(x, y, hidden, g)
            assert math.exp(loss.item()) == pytest.approx(score, rel=1e-6)
    evaluator.restart_quick_scores()
    assert evaluator.quick_score(cells[2]) != pytest.approx(first[2], rel=1e-6)  # its minibatch and state differ
    evaluator.restart_quick_scores()
    assert evaluator.quick_score(cells[0]) == pytest.approx(first[0], rel=1e-6)


def test_bad_controller_settings_are_rejected():
    from naseval.core.errors import NasevalError

    with pytest.raises(NasevalError, match="baseline_decay"):
        ControllerConfig(baseline_decay=1.0)
    with pytest.raises(NasevalError, match="cell_output"):
        SearchSpace(2, cell_output="sum")
    with pytest.raises(NasevalError, match="hidden_norm_clip"):
        EnasConfig(hidden_norm_clip=0.0)


def test_rewards_read_validation_batches_as_wide_as_the_training_ones(tiny_corpus, monkeypatch):
    """carpedm20's trainer batchifies the reward data at batch_size, not at the evaluation's."""
    widths = []

    class Recording(evaluators.ValidationStream):
        def __init__(self, data, length):
            widths.append(data.size(1))
            super().__init__(data, length)

    monkeypatch.setattr(evaluators, "ValidationStream", Recording)
    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=1, batch_size=8, eval_batch_size=4,
                                                                     bptt=10, lr=2.0))
    config = EnasConfig(ControllerConfig(hidden_size=16, steps_per_epoch=2), derive_samples=5)
    EnasPolicy(config).search(SearchTask(SPACE, tiny_corpus, 0, supernet))
    assert widths == [8]


def test_without_weight_sharing_the_controller_concentrates_on_the_best_cell_of_a_table():
    best = 21
    table = OracleTable({seed: {c: 40.0 if c == best else 160.0 for c in range(32)} for seed in (3, 4)}, "mean", 32)
    config = EnasConfig(controller=ControllerConfig(hidden_size=16, lr=0.02, steps_per_epoch=50),
                        derive_samples=20, evaluator="oracle", budget=32)
    supernet = SupernetConfig(train=TrainConfig(epochs=6, threads=1))  # under the oracle: its epochs and threads
    for seed in range(3):
        result = EnasPolicy(config).search(SearchTask(SPACE, None, seed, supernet, oracle=table))
        assert SPACE.to_id(result.candidates[0].genotype) == best
        assert result.details["controller_mode"] == format_genotype(SPACE.from_id(best))
        assert result.details["controller_mode_probability"] > 0.8
        assert result.trace[0]["mode_probability"] < 0.5  # it learned that, it did not start there


def test_without_weight_sharing_the_search_ends_in_the_epoch_the_budget_runs_out():
    table = OracleTable({3: {c: 100.0 + c for c in range(32)}}, "mean", 32)
    config = EnasConfig(controller=ControllerConfig(hidden_size=16, steps_per_epoch=5), derive_samples=10,
                        evaluator="oracle", budget=6)
    supernet = SupernetConfig(train=TrainConfig(epochs=10, threads=1))
    result = EnasPolicy(config).search(SearchTask(SPACE, None, 0, supernet, oracle=table))
    last = result.trace[-1]
    assert result.evaluator["stopped"] == f"enas: the budget of 6 cells was spent in epoch {last['epoch']}"
    assert last["controller_steps"] < 5 and len(result.trace) < 10
    assert result.evaluator["cells_trained"] == 6 and len(result.candidates) <= 6
