"""Confidence matrix: weights, returns, consent, decay, weighting, id order, and the time holdout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.training.interactions import build_interactions, holdout_targets, time_split

T0 = pd.Timestamp("2026-03-01", tz="UTC")
WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "return": -5.0}


def _events(rows):
    return pd.DataFrame(
        [(f"e{n}", c, T0 + pd.Timedelta(days=d), t, i) for n, (c, i, t, d) in enumerate(rows)],
        columns=["event_id", "customer_id", "event_at", "event_type", "item_id"],
    )


def _customers(consent):
    return pd.DataFrame({"customer_id": list(consent), "consent_personalization": list(consent.values())})


def _dense(m, matrix):
    return pd.DataFrame(matrix.toarray(), index=m.customer_ids, columns=m.item_ids)


def test_weights_add_up_per_event_type():
    ev = _events([("a", "x", "view", 0), ("a", "x", "view", 1), ("a", "x", "add_to_cart", 1),
                  ("a", "y", "purchase", 2), ("b", "y", "view", 2), ("b", None, "session", 2)])
    m = build_interactions(ev, event_weights=WEIGHTS)
    ui = _dense(m, m.user_items)
    assert ui.loc["a", "x"] == 5.0  # 1 + 1 + 3
    assert ui.loc["a", "y"] == 5.0
    assert ui.loc["b", "y"] == 1.0 and ui.loc["b", "x"] == 0.0
    assert _dense(m, m.purchases).loc["a", "y"] == 1.0
    assert m.user_items.nnz == 3


def test_return_subtracts_and_clips_at_zero():
    ev = _events([("a", "x", "purchase", 0), ("a", "x", "return", 1), ("a", "x", "return", 2),
                  ("a", "y", "purchase", 0), ("a", "y", "view", 0), ("a", "y", "return", 1)])
    m = build_interactions(ev, event_weights=WEIGHTS)
    ui = _dense(m, m.user_items)
    assert ui.loc["a", "x"] == 0.0  # 5 - 10 clipped, then removed from the sparse matrix
    assert ui.loc["a", "y"] == 1.0  # 5 + 1 - 5
    assert m.user_items.nnz == 1
    assert _dense(m, m.purchases).loc["a", "y"] == 0.0  # bought once, returned once


def test_customers_without_consent_are_left_out():
    ev = _events([("yes", "x", "purchase", 0), ("no", "x", "purchase", 0), ("unknown", "y", "purchase", 0)])
    m = build_interactions(ev, _customers({"yes": True, "no": False}), event_weights=WEIGHTS)
    assert m.customer_ids.tolist() == ["yes"]


def test_missing_consent_column_is_an_error():
    ev = _events([("a", "x", "purchase", 0)])
    with pytest.raises(ValueError, match="consent_personalization"):
        build_interactions(ev, pd.DataFrame({"customer_id": ["a"]}), event_weights=WEIGHTS)


def test_time_decay_halves_weight_per_half_life():
    ev = _events([("a", "old", "purchase", 0), ("a", "new", "purchase", 10)])
    m = build_interactions(ev, event_weights=WEIGHTS, half_life_days=10)
    ui = _dense(m, m.user_items)
    assert ui.loc["a", "new"] == pytest.approx(5.0)
    assert ui.loc["a", "old"] == pytest.approx(2.5)


@pytest.mark.parametrize("weighting", ["bm25", "tfidf"])
def test_weighting_keeps_the_pattern(weighting):
    # 12 items, each customer on 3 of them: every idf is positive, so no entry vanishes
    ev = _events([(c, f"i{(n * 3 + j) % 12}", "purchase", j) for n, c in enumerate("abcd") for j in range(3)]
                 + [("a", "i0", "view", 5)])
    plain = build_interactions(ev, event_weights=WEIGHTS)
    weighted = build_interactions(ev, event_weights=WEIGHTS, weighting=weighting)
    assert (plain.user_items > 0).toarray().tolist() == (weighted.user_items > 0).toarray().tolist()
    assert not np.allclose(plain.user_items.toarray(), weighted.user_items.toarray())


def test_items_table_and_fixed_item_order():
    ev = _events([("a", "x", "purchase", 0)])
    items = pd.DataFrame({"item_id": ["z", "x", "w"], "category": "c"})
    assert build_interactions(ev, items=items, event_weights=WEIGHTS).item_ids.tolist() == ["w", "x", "z"]
    fixed = build_interactions(ev, event_weights=WEIGHTS, item_ids=["q", "x"])
    assert fixed.item_ids.tolist() == ["q", "x"] and fixed.user_items[0, 1] == 5.0


def test_bad_inputs_say_what_to_fix():
    ev = _events([("a", "x", "purchase", 0)])
    with pytest.raises(ValueError, match="positive weight"):
        build_interactions(ev, event_weights={"return": -1.0})
    with pytest.raises(ValueError, match="weighting"):
        build_interactions(ev, event_weights=WEIGHTS, weighting="log")
    with pytest.raises(ValueError, match="lacks columns"):
        build_interactions(ev.drop(columns=["item_id"]), event_weights=WEIGHTS)


def test_holdout_is_time_based_without_leakage(shop):
    customers, items, events = shop
    train_ev, test_ev, cutoff = time_split(events, holdout_days=14)
    assert train_ev["event_at"].max() < cutoff <= test_ev["event_at"].min()
    assert len(train_ev) + len(test_ev) == len(events)
    train = build_interactions(train_ev, customers, items, event_weights=WEIGHTS)
    targets = holdout_targets(test_ev, train)
    assert targets
    # No holdout-only interaction is in the training matrix.
    test_pairs = set(zip(test_ev["customer_id"], test_ev["item_id"]))
    train_pairs = set(zip(train_ev["customer_id"], train_ev["item_id"]))
    rows, cols = train.user_items.nonzero()
    matrix_pairs = set(zip(train.customer_ids[rows], train.item_ids[cols]))
    assert matrix_pairs <= train_pairs
    assert not (matrix_pairs & (test_pairs - train_pairs))


def test_holdout_longer_than_history_is_refused(shop):
    with pytest.raises(ValueError, match="holdout_days"):
        time_split(shop[2], holdout_days=1000)
