import numpy as np
import pytest
import torch

from naseval.core.space import SearchSpace, loose_ends
from naseval.nn.model import LanguageModel, ModelConfig, RecurrentCell, clip_rows

NO_DROPOUT = ModelConfig(hidden_size=3, dropout=0, dropouth=0, dropoutx=0, dropouti=0, dropoute=0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_cell_matches_a_hand_computation():
    torch.manual_seed(0)
    H = 2
    cell = RecurrentCell(H, nodes=2, dropoutx=0.5, dropouth=0.5).eval()
    W0, W1, W2 = (p.detach().double().numpy() for p in [cell.W0, *cell.Ws])
    x = np.array([0.3, -0.7])
    h_prev = np.array([0.1, 0.5])

    # s0 from [x, h_prev] W0; node 0 reads s0 with relu, node 1 reads node 0 with identity.
    c0, h0 = np.split(np.concatenate([x, h_prev]) @ W0, 2)
    s0 = h_prev + sigmoid(c0) * (np.tanh(h0) - h_prev)
    c1, h1 = np.split(s0 @ W1, 2)
    s1 = s0 + sigmoid(c1) * (np.maximum(h1, 0) - s0)
    c2, h2 = np.split(s1 @ W2, 2)
    s2 = s1 + sigmoid(c2) * (h2 - s1)
    expected = (s1 + s2) / 2

    genotype = (("relu", 0), ("identity", 1))
    inputs, hidden = torch.tensor(x).float().view(1, 1, H), torch.tensor(h_prev).float().view(1, H)
    out = cell(inputs, hidden, genotype)
    np.testing.assert_allclose(out.view(H).detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # ENAS's rule: node 1 reads node 0, so only node 1 is a loose end.
    cell.output = "loose_ends"
    np.testing.assert_allclose(cell(inputs, hidden, genotype).view(H).detach().numpy(), s2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("genotype, ends", [
    ((("tanh", 0), ("relu", 1)), [1]),
    ((("tanh", 0), ("relu", 0)), [0, 1]),
    ((("tanh", 0), ("relu", 1), ("identity", 1)), [1, 2]),
    ((("tanh", 0), ("relu", 1), ("identity", 2)), [2]),
])
def test_loose_ends_are_the_nodes_nobody_reads(genotype, ends):
    assert loose_ends(genotype) == ends


@pytest.mark.parametrize("sharing, matrices", [("by_edge", 3), ("by_choice", 12)])
def test_weights_shared_by_edge_or_by_choice_run_a_cell_as_its_own_matrices(sharing, matrices):
    """An ENAS or NAO supernet runs a cell as a per-node model holding the chosen matrices."""
    torch.manual_seed(0)
    shared = RecurrentCell(4, nodes=2, dropoutx=0, dropouth=0, sharing=sharing).eval()
    assert len(shared.Ws) == matrices
    assert shared.node_weight(1, 0, "relu") is not shared.node_weight(1, 1, "relu")
    assert (shared.node_weight(1, 0, "relu") is shared.node_weight(1, 0, "tanh")) == (sharing == "by_edge")
    x, h = torch.randn(3, 2, 4), torch.randn(2, 4)
    for genotype in [(("tanh", 0), ("relu", 0)), (("tanh", 0), ("relu", 1)), (("sigmoid", 0), ("relu", 1))]:
        by_node = RecurrentCell(4, nodes=2, dropoutx=0, dropouth=0).eval()
        with torch.no_grad():
            by_node.W0.copy_(shared.W0)
            for node, (op, pred) in enumerate(genotype):
                by_node.Ws[node].copy_(shared.node_weight(node, pred, op))
        torch.testing.assert_close(shared(x, h, genotype), by_node(x, h, genotype))


def test_cell_carries_state_over_time():
    torch.manual_seed(0)
    cell = RecurrentCell(4, nodes=2, dropoutx=0, dropouth=0).eval()
    genotype = (("tanh", 0), ("sigmoid", 1))
    x = torch.randn(5, 3, 4)
    whole = cell(x, torch.zeros(3, 4), genotype)
    first = cell(x[:2], torch.zeros(3, 4), genotype)
    rest = cell(x[2:], first[-1], genotype)
    torch.testing.assert_close(whole, torch.cat([first, rest]))


def test_supernet_weights_run_any_cell_like_a_fixed_model():
    space = SearchSpace(2)
    torch.manual_seed(0)
    supernet = LanguageModel(50, 2, NO_DROPOUT)
    words = torch.randint(0, 50, (7, 4))
    rng = np.random.default_rng(0)
    for _ in range(4):  # a different cell per minibatch, as in weight-sharing training
        genotype = space.sample(rng)
        torch.manual_seed(1)
        fixed = LanguageModel(50, 2, NO_DROPOUT)
        fixed.load_state_dict(supernet.state_dict())
        shared, _, _ = supernet.eval()(words, supernet.init_hidden(4), genotype)
        alone, _, _ = fixed.eval()(words, fixed.init_hidden(4), genotype)
        torch.testing.assert_close(shared, alone)


def test_the_genotype_changes_the_output():
    torch.manual_seed(0)
    model = LanguageModel(50, 2, NO_DROPOUT).eval()
    words = torch.randint(0, 50, (7, 4))
    _, _, a = model(words, model.init_hidden(4), (("tanh", 0), ("relu", 1)))
    _, _, b = model(words, model.init_hidden(4), (("tanh", 0), ("relu", 0)))
    assert (a - b).abs().max() > 0.05 * a.abs().max()


def test_decoder_is_tied_and_init_ranges():
    model = LanguageModel(100, 3, ModelConfig(hidden_size=16))
    assert model.decoder.weight is model.encoder.weight
    assert model.cell.W0.abs().max() <= 0.04 and model.cell.Ws[2].abs().max() <= 0.04
    assert model.cell.W0.shape == (32, 32) and model.cell.Ws[0].shape == (16, 32)


def test_dropout_masks_are_variational():
    """The same dropout mask applies at every time step of a sequence."""
    torch.manual_seed(0)
    cell = RecurrentCell(8, nodes=1, dropoutx=0.5, dropouth=0.0).train()
    inputs = torch.ones(6, 2, 8)
    W0_input = cell.W0[:8].detach().clone()
    with torch.no_grad():
        cell.W0[:8] = torch.eye(8, 16)  # pass x through to c0 so the mask shows in the output
        cell.W0[8:] = 0
        cell.Ws[0].zero_()
    out = cell(inputs, torch.zeros(2, 8), (("identity", 0),))
    assert W0_input.shape == (8, 16)
    dropped = out == 0
    assert dropped.any() and (dropped == dropped[0]).all()


@pytest.mark.parametrize("bad", [{"hidden_size": 0}, {"dropout": 1.0}, {"dropoute": -0.1}])
def test_model_config_rejects_impossible_values(bad):
    from naseval.core.errors import NasevalError

    with pytest.raises(NasevalError, match=list(bad)[0]):
        ModelConfig(**bad)


def test_enas_batch_norm_normalizes_what_the_decoder_reads_not_the_recurrent_state():
    torch.manual_seed(0)
    genotype = (("tanh", 0), ("relu", 1))
    words, hidden = torch.randint(0, 30, (5, 16)), torch.randn(16, 8)
    plain = LanguageModel(30, 2, ModelConfig(hidden_size=8), sharing="by_edge").eval()
    normed = LanguageModel(30, 2, ModelConfig(hidden_size=8), sharing="by_edge", output_norm=True).eval()
    normed.load_state_dict(plain.state_dict(), strict=False)  # the same weights, and a norm of weight 1, bias 0
    with torch.no_grad():
        shown, next_hidden, raw = normed.features(words, hidden, genotype)
        plain_shown, plain_next, plain_raw = plain.features(words, hidden, genotype)
    assert plain.cell.output_norm is None
    torch.testing.assert_close(shown.mean(dim=1), torch.zeros(5, 8), atol=1e-5, rtol=0)  # per step, over the batch
    spread = plain_raw.var(dim=1, unbiased=False)
    torch.testing.assert_close(shown.var(dim=1, unbiased=False), spread / (spread + 1e-5))  # 1 but for eps
    torch.testing.assert_close(raw, plain_raw)  # the recurrence is untouched (carpedm20 passes h on, unnormed)
    torch.testing.assert_close(next_hidden, plain_next)
    torch.testing.assert_close(plain_shown, plain_raw)


def test_the_hidden_norm_clip_rescales_only_the_rows_above_it_and_carries_no_gradient():
    hidden = torch.tensor([[3.0, 4.0], [0.3, 0.4]], requires_grad=True)
    clipped = clip_rows(hidden, 2.5)
    torch.testing.assert_close(clipped.detach(), torch.tensor([[1.5, 2.0], [0.3, 0.4]]))
    clipped.sum().backward()
    torch.testing.assert_close(hidden.grad, torch.tensor([[0.5, 0.5], [1.0, 1.0]]))  # the scale is a constant
    assert clip_rows(hidden, None) is hidden
