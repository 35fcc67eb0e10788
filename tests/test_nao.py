import numpy as np
import pytest
import torch

from naseval.analysis.ranking import kendall_tau
from naseval.core.space import SearchSpace, format_genotype
from naseval.nn.model import ModelConfig
from naseval.policies.base import SearchTask
from naseval.policies.nao import (
    EncoderPredictorDecoder,
    EpdConfig,
    NaoConfig,
    NaoPolicy,
    Tokens,
    move_and_decode,
    next_pool,
    performance_targets,
    predicted,
    propose,
    random_cells_outside,
    train_epd,
)
from naseval.search.oracle import OracleTable
from naseval.search.supernet import SupernetConfig
from naseval.training.recipe import TrainConfig

SMALL_EPD = EpdConfig(embedding_size=16, hidden_size=32, mlp_layers=2, mlp_hidden_size=64, lr=3e-3,
                      weight_decay=0.0, epochs=150, batch_size=50)


def trained_epd(space, genotypes, targets, config=SMALL_EPD, seed=0):
    torch.manual_seed(seed)
    epd = EncoderPredictorDecoder(Tokens(space), config)
    optimizer = torch.optim.Adam(epd.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_epd(epd, optimizer, genotypes, targets, config, np.random.default_rng(seed))
    return epd


def synthetic_score(genotype) -> float:
    """A known function of the cell: relu and identity nodes help, reading s0 helps a little."""
    return sum({"relu": 1.0, "identity": 0.6, "tanh": 0.3, "sigmoid": 0.0}[op] + 0.2 * (pred == 0)
               for op, pred in genotype) / len(genotype)


def test_tokens_round_trip_and_allow_only_valid_choices():
    space = SearchSpace(3)
    tokens = Tokens(space)
    cells = list(space.enumerate())
    assert tokens.decode(tokens.encode(cells)) == cells
    encoded = tokens.encode(cells)
    for position in range(tokens.length):
        assert tokens.allowed[position, encoded[:, position]].all()
    assert tokens.allowed[0].sum() == 1 and tokens.allowed[4].sum() == 3 and tokens.allowed[5].sum() == 4


def test_encoder_decoder_reconstructs_the_cells_it_was_trained_on():
    space = SearchSpace(3)
    cells = space.sample_distinct(40, np.random.default_rng(0))
    epd = trained_epd(space, cells, performance_targets([synthetic_score(g) for g in cells]))
    epd.eval()
    with torch.no_grad():
        outputs, embedding = epd.encode(epd.tokens.encode(cells))
        _, decoded = epd.decode(outputs, embedding)
    assert epd.tokens.decode(decoded) == cells


@pytest.mark.integration
def test_predictor_ranks_held_out_cells_by_a_synthetic_score():
    space = SearchSpace(3)
    cells = space.sample_distinct(300, np.random.default_rng(1))
    train, held_out = cells[:200], cells[200:]
    # performance_targets maps low "perplexity" to high targets: feed it the negated score.
    epd = trained_epd(space, train, performance_targets([-synthetic_score(g) for g in train]))
    prediction = predicted(epd, held_out).tolist()
    tau = kendall_tau(dict(enumerate(prediction)), dict(enumerate(synthetic_score(g) for g in held_out)))
    assert tau > 0.8


@pytest.mark.integration
def test_a_gradient_step_increases_the_predicted_performance():
    space = SearchSpace(3)
    cells = space.sample_distinct(100, np.random.default_rng(2))
    epd = trained_epd(space, cells, performance_targets([-synthetic_score(g) for g in cells]))
    worst = sorted(cells, key=synthetic_score)[:20]
    before = predicted(epd, worst)
    _, after = move_and_decode(epd, worst, step_size=1.0)
    assert (after > before).all()
    new, step_size = propose(epd, worst, set(cells), wanted=5, max_step_size=50)
    assert len(new) == 5 and not set(new) & set(cells) and 1 <= step_size <= 50


def test_performance_targets_put_the_lowest_perplexity_at_one():
    assert performance_targets([100.0, 80.0, 120.0]).tolist() == pytest.approx([0.5, 1.0, 0.0])


SMALL_SUPERNET = SupernetConfig(ModelConfig(hidden_size=8),
                                TrainConfig(epochs=1, batch_size=8, eval_batch_size=8, bptt=10))


def small_config(**overrides) -> NaoConfig:
    return NaoConfig(epd=SMALL_EPD, **overrides)


def test_the_next_pool_keeps_its_size_and_its_best_and_replaces_the_worst():
    ranked = list("abcdefghij")  # best first
    assert next_pool(ranked, ["x", "y"], ["z"]) == [*"abcdefg", "x", "y", "z"]
    assert next_pool(ranked, ["x"], []) == [*"abcdefghi", "x"]  # fewer new cells: fewer dropped


def test_random_cells_come_from_outside_the_pool_and_stop_when_the_space_is_exhausted():
    space = SearchSpace(2)
    known = set(list(space.enumerate())[:28])
    drawn = random_cells_outside(space, known, 10, np.random.default_rng(0))
    assert len(drawn) == 4 and len(set(drawn)) == 4 and not set(drawn) & known


@pytest.mark.integration
def test_search_keeps_the_pool_size_and_its_best_cells(tiny_corpus):
    config = small_config(rounds=4, seed_cells=10, top_cells=5, new_cells=4, random_cells=1)
    result = NaoPolicy(config).search(SearchTask(SearchSpace(2), tiny_corpus, 0, SMALL_SUPERNET))
    assert [row["pool"] for row in result.trace] == [10] * len(result.trace) and len(result.trace) >= 3
    assert [row["random_cells"] for row in result.trace[:-1]] == [1] * (len(result.trace) - 1)
    assert len(result.candidates) == result.details["pool"] == 10
    final = {format_genotype(c.genotype) for c in result.candidates}
    assert result.trace[-2]["genotype"] in final  # the previous round's best was kept
    assert set(result.rankings) == {"shared_weights_valid_ppl", "predictor_neg_performance"}
    assert len(result.rankings["predictor_neg_performance"]) == 32
    history = result.ranking_history  # one per round, labelled by cumulative child epochs
    assert [point["epoch"] for point in history] == [row["epoch"] for row in result.trace]
    assert all(len(point["rankings"]["shared_weights_valid_ppl"]) == 32 for point in history)


def test_pool_sizes_are_clamped_to_the_space_with_a_record(tiny_corpus):
    task = SearchTask(SearchSpace(1), tiny_corpus, 0, SMALL_SUPERNET)
    result = NaoPolicy(small_config(rounds=2, seed_cells=1000)).search(task)
    clamped = result.details["clamped"]
    assert clamped["seed_cells"] == {"asked": 1000, "used": 4} and clamped["new_cells"] == {"asked": 300, "used": 0}
    assert len(result.candidates) == 4


def test_a_pool_that_holds_the_whole_space_still_trains_the_child_model_every_round(tiny_corpus):
    gentle = SupernetConfig(ModelConfig(hidden_size=8), TrainConfig(epochs=1, batch_size=8, eval_batch_size=8,
                                                                    bptt=10, lr=2.0))
    task = SearchTask(SearchSpace(1), tiny_corpus, 0, gentle)  # 4 cells: the pool is the space
    result = NaoPolicy(small_config(rounds=3, seed_cells=1000)).search(task)
    assert [row["round"] for row in result.trace] == [1, 2, 3]
    assert [row["epoch"] for row in result.trace] == [1, 2, 3]  # one child epoch a round, each trained
    assert result.evaluator["cost"] == 3 and result.details["stopped"] == "ran 3 rounds"
    assert [row["new_cells"] + row["random_cells"] for row in result.trace[:-1]] == [0, 0]


def test_a_round_whose_decoder_finds_no_new_cell_adds_its_random_cells_and_goes_on(tiny_corpus, monkeypatch):
    monkeypatch.setattr("naseval.policies.nao.propose", lambda *args: ([], 30))
    config = small_config(rounds=3, seed_cells=8, top_cells=4, new_cells=4, random_cells=2)
    result = NaoPolicy(config).search(SearchTask(SearchSpace(2), tiny_corpus, 0, SMALL_SUPERNET))
    assert len(result.trace) == 3 and result.evaluator["cost"] == 3
    assert [(row["new_cells"], row["random_cells"]) for row in result.trace[:-1]] == [(0, 2), (0, 2)]
    assert [row["pool"] for row in result.trace] == [8, 8, 8]


def test_the_encoder_takes_one_step_per_node_on_its_two_tokens_joined():
    space = SearchSpace(3)
    epd = EncoderPredictorDecoder(Tokens(space), SMALL_EPD)
    assert epd.encoder.input_size == 2 * SMALL_EPD.embedding_size
    assert epd.decoder_embedding.embedding_dim == SMALL_EPD.hidden_size  # the original's: as wide as the state
    outputs, embedding = epd.encode(epd.tokens.encode(space.sample_distinct(5, np.random.default_rng(0))))
    assert outputs.shape == (5, space.nodes, SMALL_EPD.hidden_size) and embedding.shape == (5, SMALL_EPD.hidden_size)


def test_the_decoder_scores_every_token_but_decodes_only_valid_ones():
    space = SearchSpace(3)
    epd = EncoderPredictorDecoder(Tokens(space), SMALL_EPD).eval()
    cells = space.sample_distinct(20, np.random.default_rng(1))
    with torch.no_grad():
        outputs, embedding = epd.encode(epd.tokens.encode(cells))
        logits, decoded = epd.decode(outputs, embedding)
    assert torch.isfinite(logits).all()  # the training loss runs over the whole vocabulary, as the original's
    assert all(epd.tokens.allowed[position, decoded[:, position]].all() for position in range(epd.tokens.length))


def test_without_weight_sharing_the_pool_is_scored_by_the_oracle_until_the_budget_is_spent():
    def truth(cell):  # scrambled, so that the best cells are not neighbours by id
        return 100.0 + 7 * cell % 32

    table = OracleTable({seed: {c: truth(c) + 0.5 * (seed - 3) for c in range(32)} for seed in (3, 4)}, "mean", 32)
    config = small_config(rounds=20, seed_cells=8, top_cells=4, new_cells=4, random_cells=1, evaluator="oracle",
                          budget=14)
    result = NaoPolicy(config).search(SearchTask(SearchSpace(2), None, 2, SMALL_SUPERNET, oracle=table))
    assert result.evaluator["cells_trained"] == 14 and result.trace[0]["pool"] == 8
    added = [row["new_cells"] + row["random_cells"] for row in result.trace]
    assert sum(added) == 6 and added[-1] == 0 and len(result.trace) < 20  # 8 + 6 = 14
    assert result.details["stopped"] == f"the oracle's budget of 14 cells was spent after round {len(result.trace)}"
    space = SearchSpace(2)
    assert all(c.score - truth(space.to_id(c.genotype)) in (0.0, 0.5) for c in result.candidates)
    assert set(result.rankings) == {"predictor_neg_performance"} and result.ranking_history == []
