"""Churn labels and the point-in-time training frame on the cluster, one customer-hash partition at a time.

The labels of a customer depend only on that customer's events and row
(:func:`features.labels.label_churn`), and a point-in-time join matches a customer's label rows
with that customer's feature snapshots, so both run per partition and the frame is never
collected on one node: it stays a partitioned Dask frame for the distributed fit.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tenure.features.labels import LABEL_COLUMN, label_churn

if TYPE_CHECKING:
    import dask.dataframe as dd

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ViewTable:
    """One feature view's batch table, as the point-in-time join needs it.

    ``path``: Parquet with ``customer_id``; ``names``: the features to join; ``timestamp_field``
    and ``created_field``: snapshot time and tie-break; ``ttl``: oldest usable snapshot (None = any).
    """

    path: Path
    names: tuple[str, ...]
    timestamp_field: str = "event_timestamp"
    created_field: str | None = "created"
    ttl: timedelta | None = None


def _labels_partition(events: pd.DataFrame, customers: pd.DataFrame, cutoffs: list[pd.Timestamp],
                      horizon_days: int, qualifying: list[str]) -> pd.DataFrame:
    return label_churn(events.reset_index(drop=True), customers.reset_index(drop=True), cutoffs, horizon_days,
                       qualifying)


def labels_on_cluster(events: dd.DataFrame, customers: dd.DataFrame, cutoffs: Sequence[pd.Timestamp],
                      horizon_days: int, qualifying_event_types: Sequence[str]) -> dd.DataFrame:
    """:func:`features.labels.label_churn` on aligned, bucketed events and customers.

    Returns
    -------
    Dask DataFrame, same partitions: ``customer_id``, ``event_timestamp``, ``label``.
    """
    import dask.dataframe as dd

    meta = label_churn(pd.DataFrame({"customer_id": pd.Series(dtype=object),
                                     "event_at": pd.Series(dtype="datetime64[ns, UTC]"),
                                     "event_type": pd.Series(dtype=object)}),
                       pd.DataFrame({"customer_id": pd.Series(dtype=object),
                                     "signup_at": pd.Series(dtype="datetime64[ns, UTC]")}),
                       [], horizon_days, list(qualifying_event_types))
    return dd.map_partitions(_labels_partition, events, customers, list(cutoffs), horizon_days,
                             list(qualifying_event_types), meta=meta, align_dataframes=False,
                             enforce_metadata=False)


def _join_partition(labels: pd.DataFrame, *tables: pd.DataFrame, views: tuple[ViewTable, ...]) -> pd.DataFrame:
    """Point-in-time join of one partition: per view, each label row gets the latest snapshot at or before
    its time within the TTL (ties broken by ``created``), else missing values (Feast's rules)."""
    base = labels.reset_index(drop=True)
    base["customer_id"] = base["customer_id"].astype(str)
    base["event_timestamp"] = pd.to_datetime(base["event_timestamp"], utc=True).dt.as_unit("ns")
    row = "__row"
    keys = base[["customer_id", "event_timestamp"]].assign(**{row: np.arange(len(base))})
    left = keys.sort_values("event_timestamp", kind="stable")
    parts = [base]
    for view, table in zip(views, tables, strict=True):
        names = list(view.names)
        ts, created = view.timestamp_field, view.created_field
        table = table.reset_index(drop=True)
        table = table[["customer_id", ts, *([created] if created else []), *names]].copy()
        table["customer_id"] = table["customer_id"].astype(str)
        table[ts] = pd.to_datetime(table[ts], utc=True).dt.as_unit("ns")
        order = [ts, created] if created else [ts]
        table = table.sort_values(order, kind="stable").drop_duplicates(["customer_id", ts], keep="last")
        table = table.rename(columns={ts: "__snapshot_at"}).drop(columns=[created] if created else [])
        merged = pd.merge_asof(left, table.sort_values("__snapshot_at", kind="stable"), left_on="event_timestamp",
                               right_on="__snapshot_at", by="customer_id", direction="backward",
                               allow_exact_matches=True,
                               tolerance=pd.Timedelta(view.ttl) if view.ttl and view.ttl.total_seconds() > 0 else None)
        parts.append(merged.set_index(row)[names].reindex(np.arange(len(base))).reset_index(drop=True))
    return pd.concat(parts, axis=1)


def point_in_time_join(labels: dd.DataFrame, views: Sequence[ViewTable], npartitions: int) -> dd.DataFrame:
    """Join every view's features to the label rows, partition by partition (nothing is collected).

    Parameters
    ----------
    labels:
        Bucketed label rows (:func:`labels_on_cluster`): ``customer_id``, ``event_timestamp`` (UTC), ``label``.
    views:
        The feature service's views, in order (:class:`ViewTable`).
    npartitions:
        The buckets of ``labels``.

    Returns
    -------
    Dask DataFrame, one row per label row: its columns, then each view's features.
    """
    import dask.dataframe as dd

    from tenure.compute.partitions import read_table_partitioned

    tables = []
    for view in views:
        columns = ["customer_id", view.timestamp_field, *([view.created_field] if view.created_field else []),
                   *view.names]
        tables.append(read_table_partitioned(view.path, npartitions, columns))
    meta = _join_partition(labels._meta, *[t._meta for t in tables], views=tuple(views))
    return dd.map_partitions(_join_partition, labels, *tables, views=tuple(views), meta=meta,
                             align_dataframes=False, enforce_metadata=False)


def data_end(events: dd.DataFrame) -> pd.Timestamp:
    """The latest event time (computed on the cluster)."""
    return pd.Timestamp(events["event_at"].max().compute()).tz_convert("UTC")


__all__ = ["LABEL_COLUMN", "ViewTable", "data_end", "event_time_range", "labels_on_cluster", "point_in_time_join"]


def event_time_range(events: dd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first, last) event time, computed on the cluster."""
    import dask

    first, last = dask.compute(events["event_at"].min(), events["event_at"].max())
    return pd.Timestamp(first).tz_convert("UTC"), pd.Timestamp(last).tz_convert("UTC")
