"""Customer feature values on small hand-computed cases: time rules, windows, missing values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tenure.features.customer_features import (
    CUSTOMER_ACTIVITY_FEATURES,
    CUSTOMER_COUNT_FEATURES,
    CUSTOMER_FEATURE_COLUMNS,
    compute_customer_feature_snapshots,
    compute_customer_features,
)

T = pd.Timestamp("2026-04-01", tz="UTC")


def one(frame: pd.DataFrame, customer_id: str) -> pd.Series:
    rows = frame.loc[frame["customer_id"] == customer_id]
    assert len(rows) == 1, f"expected one row for {customer_id}, got {len(rows)}"
    return rows.iloc[0]


def test_columns_and_dtypes_follow_the_constants(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    frame = compute_customer_features(make_events([]), customers, items, T)
    assert list(frame.columns) == ["customer_id", *CUSTOMER_FEATURE_COLUMNS]
    for name in CUSTOMER_ACTIVITY_FEATURES:
        expected = np.int64 if name in CUSTOMER_COUNT_FEATURES else np.float64
        assert frame[name].dtype == expected, name
    assert frame["consent_personalization"].dtype == np.int64
    for name in ("plan", "region", "acquisition_channel"):
        assert frame[name].dtype == object


def test_customer_without_events_gets_zeros_nans_and_profile(make_customers, make_events, items):
    customers = make_customers([
        {"customer_id": "quiet", "signup_at": "2026-03-02", "consent_personalization": False,
         "plan": "annual", "region": None},
    ])
    row = one(compute_customer_features(make_events([]), customers, items, T), "quiet")
    for name in CUSTOMER_COUNT_FEATURES:
        assert row[name] == 0, name
    for name in ("revenue_7d", "revenue_30d", "revenue_90d"):
        assert row[name] == 0.0
    for name in ("purchase_trend_30d", "revenue_trend_30d", "session_trend_30d"):
        assert row[name] == 0.0
    for name in ("days_since_last_purchase", "days_since_last_session", "days_since_last_activity",
                 "return_rate_90d", "avg_basket_90d", "resolution_hours_30d", "resolution_hours_90d",
                 "last_nps", "last_csat"):
        assert math.isnan(row[name]), name
    assert row["tenure_days"] == 30.0
    assert row["consent_personalization"] == 0
    assert row["plan"] == "annual"
    assert row["region"] == "unknown"
    assert row["acquisition_channel"] == "unknown"


def test_customer_with_only_returns(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "r"}])
    events = make_events([
        {"customer_id": "r", "event_at": "2026-03-20", "event_type": "return", "item_id": "i1"},
        {"customer_id": "r", "event_at": "2026-03-25", "event_type": "return", "item_id": "i2"},
    ])
    row = one(compute_customer_features(events, customers, items, T), "r")
    assert row["returns_90d"] == 2
    assert row["purchases_90d"] == 0
    assert row["revenue_90d"] == 0.0
    assert math.isnan(row["return_rate_90d"])  # no purchases to relate the returns to
    assert math.isnan(row["avg_basket_90d"])
    assert math.isnan(row["days_since_last_purchase"])
    assert math.isnan(row["days_since_last_activity"])  # a return is not activity
    assert row["distinct_categories_365d"] == 0


def test_event_exactly_at_the_cutoff_counts_and_later_ones_do_not(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    events = make_events([
        {"customer_id": "a", "event_at": T, "event_type": "purchase", "item_id": "i1", "amount": 12.0},
        {"customer_id": "a", "event_at": T + pd.Timedelta(nanoseconds=1), "event_type": "purchase",
         "item_id": "i2", "amount": 99.0},
        {"customer_id": "a", "event_at": T + pd.Timedelta(days=1), "event_type": "session"},
    ])
    row = one(compute_customer_features(events, customers, items, T), "a")
    assert row["purchases_7d"] == 1
    assert row["revenue_7d"] == 12.0
    assert row["days_since_last_purchase"] == 0.0
    assert row["distinct_categories_365d"] == 1
    assert math.isnan(row["days_since_last_session"])
    assert row["sessions_30d"] == 0


def test_windows_are_half_open_on_the_left(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    events = make_events([
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=7), "event_type": "purchase", "amount": 5.0},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=7) + pd.Timedelta(seconds=1),
         "event_type": "purchase", "amount": 7.0},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=30), "event_type": "purchase", "amount": 11.0},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=89), "event_type": "purchase", "amount": 13.0},
    ])
    row = one(compute_customer_features(events, customers, items, T), "a")
    assert (row["purchases_7d"], row["revenue_7d"]) == (1, 7.0)
    assert (row["purchases_30d"], row["revenue_30d"]) == (2, 12.0)
    assert (row["purchases_90d"], row["revenue_90d"]) == (4, 36.0)
    assert row["avg_basket_90d"] == pytest.approx(9.0)


def test_trends_compare_last_30_days_with_the_30_before(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "up"}, {"customer_id": "down"}, {"customer_id": "flat"}])
    recent, before = T - pd.Timedelta(days=10), T - pd.Timedelta(days=45)
    events = make_events([
        {"customer_id": "up", "event_at": recent, "event_type": "purchase", "amount": 30.0},
        {"customer_id": "up", "event_at": recent, "event_type": "purchase", "amount": 30.0},
        {"customer_id": "up", "event_at": recent, "event_type": "purchase", "amount": 30.0},
        {"customer_id": "up", "event_at": before, "event_type": "purchase", "amount": 30.0},
        {"customer_id": "down", "event_at": before, "event_type": "session"},
        {"customer_id": "flat", "event_at": recent, "event_type": "session"},
        {"customer_id": "flat", "event_at": before, "event_type": "session"},
    ])
    frame = compute_customer_features(events, customers, items, T)
    assert one(frame, "up")["purchase_trend_30d"] == pytest.approx(0.5)  # (3 - 1) / (3 + 1)
    assert one(frame, "up")["revenue_trend_30d"] == pytest.approx(0.5)
    assert one(frame, "down")["session_trend_30d"] == -1.0
    assert one(frame, "flat")["session_trend_30d"] == 0.0
    assert one(frame, "flat")["purchase_trend_30d"] == 0.0


def test_amount_missing_is_price_times_quantity_and_categories_are_distinct(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    day = T - pd.Timedelta(days=3)
    events = make_events([
        {"customer_id": "a", "event_at": day, "event_type": "purchase", "item_id": "i2", "quantity": 2},
        {"customer_id": "a", "event_at": day, "event_type": "purchase", "item_id": "i1"},
        {"customer_id": "a", "event_at": day, "event_type": "purchase", "item_id": "i1", "amount": 8.0},
        {"customer_id": "a", "event_at": day, "event_type": "purchase", "item_id": "i3", "amount": 4.0},
        {"customer_id": "a", "event_at": day, "event_type": "return", "item_id": "i1"},
    ])
    row = one(compute_customer_features(events, customers, items, T), "a")
    assert row["revenue_7d"] == pytest.approx(50.0 + 10.0 + 8.0 + 4.0)
    assert row["distinct_categories_365d"] == 2  # books, games; i3 has no category
    assert row["return_rate_90d"] == pytest.approx(0.25)


def test_service_features_and_last_survey_answers(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    events = make_events([
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=60), "event_type": "support_ticket",
         "resolution_hours": 10.0},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=5), "event_type": "support_ticket",
         "resolution_hours": 2.0},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=4), "event_type": "support_ticket"},  # open
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=20), "event_type": "survey", "nps": 9, "csat": 5},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=2), "event_type": "survey", "nps": 3},
        # two answers at the same instant: the higher one wins, whatever the row order
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=1), "event_type": "survey", "csat": 4},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=1), "event_type": "survey", "csat": 2},
        {"customer_id": "a", "event_at": T + pd.Timedelta(days=1), "event_type": "survey", "nps": 0},
    ])
    row = one(compute_customer_features(events, customers, items, T), "a")
    assert row["tickets_30d"] == 2
    assert row["tickets_90d"] == 3
    assert row["resolution_hours_30d"] == pytest.approx(2.0)
    assert row["resolution_hours_90d"] == pytest.approx(6.0)
    assert row["last_nps"] == 3.0
    assert row["last_csat"] == 4.0
    reversed_rows = compute_customer_features(events.iloc[::-1], customers, items, T)
    pd.testing.assert_frame_equal(reversed_rows, compute_customer_features(events, customers, items, T))


def test_recency_and_engagement(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    events = make_events([
        {"customer_id": "a", "event_at": T - pd.Timedelta(hours=36), "event_type": "session"},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=3), "event_type": "view", "item_id": "i1"},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=40), "event_type": "view", "item_id": "i1"},
        {"customer_id": "a", "event_at": T - pd.Timedelta(hours=12), "event_type": "add_to_cart", "item_id": "i1"},
        {"customer_id": "a", "event_at": T - pd.Timedelta(days=400), "event_type": "purchase", "amount": 1.0},
    ])
    row = one(compute_customer_features(events, customers, items, T), "a")
    assert row["days_since_last_session"] == pytest.approx(1.5)
    assert row["days_since_last_activity"] == pytest.approx(0.5)
    assert row["views_30d"] == 1
    assert row["add_to_carts_30d"] == 1
    assert row["sessions_30d"] == 1
    assert math.isnan(row["days_since_last_purchase"])  # older than the 365-day look-back


def test_only_customers_known_at_the_cutoff_and_only_their_events(make_customers, make_events, items):
    customers = make_customers([
        {"customer_id": "old", "signup_at": "2026-01-01"},
        {"customer_id": "new", "signup_at": T + pd.Timedelta(seconds=1)},
        {"customer_id": "edge", "signup_at": T},
    ])
    events = make_events([
        {"customer_id": "stranger", "event_at": T - pd.Timedelta(days=1), "event_type": "purchase", "amount": 5.0},
    ])
    frame = compute_customer_features(events, customers, items, T)
    assert list(frame["customer_id"]) == ["edge", "old"]
    assert one(frame, "edge")["tenure_days"] == 0.0
    assert frame["purchases_7d"].sum() == 0


def test_naive_times_are_utc_and_bad_inputs_say_what_to_fix(make_customers, make_events, items):
    customers = make_customers([{"customer_id": "a"}])
    events = make_events([{"customer_id": "a", "event_at": T, "event_type": "session"}])
    naive = compute_customer_features(events, customers, items, "2026-04-01")
    aware = compute_customer_features(events, customers, items, T)
    pd.testing.assert_frame_equal(naive, aware)
    with pytest.raises(ValueError, match="as_of must be a time"):
        compute_customer_features(events, customers, items, "next tuesday")
    with pytest.raises(ValueError, match="events lacks the column"):
        compute_customer_features(events.drop(columns=["event_type"]), customers, items, T)
    with pytest.raises(ValueError, match="customers lacks the column"):
        compute_customer_features(events, customers.drop(columns=["signup_at"]), items, T)


def test_snapshots_equal_separate_computations(small_shop):
    customers, items, events = small_shop
    times = [pd.Timestamp("2026-03-01", tz="UTC"), pd.Timestamp("2026-04-15 12:00", tz="UTC")]
    snapshots = compute_customer_feature_snapshots(events, customers, items, times)
    for t in times:
        expected = compute_customer_features(events, customers, items, t)
        got = snapshots.loc[snapshots["event_timestamp"] == t].drop(columns="event_timestamp")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)
