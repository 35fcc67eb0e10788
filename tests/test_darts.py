import math

import pytest
import torch

from naseval.core.space import SearchSpace, format_genotype
from naseval.nn.model import LanguageModel, MixedCell, ModelConfig, RecurrentCell
from naseval.policies.base import SearchTask
from naseval.policies.darts import (
    Architect,
    DartsConfig,
    DartsPolicy,
    architecture_gradient,
    argmax_cell,
    clip_coefficient,
    lm_loss,
    mixing_weights,
    neg_log_prob,
    one_hot,
)
from naseval.search.supernet import SupernetConfig
from naseval.training.recipe import Step, TrainConfig

SPACE = SearchSpace(2)
NO_DROPOUT = ModelConfig(hidden_size=4, dropout=0, dropouth=0, dropoutx=0, dropouti=0, dropoute=0)


def test_mixed_cell_with_one_hot_weights_is_the_discrete_cell():
    torch.manual_seed(0)
    mixed = MixedCell(4, 2, 0.0, 0.0, SPACE.ops, batch_norm=False).eval()
    discrete = RecurrentCell(4, 2, 0.0, 0.0).eval()
    discrete.load_state_dict(mixed.state_dict())
    x, h = torch.randn(5, 3, 4), torch.randn(3, 4)
    for genotype in SPACE.enumerate():
        torch.testing.assert_close(mixed(x, h, one_hot(genotype, SPACE.ops, like=x)), discrete(x, h, genotype))


def test_mixed_cell_is_linear_in_the_weights_of_one_node():
    """Without batch norm, node 0's state is the weighted sum of its candidates' states."""
    torch.manual_seed(0)
    cell = MixedCell(4, 1, 0.0, 0.0, SPACE.ops, batch_norm=False).eval()
    x, h = torch.randn(1, 2, 4), torch.randn(2, 4)
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    mixed = cell(x, h, [weights])
    singles = [cell(x, h, [torch.eye(4)[k : k + 1]]) for k in range(4)]
    torch.testing.assert_close(mixed, sum(w * s for w, s in zip(weights[0], singles, strict=True)))


def test_per_node_alpha_scores_form_a_distribution_and_the_argmax_is_its_mode():
    torch.manual_seed(0)
    alphas = [torch.randn(i + 1, 4) for i in range(2)]
    scores = {g: neg_log_prob(alphas, g, SPACE, "per_node") for g in SPACE.enumerate()}
    assert sum(math.exp(-s) for s in scores.values()) == pytest.approx(1.0)
    assert argmax_cell(alphas, SPACE, "per_node") == min(scores, key=scores.get)
    assert all(w.sum().item() == pytest.approx(1.0) for w in mixing_weights(alphas, "per_node"))


NONE = 0  # per_edge: column 0 of each edge's alpha is the `none` op


def originals_genotype(alphas: list[torch.Tensor]) -> tuple:
    """DARTS rnn/model_search.py genotype(), written out: per node, the edge whose best
    non-`none` op has the highest softmax weight, and that op."""
    genotype = []
    for alpha in alphas:
        probs = torch.softmax(alpha, dim=-1)
        edge = max(range(len(probs)), key=lambda j: max(probs[j][k] for k in range(len(probs[j])) if k != NONE))
        op = max((k for k in range(len(probs[edge])) if k != NONE), key=lambda k: probs[edge][k])
        genotype.append((SPACE.ops[op - 1], edge))
    return tuple(genotype)


def test_per_edge_derive_is_the_originals_genotype_rule():
    for seed in range(20):
        torch.manual_seed(seed)
        alphas = [torch.randn(i + 1, 5) for i in range(2)]
        assert argmax_cell(alphas, SPACE, "per_edge") == originals_genotype(alphas)
    # Node 1: edge 0's largest op logit (tanh, 1.0) loses to edge 1's sigmoid (0.5), as edge 0's
    # `none` takes most of its softmax; a softmax that ignores `none` would pick tanh on edge 0.
    alphas = [torch.tensor([[0.0, 0.0, 0.0, 2.0, 0.0]]),
              torch.tensor([[5.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 0.0]])]
    assert argmax_cell(alphas, SPACE, "per_edge") == (("sigmoid", 0), ("sigmoid", 1))
    assert argmax_cell([a[:, 1:] for a in alphas], SPACE, "per_node")[1] == ("tanh", 0)
    scores = {g: neg_log_prob(alphas, g, SPACE, "per_edge") for g in SPACE.enumerate()}
    assert min(scores, key=scores.get) == (("sigmoid", 0), ("sigmoid", 1))
    assert sum(math.exp(-s) for s in scores.values()) < 1  # `none` and the other edges keep the rest


def test_per_edge_one_hot_alpha_on_one_edge_per_node_is_the_discrete_cell():
    """The chosen edge all on its op, every other edge all on `none`: exactly the discrete cell."""
    torch.manual_seed(0)
    mixed = MixedCell(4, 2, 0.0, 0.0, SPACE.ops, batch_norm=False).double().eval()
    discrete = RecurrentCell(4, 2, 0.0, 0.0).double().eval()
    discrete.load_state_dict(mixed.state_dict())
    x, h = torch.randn(5, 3, 4, dtype=torch.double), torch.randn(3, 4, dtype=torch.double)
    for genotype in SPACE.enumerate():
        alphas = []
        for node, (op, pred) in enumerate(genotype):
            alpha = torch.zeros(node + 1, 5, dtype=torch.double)
            alpha[:, NONE] = 1000.0  # softmax: exactly 1 on `none` in double precision
            alpha[pred] = 0.0
            alpha[pred, 1 + SPACE.ops.index(op)] = 1000.0
            alphas.append(alpha)
        torch.testing.assert_close(mixed(x, h, mixing_weights(alphas, "per_edge")), discrete(x, h, genotype),
                                   rtol=0, atol=1e-12)


def tiny_problem(relaxation: str = "per_node"):
    torch.manual_seed(0)
    model = LanguageModel(12, 2, NO_DROPOUT, cell_class=MixedCell, ops=SPACE.ops).double().train()
    columns = 4 + (relaxation == "per_edge")
    alphas = [(0.5 * torch.randn(i + 1, columns, dtype=torch.double)).requires_grad_() for i in range(2)]

    def batch():
        words = torch.randint(0, 12, (6, 3))
        return words[:-1], words[1:], torch.randn(3, 4, dtype=torch.double)

    train, valid = batch(), batch()
    # Every target the same word: the training gradient is twice the validation one, so a clip
    # between the two scales the unrolled step and leaves the validation gradient as it is.
    return model, alphas, (train[0], torch.zeros_like(train[1]), train[2]), valid


def weight_gradients(model, alphas, batch, relaxation, params=None):
    params = params or {name: p.detach().clone().requires_grad_() for name, p in model.named_parameters()}
    loss, _ = lm_loss(model, params, mixing_weights(alphas, relaxation), batch)
    return torch.autograd.grad(loss, list(params.values()))


def unrolled_valid_loss(model, alphas, train_batch, valid_batch, lr, weight_decay, coefficient,
                        relaxation) -> torch.Tensor:
    """L_valid(w - lr * (c * grad_w L_train(w, alpha) + weight_decay * w), alpha): DARTS's eq. 6
    under clipping, with the clip coefficient c held fixed."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    grads = weight_gradients(model, alphas, train_batch, relaxation)
    unrolled = {name: w - lr * (coefficient * g + weight_decay * w)
                for (name, w), g in zip(params.items(), grads, strict=True)}
    return lm_loss(model, unrolled, mixing_weights(alphas, relaxation), valid_batch)[0]


@pytest.mark.parametrize("relaxation", ["per_node", "per_edge"])
@pytest.mark.parametrize("clip", [1e9, 0.6])
def test_second_order_gradient_matches_finite_differences(clip, relaxation):
    """With clip 0.6 the training gradient (norm 0.96) is clipped by c = 0.63 and the validation
    gradient (0.44) is not: the chain rule through the clipped step weights the Hessian term by c."""
    model, alphas, train_batch, valid_batch = tiny_problem(relaxation)
    lr, weight_decay = 0.5, 1e-3
    coefficient = clip_coefficient(weight_gradients(model, alphas, train_batch, relaxation), clip)
    assert coefficient == (1.0 if clip > 1 else pytest.approx(0.63, abs=0.01))
    grads, _ = architecture_gradient(model, alphas, train_batch, valid_batch, lr, weight_decay, clip=clip,
                                     order="second", epsilon=1e-2, relaxation=relaxation)

    def loss() -> float:
        return unrolled_valid_loss(model, alphas, train_batch, valid_batch, lr, weight_decay, coefficient,
                                   relaxation).item()

    h = 1e-5
    for alpha, grad in zip(alphas, grads, strict=True):
        for index in range(alpha.numel()):
            alpha.data.view(-1)[index] += h
            up = loss()
            alpha.data.view(-1)[index] -= 2 * h
            down = loss()
            alpha.data.view(-1)[index] += h
            assert grad.view(-1)[index].item() == pytest.approx((up - down) / (2 * h), rel=1e-3, abs=1e-7)


def test_the_validation_gradient_stays_below_the_clip_in_the_clipped_check():
    """The premise of the clipped finite-difference check: only the training gradient is clipped."""
    model, alphas, train_batch, valid_batch = tiny_problem()
    params = {name: p.detach() for name, p in model.named_parameters()}
    coefficient = clip_coefficient(weight_gradients(model, alphas, train_batch, "per_node"), 0.6)
    grads = weight_gradients(model, alphas, train_batch, "per_node")
    unrolled = {name: (w - 0.5 * (coefficient * g + 1e-3 * w)).requires_grad_()
                for (name, w), g in zip(params.items(), grads, strict=True)}
    assert clip_coefficient(weight_gradients(model, alphas, valid_batch, "per_node", unrolled), 0.6) == 1.0


def test_second_order_differs_from_first_order():
    model, alphas, train_batch, valid_batch = tiny_problem()
    first, _ = architecture_gradient(model, alphas, train_batch, valid_batch, 0.5, 0.0, 1e9, "first", 1e-2,
                                     "per_node")
    second, _ = architecture_gradient(model, alphas, train_batch, valid_batch, 0.5, 0.0, 1e9, "second", 1e-2,
                                      "per_node")
    loss, _ = lm_loss(model, dict(model.named_parameters()), mixing_weights(alphas, "per_node"), valid_batch)
    exact_first = torch.autograd.grad(loss, alphas)
    for a, b in zip(first, exact_first, strict=True):
        torch.testing.assert_close(a, b)
    largest = max(a.abs().max().item() for a in first)
    assert max((a - b).abs().max().item() for a, b in zip(first, second, strict=True)) > 0.05 * largest


@pytest.mark.parametrize(("order", "relaxation"), [
    ("first", "per_node"),
    pytest.param("second", "per_node", marks=pytest.mark.integration),  # 3 times first order's time
    pytest.param("second", "per_edge", marks=pytest.mark.integration),
])
def test_darts_search_ranks_every_cell_by_alpha(order, relaxation, tiny_corpus):
    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=2, batch_size=8, eval_batch_size=8,
                                                                     bptt=10))
    result = DartsPolicy(DartsConfig(order=order, relaxation=relaxation)).search(SearchTask(SPACE, tiny_corpus, 0,
                                                                                            supernet))
    assert set(result.rankings) == {"alpha_neg_log_prob", "shared_weights_valid_ppl"}
    assert len(result.candidates) == 32 and result.candidates[0].genotype == argmax_cell_of(result)
    assert [row["epoch"] for row in result.trace] == [1, 2] and [row["cost"] for row in result.trace] == [1, 2]
    assert result.trace[-1]["genotype"] == result.details["argmax"]
    [last] = result.ranking_history  # ranking_every 2: at the end, with the final alpha and weights
    assert last["epoch"] == 2 and last["rankings"] == result.rankings
    assert result.details["relaxation"] == relaxation
    start = 1 / 8 if relaxation == "per_node" else 1 / 5  # uniform over a node's pairs, or an edge's ops and none
    moved = result.details["mixing_weights"][1]
    assert max(max(row) for row in moved) > start + 1e-3  # alpha left its start, 1e-3 * N(0, 1) moves weights by ~2e-4


def test_each_epochs_alpha_steps_read_the_validation_stream_from_its_start(tiny_corpus):
    """As the original's train_search.py, which makes hidden_valid anew in every epoch."""
    model = LanguageModel(len(tiny_corpus.vocabulary), 2, ModelConfig(hidden_size=8), cell_class=MixedCell,
                          ops=SPACE.ops)
    search_data = torch.randint(0, 22, (100, 8))
    architect = Architect(model, SPACE, DartsConfig(), TrainConfig(epochs=1, batch_size=8, bptt=10), search_data)
    words = torch.randint(0, 22, (11, 8))
    for _ in range(3):
        architect.step(Step(words[:-1], words[1:], model.init_hidden(8), 1.0))
    assert architect.batches.start == 30 and architect.hidden.abs().sum() > 0
    architect.restart()
    assert architect.batches.start == 0 and architect.hidden.abs().sum() == 0


def argmax_cell_of(result):
    return next(g for g in SPACE.enumerate() if format_genotype(g) == result.details["argmax"])


def test_darts_search_on_a_space_too_large_to_rank_returns_the_argmax(tiny_corpus):
    supernet = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=1, batch_size=8, eval_batch_size=8,
                                                                     bptt=10))
    config = DartsConfig(order="first", score_all_up_to=10)
    result = DartsPolicy(config).search(SearchTask(SearchSpace(3), tiny_corpus, 0, supernet))
    assert result.rankings == {} and len(result.candidates) == 1
