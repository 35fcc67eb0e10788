import math

import pytest
import torch

from naseval.model import LanguageModel, MixedCell, ModelConfig, RecurrentCell
from naseval.policies.base import SearchTask
from naseval.policies.darts import (
    DartsConfig,
    DartsPolicy,
    architecture_gradient,
    argmax_cell,
    lm_loss,
    mixing_weights,
    neg_log_prob,
    one_hot,
)
from naseval.space import SearchSpace, format_genotype
from naseval.train import TrainConfig

SPACE = SearchSpace(2)
NO_DROPOUT = ModelConfig(hidden_size=4, dropout=0, dropouth=0, dropoutx=0, dropouti=0, dropoute=0)


def test_mixed_cell_with_one_hot_weights_is_the_discrete_cell():
    torch.manual_seed(0)
    mixed = MixedCell(4, 2, 0.0, 0.0, SPACE.ops, batch_norm=False).eval()
    discrete = RecurrentCell(4, 2, 0.0, 0.0).eval()
    discrete.load_state_dict(mixed.state_dict())
    x, h = torch.randn(5, 3, 4), torch.randn(3, 4)
    for genotype in SPACE.enumerate():
        torch.testing.assert_close(mixed(x, h, one_hot(genotype, SPACE, like=x)), discrete(x, h, genotype))


def test_mixed_cell_is_linear_in_the_weights_of_one_node():
    """Without batch norm, node 0's state is the weighted sum of its candidates' states."""
    torch.manual_seed(0)
    cell = MixedCell(4, 1, 0.0, 0.0, SPACE.ops, batch_norm=False).eval()
    x, h = torch.randn(1, 2, 4), torch.randn(2, 4)
    weights = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    mixed = cell(x, h, [weights])
    singles = [cell(x, h, [torch.eye(4)[k : k + 1]]) for k in range(4)]
    torch.testing.assert_close(mixed, sum(w * s for w, s in zip(weights[0], singles, strict=True)))


def test_alpha_scores_form_a_distribution_and_the_argmax_is_its_mode():
    torch.manual_seed(0)
    alphas = [torch.randn(i + 1, 4) for i in range(2)]
    scores = {g: neg_log_prob(alphas, g, SPACE) for g in SPACE.enumerate()}
    assert sum(math.exp(-s) for s in scores.values()) == pytest.approx(1.0)
    assert argmax_cell(alphas, SPACE) == min(scores, key=scores.get)
    assert all(w.sum().item() == pytest.approx(1.0) for w in mixing_weights(alphas))


def tiny_problem():
    torch.manual_seed(0)
    model = LanguageModel(12, 2, NO_DROPOUT, cell_class=MixedCell, ops=SPACE.ops).double().train()
    alphas = [(0.5 * torch.randn(i + 1, 4, dtype=torch.double)).requires_grad_() for i in range(2)]

    def batch():
        words = torch.randint(0, 12, (6, 3))
        return words[:-1], words[1:], torch.randn(3, 4, dtype=torch.double)

    return model, alphas, batch(), batch()


def unrolled_valid_loss(model, alphas, train_batch, valid_batch, lr, weight_decay) -> torch.Tensor:
    """L_valid(w - lr * (grad_w L_train(w, alpha) + weight_decay * w), alpha): DARTS's eq. 6."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    weights = {name: p.clone().requires_grad_() for name, p in params.items()}
    loss, _ = lm_loss(model, weights, mixing_weights(alphas), train_batch)
    grads = torch.autograd.grad(loss, list(weights.values()))
    unrolled = {name: w - lr * (g + weight_decay * w) for (name, w), g in zip(params.items(), grads, strict=True)}
    return lm_loss(model, unrolled, mixing_weights(alphas), valid_batch)[0]


def test_second_order_gradient_matches_finite_differences():
    model, alphas, train_batch, valid_batch = tiny_problem()
    lr, weight_decay = 0.5, 1e-3
    grads, _ = architecture_gradient(model, alphas, train_batch, valid_batch, lr, weight_decay, clip=1e9,
                                     order="second", epsilon=1e-2)
    h = 1e-5
    for alpha, grad in zip(alphas, grads, strict=True):
        for index in range(alpha.numel()):
            alpha.data.view(-1)[index] += h
            up = unrolled_valid_loss(model, alphas, train_batch, valid_batch, lr, weight_decay).item()
            alpha.data.view(-1)[index] -= 2 * h
            down = unrolled_valid_loss(model, alphas, train_batch, valid_batch, lr, weight_decay).item()
            alpha.data.view(-1)[index] += h
            assert grad.view(-1)[index].item() == pytest.approx((up - down) / (2 * h), rel=1e-3, abs=1e-7)


def test_second_order_differs_from_first_order():
    model, alphas, train_batch, valid_batch = tiny_problem()
    first, _ = architecture_gradient(model, alphas, train_batch, valid_batch, 0.5, 0.0, 1e9, "first", 1e-2)
    second, _ = architecture_gradient(model, alphas, train_batch, valid_batch, 0.5, 0.0, 1e9, "second", 1e-2)
    loss, _ = lm_loss(model, dict(model.named_parameters()), mixing_weights(alphas), valid_batch)
    exact_first = torch.autograd.grad(loss, alphas)
    for a, b in zip(first, exact_first, strict=True):
        torch.testing.assert_close(a, b)
    assert max((a - b).abs().max().item() for a, b in zip(first, second, strict=True)) > 1e-4


@pytest.mark.parametrize("order", ["first", "second"])
def test_darts_search_ranks_every_cell_by_alpha(order, tiny_corpus):
    config = DartsConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=2, batch_size=8, eval_batch_size=8, bptt=10),
                         order=order)
    result = DartsPolicy(config).search(SearchTask(SPACE, tiny_corpus, 0))
    assert set(result.rankings) == {"alpha_neg_log_prob", "shared_weights_valid_ppl"}
    assert len(result.candidates) == 32 and result.candidates[0].genotype == argmax_cell_of(result)
    assert [row["epoch"] for row in result.trace] == [1, 2]
    assert result.trace[-1]["genotype"] == result.details["argmax"]
    [last] = result.ranking_history  # ranking_every 2: at the end, with the final alpha and weights
    assert last["epoch"] == 2 and last["rankings"] == result.rankings
    moved = result.details["mixing_weights"][1]
    assert max(max(row) for row in moved) > 1 / 8 + 1e-3  # alpha left its start, 1e-3 * N(0, 1) moves weights by ~2e-4


def argmax_cell_of(result):
    return next(g for g in SPACE.enumerate() if format_genotype(g) == result.details["argmax"])


def test_darts_search_on_a_space_too_large_to_rank_returns_the_argmax(tiny_corpus):
    config = DartsConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10),
                         order="first", score_all_up_to=10)
    result = DartsPolicy(config).search(SearchTask(SearchSpace(3), tiny_corpus, 0))
    assert result.rankings == {} and len(result.candidates) == 1
