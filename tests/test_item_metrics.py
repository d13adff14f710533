"""Item metrics of issue 11, section 5: hand-computed cases, edge cases and a reference check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rec_env.agents.evaluation.item_metrics import (
    catalog_coverage,
    exposure_gini,
    hit_rate_at_k,
    intra_list_diversity,
    ndcg_at_k,
    novelty,
    precision_at_k,
    top_m_relevant,
)


def as_rows(*rows: list[int]) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


def mask(n_products: int, *relevant: int) -> np.ndarray:
    row = np.zeros((1, n_products), dtype=bool)
    row[0, list(relevant)] = True
    return row


# --- ranking metrics: hand-computed -----------------------------------------------------------


def test_ndcg_relevant_at_ranks_one_and_three() -> None:
    # relevant {0, 1}; slate [0, 5, 1]: hits at ranks 1 and 3
    # DCG = 1/log2(2) + 1/log2(4) = 1 + 0.5; IDCG over min(2, 3) = 2: 1 + 1/log2(3)
    value = ndcg_at_k(as_rows([0, 5, 1]), mask(6, 0, 1), k=3)
    assert value[0] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))


def test_ranking_metrics_from_utility_top_m() -> None:
    # utilities: product 3 > 1 > 4 > 0 > 2; n_relevant=2 -> relevant {3, 1}
    utility = np.array([[0.2, 0.8, 0.1, 0.9, 0.5]])
    slate = as_rows([4, 1, 0])
    # hit only at rank 2: DCG = 1/log2(3); IDCG = 1 + 1/log2(3)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(slate, utility, k=3, n_relevant=2)[0] == pytest.approx(expected)
    assert hit_rate_at_k(slate, utility, k=3, n_relevant=2)[0] == 1.0
    assert precision_at_k(slate, utility, k=3, n_relevant=2)[0] == pytest.approx(1 / 3)
    # default n_relevant = k = 3 -> relevant {3, 1, 4}: hits at ranks 1, 2 -> 2/3
    assert precision_at_k(slate, utility, k=3)[0] == pytest.approx(2 / 3)
    # DCG = 1 + 1/log2(3); IDCG = 1 + 1/log2(3) + 1/log2(4)
    ideal = 1 + 1 / math.log2(3) + 0.5
    assert ndcg_at_k(slate, utility, k=3)[0] == pytest.approx((1 + 1 / math.log2(3)) / ideal)


def test_graded_gain_uses_utility() -> None:
    # relevant {3 (0.9), 1 (0.8)}; slate [1, 3]: DCG = 0.8 + 0.9/log2(3)
    # IDCG = 0.9 + 0.8/log2(3)
    utility = np.array([[0.2, 0.8, 0.1, 0.9, 0.5]])
    value = ndcg_at_k(as_rows([1, 3]), utility, k=2, gain="graded")
    expected = (0.8 + 0.9 / math.log2(3)) / (0.9 + 0.8 / math.log2(3))
    assert value[0] == pytest.approx(expected)
    assert ndcg_at_k(as_rows([3, 1]), utility, k=2, gain="graded")[0] == pytest.approx(1.0)


def test_perfect_and_empty_hits() -> None:
    relevance = mask(5, 2, 4)
    assert ndcg_at_k(as_rows([4, 2, 0]), relevance, k=3)[0] == pytest.approx(1.0)
    assert ndcg_at_k(as_rows([0, 1, 3]), relevance, k=3)[0] == 0.0
    assert hit_rate_at_k(as_rows([0, 1, 3]), relevance, k=3)[0] == 0.0
    assert precision_at_k(as_rows([0, 1, 3]), relevance, k=3)[0] == 0.0


def test_ideal_dcg_is_over_min_relevant_and_k() -> None:
    # one relevant product at rank 1 is ideal: IDCG = 1 (not the sum over k positions)
    assert ndcg_at_k(as_rows([2, 0, 1]), mask(4, 2), k=3)[0] == pytest.approx(1.0)
    # four relevant, k = 2: IDCG = 1 + 1/log2(3); the slate [0, 1] is ideal
    assert ndcg_at_k(as_rows([0, 1, 9]), mask(10, 0, 1, 2, 3), k=2)[0] == pytest.approx(1.0)


# --- ranking metrics: edge cases --------------------------------------------------------------


def test_no_relevant_items() -> None:
    relevance = np.zeros((1, 4), dtype=bool)
    assert np.isnan(ndcg_at_k(as_rows([0, 1]), relevance, k=2)[0])
    assert hit_rate_at_k(as_rows([0, 1]), relevance, k=2)[0] == 0.0
    assert precision_at_k(as_rows([0, 1]), relevance, k=2)[0] == 0.0


def test_k_larger_than_slate() -> None:
    # slate of 2, k = 4, relevant {0, 1, 2}: hits at ranks 1, 2
    # DCG = 1 + 1/log2(3); IDCG over min(3, 4) = 3: 1 + 1/log2(3) + 1/log2(4)
    relevance = mask(6, 0, 1, 2)
    value = ndcg_at_k(as_rows([0, 1]), relevance, k=4)[0]
    assert value == pytest.approx((1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5))
    assert precision_at_k(as_rows([0, 1]), relevance, k=4)[0] == pytest.approx(2 / 4)
    # k larger than the catalog: default n_relevant = min(k, P) = 3, every product relevant
    utility = np.array([[0.3, 0.1, 0.2]])
    assert ndcg_at_k(as_rows([0, 2, 1]), utility, k=5)[0] == pytest.approx(1.0)


def test_padding_keeps_positions() -> None:
    # [-1, 0]: the hit is at rank 2 -> DCG = 1/log2(3), IDCG = 1
    relevance = mask(3, 0)
    assert ndcg_at_k(as_rows([-1, 0]), relevance, k=2)[0] == pytest.approx(1 / math.log2(3))
    # trailing padding is the same as a shorter slate
    short = ndcg_at_k(as_rows([1, 0]), mask(3, 0, 2), k=3)
    padded = ndcg_at_k(as_rows([1, 0, -1]), mask(3, 0, 2), k=3)
    assert short == pytest.approx(padded)
    assert precision_at_k(as_rows([-1, -1, -1]), relevance, k=3)[0] == 0.0


def test_ties_broken_by_lower_index() -> None:
    # products 1, 2, 3 tie at 0.5 below product 0; n_relevant = 2 -> {0, 1}
    utility = np.array([[0.9, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]])
    relevant = top_m_relevant(utility, 2)
    assert relevant.tolist() == [[True, True, False, False], [True, True, False, False]]
    slate = as_rows([2, 3], [2, 3])
    assert hit_rate_at_k(slate, utility, k=2, n_relevant=2).tolist() == [0.0, 0.0]
    assert hit_rate_at_k(as_rows([1, 3], [1, 3]), utility, k=2, n_relevant=2).tolist() == [1, 1]


def test_top_m_relevant_has_exactly_m_per_row() -> None:
    rng = np.random.default_rng(3)
    utility = rng.integers(0, 3, size=(50, 12)).astype(float)  # many ties
    for m in (1, 4, 12):
        assert (top_m_relevant(utility, m).sum(axis=1) == m).all()


# --- reference cross-check --------------------------------------------------------------------


def reference_ndcg(slate: list[int], utility: list[float], k: int, m: int) -> float:
    """Plain loops: relevant = top m by (utility desc, index asc); binary gain."""
    order = sorted(range(len(utility)), key=lambda product: (-utility[product], product))
    relevant = set(order[:m])
    dcg = 0.0
    for position, product in enumerate(slate[:k]):
        if product != -1 and product in relevant:
            dcg += 1.0 / math.log2(position + 2)
    idcg = 0.0
    for position in range(min(len(relevant), k)):
        idcg += 1.0 / math.log2(position + 2)
    return dcg / idcg


def test_ndcg_matches_double_loop_reference() -> None:
    rng = np.random.default_rng(2024)
    n, n_products, slate_size = 60, 15, 6
    utility = rng.normal(size=(n, n_products)).round(1)  # rounding creates ties
    slates = np.array([rng.permutation(n_products)[:slate_size] for _ in range(n)])
    slates[rng.random(slates.shape) < 0.2] = -1
    for k, m in ((1, 1), (3, 5), (6, 2), (9, 9)):
        got = ndcg_at_k(slates, utility, k=k, n_relevant=m)
        expected = [reference_ndcg(slates[c].tolist(), utility[c].tolist(), k, m) for c in range(n)]
        np.testing.assert_allclose(got, expected, rtol=1e-12)


# --- diversity, novelty, coverage, Gini -------------------------------------------------------


def test_diversity_identical_and_orthogonal() -> None:
    topics = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    values = intra_list_diversity(as_rows([0, 1, -1], [0, 2, 3], [0, 0, 1]), topics)
    # products 0 and 1 point the same way: cos = 1 -> 0; 0, 2, 3 are orthogonal -> 1
    np.testing.assert_allclose(values, [0.0, 1.0, 0.0], atol=1e-12)


def test_diversity_hand_computed_and_short_slates() -> None:
    # cos(0,1) = 1/sqrt(2), cos(0,2) = 0, cos(1,2) = 1/sqrt(2)
    # mean = (2/sqrt(2)) / 3 -> diversity = 1 - sqrt(2)/3
    topics = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    values = intra_list_diversity(as_rows([0, 1, 2], [1, -1, -1], [-1, -1, -1]), topics)
    assert values[0] == pytest.approx(1 - math.sqrt(2) / 3)
    assert np.isnan(values[1]) and np.isnan(values[2])


def test_novelty() -> None:
    # popularity counts [4, 2, 1, 1, 0] -> p = [1/2, 1/4, 1/8, 1/8, 0]
    popularity = np.array([4.0, 2.0, 1.0, 1.0, 0.0])
    values = novelty(as_rows([0, 1, 2], [3, -1, -1], [-1, -1, -1], [4, 0, -1]), popularity)
    assert values[0] == pytest.approx((1 + 2 + 3) / 3)  # -log2 of 1/2, 1/4, 1/8
    assert values[1] == pytest.approx(3.0)
    assert np.isnan(values[2])
    # zero popularity is clipped to min_popularity = 1e-6
    assert values[3] == pytest.approx((-math.log2(1e-6) + 1) / 2)


def test_coverage() -> None:
    recommended = as_rows([0, 1, -1], [1, 2, -1])
    assert catalog_coverage(recommended, 6) == pytest.approx(3 / 6)
    assert catalog_coverage(as_rows([-1, -1]), 4) == 0.0
    assert catalog_coverage(as_rows([0, 1], [2, 3]), 4) == 1.0


def test_gini() -> None:
    # every product shown twice -> 0
    assert exposure_gini(as_rows([0, 1, 2, 3], [3, 2, 1, 0]), 4) == pytest.approx(0.0)
    # all exposure on one product of P = 5 -> (P - 1) / P = 0.8
    assert exposure_gini(as_rows([2, -1], [2, 2]), 5) == pytest.approx(4 / 5)
    # counts [0, 1, 3], sorted: sum_i (2i - 4) c_(i) = -2*0 + 0*1 + 2*3 = 6; / (3 * 4) = 0.5
    assert exposure_gini(as_rows([2, 2, 2, 1]), 3) == pytest.approx(0.5)
    assert math.isnan(exposure_gini(as_rows([-1]), 3))


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ndcg_at_k(np.array([0, 1]), mask(3, 0), k=2), "2-D"),
        (lambda: ndcg_at_k(as_rows([0, 1], [1, 2]), mask(3, 0), k=2), "rows"),
        (lambda: ndcg_at_k(as_rows([0, 3]), mask(3, 0), k=2), r"\[0, 3\)"),
        (lambda: ndcg_at_k(as_rows([0, -2]), mask(3, 0), k=2), "padding"),
        (lambda: ndcg_at_k(np.array([[0.0, 1.0]]), mask(3, 0), k=2), "integer"),
        (lambda: ndcg_at_k(as_rows([0, 0]), mask(3, 0), k=2), "repeats"),
        (lambda: ndcg_at_k(as_rows([0, 1]), mask(3, 0), k=0), "positive integer"),
        (lambda: ndcg_at_k(as_rows([0, 1]), mask(3, 0), k=2, gain="exp"), "gain"),  # type: ignore[arg-type]
        (lambda: ndcg_at_k(as_rows([0, 1]), mask(3, 0), k=2, n_relevant=1), "boolean"),
        (lambda: ndcg_at_k(as_rows([0, 1]), np.zeros((1, 3)), k=2, n_relevant=4), "exceeds"),
        (lambda: ndcg_at_k(as_rows([0, 1]), np.full((1, 3), np.nan), k=2), "finite"),
        (lambda: ndcg_at_k(as_rows([0, 1]), -np.ones((1, 3)), k=2, gain="graded"), "negative"),
        (lambda: hit_rate_at_k(as_rows([0]), np.zeros(3), k=1), "2-D"),
        (lambda: intra_list_diversity(as_rows([0, 1]), np.zeros(3)), "2-D"),
        (lambda: intra_list_diversity(as_rows([0, 1]), np.zeros((2, 2))), "zero vectors"),
        (lambda: novelty(as_rows([0]), np.ones((2, 2))), "1-D"),
        (lambda: novelty(as_rows([0]), np.array([1.0, -1.0])), "non-negative"),
        (lambda: novelty(as_rows([0]), np.zeros(2)), "positive sum"),
        (lambda: catalog_coverage(as_rows([0, 5]), 3), r"\[0, 3\)"),
        (lambda: exposure_gini(as_rows([0]), 0), "positive integer"),
    ],
)
def test_shape_and_value_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
