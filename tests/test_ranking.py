import pytest
from scipy import stats

from naseval.analysis.ranking import (
    kendall_tau,
    kendall_tau_p,
    mean_scores,
    ranks,
    spearman_rho,
    top_k_overlap,
)
from naseval.core.errors import NasevalError


def test_identical_scores_give_one():
    scores = {0: 60.0, 1: 65.0, 2: 70.0, 3: 62.0}
    assert kendall_tau(scores, dict(scores)) == pytest.approx(1.0)
    assert spearman_rho(scores, dict(scores)) == pytest.approx(1.0)


def test_reversed_ranking_gives_minus_one():
    truth = {0: 60.0, 1: 61.0, 2: 62.0, 3: 63.0, 4: 64.0}
    reversed_scores = {cell: -ppl for cell, ppl in truth.items()}
    assert kendall_tau(reversed_scores, truth) == pytest.approx(-1.0)
    assert spearman_rho(reversed_scores, truth) == pytest.approx(-1.0)


def test_scores_are_matched_by_cell_id_not_by_position():
    truth = {7: 60.0, 3: 61.0, 5: 62.0, 1: 63.0}
    # the same order of quality, listed in another order and with different values
    weight_sharing = {1: 300.0, 5: 250.0, 3: 200.0, 7: 150.0}
    assert kendall_tau(weight_sharing, truth) == pytest.approx(1.0)


def test_correlating_id_lists_sorted_by_rank_would_be_wrong():
    """The known bug: tau of the two id orders is not tau of the scores."""
    truth = {0: 0.0, 1: 1.0, 2: 3.0, 3: 2.0}
    other = {0: 0.0, 1: 2.0, 2: 3.0, 3: 1.0}
    ids_by_truth = sorted(truth, key=truth.get)
    ids_by_other = sorted(other, key=other.get)
    buggy = stats.kendalltau(ids_by_truth, ids_by_other).statistic
    correct = stats.kendalltau([truth[i] for i in range(4)], [other[i] for i in range(4)]).statistic
    assert kendall_tau(other, truth) == pytest.approx(correct) == pytest.approx(2 / 3)
    assert buggy == pytest.approx(0.0)


def test_only_common_cells_count():
    a = {0: 1.0, 1: 2.0, 2: 3.0, 9: 0.0}
    b = {0: 1.0, 1: 2.0, 2: 3.0}
    assert kendall_tau(a, b) == pytest.approx(1.0)
    with pytest.raises(NasevalError, match="at least 2 cells"):
        kendall_tau({0: 1.0}, {0: 1.0, 1: 2.0})


def test_ranks_start_at_one_for_the_lowest_perplexity():
    assert ranks({4: 70.0, 2: 60.0, 9: 65.0}) == {2: 1, 9: 2, 4: 3}


def test_mean_scores_over_the_cells_every_scoring_has():
    a = {0: 1.0, 1: 2.0, 2: 3.0}
    b = {0: 3.0, 1: 2.0, 2: 1.0, 5: 9.0}
    assert mean_scores([a, b]) == {0: 2.0, 1: 2.0, 2: 2.0}


def test_kendall_p_value_is_scipys_on_matched_scores():
    truth = {cell: float(cell) for cell in range(10)}
    noisy = {cell: float(cell) + (3.0 if cell % 2 else -3.0) for cell in range(10)}
    expected = stats.kendalltau(list(noisy.values()), list(truth.values())).pvalue
    assert kendall_tau_p(noisy, truth) == pytest.approx(expected)
    assert kendall_tau_p(truth, dict(truth)) < 0.001


def test_top_k_overlap_counts_shared_best_cells():
    truth = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0, 4: 5.0}
    shuffled = {0: 3.0, 1: 1.0, 2: 5.0, 3: 2.0, 4: 4.0}  # best three: 1, 3, 0
    assert top_k_overlap(shuffled, truth, 1) == 0.0
    assert top_k_overlap(shuffled, truth, 3) == pytest.approx(2 / 3)
    assert top_k_overlap(truth, truth, 5) == 1.0
    assert top_k_overlap(shuffled, {0: 1.0, 1: 2.0}, 5) == 1.0  # only common cells count; k shrinks to 2
