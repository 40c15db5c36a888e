"""Which reference a drift report compares with: the champion's training sample, or the same season a year ago.

A shop with a season (fewer sessions in winter) drifts against any reference that does not share
the window's time of year: against the champion's training sample taken a few months earlier, and
even against a sample pooled over a whole year (it averages the seasons). The same weeks one
season earlier share the season, so only what changed since shows as drift.

``monitoring.reference``:

- ``latest`` — the champion's reference sample (its training window);
- ``same_season`` — the batch feature table's snapshots ``season_days`` +/- ``season_tolerance_days``
  before the current window, pooled (alive customers, scored by the champion for the score and
  risk-band tests); the champion's sample when the table does not reach back that far;
- ``auto`` (default) — ``same_season`` when the table reaches back a season, else ``latest``.

The CBPE estimate keeps the champion's labelled sample either way (it needs labels). What a
same-season reference cannot know: a change that happened within the last season and that the
champion was retrained on still drifts against last year (its alert says which reference it used).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pandas as pd

logger = logging.getLogger(__name__)

MODES = ("auto", "latest", "same_season")


def same_season_cutoffs(cutoffs: Sequence[pd.Timestamp], now: pd.Timestamp, season_days: int,
                        tolerance_days: int) -> list[pd.Timestamp]:
    """Cut-offs within ``tolerance_days`` of ``now - season_days`` (sorted)."""
    if season_days < 1 or tolerance_days < 0:
        raise ValueError(f"season_days must be >= 1 and tolerance_days >= 0, got {season_days}, {tolerance_days}")
    centre = pd.Timestamp(now) - pd.Timedelta(days=season_days)
    tol = pd.Timedelta(days=tolerance_days)
    return sorted(pd.Timestamp(c) for c in cutoffs if abs(pd.Timestamp(c) - centre) <= tol)


def choose_reference(mode: str, cutoffs: Sequence[pd.Timestamp], now: pd.Timestamp, season_days: int,
                     tolerance_days: int) -> tuple[str, list[pd.Timestamp], str]:
    """Which reference to use: ``(kind, cut-offs, why)`` with kind ``latest`` or ``same_season``.

    Parameters
    ----------
    mode: ``auto``, ``latest`` or ``same_season`` (``monitoring.reference``).
    cutoffs: the snapshot cut-offs available (the batch feature table's ``event_timestamp`` values).
    now: end of the current window (its cut-off in snapshot mode).
    season_days, tolerance_days: the season length and the slack either side.
    """
    if mode not in MODES:
        raise ValueError(f"monitoring.reference must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "latest":
        return "latest", [], "monitoring.reference: latest (the champion's training sample)"
    found = same_season_cutoffs(cutoffs, now, season_days, tolerance_days)
    if found:
        return "same_season", found, (f"same season: {len(found)} snapshot(s) {season_days} +/- {tolerance_days} days "
                                      f"before {pd.Timestamp(now):%Y-%m-%d} ({found[0]:%Y-%m-%d} .. {found[-1]:%Y-%m-%d})")
    why = (f"no snapshot {season_days} +/- {tolerance_days} days before {pd.Timestamp(now):%Y-%m-%d}: "
           "the champion's training sample")
    if mode == "same_season":
        logger.warning("monitoring.reference is same_season but %s", why)
    return "latest", [], why


def seasonal_reference(snapshots: pd.DataFrame, now: pd.Timestamp, mode: str, season_days: int, tolerance_days: int,
                       prepare: Callable[[pd.DataFrame], pd.DataFrame], columns: Sequence[str],
                       rows_per_cutoff: int = 5000, seed: int = 0) -> tuple[pd.DataFrame | None, str]:
    """The same-season reference frame from the batch feature table, or None (use the champion's sample).

    Parameters
    ----------
    snapshots: the batch feature table (``event_timestamp`` and features).
    now, mode, season_days, tolerance_days: as :func:`choose_reference`.
    prepare: rows of one or more cut-offs -> the population the model scores, with ``prediction``
        and ``risk_band`` (the runner: alive customers without withdrawn consent, scored by the champion).
    columns: the columns the reference keeps (the champion's features).
    rows_per_cutoff: at most this many rows per cut-off (a seeded sample), so pooling stays cheap.

    Returns
    -------
    (frame or None, why) — ``why`` says which reference and why, for the summary and the alert.
    """
    if "event_timestamp" not in snapshots.columns:
        raise ValueError("the batch feature table lacks event_timestamp")
    cutoffs = pd.to_datetime(snapshots["event_timestamp"].unique(), utc=True)
    kind, chosen, why = choose_reference(mode, list(cutoffs), pd.Timestamp(now), season_days, tolerance_days)
    if kind == "latest":
        return None, why
    stamps = pd.to_datetime(snapshots["event_timestamp"], utc=True)
    parts = []
    for cut in chosen:
        rows = snapshots[stamps == cut]
        if len(rows) > rows_per_cutoff:
            rows = rows.sample(n=rows_per_cutoff, random_state=seed)
        parts.append(rows)
    frame = prepare(pd.concat(parts, ignore_index=True))
    keep = [c for c in columns if c in frame.columns] + [c for c in ("prediction", "risk_band") if c in frame.columns]
    if len(frame) < 100:
        return None, f"{why}: only {len(frame)} rows, so the champion's training sample"
    return frame[keep].reset_index(drop=True), why
