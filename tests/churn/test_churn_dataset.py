"""Churn labels, time splits and the point-in-time guard, on hand-built and simulated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.training.churn_dataset import (
    check_point_in_time,
    label_churn,
    matured_cutoffs,
    split_by_time,
)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["stays", "leaves", "cancels", "gone", "new", "future"],
        "signup_at": [utc("2026-01-01")] * 4 + [utc("2026-03-25"), utc("2026-05-01")],
    }
)
CUT = utc("2026-04-01")


def events(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "event_at", "event_type"])
    frame["event_at"] = pd.to_datetime(frame["event_at"], utc=True)
    return frame


EVENTS = events(
    [
        ("stays", "2026-03-20", "purchase"), ("stays", "2026-04-20", "session"),
        ("leaves", "2026-03-30", "purchase"),
        ("cancels", "2026-03-31", "session"), ("cancels", "2026-04-05", "subscription_cancel"),
        ("cancels", "2026-04-10", "session"),
        ("gone", "2026-01-10", "purchase"),  # inactive for more than the horizon before the cut-off
        ("new", "2026-05-02", "view"),  # just after the window
    ]
)


def test_labels_follow_the_definition():
    labels = label_churn(EVENTS, CUSTOMERS, [CUT], 30, ["purchase", "session", "view"]).set_index("customer_id")
    assert set(labels.index) == {"stays", "leaves", "cancels", "new"}  # gone and future are not alive
    assert labels.loc["stays", "label"] == 0
    assert labels.loc["leaves", "label"] == 1
    assert labels.loc["cancels", "label"] == 1  # explicit cancellation wins over later activity
    assert labels.loc["new", "label"] == 1  # signed up recently, no activity in the window
    assert (labels["event_timestamp"] == CUT).all()


def test_activity_exactly_at_window_end_counts_and_after_does_not():
    rows = events([("stays", "2026-03-31", "purchase"), ("stays", "2026-05-01", "purchase")])
    at_end = label_churn(rows, CUSTOMERS.iloc[:1], [CUT], 30, ["purchase"])
    assert at_end["label"].tolist() == [0]  # 2026-05-01 == cut-off + 30 days: inside (T, T + H]
    later = label_churn(rows, CUSTOMERS.iloc[:1], [CUT - pd.Timedelta(days=1)], 30, ["purchase"])
    assert later["label"].tolist() == [1]


def test_only_matured_cutoffs_are_used():
    candidates = [utc("2026-03-01"), utc("2026-04-01"), utc("2026-04-15")]
    assert matured_cutoffs(candidates, utc("2026-05-01"), 30) == [utc("2026-03-01"), utc("2026-04-01")]
    with pytest.raises(ValueError, match="at least 1 day"):
        matured_cutoffs(candidates, utc("2026-05-01"), 0)


def _frame(n_cutoffs: int, every: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    times = [utc("2026-01-05") + pd.Timedelta(days=every * i) for i in range(n_cutoffs)]
    return pd.DataFrame(
        {
            "customer_id": np.tile([f"c{i}" for i in range(40)], n_cutoffs),
            "event_timestamp": np.repeat(times, 40),
            "label": rng.integers(0, 2, 40 * n_cutoffs),
        }
    )


def test_time_split_is_ordered_with_an_embargo():
    split = split_by_time(_frame(20), validation_cutoffs=2, test_cutoffs=1, horizon_days=30)
    horizon = pd.Timedelta(days=30)
    cut = split.cutoffs()
    assert max(cut["train"]) + horizon <= min(cut["valid"])
    assert max(cut["valid"]) + horizon <= min(cut["test"])
    assert len(cut["valid"]) == 2 and len(cut["test"]) == 1
    assert cut["test"] == [max(_frame(20)["event_timestamp"])]


def test_too_short_history_and_single_class_are_clear_errors():
    with pytest.raises(ValueError, match="need at least 4 matured cut-offs"):
        split_by_time(_frame(3), 2, 1, 30)
    with pytest.raises(ValueError, match="do not leave room"):
        split_by_time(_frame(8), 2, 1, 30)
    frame = _frame(20)
    frame["label"] = 0
    with pytest.raises(ValueError, match="single class"):
        split_by_time(frame, 2, 1, 30)


@pytest.mark.slow
def test_training_frame_is_point_in_time_correct_and_a_leak_is_caught(churn_workspace):
    from tenure.features.tables import read_customers, read_events, read_items
    from tenure.training.churn_dataset import build_churn_training_set

    frame = build_churn_training_set(churn_workspace, verify_sample=0)
    events_, customers, items = read_events(churn_workspace), read_customers(churn_workspace), read_items(churn_workspace)
    check_point_in_time(frame, events_, customers, items, sample=400)

    # A leaky feature: purchases counted in the 30 days *after* the cut-off.
    leaky = frame.copy()
    purchases = events_[events_["event_type"] == "purchase"]
    for cutoff in leaky["event_timestamp"].unique():
        window = purchases[(purchases["event_at"] > cutoff) & (purchases["event_at"] <= cutoff + pd.Timedelta(days=30))]
        counts = window.groupby("customer_id").size()
        rows = leaky["event_timestamp"] == cutoff
        leaky.loc[rows, "purchases_30d"] = leaky.loc[rows, "customer_id"].map(counts).fillna(0).to_numpy()
    with pytest.raises(ValueError, match="purchases_30d.*leaks"):
        check_point_in_time(leaky, events_, customers, items, sample=400)
