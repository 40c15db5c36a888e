"""Batch feature tables: customer and item features at one or many as-of times, as Parquet for Feast.

Writes ``settings.paths.features_dir / customer_features.parquet`` and ``item_features.parquet``,
one row per (entity, as-of) with ``event_timestamp`` (the as-of time, UTC) and ``created`` (when
the row was computed), ready for Feast's point-in-time joins and materialization.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tenure.features.customer_features import (
    EVENT_COLUMNS_USED,
    LOOKBACK_DAYS,
    PreparedCustomerEvents,
    to_utc_timestamp,
)
from tenure.features.item_features import PreparedItemEvents

if TYPE_CHECKING:
    from tenure.settings import Settings

logger = logging.getLogger(__name__)

CUSTOMER_TABLE = "customer_features.parquet"
ITEM_TABLE = "item_features.parquet"
TIMESTAMP_COLUMN = "event_timestamp"
CREATED_COLUMN = "created"


@dataclass(frozen=True)
class FeatureTables:
    """What :func:`build_feature_tables` wrote."""

    customer_path: Path
    item_path: Path
    as_of: tuple[pd.Timestamp, ...]
    customer_rows: int
    item_rows: int
    seconds: float


def snapshot_times(start: object, end: object, every_days: int = 7) -> list[pd.Timestamp]:
    """As-of times ``start, start + every, ...`` up to and including ``end`` (UTC).

    Raises
    ------
    ValueError
        When ``end`` is before ``start`` or ``every_days`` is below 1.
    """
    if every_days < 1:
        raise ValueError(f"snapshot spacing must be at least 1 day, got {every_days}")
    start_ts, end_ts = to_utc_timestamp(start, "start"), to_utc_timestamp(end, "end")
    if end_ts < start_ts:
        raise ValueError(f"end ({end_ts}) must not be before start ({start_ts})")
    return list(pd.date_range(start_ts, end_ts, freq=pd.Timedelta(days=every_days)))


def _as_list(as_of: object | Sequence[object]) -> list[pd.Timestamp]:
    values = list(as_of) if isinstance(as_of, (list, tuple, pd.DatetimeIndex)) else [as_of]
    if not values:
        raise ValueError("at least one as-of time is needed, got none")
    return sorted({to_utc_timestamp(v) for v in values})


def compute_feature_snapshots(
    events: pd.DataFrame,
    customers: pd.DataFrame,
    items: pd.DataFrame,
    as_of: object | Sequence[object],
    created: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customer and item feature snapshots, preparing the events once for all as-of times.

    Returns
    -------
    (customer_frame, item_frame):
        DataFrames, one row per (customer known at T, T) and per (item, T), with
        ``event_timestamp`` = T and ``created`` columns.
    """
    times = _as_list(as_of)
    created = created if created is not None else pd.Timestamp.now(tz="UTC")
    # no pre-filtering: the prepared arrays are sliced per window, so events outside
    # (T - LOOKBACK_DAYS, T] cost nothing but their share of the one-time sort
    customer_prep = PreparedCustomerEvents(events, customers, items)
    item_prep = PreparedItemEvents(events, items)
    customer_frames, item_frames = [], []
    for t in times:
        c = customer_prep.compute(t)
        c.insert(1, TIMESTAMP_COLUMN, t)
        customer_frames.append(c)
        i = item_prep.compute(t)
        i.insert(1, TIMESTAMP_COLUMN, t)
        item_frames.append(i)
    customer_frame = pd.concat(customer_frames, ignore_index=True)
    item_frame = pd.concat(item_frames, ignore_index=True)
    customer_frame[CREATED_COLUMN] = created
    item_frame[CREATED_COLUMN] = created
    return customer_frame, item_frame


def _merge_existing(path: Path, new: pd.DataFrame, replace: bool) -> pd.DataFrame:
    """Keep the snapshots already on disk whose as-of time is not rebuilt now."""
    if replace or not path.exists():
        return new
    old = pd.read_parquet(path)
    if list(old.columns) != list(new.columns):
        logger.warning("%s has other columns than this build; rewriting it from this build only", path)
        return new
    keep = ~pd.to_datetime(old[TIMESTAMP_COLUMN], utc=True).isin(new[TIMESTAMP_COLUMN].unique())
    merged = pd.concat([old.loc[keep.to_numpy()], new], ignore_index=True)
    return merged.sort_values([TIMESTAMP_COLUMN, merged.columns[0]], kind="stable").reset_index(drop=True)


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def build_feature_tables(
    settings: Settings,
    as_of: object | Sequence[object],
    *,
    events: pd.DataFrame | None = None,
    customers: pd.DataFrame | None = None,
    items: pd.DataFrame | None = None,
    replace: bool = False,
) -> FeatureTables:
    """Compute feature snapshots and write the Parquet tables Feast reads.

    Parameters
    ----------
    settings:
        Where the canonical tables are read and the feature tables written.
    as_of:
        One as-of time or a list (see :func:`snapshot_times` for weekly ones).
    events, customers, items:
        Canonical frames to use instead of reading the ingested tables (tests, benchmarks).
    replace:
        False (default): snapshots already in the files at other as-of times are kept, those
        at the same times are replaced. True: the files hold only this build.

    Returns
    -------
    FeatureTables
        Paths, row counts and the time taken.
    """
    started = time.perf_counter()
    times = _as_list(as_of)
    if customers is None or items is None or events is None:
        from tenure.features.tables import read_customers, read_events, read_items

        customers = read_customers(settings) if customers is None else customers
        items = read_items(settings) if items is None else items
        if events is None:
            events = read_events(
                settings,
                start=times[0] - pd.Timedelta(days=LOOKBACK_DAYS),
                end=times[-1],
                columns=list(EVENT_COLUMNS_USED),
            )
    if customers.empty:
        raise ValueError(
            "no customers to build features for; ingest data first (tenure generate && tenure ingest)"
        )
    customer_frame, item_frame = compute_feature_snapshots(events, customers, items, times)
    out_dir = settings.paths.features_dir
    customer_path, item_path = out_dir / CUSTOMER_TABLE, out_dir / ITEM_TABLE
    customer_frame = _merge_existing(customer_path, customer_frame, replace)
    item_frame = _merge_existing(item_path, item_frame, replace)
    _write(customer_frame, customer_path)
    _write(item_frame, item_path)
    seconds = time.perf_counter() - started
    logger.info(
        "wrote %d customer rows and %d item rows for %d as-of time(s) in %.1f s",
        len(customer_frame), len(item_frame), len(times), seconds,
    )
    return FeatureTables(
        customer_path=customer_path,
        item_path=item_path,
        as_of=tuple(times),
        customer_rows=len(customer_frame),
        item_rows=len(item_frame),
        seconds=seconds,
    )
