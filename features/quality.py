"""Data quality apart from drift: is an event batch *broken* (a pipeline fault), not the world changed?

:func:`check_events_batch` compares one ingestion batch with the stored events just before it
(the baseline) and returns a :class:`QualityReport` whose findings each name the column, the
break and the numbers:

=================  =====================================================================================
check              finding when
=================  =====================================================================================
``missing``        a column's missing share (per event type) rises by more than ``max_missing_increase``
``range``          more than ``max_out_of_range_share`` of a numeric column (per event type) lies outside
                   the baseline's 0.1-99.9th percentiles (the message gives the median ratio: x100 = units)
``category``       a category never seen before takes rows *and* a category the baseline had (>= 5 %)
                   vanished: a rename (a new category alone is a world change, left to drift monitoring)
``duplicates``     more than ``max_duplicate_share`` of events repeat another event's customer, time, type
                   and item under a new ``event_id`` (a re-sent batch)
``time_skew``      one source's (``channel``'s) newest event runs more than ``max_source_skew_hours`` ahead
                   of the other sources' newest (a clock or time-zone fault)
``contract``       more than ``max_reject_share`` of the rows were rejected by the data contract (types,
                   ranges, unknown ids)
=================  =====================================================================================

Thresholds are in ``settings.quality``. Pure functions over DataFrames; the quarantine that acts on a
report lives in :mod:`tenure.features.quarantine`. These are the same families of checks as
Evidently's data-quality tests (missing values, value range, new/missing categories, duplicates),
written in pandas because they run inside ``tenure ingest`` where Evidently's import (2-15 s) is
too heavy and per event type, which Evidently's column tests are not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

_NUMERIC = ("quantity", "amount", "nps", "csat", "resolution_hours", "rating")
_OPTIONAL = ("item_id", "channel", *_NUMERIC)
_CATEGORICAL = ("event_type", "channel")
_DUP_KEY = ("customer_id", "event_at", "event_type", "item_id")
_MIN_BASELINE_SHARE = 0.05


@dataclasses.dataclass(frozen=True)
class QualityFinding:
    """One pipeline break: which column, which check, where, and the numbers."""

    table: str
    column: str
    check: str
    segment: str | None
    observed: float
    limit: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class QualityReport:
    """The quality of one batch against its baseline."""

    table: str
    rows: int
    baseline_rows: int
    findings: list[QualityFinding] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def broken(self) -> bool:
        """True when any check found a pipeline break."""
        return bool(self.findings)

    def columns(self) -> list[str]:
        """``table.column`` of every finding, in order, once each."""
        return list(dict.fromkeys(f"{f.table}.{f.column}" for f in self.findings))

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "rows": self.rows, "baseline_rows": self.baseline_rows,
                "broken": self.broken, "findings": [f.as_dict() for f in self.findings], "notes": list(self.notes)}


def check_events_batch(
    batch: pd.DataFrame,
    baseline: pd.DataFrame | None,
    settings,
    rejected_rows: int = 0,
) -> QualityReport:
    """Check an event batch (canonical columns) against the stored events before it.

    Parameters
    ----------
    batch: the batch's valid events, one row per event.
    baseline: stored events before the batch (``settings.baseline_days`` of them), or None/empty
        for the first batch: then nothing is compared (the first load becomes the baseline; real
        data has its own duplicates and source spans) and a note says so.
    settings: the ``quality`` settings section.
    rejected_rows: rows of this batch the contract rejected (not in ``batch``).

    Returns
    -------
    QualityReport with one finding per break.
    """
    base = baseline if baseline is not None and len(baseline) else None
    report = QualityReport("events", len(batch), 0 if base is None else len(base))
    if base is None:
        report.notes.append("no stored events before the batch: it is the first and becomes the baseline "
                            "(nothing compared)")
        return report
    total = len(batch) + rejected_rows
    if total >= settings.min_rows and rejected_rows / total > settings.max_reject_share:
        share = rejected_rows / total
        report.findings.append(QualityFinding(
            "events", "*", "contract", None, share, settings.max_reject_share,
            f"{share:.1%} of the batch's rows were rejected by the data contract "
            f"(limit {settings.max_reject_share:.1%}); see the rejects file"))
    if batch.empty:
        return report
    report.findings.extend(_duplicates(batch, base, settings))
    report.findings.extend(_time_skew(batch, base, settings))
    cols = ["event_type", *(c for c in _OPTIONAL if c in batch.columns and c in base.columns)]
    segments = list(_segments(batch[cols], base[cols], settings.min_rows))  # once, only the checked columns
    report.findings.extend(_missing(segments, settings))
    report.findings.extend(_ranges(segments, settings))
    report.findings.extend(_categories(batch, base, settings))
    return report


def _segments(batch: pd.DataFrame, base: pd.DataFrame, min_rows: int):
    """(event type, batch rows, baseline rows) for event types with enough rows in both."""
    b_types = batch["event_type"].to_numpy()
    r_types = base["event_type"].to_numpy()
    for etype, n in batch["event_type"].value_counts().items():
        if n < min_rows:
            continue
        ref = base[r_types == etype]
        if len(ref) >= min_rows:
            yield str(etype), batch[b_types == etype], ref


def _missing(segments, settings) -> list[QualityFinding]:
    out = []
    for etype, cur, ref in segments:
        for col in _OPTIONAL:
            if col not in cur.columns or col not in ref.columns:
                continue
            before, now = float(ref[col].isna().mean()), float(cur[col].isna().mean())
            if now - before > settings.max_missing_increase:
                out.append(QualityFinding(
                    "events", col, "missing", etype, now, before + settings.max_missing_increase,
                    f"{col} missing in {now:.0%} of {etype} events (was {before:.0%}): the column arrives empty"))
    return out


def _ranges(segments, settings) -> list[QualityFinding]:
    out = []
    for etype, cur, ref in segments:
        for col in _NUMERIC:
            if col not in cur.columns:
                continue
            r = pd.to_numeric(ref[col], errors="coerce").dropna().to_numpy(dtype=float)
            c = pd.to_numeric(cur[col], errors="coerce").dropna().to_numpy(dtype=float)
            if len(r) < settings.min_rows or len(c) < settings.min_rows:
                continue
            lo, hi = np.quantile(r, [0.001, 0.999])
            share = float(((c < lo) | (c > hi)).mean())
            if share > settings.max_out_of_range_share:
                ratio = float(np.median(c) / np.median(r)) if np.median(r) > 0 else float("nan")
                out.append(QualityFinding(
                    "events", col, "range", etype, share, settings.max_out_of_range_share,
                    f"{col} of {etype} events: {share:.0%} outside the usual {lo:.4g}..{hi:.4g}, "
                    f"median x{ratio:.3g} of before (units?)"))
    return out


def _categories(batch: pd.DataFrame, base: pd.DataFrame, settings) -> list[QualityFinding]:
    out = []
    for col in _CATEGORICAL:
        if col not in batch.columns or col not in base.columns:
            continue
        cur = batch[col].dropna()
        ref = base[col].dropna()
        if len(cur) < settings.min_rows or len(ref) < settings.min_rows:
            continue
        before = ref.value_counts(normalize=True)
        now = cur.value_counts(normalize=True)
        before.index, now.index = before.index.astype(str), now.index.astype(str)
        new = now[~now.index.isin(before.index)]
        # a category the baseline had at >= 5 % that the batch should hold >= 5 times and holds 0
        gone = before[(before >= _MIN_BASELINE_SHARE) & (before * len(cur) >= 5) & ~before.index.isin(now.index)]
        if len(new) and len(gone):
            share = float(new.sum())
            out.append(QualityFinding(
                "events", col, "category", None, share, 0.0,
                f"{col}: {', '.join(repr(v) for v in new.index[:3])} new ({share:.0%} of rows) while "
                f"{', '.join(repr(v) for v in gone.index[:3])} ({float(gone.sum()):.0%} before) vanished: renamed category"))
    return out


def _duplicates(batch: pd.DataFrame, base: pd.DataFrame, settings) -> list[QualityFinding]:
    key = [c for c in _DUP_KEY if c in batch.columns]
    if len(batch) < settings.min_rows or not all(c in base for c in key):
        return []
    dup = float(_row_hashes(batch, key).duplicated().mean())
    before = float(_row_hashes(base, key).duplicated().mean())
    if dup - before > settings.max_duplicate_share:
        return [QualityFinding(
            "events", "event_id", "duplicates", None, dup, before + settings.max_duplicate_share,
            f"{dup:.0%} of events repeat another event's {', '.join(key)} under a new event_id "
            f"(was {before:.1%}): a re-sent batch")]
    return []


def _row_hashes(frame: pd.DataFrame, key: list[str]) -> pd.Series:
    """One uint64 hash per row of ``frame[key]`` (duplicates found on integers, not object tuples)."""
    return pd.util.hash_pandas_object(frame[key], index=False)


def _leads(frame: pd.DataFrame, min_rows: int) -> dict[str, float]:
    """Hours each source's (channel's, with >= min_rows rows) newest event runs ahead of the others' newest."""
    sources = frame["channel"].fillna("(none)").astype(str)
    counts = sources.value_counts()
    big = counts[counts >= min_rows].index
    if len(big) < 2:
        return {}
    newest = frame["event_at"].groupby(sources.to_numpy()).max()
    return {src: float((newest[src] - newest.drop(src).max()) / pd.Timedelta(hours=1)) for src in big}


def _time_skew(batch: pd.DataFrame, base: pd.DataFrame, settings) -> list[QualityFinding]:
    if "channel" not in batch.columns or "channel" not in base.columns:
        return []
    before = _leads(base, settings.min_rows)
    out = []
    for src, lead_h in _leads(batch, settings.min_rows).items():
        usual = max(before.get(src, 0.0), 0.0)
        if lead_h - usual > settings.max_source_skew_hours:
            out.append(QualityFinding(
                "events", "event_at", "time_skew", src, lead_h, usual + settings.max_source_skew_hours,
                f"event_at of source channel={src} runs {lead_h:.1f} h ahead of the other sources' newest "
                f"(usually {usual:.1f} h, limit +{settings.max_source_skew_hours:g} h): clock or time-zone fault"))
    return out
