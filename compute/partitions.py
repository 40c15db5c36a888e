"""Canonical tables as Dask DataFrames, partitioned by a stable hash of ``customer_id``.

Every frame returned here has ``npartitions`` partitions whose index is the customer's bucket
(:func:`customer_bucket`), with divisions ``0, 1, ..., npartitions``: partition ``b`` holds
exactly the rows of the customers in bucket ``b``, whichever table they come from. So the
events, customers and feature rows of one customer always meet in the same partition, and a
per-customer function mapped over aligned partitions computes what it computes on all rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd

    from tenure.settings import Settings

logger = logging.getLogger(__name__)

BUCKET = "__bucket"
"""Name of the index that holds a row's customer bucket."""


def customer_bucket(customer_ids: pd.Series | Sequence[str], npartitions: int) -> np.ndarray:
    """The bucket of each customer id: a stable hash (the same in every process and run) modulo ``npartitions``.

    Returns
    -------
    Array of shape (n_ids,), int64 in ``[0, npartitions)``.
    """
    if npartitions < 1:
        raise ValueError(f"npartitions must be at least 1, got {npartitions}")
    ids = pd.Series(customer_ids, copy=False).astype(str)
    hashed = pd.util.hash_pandas_object(ids, index=False).to_numpy()
    return (hashed % np.uint64(npartitions)).astype(np.int64)


def _with_bucket(frame: pd.DataFrame, npartitions: int) -> pd.DataFrame:
    out = frame.reset_index(drop=True)
    out[BUCKET] = customer_bucket(out["customer_id"], npartitions)
    return out


def bucketed(frame: dd.DataFrame, npartitions: int) -> dd.DataFrame:
    """Re-partition a Dask frame with a ``customer_id`` column so that partition ``b`` holds bucket ``b``.

    The bucket becomes the index (rows keep their other columns); the shuffle runs on the cluster.
    """
    with_bucket = frame.map_partitions(_with_bucket, npartitions,
                                       meta=_with_bucket(frame._meta, npartitions))
    return with_bucket.set_index(BUCKET, divisions=list(range(npartitions + 1)), sort=True)


def from_pandas_bucketed(frame: pd.DataFrame, npartitions: int) -> dd.DataFrame:
    """A pandas frame with ``customer_id`` split into the bucket partitions (tests, small tables)."""
    import dask.dataframe as dd

    return bucketed(dd.from_pandas(frame, npartitions=max(1, min(npartitions, len(frame) or 1))), npartitions)


# --- the canonical tables ------------------------------------------------------------------------

def event_files(settings: Settings) -> list[Path]:
    """The Parquet files of the events table (``tables/events/event_date=YYYY-MM-DD/*.parquet``), by date.

    Hidden files and staging folders (names starting with ``.``) are skipped, like ``features.tables`` does.
    """
    from tenure.features.tables import table_path

    folder = table_path(settings, "events")
    if not folder.is_dir():
        return []
    return sorted(p for part in sorted(folder.glob("event_date=*")) if part.is_dir()
                  for p in part.glob("*.parquet") if not p.name.startswith("."))


def _read_event_file(path: str, columns: list[str], start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """One events file as a canonical frame (the table's schema; rows in ``[start, end]``)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from tenure.features.tables import _events_arrow_schema

    # the table's own schema, so every file reads with the dtypes read_events gives
    dataset = ds.dataset([path], schema=_events_arrow_schema(), format="parquet")
    flt = None
    if start is not None:
        flt = pc.field("event_at") >= start.to_pydatetime()
    if end is not None:
        cond = pc.field("event_at") <= end.to_pydatetime()
        flt = cond if flt is None else flt & cond
    return dataset.to_table(columns=columns, filter=flt).to_pandas()


def read_events_files(settings: Settings, columns: Sequence[str], start: object | None = None,
                      end: object | None = None) -> dd.DataFrame:
    """The events table on the cluster: one read task (and partition) per stored file.

    Parameters
    ----------
    columns:
        Canonical event columns to read (``customer_id`` and ``event_at`` are always read).
    start, end:
        Keep events with ``start <= event_at <= end`` (None = open); files of other days are not read.

    Returns
    -------
    Dask DataFrame, one partition per file, with the columns (canonical dtypes).

    Raises
    ------
    FileNotFoundError
        When no events are stored.
    """
    import dask.dataframe as dd

    from tenure.features.schema import EVENTS
    from tenure.features.tables import table_path

    unknown = [c for c in columns if c not in EVENTS.names]
    if unknown:
        raise ValueError(f"unknown event columns {unknown}; canonical columns are {list(EVENTS.names)}")
    columns = list(dict.fromkeys(["customer_id", "event_at", *columns]))
    start_ts = _utc(start)
    end_ts = _utc(end)
    files = []
    for path in event_files(settings):
        day = pd.Timestamp(path.parent.name.split("=", 1)[1], tz="UTC")
        if start_ts is not None and day + pd.Timedelta(days=1) <= start_ts:
            continue
        if end_ts is not None and day > end_ts:
            continue
        files.append(str(path))
    if not files:
        raise FileNotFoundError(f"no events stored under {table_path(settings, 'events')} in the window "
                                f"{start_ts} .. {end_ts}; ingest events first (tenure run ingest)")
    meta = _read_event_file(files[0], columns, start_ts, end_ts).iloc[:0]
    return dd.from_map(_read_event_file, files, columns=columns, start=start_ts, end=end_ts, meta=meta,
                       enforce_metadata=False, label="read-events")


def read_events_partitioned(settings: Settings, npartitions: int, columns: Sequence[str],
                            start: object | None = None, end: object | None = None) -> dd.DataFrame:
    """The events table on the cluster (:func:`read_events_files`), bucketed by customer.

    Parameters
    ----------
    npartitions:
        Customer buckets (``settings.compute.partitions``).

    Returns
    -------
    Dask DataFrame indexed by bucket, with the columns (canonical dtypes). Within a partition rows
    are in no particular order: the feature and label functions sort what they need.
    """
    return bucketed(read_events_files(settings, columns, start, end), npartitions)


def _read_row_group(piece: tuple[str, int], table: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    from tenure.features.schema import conform

    path, group = piece
    return conform(pq.ParquetFile(path).read_row_group(group).to_pandas(), table)


def read_customers_partitioned(settings: Settings, npartitions: int) -> dd.DataFrame:
    """The customers table on the cluster, one read task per Parquet row group, bucketed by customer.

    Rows are the stored ones in canonical dtypes (``features.schema.conform``), like ``read_customers``.

    Raises
    ------
    FileNotFoundError
        When no customers are stored.
    """
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    from tenure.features.tables import table_path

    folder = table_path(settings, "customers")
    files = sorted(p for p in folder.rglob("*.parquet")
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts)) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no customers table under {folder}; ingest one first (tenure run ingest)")
    pieces = [(str(f), g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
    meta = _read_row_group(pieces[0], "customers").iloc[:0]
    frame = dd.from_map(_read_row_group, pieces, table="customers", meta=meta, enforce_metadata=False,
                        label="read-customers")
    return bucketed(frame, npartitions)


def read_table_partitioned(path: Path, npartitions: int, columns: Sequence[str] | None = None) -> dd.DataFrame:
    """A Parquet table with ``customer_id`` (a feature table), one read task per row group, bucketed."""
    import dask.dataframe as dd
    import pyarrow.parquet as pq

    if not Path(path).exists():
        raise FileNotFoundError(f"no table at {path}")
    pieces = [(str(path), g) for g in range(pq.ParquetFile(path).num_row_groups)]
    cols = list(columns) if columns is not None else None

    def read(piece: tuple[str, int]) -> pd.DataFrame:
        return pq.ParquetFile(piece[0]).read_row_group(piece[1], columns=cols).to_pandas()

    frame = dd.from_map(read, pieces, meta=read(pieces[0]).iloc[:0], enforce_metadata=False, label="read-table")
    return bucketed(frame, npartitions)


def _utc(value: object | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
