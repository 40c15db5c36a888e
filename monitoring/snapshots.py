"""The batch feature table and the stored events, read by as-of time: only the snapshots and events a check needs.

A monitoring pass looks at a handful of the batch feature table's snapshots (the newest, one a
season ago, one four weeks ago, the newest matured one and the early-outcome cohorts), while the
table holds every weekly snapshot (19.7M rows at a million customers). :class:`SnapshotTable`
lists the as-of times from the ``event_timestamp`` column alone (batch by batch) and reads the rows
of chosen as-of times with a pyarrow filter, so memory follows the rows used, not the table.
:class:`FrameSnapshots` gives the same two operations on a frame already in memory (tests, callers
that hold the table), so the reference and performance functions take either.

Labels (``features.labels.label_churn``) at cut-offs ``T`` with horizon ``H`` depend only on the
events in ``[min T - H, max T + H]`` and on the cancellations before (a customer who cancelled is
not alive); :func:`label_events` reads just those.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import pandas as pd

logger = logging.getLogger(__name__)

TIMESTAMP = "event_timestamp"
LABEL_EVENT_COLUMNS = ["customer_id", "event_at", "event_type"]


def _utc(value: object) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class Snapshots(Protocol):
    """What the reference and performance functions need of the batch feature table."""

    def as_of_times(self) -> list[pd.Timestamp]:
        """The distinct as-of times (UTC), sorted."""

    def rows(self, as_of: Sequence[pd.Timestamp]) -> pd.DataFrame:
        """The rows whose ``event_timestamp`` is one of ``as_of``, in table order."""


class FrameSnapshots:
    """:class:`Snapshots` over a batch feature table already in memory (``event_timestamp`` and features)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        if TIMESTAMP not in frame.columns:
            raise ValueError("the batch feature table lacks event_timestamp")
        self.frame = frame

    def as_of_times(self) -> list[pd.Timestamp]:
        """The distinct as-of times (UTC), sorted."""
        return sorted(pd.Timestamp(t) for t in pd.to_datetime(self.frame[TIMESTAMP].unique(), utc=True))

    def rows(self, as_of: Sequence[pd.Timestamp]) -> pd.DataFrame:
        """The rows of the ``as_of`` times, in frame order, with the frame's index."""
        stamps = pd.to_datetime(self.frame[TIMESTAMP], utc=True)
        return self.frame[stamps.isin([_utc(t) for t in as_of]).to_numpy()]


class SnapshotTable:
    """:class:`Snapshots` over the Parquet batch feature table (a file, or a folder of files), read lazily.

    Parameters
    ----------
    path: ``features_dir / customer_features.parquet``.
    columns: the columns :meth:`rows` reads (default: all).
    """

    def __init__(self, path: Path, columns: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        self.columns = list(columns) if columns is not None else None
        self._times: list[pd.Timestamp] | None = None

    def exists(self) -> bool:
        """Whether the table is on disk."""
        return self.path.exists()

    def _dataset(self):
        import pyarrow.dataset as ds

        return ds.dataset(str(self.path), format="parquet")

    def as_of_times(self) -> list[pd.Timestamp]:
        """The distinct as-of times (UTC), sorted; only ``event_timestamp`` is read, one batch at a time."""
        if self._times is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            dataset = self._dataset()
            parts = [pc.unique(batch.column(0)) for batch in dataset.to_batches(columns=[TIMESTAMP])]
            found = pa.concat_arrays(parts) if parts else pa.array([], type=dataset.schema.field(TIMESTAMP).type)
            stamps = pd.to_datetime(found.to_pandas(), utc=True).dropna().unique()
            self._times = sorted(pd.Timestamp(t) for t in stamps)
        return list(self._times)

    def rows(self, as_of: Sequence[pd.Timestamp]) -> pd.DataFrame:
        """The rows of the ``as_of`` times, in table order (a pyarrow filter on ``event_timestamp``)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        dataset = self._dataset()
        kind = dataset.schema.field(TIMESTAMP).type
        wanted = pa.array([_utc(t) for t in as_of], type=pa.timestamp("ns", tz="UTC"))
        if pa.types.is_timestamp(kind) and kind != wanted.type:
            wanted = wanted.cast(kind)  # a naive or coarser stored column: the same instants in its type
        table = dataset.to_table(columns=self.columns, filter=pc.field(TIMESTAMP).isin(wanted))
        frame = table.to_pandas()
        logger.debug("read %d rows of %d as-of time(s) from %s", len(frame), len(as_of), self.path)
        return frame


def as_snapshots(snapshots: pd.DataFrame | Snapshots) -> Snapshots:
    """``snapshots`` as :class:`Snapshots` (a frame is wrapped in :class:`FrameSnapshots`)."""
    return FrameSnapshots(snapshots) if isinstance(snapshots, pd.DataFrame) else snapshots


def feature_table(settings) -> SnapshotTable:
    """The batch feature table of ``settings.paths.features_dir``."""
    return SnapshotTable(settings.paths.features_dir / "customer_features.parquet")


def label_events(settings, cutoffs: Sequence[pd.Timestamp], horizon_days: int) -> pd.DataFrame:
    """The events ``label_churn`` needs at ``cutoffs`` with ``horizon_days``: ``customer_id, event_at, event_type``.

    Every event in ``[min cutoffs - H, max cutoffs + H]`` and the cancellations before it: the labels
    are the same as with every stored event (activity counts only within ``H`` of a cut-off, the
    first cancellation decides who is alive).
    """
    from tenure.features.labels import CANCEL_EVENT
    from tenure.features.tables import read_events

    horizon = pd.Timedelta(days=horizon_days)
    first, last = min(cutoffs) - horizon, max(cutoffs) + horizon
    window = read_events(settings, start=first, end=last, columns=LABEL_EVENT_COLUMNS)
    cancels = read_events(settings, end=first, columns=LABEL_EVENT_COLUMNS, event_types=[CANCEL_EVENT])
    cancels = cancels[cancels["event_at"] < first]
    parts = [part for part in (cancels, window) if len(part)]
    if not parts:
        return window
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
