"""Which reference a drift report compares with (the champion's sample or the same season a year ago), confirmed by a recent one.

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

Confirmed by a recent reference (``monitoring.recent_reference_days``, default 28; 0 = off): a year
of customer-base ageing (tenure grows, old cohorts thin out) drifts against any year-old reference as
much as a season does. So a feature (and the churn score, and the risk bands) counts as drifted only
when it drifts against *both* the primary reference above and the batch feature table's snapshot
nearest ``recent_reference_days`` before the current window (within +/- ``RECENT_TOLERANCE_DAYS``):
slow change (season, ageing) moves little in four weeks, a sudden change shows against both. While
a drift episode is open the recent reference stays the one the episode opened with
(:func:`recent_cutoff`'s ``frozen``), so a change that persists keeps alarming instead of being
absorbed once the four weeks have passed. What it costs: a change that creeps in more slowly than
the recent reference's lag looks like ageing (the CBPE estimate, the event-level signals, the early
outcome and ``max_model_age_days`` still apply). :func:`confirm_drift` keeps what each reference
said, for the summary and the alert.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from tenure.monitoring.snapshots import Snapshots, as_snapshots

logger = logging.getLogger(__name__)

MODES = ("auto", "latest", "same_season")
RECENT_TOLERANCE_DAYS = 7
"""The recent reference is the snapshot nearest ``recent_reference_days`` before the window, at most this far off."""


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


def seasonal_reference(snapshots: pd.DataFrame | Snapshots, now: pd.Timestamp, mode: str, season_days: int, tolerance_days: int,
                       prepare: Callable[[pd.DataFrame], pd.DataFrame], columns: Sequence[str],
                       rows_per_cutoff: int = 5000, seed: int = 0) -> tuple[pd.DataFrame | None, str]:
    """The same-season reference frame from the batch feature table, or None (use the champion's sample).

    Parameters
    ----------
    snapshots: the batch feature table (``event_timestamp`` and features): a frame, or a
        :class:`~tenure.monitoring.snapshots.SnapshotTable` that reads only the chosen cut-offs' rows.
    now, mode, season_days, tolerance_days: as :func:`choose_reference`.
    prepare: rows of one or more cut-offs -> the population the model scores, with ``prediction``
        and ``risk_band`` (the runner: alive customers without withdrawn consent, scored by the champion).
    columns: the columns the reference keeps (the champion's features).
    rows_per_cutoff: at most this many rows per cut-off (a seeded sample), so pooling stays cheap.

    Returns
    -------
    (frame or None, why) — ``why`` says which reference and why, for the summary and the alert.
    """
    snapshots = as_snapshots(snapshots)
    kind, chosen, why = choose_reference(mode, snapshots.as_of_times(), pd.Timestamp(now), season_days, tolerance_days)
    if kind == "latest":
        return None, why
    frame = snapshot_frame(snapshots, chosen, prepare, columns, rows_per_cutoff, seed)
    if len(frame) < 100:
        return None, f"{why}: only {len(frame)} rows, so the champion's training sample"
    return frame, why


def snapshot_frame(snapshots: pd.DataFrame | Snapshots, chosen: Sequence[pd.Timestamp], prepare: Callable[[pd.DataFrame], pd.DataFrame],
                   columns: Sequence[str], rows_per_cutoff: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Rows of the ``chosen`` cut-offs (a seeded sample of at most ``rows_per_cutoff`` each), ``prepare``d,
    with the ``columns`` kept plus ``prediction`` and ``risk_band``."""
    found = as_snapshots(snapshots).rows(list(chosen))  # one read for every chosen cut-off
    stamps = pd.to_datetime(found["event_timestamp"], utc=True)
    parts = []
    for cut in chosen:
        rows = found[(stamps == cut).to_numpy()]
        if len(rows) > rows_per_cutoff:
            rows = rows.sample(n=rows_per_cutoff, random_state=seed)
        parts.append(rows)
    frame = prepare(pd.concat(parts, ignore_index=True))
    keep = [c for c in columns if c in frame.columns] + [c for c in ("prediction", "risk_band") if c in frame.columns]
    return frame[keep].reset_index(drop=True)


def recent_cutoff(cutoffs: Sequence[pd.Timestamp], now: pd.Timestamp, recent_days: int,
                  frozen: pd.Timestamp | None = None) -> pd.Timestamp | None:
    """The cut-off of the recent reference, or None (no rule: too little history, or ``recent_days`` 0).

    ``frozen`` (the cut-off an open drift episode started with) wins when it is still among the
    cut-offs and before ``now``; else the cut-off nearest ``now - recent_days`` within
    :data:`RECENT_TOLERANCE_DAYS` (ties: the older one, so the reference never reaches into a change
    that began inside the last ``recent_days - RECENT_TOLERANCE_DAYS`` days).
    """
    if recent_days < 0:
        raise ValueError(f"recent_reference_days must be >= 0, got {recent_days}")
    if recent_days == 0:
        return None
    now = pd.Timestamp(now)
    stamps = sorted({pd.Timestamp(c) for c in cutoffs if pd.Timestamp(c) < now})
    if frozen is not None and pd.Timestamp(frozen) in stamps:
        return pd.Timestamp(frozen)
    centre, tol = now - pd.Timedelta(days=recent_days), pd.Timedelta(days=RECENT_TOLERANCE_DAYS)
    near = [c for c in stamps if abs(c - centre) <= tol]
    return min(near, key=lambda c: (abs(c - centre), c)) if near else None


def recent_reference(snapshots: pd.DataFrame | Snapshots, now: pd.Timestamp, recent_days: int,
                     prepare: Callable[[pd.DataFrame], pd.DataFrame], columns: Sequence[str],
                     frozen: pd.Timestamp | None = None, rows_per_cutoff: int = 5000,
                     seed: int = 0) -> tuple[pd.DataFrame | None, str, pd.Timestamp | None]:
    """The recent reference frame from the batch feature table: ``(frame or None, why, cut-off)``.

    Parameters as :func:`seasonal_reference` and :func:`recent_cutoff`; None when the table has no
    snapshot near ``now - recent_days`` (the primary reference alone decides, and ``why`` says so).
    """
    snapshots = as_snapshots(snapshots)
    cut = recent_cutoff(snapshots.as_of_times(), pd.Timestamp(now), recent_days, frozen)
    if cut is None:
        why = ("monitoring.recent_reference_days is 0: the primary reference alone" if recent_days == 0 else
               f"no snapshot {recent_days} +/- {RECENT_TOLERANCE_DAYS} days before {pd.Timestamp(now):%Y-%m-%d}: "
               "the primary reference alone")
        return None, why, None
    frame = snapshot_frame(snapshots, [cut], prepare, columns, rows_per_cutoff, seed)
    held = " (held since the open drift episode began)" if frozen is not None and cut == pd.Timestamp(frozen) else ""
    why = f"recent: snapshot {cut:%Y-%m-%d}, {(pd.Timestamp(now) - cut).days} days before the window{held}"
    if len(frame) < 100:
        return None, f"{why}: only {len(frame)} rows, so the primary reference alone", None
    return frame, why, cut


def confirm_drift(primary, recent) -> tuple[Any, dict[str, Any]]:
    """Drift against both references: ``(summary, detail)``.

    ``primary`` and ``recent`` are :class:`~tenure.monitoring.drift.DriftSummary` of the same current
    window; ``recent`` None leaves ``primary`` as it is. The summary keeps the primary's scores and
    data quality; a feature, the churn score and the risk bands count as drifted only when drifted in
    both. ``detail`` says what each reference said: ``drifted_primary``, ``drifted_recent``,
    ``confirmed`` and ``set_aside`` (drifted against the primary only: slow change, not an alarm).
    """
    if recent is None:
        return primary, {"applied": False}
    against_recent = set(recent.drifted)
    features = [dataclasses.replace(f, drifted=f.drifted and f.column in against_recent) for f in primary.features]

    def both(a, b):
        if a is None:
            return None
        return dataclasses.replace(a, drifted=bool(a.drifted and b is not None and b.drifted))

    combined = dataclasses.replace(primary, features=features, prediction=both(primary.prediction, recent.prediction),
                                   bands=both(primary.bands, recent.bands))
    detail = {
        "applied": True,
        "drifted_primary": primary.drifted, "drifted_recent": recent.drifted,
        "confirmed": combined.drifted,
        "set_aside": [c for c in primary.drifted if c not in against_recent],
        "drift_share_primary": primary.drift_share, "drift_share_recent": recent.drift_share,
        "prediction_drifted_primary": bool(primary.prediction and primary.prediction.drifted),
        "prediction_drifted_recent": bool(recent.prediction and recent.prediction.drifted),
    }
    return combined, detail


def describe_confirmation(detail: dict[str, Any], primary_why: str, recent_why: str) -> str:
    """One line for the alert: which references, what drifted against each, what was set aside."""
    if not detail.get("applied"):
        return f"drift reference: {primary_why}; {recent_why}"
    aside = ", ".join(detail["set_aside"][:6]) or "none"
    return (f"drift reference: {primary_why}; confirmed against the {recent_why}: drifted against both "
            f"{', '.join(detail['confirmed'][:8]) or 'none'}; set aside as slow change (drifted against the first "
            f"only) {aside}")
