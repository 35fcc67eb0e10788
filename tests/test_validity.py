"""Validity of a ground truth: the published order, isomorphic cells, cells that did not learn."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from naseval.analysis.validity import (
    by_function,
    cells_not_learned,
    fidelity,
    isomorph_agreement,
    published_ranking,
    validity,
)
from naseval.core.data import Corpus
from naseval.core.ngram import reference_perplexities
from naseval.core.space import SearchSpace, parse_genotype
from naseval.nn.model import ModelConfig, RecurrentCell
from naseval.training.recipe import TrainConfig, train_cell_reference

SPACE = SearchSpace()
PAIRS_2_NODES = {(1, 8), (2, 16), (10, 17), (3, 24), (11, 25), (19, 26)}  # a:0 b:0 and b:0 a:0


def test_the_published_order_maps_onto_the_space_by_genotype():
    published = published_ranking()
    ranks = published.ranks_in(SPACE)
    assert sorted(ranks) == list(range(32)) and sorted(ranks.values()) == list(range(1, 33))
    assert ranks[SPACE.to_id(parse_genotype("tanh:0 sigmoid:0", SPACE))] == 1
    assert ranks[SPACE.to_id(parse_genotype("identity:0 identity:1", SPACE))] == 32
    assert ranks[SPACE.to_id(parse_genotype("relu:0 tanh:1", SPACE))] == 3
    reordered = SearchSpace(ops=("identity", "sigmoid", "relu", "tanh"))  # other ids, the same genotypes
    again = published.ranks_in(reordered)
    assert again[reordered.to_id(parse_genotype("tanh:0 sigmoid:0", reordered))] == 1
    assert published.absent_because(reordered) is None
    assert "3 nodes" in published.absent_because(SearchSpace(nodes=3))
    assert "loose_ends" in published.absent_because(SearchSpace(cell_output="loose_ends"))


def test_isomorphism_classes_come_from_the_definition():
    classes = SPACE.function_classes()
    assert len(set(classes)) == 26
    assert {(a, b) for a in range(32) for b in range(a + 1, 32) if classes[a] == classes[b]} == PAIRS_2_NODES
    three = SearchSpace(nodes=3)
    # a cell is a tree rooted at s0 with op-labelled nodes; counted by shape: three children of s0
    # (a multiset of 3 ops: 20), a chain beside a leaf (16 x 4), a node with two children (4 x 10),
    # a chain of three (64)
    assert len(set(three.function_classes())) == 20 + 64 + 40 + 64
    named = {tuple(" ".join(f"{op}:{p}" for op, p in g) for g in three.isomorphs(parse_genotype(text, three)))
             for text in ("tanh:0 relu:1 sigmoid:1", "tanh:0 tanh:0 relu:1", "tanh:0 relu:1 sigmoid:2")}
    assert named == {("tanh:0 relu:1 sigmoid:1", "tanh:0 sigmoid:1 relu:1"),
                     ("tanh:0 tanh:0 relu:1", "tanh:0 tanh:0 relu:2", "tanh:0 relu:1 tanh:0"),
                     ("tanh:0 relu:1 sigmoid:2",)}  # a chain has one numbering


@pytest.mark.parametrize("nodes, first, second, order", [
    (2, "relu:0 sigmoid:0", "sigmoid:0 relu:0", [1, 0]),
    (3, "tanh:0 relu:1 sigmoid:1", "tanh:0 sigmoid:1 relu:1", [0, 2, 1]),
    (3, "tanh:0 tanh:0 relu:1", "tanh:0 relu:1 tanh:0", [0, 2, 1]),
])
@pytest.mark.parametrize("output", ["mean", "loose_ends"])
def test_isomorphic_cells_compute_the_same_output_with_their_node_weights_renumbered(nodes, first, second, order,
                                                                                      output):
    space = SearchSpace(nodes=nodes, cell_output=output)
    a, b = parse_genotype(first, space), parse_genotype(second, space)
    assert space.function_classes()[space.to_id(a)] == space.function_classes()[space.to_id(b)]
    torch.manual_seed(0)
    cell_a = RecurrentCell(6, nodes, 0.0, 0.0, output=output).eval()
    cell_b = RecurrentCell(6, nodes, 0.0, 0.0, output=output).eval()
    with torch.no_grad():
        cell_b.W0.copy_(cell_a.W0)
        for node_b, node_a in enumerate(order):  # node i of `second` is node order[i] of `first`
            cell_b.Ws[node_b].copy_(cell_a.Ws[node_a])
    inputs, hidden = torch.randn(5, 3, 6), torch.randn(3, 6)
    torch.testing.assert_close(cell_a(inputs, hidden, a), cell_b(inputs, hidden, b))
    other = parse_genotype("tanh:0 " * (nodes - 1) + "tanh:0", space)
    assert not torch.allclose(cell_a(inputs, hidden, a), cell_b(inputs, hidden, other))


def test_validity_of_a_ground_truth_that_is_the_published_order():
    published = published_ranking().ranks_in(SPACE)
    rng = np.random.default_rng(0)
    exact = {0: {c: 50.0 + r for c, r in published.items()}, 1: {c: 50.5 + r for c, r in published.items()}}
    checks = validity(exact, SPACE, 1000, 0.95, rng)
    assert checks["tau_vs_published"] == pytest.approx(1.0)
    assert checks["tau_vs_published_distinct_functions"] == pytest.approx(1.0)
    assert checks["distinct_functions"] == 26
    assert checks["isomorphs"]["mean_rank_gap"] == pytest.approx(11 / 6)  # the paper's own: 1.83
    assert checks["isomorphs"]["random_rank_gap"] == pytest.approx(11.0)
    assert checks["isomorphs"]["p"] < 0.01
    reversed_order = {0: {c: 100.0 - r for c, r in published.items()}}
    assert validity(reversed_order, SPACE, 1000, 0.95, rng)["tau_vs_published"] == pytest.approx(-1.0)
    absent = validity(exact, SearchSpace(cell_output="loose_ends"), 1000, 0.95, rng)
    assert absent["tau_vs_published"] is None and "loose_ends" in absent["published_absent"]


def test_isomorphs_ranked_apart_are_no_better_than_random():
    classes = SPACE.function_classes()
    scores = {cell: float(cell) for cell in range(32)}  # pairs sit 7 to 22 ids apart: far apart
    agreement = isomorph_agreement(scores, classes, 2000, np.random.default_rng(0))
    assert agreement["pairs"] == 6
    assert agreement["mean_rank_gap"] == pytest.approx(np.mean([b - a for a, b in PAIRS_2_NODES]))
    assert agreement["p"] > 0.5
    assert by_function({1: 60.0, 8: 62.0, 0: 70.0}, classes) == {1: 61.0, 0: 70.0}


def test_reference_perplexities_by_hand():
    vocabulary = ["a", "b", "<eos>", "<unk>"]
    train = np.array([0, 1, 0, 1, 0, 1, 0, 1, 2])  # a b a b ... : a bigram knows what comes next
    corpus = Corpus(vocabulary, {"train": train, "valid": np.array([0, 1, 0, 1]), "test": np.array([1, 0, 1])})
    counts = np.array([4, 4, 1, 0]) + 1.0
    unigram = counts / counts.sum()
    reference = reference_perplexities(corpus)
    assert reference["unigram"]["valid"] == pytest.approx(math.exp(-np.log(unigram[[1, 0, 1]]).mean()))
    # after "a" (4 times, always "b": one follower) Witten-Bell gives 4/5 * 1 + 1/5 * P(b)
    after_a = 0.8 + 0.2 * unigram[1]
    assert reference["bigram"]["valid"] < reference["unigram"]["valid"]
    assert reference["bigram"]["test"] == pytest.approx(
        # after "b" (4 times: 3 "a", 1 "<eos>", two followers): 4/6 * 3/4 + 2/6 * P(a)
        math.exp(-np.mean(np.log([4 / 6 * 3 / 4 + 2 / 6 * unigram[0], after_a]))))


def test_cells_not_learned_by_the_unigram_line_and_fidelity_by_epoch():
    assert cells_not_learned({0: {0: 90.0, 1: 134.9, 2: 169.0}, 3: {0: 91.0, 1: 120.0, 2: 170.0}}, 134.9) == {
        "0": [1, 2], "3": [2]}
    curves = {0: {0: [100.0, 80.0, 70.0], 1: [90.0, 85.0, 80.0], 2: [95.0, 96.0, 60.0]}}
    rows = fidelity(curves)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert rows[0]["kendall_tau_with_final"] == pytest.approx(-1 / 3)  # 1 < 2 < 0 against 2 < 0 < 1
    assert rows[-1]["kendall_tau_with_final"] == pytest.approx(1.0)


@pytest.mark.integration
def test_a_cell_whose_output_is_cut_off_is_flagged_and_a_learning_cell_is_not(tiny_corpus, monkeypatch):
    unigram = reference_perplexities(tiny_corpus)["unigram"]["valid"]
    model, train = ModelConfig(hidden_size=16), TrainConfig(epochs=4, batch_size=8, eval_batch_size=8, bptt=10)
    genotype = parse_genotype("tanh:0 relu:1", SPACE)
    learned = train_cell_reference(genotype, tiny_corpus, 2, model, train, 0, show_progress=False)
    original = RecurrentCell.forward
    monkeypatch.setattr(RecurrentCell, "forward", lambda self, *args: original(self, *args) * 0.0)
    cut_off = train_cell_reference(genotype, tiny_corpus, 2, model, dataclasses.replace(train, epochs=8), 0,
                                   show_progress=False)
    flagged = cells_not_learned({0: {0: learned.valid_ppl, 1: cut_off.valid_ppl}}, unigram)
    assert flagged == {"0": [1]}, (learned.valid_ppl, cut_off.valid_ppl, unigram)
