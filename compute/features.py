"""Customer and item feature snapshots on the cluster, with the local path's own functions.

Each customer-hash partition holds its customers and all of their events
(:mod:`compute.partitions`), so :func:`features.snapshots.compute_feature_snapshots` on a
partition gives exactly those customers' rows of the local build. Item popularity is a sum
over customers (purchases, views, distinct buyers: every buyer lives in one partition), so the
partitions' item frames are added up. The driver then streams the customer rows into the same
``customer_features.parquet`` the local path writes, one partition at a time: its memory holds
one partition, not the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from tenure.features.customer_features import EVENT_COLUMNS_USED, LOOKBACK_DAYS
from tenure.features.item_features import ITEM_POPULARITY_FEATURES
from tenure.features.snapshots import (
    CREATED_COLUMN,
    CUSTOMER_TABLE,
    ITEM_TABLE,
    TIMESTAMP_COLUMN,
    FeatureTables,
    compute_feature_snapshots,
)

if TYPE_CHECKING:
    from distributed import Client

    from tenure.settings import Settings

logger = logging.getLogger(__name__)


def _partition_snapshots(events: pd.DataFrame, customers: pd.DataFrame, items: pd.DataFrame,
                         times: list[pd.Timestamp], created: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition's customer snapshots and item popularity (the local function on the partition's rows)."""
    events = events.reset_index(drop=True)
    events = events.sort_values("event_at", kind="stable").reset_index(drop=True)
    customers = customers.reset_index(drop=True)
    return compute_feature_snapshots(events, customers, items, times, created=created)


def _sum_items(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Item frames of every partition -> one: catalogue columns from the first, popularity summed."""
    first = parts[0]
    keys = ["item_id", TIMESTAMP_COLUMN]
    total = first.set_index(keys)
    for part in parts[1:]:
        other = part.set_index(keys)
        for column in ITEM_POPULARITY_FEATURES:
            total[column] = total[column].to_numpy() + other[column].reindex(total.index).to_numpy()
    return total.reset_index()[first.columns]


def compute_feature_snapshots_on_cluster(
    client: Client, events, customers, items: pd.DataFrame, times: Sequence[pd.Timestamp],
    created: pd.Timestamp,
):
    """Feature snapshots of aligned, bucketed ``events`` and ``customers`` (Dask frames).

    Nothing is gathered here: the partitions compute while the caller writes their customer rows
    in order, and the item frames are added up on the cluster, two at a time.

    Returns
    -------
    (customer_futures, item_future):
        One future per partition, each a customer frame as :func:`features.snapshots.compute_feature_snapshots`
        returns (the rows of that partition's customers), and one future of the item frame of all partitions.
    """
    import dask

    if events.npartitions != customers.npartitions:
        raise ValueError(f"events ({events.npartitions}) and customers ({customers.npartitions}) must have the "
                         "same partitions")
    # the catalogue rides in the graph (not scattered): a worker restarted for memory loses nothing
    # that cannot be computed again
    items_node = dask.delayed(items, pure=True)
    tasks = [dask.delayed(_partition_snapshots, pure=True)(ev, cu, items_node, list(times), created)
             for ev, cu in zip(events.to_delayed(), customers.to_delayed(), strict=True)]
    futures = client.compute(tasks)
    customer_futures = [client.submit(itemgetter(0), f) for f in futures]
    item_futures = [client.submit(itemgetter(1), f) for f in futures]
    del futures
    while len(item_futures) > 1:  # a tree of sums: one item frame reaches the driver, not one per partition
        pairs = [item_futures[i:i + 2] for i in range(0, len(item_futures), 2)]
        item_futures = [client.submit(_sum_items, pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return customer_futures, item_futures[0]


def _stream_parquet(client: Client, futures, path: Path, keep_old: Path | None, rebuilt: set) -> int:
    """Write the partitions' frames (gathered one at a time) and the kept old snapshots into ``path``.

    Returns the rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    writer = None
    rows = 0
    try:
        for future in futures:
            frame = future.result()
            future.release()
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(tmp, schema)
                if keep_old is not None:
                    rows += _copy_kept(keep_old, writer, schema, rebuilt)
            writer.write_table(table.cast(schema))
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return rows


def _copy_kept(old: Path, writer, schema, rebuilt: set) -> int:
    """Append the old file's snapshots at as-of times not rebuilt now (same columns only)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source = pq.ParquetFile(old)
    if source.schema_arrow.names != schema.names:
        logger.warning("%s has other columns than this build; rewriting it from this build only", old)
        return 0
    copied = 0
    stamps = pa_timestamps(rebuilt)
    for batch in source.iter_batches(batch_size=200_000):
        keep = pc.invert(pc.is_in(batch.column(TIMESTAMP_COLUMN), value_set=stamps))
        kept = batch.filter(keep)
        if kept.num_rows:
            import pyarrow as pa

            writer.write_table(pa.Table.from_batches([kept]).cast(schema))
            copied += kept.num_rows
    return copied


def pa_timestamps(values: set):
    """As-of times as a pyarrow timestamp array (ns, UTC)."""
    import pyarrow as pa

    return pa.array([pd.Timestamp(v).as_unit("ns") for v in sorted(values)], type=pa.timestamp("ns", tz="UTC"))


def build_feature_tables_on_cluster(settings: Settings, as_of: Sequence[object], client: Client,
                                    replace: bool = False) -> FeatureTables:
    """:func:`features.snapshots.build_feature_tables` on the cluster: the same files, the same rows.

    The canonical tables are read as partitioned Parquet on the workers (events of
    ``(first as-of - LOOKBACK_DAYS, last as-of]`` only), bucketed by customer
    (``settings.compute.partitions``), and each partition runs the local feature function.

    Parameters
    ----------
    settings:
        Where the tables are read and the feature tables written; ``settings.compute.partitions``.
    as_of:
        The as-of times.
    client:
        A connected Dask client (:func:`compute.cluster.dask_client`).
    replace:
        As in the local build: False keeps the snapshots on disk at other as-of times.
    """
    from tenure.features.snapshots import _as_list
    from tenure.features.tables import read_items

    started = time.perf_counter()
    times = _as_list(as_of)
    n = settings.compute.partitions
    events = read_events_for_features(settings, n, times)
    customers = _customers(settings, n)
    items = read_items(settings)
    created = pd.Timestamp.now(tz="UTC")
    customer_futures, item_future = compute_feature_snapshots_on_cluster(client, events, customers, items, times,
                                                                           created)
    out_dir = settings.paths.features_dir
    customer_path, item_path = out_dir / CUSTOMER_TABLE, out_dir / ITEM_TABLE
    rebuilt = set(times)
    keep_old = customer_path if (not replace and customer_path.exists()) else None
    customer_rows = _stream_parquet(client, customer_futures, customer_path, keep_old, rebuilt)
    item_frame = item_future.result()
    from tenure.features.snapshots import _merge_existing, _write

    item_frame[CREATED_COLUMN] = created
    item_frame = _merge_existing(item_path, item_frame, replace)
    _write(item_frame, item_path)
    seconds = time.perf_counter() - started
    logger.info("cluster: wrote %d customer rows and %d item rows for %d as-of time(s) over %d partitions in %.1f s",
                customer_rows, len(item_frame), len(times), n, seconds)
    return FeatureTables(customer_path=customer_path, item_path=item_path, as_of=tuple(times),
                         customer_rows=customer_rows, item_rows=len(item_frame), seconds=seconds)


def read_events_for_features(settings: Settings, npartitions: int, times: list[pd.Timestamp]):
    """The events the snapshots at ``times`` can see, bucketed (the local build's window and columns)."""
    from tenure.compute.partitions import read_events_partitioned

    return read_events_partitioned(settings, npartitions, list(EVENT_COLUMNS_USED),
                                   start=times[0] - pd.Timedelta(days=LOOKBACK_DAYS), end=times[-1])


def _customers(settings: Settings, npartitions: int):
    from tenure.compute.partitions import read_customers_partitioned

    return read_customers_partitioned(settings, npartitions)
