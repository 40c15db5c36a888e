"""Ranking metrics on hand-built cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tenure.training.recommender_evaluate import ranking_metrics


def test_known_answers():
    # customer 0: relevant {1, 3}; list [1, 2, 3] -> hits at ranks 1 and 3
    # customer 1: relevant {5}; list [4, 6, 7] -> no hit
    recs = {0: np.array([1, 2, 3]), 1: np.array([4, 6, 7])}
    targets = {0: np.array([1, 3]), 1: np.array([5])}
    m = ranking_metrics(recs, targets, k=3, n_items=10, popularity_pct=np.linspace(0.1, 1.0, 10))
    assert m["precision_at_k"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["precision_implicit_at_k"] == pytest.approx((2 / 2 + 0) / 2)
    assert m["recall_at_k"] == pytest.approx((1.0 + 0) / 2)
    dcg = 1 + 1 / np.log2(4)
    idcg = 1 + 1 / np.log2(3)
    assert m["ndcg_at_k"] == pytest.approx(dcg / idcg / 2)
    assert m["map_at_k"] == pytest.approx(((1 / 1 + 2 / 3) / 2) / 2)
    assert m["hit_rate_at_k"] == pytest.approx(0.5)
    assert m["coverage_at_k"] == pytest.approx(6 / 10)
    pct = np.linspace(0.1, 1.0, 10)
    assert m["popularity_percentile_at_k"] == pytest.approx(pct[[1, 2, 3, 4, 6, 7]].mean())


def test_perfect_ranking_scores_one_and_only_k_counts():
    recs = {0: np.array([2, 1, 9, 8])}
    m = ranking_metrics(recs, {0: np.array([1, 2])}, k=2, n_items=10)
    for key in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k"):
        assert m[key] == pytest.approx(1.0), key
    assert m["coverage_at_k"] == pytest.approx(0.2)


def test_customers_without_recommendations_count_as_misses():
    m = ranking_metrics({}, {0: np.array([1])}, k=5, n_items=3)
    assert m["recall_at_k"] == 0 and m["hit_rate_at_k"] == 0


def test_no_targets_is_an_error():
    with pytest.raises(ValueError, match="holdout"):
        ranking_metrics({}, {}, k=10, n_items=3)
