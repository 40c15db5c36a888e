"""World-change signals from the raw events: faster than features with 30-90-day look-backs.

Customer features aggregate 7 to 365 days, so a change shows in them only slowly (a week after a
price rise, ``revenue_30d`` holds three weeks of old prices). The events themselves change at once.
:func:`event_drift` compares the newest window of events with the weeks just before it:

- ``amount`` per purchase: normed Wasserstein distance of log(1 + amount) (Wasserstein / the
  baseline's standard deviation, as Evidently's ``wasserstein`` method; on the log scale a price
  factor is a shift and the heavy tail does not dominate), alarm above
  ``monitoring.event_amount_threshold``;
- activity per customer: sessions (and purchases) per day per customer active in the 28 days
  before, current vs the baseline weeks, alarm when it moves by more than
  ``monitoring.activity_change_threshold`` (relative).

These are *world changed* signals (drift alerts, routed like drift), not pipeline breaks: a batch
whose amounts are x100 never reaches the tables (features/quality.py quarantines it). The
baseline trails the window, so a slow season does not alarm while an abrupt change does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

_DAY = pd.Timedelta(days=1)


@dataclasses.dataclass
class EventShift:
    """One event-level signal: what, the score, its threshold, whether it alarms, in words."""

    signal: str
    column: str
    score: float
    threshold: float
    alarm: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def event_drift(events: pd.DataFrame, end: pd.Timestamp, window_days: int, baseline_days: int,
                settings) -> list[EventShift]:
    """Event-level shifts of the window ``(end - window_days, end]`` against the ``baseline_days`` before it.

    Parameters
    ----------
    events: canonical events covering at least ``window_days + baseline_days + 28`` days before
        ``end`` (``customer_id``, ``event_at``, ``event_type``, ``amount``).
    end: end of the current window (UTC).
    window_days, baseline_days: lengths in days.
    settings: the ``monitoring`` settings section (``event_amount_threshold``,
        ``activity_change_threshold``).

    Returns
    -------
    list of EventShift (one per signal that could be computed; alarms have ``alarm=True``).
    """
    if window_days < 1 or baseline_days < window_days:
        raise ValueError(f"need window_days >= 1 and baseline_days >= window_days, got {window_days}, {baseline_days}")
    end = pd.Timestamp(end)
    cur_start = end - window_days * _DAY
    base_start = cur_start - baseline_days * _DAY
    times = events["event_at"]
    cur = events[(times > cur_start) & (times <= end)]
    base = events[(times > base_start) & (times <= cur_start)]
    out = []
    amount = _amount_shift(base, cur, settings.event_amount_threshold)
    if amount is not None:
        out.append(amount)
    for etype in ("session", "purchase"):
        shift = _activity_shift(events, etype, base_start, cur_start, end, window_days,
                                settings.activity_change_threshold)
        if shift is not None:
            out.append(shift)
    return out


def _amount_shift(base: pd.DataFrame, cur: pd.DataFrame, threshold: float, min_rows: int = 100) -> EventShift | None:
    from scipy.stats import wasserstein_distance

    b = base.loc[base["event_type"] == "purchase", "amount"].dropna().to_numpy(dtype=float)
    c = cur.loc[cur["event_type"] == "purchase", "amount"].dropna().to_numpy(dtype=float)
    if len(b) < min_rows or len(c) < min_rows:
        return None
    ratio = float(np.median(c) / np.median(b)) if np.median(b) > 0 else float("nan")
    b, c = np.log1p(np.maximum(b, 0)), np.log1p(np.maximum(c, 0))  # amounts are heavy-tailed; prices scale
    if np.std(b) == 0:
        return None
    score = float(wasserstein_distance(b, c) / np.std(b))
    return EventShift("amount", "events.amount", score, threshold, score > threshold,
                      f"purchase amounts moved: wasserstein {score:.3f} vs threshold {threshold} "
                      f"(median x{ratio:.2f} of the weeks before)")


def _activity_shift(events: pd.DataFrame, etype: str, base_start: pd.Timestamp, cur_start: pd.Timestamp,
                    end: pd.Timestamp, window_days: int, threshold: float, min_events: int = 100) -> EventShift | None:
    """Events of ``etype`` per day per customer active in the 28 days before each period."""
    def rate(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[float, int]:
        t = events["event_at"]
        active = events.loc[(t > lo - 28 * _DAY) & (t <= lo), "customer_id"].nunique()
        n = int(((t > lo) & (t <= hi) & (events["event_type"] == etype)).sum())
        days = (hi - lo) / _DAY
        return (n / days / active if active else float("nan")), n

    current, n_cur = rate(cur_start, end)
    rates = []
    lo = base_start
    while lo + window_days * _DAY <= cur_start:
        r, _ = rate(lo, lo + window_days * _DAY)
        rates.append(r)
        lo += window_days * _DAY
    rates = [r for r in rates if np.isfinite(r)]
    if not rates or not np.isfinite(current) or n_cur < min_events:
        return None
    before = float(np.mean(rates))
    change = current / before - 1 if before > 0 else float("nan")
    return EventShift(f"activity:{etype}", f"events.{etype}", float(abs(change)), threshold,
                      bool(abs(change) > threshold),
                      f"{etype}s per active customer per day {change:+.0%} against the weeks before "
                      f"({current:.4f} vs {before:.4f}; threshold ±{threshold:.0%})")
