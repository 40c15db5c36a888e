"""Uniform samples drawn on the cluster, the same rows whatever the partitioning.

A row's sampling key is a seeded hash of its identifying columns (for monitoring: ``customer_id`` and
``event_timestamp``); a sample of ``n`` rows is the ``n`` rows with the smallest keys ("bottom-k"
sampling: uniform without replacement). Each partition keeps its own ``n`` smallest, the driver
keeps the ``n`` smallest of those: only ``n x partitions`` rows travel, and the sample is **the
same rows** that :func:`bottom_k` picks on the whole frame in one process, with any number of
partitions. When the frame has no more than ``n`` rows, the sample is every row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import dask.dataframe as dd

logger = logging.getLogger(__name__)

KEY = "__sample_key"


def sample_keys(frame: pd.DataFrame, key_columns: Sequence[str], seed: int) -> np.ndarray:
    """The sampling key of each row: a 64-bit hash of ``key_columns`` salted with ``seed``.

    Returns
    -------
    Array of shape (n_rows,), uint64; the same row gets the same key in every process and run.

    Raises
    ------
    ValueError
        When a key column is missing (named).
    """
    missing = [c for c in key_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"sampling needs the key columns {list(key_columns)}; the frame lacks {missing}")
    keys = frame[list(key_columns)].copy()
    for column in keys.columns:  # the same value hashes the same whatever the dtype it was read with
        if isinstance(keys[column].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(keys[column]):
            keys[column] = pd.to_datetime(keys[column], utc=True).dt.as_unit("ns").astype("int64")
        elif not pd.api.types.is_numeric_dtype(keys[column]):
            keys[column] = keys[column].astype(str)
    salt = f"{int(seed) & 0xFFFFFFFFFFFF:016d}"[-16:]  # hash_pandas_object's 16-character key
    return pd.util.hash_pandas_object(keys, index=False, hash_key=salt).to_numpy()


def bottom_k(frame: pd.DataFrame, rows: int, seed: int, key_columns: Sequence[str]) -> pd.DataFrame:
    """The ``rows`` rows of ``frame`` with the smallest sampling keys (all rows when there are fewer),
    in key order, index reset. The local counterpart of :func:`sample_on_cluster`."""
    if rows < 1:
        raise ValueError(f"a sample needs at least 1 row, got {rows}")
    keyed = frame.reset_index(drop=True).assign(**{KEY: sample_keys(frame, key_columns, seed)})
    return keyed.nsmallest(rows, KEY, keep="first").sort_values(KEY, kind="stable").drop(columns=KEY).reset_index(drop=True)


def _partition_bottom_k(part: pd.DataFrame, rows: int, seed: int, key_columns: tuple[str, ...],
                        prepare: Callable[[pd.DataFrame], pd.DataFrame] | None) -> pd.DataFrame:
    part = part.reset_index(drop=True)
    if prepare is not None:
        part = prepare(part)
    if part.empty:
        return part.assign(**{KEY: pd.Series(dtype=np.uint64)})
    keyed = part.assign(**{KEY: sample_keys(part, key_columns, seed)})
    return keyed.nsmallest(rows, KEY, keep="first")


def sample_on_cluster(frame: dd.DataFrame, rows: int, seed: int, key_columns: Sequence[str],
                      prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
    """A uniform sample of at most ``rows`` rows of a Dask frame, drawn partition by partition on the cluster.

    Parameters
    ----------
    frame:
        Any partitioned frame with ``key_columns``.
    rows:
        Sample size (every row when the frame, after ``prepare``, has fewer).
    seed:
        Salt of the sampling keys (e.g. ``churn.random_state``): another seed, another sample.
    key_columns:
        Columns identifying a row (their values, not their position, decide whether it is drawn).
    prepare:
        Applied to each partition first (filter, score: e.g. monitoring's population rule and the
        champion's scores), so the sample is drawn from what it returns. Must be a picklable function
        when workers are processes.

    Returns
    -------
    pandas DataFrame: the sampled rows in key order (the same rows :func:`bottom_k` picks on the
    prepared whole frame).
    """
    if rows < 1:
        raise ValueError(f"a sample needs at least 1 row, got {rows}")
    import dask

    tasks = [dask.delayed(_partition_bottom_k, pure=True)(part, rows, seed, tuple(key_columns), prepare)
             for part in frame.to_delayed()]
    results = dask.compute(*tasks)
    combined = pd.concat([f for f in results if len(f)] or list(results[:1]), ignore_index=True)
    out = combined.nsmallest(rows, KEY, keep="first").sort_values(KEY, kind="stable")
    logger.info("sample on the cluster: %d of %d candidate rows from %d partitions", len(out), len(combined),
                frame.npartitions)
    return out.drop(columns=KEY).reset_index(drop=True)


def latest_rows_partitioned(path, npartitions: int, timestamp_column: str = "event_timestamp"):
    """The rows of a feature table at its newest as-of time, bucketed by customer, and that time.

    Only the timestamp column is read on the driver (to find the newest time); the rows are read and
    filtered on the workers.

    Returns
    -------
    (as_of, frame): ``pd.Timestamp`` (UTC) and a Dask frame; (None, None) when the table is missing or empty.
    """
    from pathlib import Path

    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        return None, None
    stamps = pq.read_table(path, columns=[timestamp_column]).column(0)
    if len(stamps) == 0:
        return None, None
    import pyarrow.compute as pc

    latest = pd.Timestamp(pc.max(stamps).as_py())
    latest = latest.tz_localize("UTC") if latest.tzinfo is None else latest.tz_convert("UTC")
    from tenure.compute.partitions import read_table_partitioned

    frame = read_table_partitioned(path, npartitions)
    at = latest

    def newest(part: pd.DataFrame) -> pd.DataFrame:
        ts = pd.to_datetime(part[timestamp_column], utc=True)
        return part[(ts == at).to_numpy()]

    return latest, frame.map_partitions(newest, meta=frame._meta)


MONITORING_SAMPLE_ROWS = 200_000
"""Most rows of monitoring's current sample drawn on the cluster (every row below it, as locally)."""


def sample_latest_snapshot_on_cluster(settings, prepare: Callable[[pd.DataFrame], pd.DataFrame],
                                      rows: int = MONITORING_SAMPLE_ROWS, seed: int | None = None,
                                      table: str = "customer_features.parquet"):
    """Monitoring's current window on the cluster: the newest snapshot's rows, ``prepare``-d (population rule,
    champion's scores) and sampled partition by partition.

    Parameters
    ----------
    settings:
        ``paths.features_dir`` (the table), ``compute`` (cluster, partitions), ``churn.random_state``
        (the default seed).
    prepare:
        Applied to each partition's rows first (monitoring passes its own population rule and scoring).

    Returns
    -------
    (as_of, frame): the newest as-of time and the sampled rows (every prepared row when there are no
    more than ``rows``); (None, None) when there is no snapshot.
    """
    from tenure.compute.cluster import dask_client

    as_of, frame = latest_rows_partitioned(settings.paths.features_dir / table, settings.compute.partitions)
    if as_of is None:
        return None, None
    seed = settings.churn.random_state if seed is None else seed
    with dask_client(settings.compute):
        sample = sample_on_cluster(frame, rows, seed, ("customer_id", "event_timestamp"), prepare)
    return as_of, sample


__all__ = ["MONITORING_SAMPLE_ROWS", "bottom_k", "latest_rows_partitioned", "sample_keys", "sample_latest_snapshot_on_cluster",
           "sample_on_cluster"]
