"""Churn labels from events: who was alive at a cut-off, and who left within the horizon after it.

Used by training (labels for every cut-off) and by monitoring (realised performance once
a window's labels have matured), so both read churn the same way.

Definitions (all times UTC, horizon H days):

- A customer is *alive* at cut-off T when they signed up at or before T, have no
  ``subscription_cancel`` at or before T, and either signed up within (T - H, T] or had
  qualifying activity in (T - H, T]. Customers not alive at T are not scored at T.
- The label at T is 1 (churned) when the customer has no qualifying activity in
  (T, T + H] or cancels explicitly in (T, T + H]; else 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

LABEL_COLUMN = "label"
CANCEL_EVENT = "subscription_cancel"


def matured_cutoffs(candidates: Sequence[pd.Timestamp], data_end: pd.Timestamp, horizon_days: int) -> list[pd.Timestamp]:
    """Cut-offs among ``candidates`` whose label window (T, T + H] ends at or before ``data_end``."""
    if horizon_days < 1:
        raise ValueError(f"churn horizon must be at least 1 day, got {horizon_days}")
    horizon = pd.Timedelta(days=horizon_days)
    return sorted({pd.Timestamp(t) for t in candidates if pd.Timestamp(t) + horizon <= data_end})


def label_churn(
    events: pd.DataFrame,
    customers: pd.DataFrame,
    cutoffs: Sequence[pd.Timestamp],
    horizon_days: int,
    qualifying_event_types: Sequence[str],
) -> pd.DataFrame:
    """Churn labels for every customer alive at each cut-off.

    Parameters
    ----------
    events:
        Canonical events (at least ``customer_id``, ``event_at``, ``event_type``).
    customers:
        Canonical customers (``customer_id``, ``signup_at``).
    cutoffs:
        Cut-off times (tz-aware UTC).
    horizon_days:
        Length of the label window, in days.
    qualifying_event_types:
        Event types that count as activity.

    Returns
    -------
    DataFrame, one row per (alive customer, cut-off): ``customer_id``, ``event_timestamp``
    (the cut-off) and ``label`` (int 0/1).
    """
    if horizon_days < 1:
        raise ValueError(f"churn horizon must be at least 1 day, got {horizon_days}")
    if not qualifying_event_types:
        raise ValueError("at least one qualifying event type is needed to define activity")
    for column in ("customer_id", "event_at", "event_type"):
        if column not in events.columns:
            raise ValueError(f"events lack the column {column!r}")
    horizon = np.timedelta64(horizon_days, "D").astype("timedelta64[ns]").astype(np.int64)

    ids = pd.Index(customers["customer_id"].astype(str).unique())
    signup = pd.to_datetime(customers.drop_duplicates("customer_id").set_index("customer_id")["signup_at"], utc=True)
    signup_ns = signup.reindex(ids).to_numpy(dtype="datetime64[ns]").astype(np.int64)

    codes = ids.get_indexer(events["customer_id"].astype(str))
    known = codes >= 0
    times = events["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    is_active = events["event_type"].isin(list(qualifying_event_types)).to_numpy()
    is_cancel = (events["event_type"] == CANCEL_EVENT).to_numpy()

    act_codes, act_times = codes[known & is_active], times[known & is_active]
    order = np.lexsort((act_times, act_codes))
    act_codes, act_times = act_codes[order], act_times[order]
    can_codes, can_times = codes[known & is_cancel], times[known & is_cancel]
    first_cancel = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_cancel, can_codes, can_times)

    # Per customer, activity times are a sorted run in act_times: [start[c], start[c+1]).
    starts = np.searchsorted(act_codes, np.arange(len(ids) + 1))
    frames = []
    for cutoff in cutoffs:
        t = pd.Timestamp(cutoff)
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        t_ns = t.value
        # per customer: how much activity up to t - H, t and t + H
        upto_t = _count_upto(act_times, starts, t_ns)
        upto_before = _count_upto(act_times, starts, t_ns - horizon)
        upto_after = _count_upto(act_times, starts, t_ns + horizon)
        active_before = (upto_t - upto_before) > 0
        recent_signup = (signup_ns <= t_ns) & (signup_ns > t_ns - horizon)
        alive = (signup_ns <= t_ns) & (first_cancel > t_ns) & (active_before | recent_signup)
        active_after = (upto_after - upto_t) > 0
        cancels_in_window = (first_cancel > t_ns) & (first_cancel <= t_ns + horizon)
        label = (~active_after | cancels_in_window).astype(np.int64)
        frames.append(
            pd.DataFrame(
                {"customer_id": ids[alive], "event_timestamp": t, LABEL_COLUMN: label[alive]}
            )
        )
    if not frames:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str),
                             "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                             LABEL_COLUMN: pd.Series(dtype=np.int64)})
    labels = pd.concat(frames, ignore_index=True)
    labels["event_timestamp"] = pd.to_datetime(labels["event_timestamp"], utc=True)
    return labels


def _count_upto(times: np.ndarray, starts: np.ndarray, limit: int) -> np.ndarray:
    """Per customer, how many of its (sorted) activity times are <= ``limit``."""
    n = len(starts) - 1
    if len(times) == 0:
        return np.zeros(n, dtype=np.int64)
    # cumulative count of "time <= limit" over the sorted runs, read at each run's bounds
    below = (times <= limit).astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(below)])
    return cum[starts[1:]] - cum[starts[:-1]]
