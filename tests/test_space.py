import math
from collections import Counter

import numpy as np
import pytest

from naseval.core.errors import NasevalError
from naseval.core.space import SearchSpace, format_genotype, parse_genotype


@pytest.mark.parametrize("nodes, size", [(1, 4), (2, 32), (3, 384), (8, 2_642_411_520)])
def test_space_size(nodes, size):
    assert SearchSpace(nodes).size == size == math.factorial(nodes) * 4**nodes


def test_ids_follow_the_papers_mixed_radix():
    space = SearchSpace(2)
    assert space.from_id(0) == (("tanh", 0), ("tanh", 0))
    assert space.from_id(4) == (("tanh", 0), ("tanh", 1))
    assert space.from_id(8) == (("relu", 0), ("tanh", 0))
    assert space.from_id(31) == (("identity", 0), ("identity", 1))


@pytest.mark.parametrize("nodes", [1, 2, 3])
def test_id_genotype_bijection(nodes):
    space = SearchSpace(nodes)
    genotypes = list(space.enumerate())
    assert len(set(genotypes)) == space.size
    assert [space.to_id(g) for g in genotypes] == list(range(space.size))


def test_bijection_on_a_large_space():
    space = SearchSpace(8)
    rng = np.random.default_rng(0)
    for _ in range(200):
        genotype = space.sample(rng)
        assert space.from_id(space.to_id(genotype)) == genotype


def test_sampling_is_uniform_over_cells():
    space = SearchSpace(2)
    rng = np.random.default_rng(1)
    counts = Counter(space.to_id(space.sample(rng)) for _ in range(32_000))
    assert set(counts) == set(range(32))
    assert max(counts.values()) < 1250 and min(counts.values()) > 750  # expected 1000 each


def test_text_form_round_trip():
    space = SearchSpace(2)
    genotype = (("relu", 0), ("sigmoid", 1))
    assert format_genotype(genotype) == "relu:0 sigmoid:1"
    assert parse_genotype("relu:0 sigmoid:1", space) == genotype


def test_ops_come_from_params():
    space = SearchSpace(2, ("tanh", "relu"))
    assert space.size == 8
    assert space.from_id(2) == (("tanh", 0), ("tanh", 1))


@pytest.mark.parametrize(
    "text, message",
    [
        ("tanh:0", "has 1 nodes, the space has 2"),
        ("tanh:0 relu:2", "node 1 has predecessor 2 (allowed: 0..1)"),
        ("tanh:0 gelu:1", "node 1 has op 'gelu'"),
        ("tanh:0 relu", "expected 'op:pred"),
    ],
)
def test_invalid_genotypes_are_named(text, message):
    with pytest.raises(NasevalError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_genotype(text, SearchSpace(2))


@pytest.mark.parametrize("cell_id", [-1, 32, 1.5])
def test_invalid_ids(cell_id):
    with pytest.raises(NasevalError, match="invalid cell id"):
        SearchSpace(2).from_id(cell_id)


@pytest.mark.parametrize("nodes, ops, message", [
    (0, ("tanh",), "nodes: expected an integer >= 1, got 0"),
    (2, ("tanh", "swish"), "unknown op 'swish'"),
    (2, (), "non-empty"),
])
def test_invalid_spaces(nodes, ops, message):
    with pytest.raises(NasevalError, match=message):
        SearchSpace(nodes, ops)
