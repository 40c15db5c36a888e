"""Item features: catalogue attributes and popularity windows."""

from __future__ import annotations

import math

import pandas as pd

from tenure.features.item_features import (
    ITEM_FEATURE_COLUMNS,
    compute_item_feature_snapshots,
    compute_item_features,
)

T = pd.Timestamp("2026-04-01", tz="UTC")


def test_popularity_counts_windows_and_distinct_buyers(make_events, items):
    items = pd.concat([items, pd.DataFrame({"item_id": ["i4"], "category": ["toys"], "price": [float("nan")], "available": [None]})],
                      ignore_index=True)
    events = make_events([
        {"customer_id": "a", "event_at": T, "event_type": "purchase", "item_id": "i1"},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=2), "event_type": "purchase", "item_id": "i1"},
        {"customer_id": "b", "event_at": T - pd.Timedelta(days=10), "event_type": "purchase", "item_id": "i1"},
        {"customer_id": "b", "event_at": T - pd.Timedelta(days=31), "event_type": "purchase", "item_id": "i1"},
        {"customer_id": "b", "event_at": T + pd.Timedelta(days=1), "event_type": "purchase", "item_id": "i1"},
        {"customer_id": "c", "event_at": T - pd.Timedelta(days=1), "event_type": "view", "item_id": "i2"},
        {"customer_id": "c", "event_at": T - pd.Timedelta(days=8), "event_type": "view", "item_id": "i2"},
        {"customer_id": "c", "event_at": T - pd.Timedelta(days=1), "event_type": "view", "item_id": "nope"},
    ])
    frame = compute_item_features(events, items, T).set_index("item_id")
    assert list(frame.columns) == list(ITEM_FEATURE_COLUMNS)
    i1 = frame.loc["i1"]
    assert (i1["item_purchases_7d"], i1["item_purchases_30d"], i1["item_buyers_30d"]) == (2, 3, 2)
    i2 = frame.loc["i2"]
    assert (i2["item_views_7d"], i2["item_views_30d"], i2["item_purchases_30d"]) == (1, 2, 0)
    assert frame.loc["i3", "category"] == "unknown"
    assert frame.loc["i3", "available"] == 0 and frame.loc["i1", "available"] == 1
    assert math.isnan(frame.loc["i4", "price"])
    assert frame.loc["i4", "available"] == 1  # no availability given: available


def test_item_snapshots_equal_separate_computations(small_shop):
    _, items, events = small_shop
    times = [pd.Timestamp("2026-02-01", tz="UTC"), pd.Timestamp("2026-04-01", tz="UTC")]
    snapshots = compute_item_feature_snapshots(events, items, times)
    for t in times:
        got = snapshots.loc[snapshots["event_timestamp"] == t].drop(columns="event_timestamp")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), compute_item_features(events, items, t))
