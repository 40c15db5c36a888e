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
MAX_P_VALUE = 1e-3
"""An event-level shift alarms only when it is also this unlikely under "nothing changed" (KS test for
amounts, Poisson for counts): a small shop's weekly sample is noisy, so the distance alone would
alarm on noise (a 1,000-customer shop's quiet week reached 0.19 on amounts)."""


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
    events = events[["customer_id", "event_at", "event_type", "amount"]]
    ns = events["event_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    needed = (ns > (base_start - 28 * _DAY).value) & (ns <= end.value)
    if not needed.all():
        events, ns = events[needed], ns[needed]
    purchases = events[(events["event_type"] == "purchase").to_numpy()]
    p_ns = purchases["event_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    cur = purchases[(p_ns > cur_start.value) & (p_ns <= end.value)]
    base = purchases[(p_ns > base_start.value) & (p_ns <= cur_start.value)]
    out = []
    amount = _amount_shift(base, cur, settings.event_amount_threshold)
    if amount is not None:
        out.append(amount)
    times = events["event_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    order = np.argsort(times, kind="stable")
    times = times[order]
    codes = pd.factorize(events["customer_id"])[0][order]
    types = events["event_type"].to_numpy()[order]
    active_cache: dict[int, int] = {}
    for etype in ("session", "purchase"):
        shift = _activity_shift(times, codes, types == etype, etype, base_start, cur_start, end, window_days,
                                settings.activity_change_threshold, active_cache)
        if shift is not None:
            out.append(shift)
    return out


def _amount_shift(base: pd.DataFrame, cur: pd.DataFrame, threshold: float, min_rows: int = 100) -> EventShift | None:
    from scipy.stats import wasserstein_distance

    b = base["amount"].dropna().to_numpy(dtype=float)  # purchases only (event_drift selects them)
    c = cur["amount"].dropna().to_numpy(dtype=float)
    if len(b) < min_rows or len(c) < min_rows:
        return None
    from scipy.stats import ks_2samp

    ratio = float(np.median(c) / np.median(b)) if np.median(b) > 0 else float("nan")
    b, c = np.log1p(np.maximum(b, 0)), np.log1p(np.maximum(c, 0))  # amounts are heavy-tailed; prices scale
    if np.std(b) == 0:
        return None
    score = float(wasserstein_distance(b, c) / np.std(b))
    p_value = float(ks_2samp(b, c).pvalue)
    return EventShift("amount", "events.amount", score, threshold, score > threshold and p_value < MAX_P_VALUE,
                      f"purchase amounts moved: wasserstein {score:.3f} vs threshold {threshold} "
                      f"(median x{ratio:.2f} of the weeks before; KS p={p_value:.1g})")


def _activity_shift(times: np.ndarray, codes: np.ndarray, of_type: np.ndarray, etype: str, base_start: pd.Timestamp,
                    cur_start: pd.Timestamp, end: pd.Timestamp, window_days: int, threshold: float,
                    active_cache: dict[int, int], min_events: int = 100) -> EventShift | None:
    """Events of ``etype`` per day per customer active in the 28 days before each period.

    ``times``: int64 nanoseconds, sorted; ``codes``: customer codes and ``of_type``: whether each
    event is an ``etype``, in the same order. Numpy passes over the arrays (3M events in about a
    second); the active-customer counts are shared between event types through ``active_cache``.
    """
    day = 86_400 * 10**9
    n_codes = int(codes.max()) + 1 if len(codes) else 0

    def span(lo: int, hi: int) -> slice:
        """Rows with lo < t <= hi (times sorted)."""
        return slice(int(np.searchsorted(times, lo, side="right")), int(np.searchsorted(times, hi, side="right")))

    def rate(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[float, int]:
        lo_ns, hi_ns = lo.value, hi.value
        if lo_ns not in active_cache:
            seen = np.bincount(codes[span(lo_ns - 28 * day, lo_ns)], minlength=n_codes)
            active_cache[lo_ns] = int(np.count_nonzero(seen))
        active = active_cache[lo_ns]
        n = int(of_type[span(lo_ns, hi_ns)].sum())
        days = (hi_ns - lo_ns) / day
        return (n / days / active if active else float("nan")), n

    current, n_cur = rate(cur_start, end)
    active_now = active_cache[cur_start.value]
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
    # Poisson: the count expected at the earlier rate for this window's active customers
    from scipy.stats import poisson

    expected = before * (end - cur_start) / _DAY * active_now
    p_value = float(2 * min(poisson.cdf(n_cur, expected), poisson.sf(n_cur - 1, expected))) if expected > 0 else 1.0
    return EventShift(f"activity:{etype}", f"events.{etype}", float(abs(change)), threshold,
                      bool(abs(change) > threshold and p_value < MAX_P_VALUE),
                      f"{etype}s per active customer per day {change:+.0%} against the weeks before "
                      f"({current:.4f} vs {before:.4f}; threshold ±{threshold:.0%}; Poisson p={min(p_value, 1.0):.1g})")
