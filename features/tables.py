"""The stored canonical tables (Parquet under ``settings.paths.tables_dir``): readers and atomic writers.

Layout::

    tables/customers/customers.parquet            one file, replaced atomically on upsert
    tables/items/items.parquet                    one file, replaced atomically on upsert
    tables/events/event_date=YYYY-MM-DD/part-<run>.parquet   appended per ingestion run

Every write goes to a temporary file first and is renamed into place, so a failure half-way
leaves the tables as they were. Event writes stage all partitions of a run before moving any,
and undo the moves already made if one fails. Other rooms read only through
:func:`read_customers`, :func:`read_items` and :func:`read_events`.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tenure.features.schema import EVENTS, TABLES, Column, conform, empty_frame
from tenure.files import fsync_path
from tenure.settings import Settings

logger = logging.getLogger(__name__)

__all__ = [
    "AppendResult",
    "EventWriter",
    "UpsertResult",
    "append_events",
    "compact_events",
    "read_customers",
    "read_events",
    "read_items",
    "stored_event_ids",
    "table_path",
    "upsert_customers",
    "upsert_items",
]


@dataclass(frozen=True)
class UpsertResult:
    """Outcome of an upsert: rows new to the table and rows that replaced a stored one."""

    inserted: int
    updated: int


@dataclass(frozen=True)
class AppendResult:
    """Outcome of appending events: rows written, rows skipped because their event_id was stored."""

    written: int
    skipped_duplicates: int
    partitions: int


def table_path(settings: Settings, table: str) -> Path:
    """Folder of one canonical table (``customers``, ``items`` or ``events``)."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(TABLES)}")
    return Path(settings.paths.tables_dir) / table


def _arrow_type(col: Column):
    import pyarrow as pa

    return {
        "id": pa.string(),
        "string": pa.string(),
        "timestamp": pa.timestamp("ns", tz="UTC"),
        "float": pa.float64(),
        "bool": pa.bool_(),
    }[col.kind]


def _arrow_schema(frame: pd.DataFrame, table: str):
    """Arrow schema of a canonical frame: canonical columns typed, extra columns inferred."""
    import pyarrow as pa

    spec = TABLES[table]
    fields = []
    for name in frame.columns:
        if name in spec.names:
            fields.append(pa.field(name, _arrow_type(spec.column(name))))
        else:
            fields.append(pa.field(name, pa.Array.from_pandas(frame[name]).type))
    return pa.schema(fields)


def _write_parquet(data, path: Path, table: str) -> None:
    """Write one Parquet file from a DataFrame or an Arrow table.

    The single place that writes table data (tests inject failures here).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(data, pd.DataFrame):
        data = pa.Table.from_pandas(data, schema=_arrow_schema(data, table), preserve_index=False)
    pq.write_table(data, path, compression="zstd")


def _atomic_replace(frame: pd.DataFrame, path: Path, table: str) -> None:
    """Write ``frame`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    try:
        _write_parquet(frame, tmp, table)
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _data_files(folder: Path) -> list[Path]:
    """Parquet files of a table folder, skipping hidden temporaries and staging folders."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.parquet")
                  if not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _read_single(settings: Settings, table: str, missing_ok: bool) -> pd.DataFrame:
    import pyarrow.parquet as pq

    folder = table_path(settings, table)
    files = _data_files(folder)
    if not files:
        if missing_ok:
            return empty_frame(table)
        raise FileNotFoundError(
            f"no {table} table under {folder}; ingest one first: `tenure ingest {table} FILE` "
            f"(or `tenure generate` then `tenure ingest --from-dir {settings.paths.raw_dir}`)"
        )
    frames = [pq.read_table(f).to_pandas() for f in files]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return conform(frame, table)


def read_customers(settings: Settings, missing_ok: bool = False) -> pd.DataFrame:
    """The stored customers.

    Parameters
    ----------
    settings: where the tables live (``settings.paths.tables_dir``).
    missing_ok: return an empty canonical frame instead of raising when nothing is stored.

    Returns
    -------
    DataFrame, one row per customer: canonical customer columns (ids str, ``signup_at``
    UTC), then any extra attribute columns stored with them.

    Raises
    ------
    FileNotFoundError: no customers were ingested (and ``missing_ok`` is False).
    """
    return _read_single(settings, "customers", missing_ok)


def customers_have_labels(settings: Settings) -> bool:
    """Whether the stored customers hold churn labels (a snapshot ingested with ``--label-column``).

    Reads only the ``churned`` column's null count, so it is cheap on large tables.
    """
    import pyarrow.parquet as pq

    for file in _data_files(table_path(settings, "customers")):
        if "churned" in pq.read_schema(file).names:
            column = pq.read_table(file, columns=["churned"]).column("churned")
            if column.null_count < len(column):
                return True
    return False


def read_items(settings: Settings, missing_ok: bool = False) -> pd.DataFrame:
    """The stored items: DataFrame, one row per item (canonical item columns, then extras).

    Raises
    ------
    FileNotFoundError: no items were ingested (and ``missing_ok`` is False).
    """
    return _read_single(settings, "items", missing_ok)


def _as_utc(value: object, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a time like 2026-03-01T00:00:00Z, got {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name} must be a time, got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _partition_date(folder: Path) -> pd.Timestamp | None:
    name = folder.name
    if not name.startswith("event_date="):
        return None
    try:
        return pd.Timestamp(name.split("=", 1)[1], tz="UTC")
    except ValueError:
        return None


def _event_files(settings: Settings, start: pd.Timestamp | None, end: pd.Timestamp | None) -> list[Path]:
    folder = table_path(settings, "events")
    if not folder.is_dir():
        return []
    files: list[Path] = []
    for part in sorted(folder.iterdir()):
        day = _partition_date(part)
        if day is None or not part.is_dir():
            continue
        if start is not None and day + pd.Timedelta(days=1) <= start:
            continue
        if end is not None and day > end:
            continue
        files.extend(sorted(p for p in part.glob("*.parquet") if not p.name.startswith(".")))
    return files


def latest_event_time(settings: Settings) -> pd.Timestamp | None:
    """The newest stored event's ``event_at`` (UTC), or None when no event is stored.

    Only ``event_at`` of the newest ``event_date`` partition that holds rows is read, not the table.
    """
    folder = table_path(settings, "events")
    if not folder.is_dir():
        return None
    days = sorted(day for part in folder.iterdir() if part.is_dir() and (day := _partition_date(part)) is not None)
    for day in reversed(days):
        times = read_events(settings, start=day, columns=["event_at"])["event_at"]
        if len(times):
            return pd.Timestamp(times.max())
    return None


def _events_arrow_schema():
    import pyarrow as pa

    return pa.schema([pa.field(c.name, _arrow_type(c)) for c in EVENTS.columns])


def read_events(
    settings: Settings,
    start: object | None = None,
    end: object | None = None,
    columns: Sequence[str] | None = None,
    missing_ok: bool = True,
    customer_ids: Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
) -> pd.DataFrame:
    """The stored events with ``start <= event_at <= end`` (both inclusive; None = open).

    Only the ``event_date`` partitions that can hold such events are read, and with
    ``customer_ids`` only those customers' rows are kept while scanning (memory follows the
    result, not the table).

    Parameters
    ----------
    settings: where the tables live.
    start, end: times (str, datetime or Timestamp); naive values are taken as UTC.
    columns: canonical columns to read (default: all). ``event_at`` is always included.
    missing_ok: when no events are stored, return an empty frame (default) rather than raise.
    customer_ids: only these customers' events (default: everyone's).
    event_types: only events of these types, kept while scanning (default: every type).

    Returns
    -------
    DataFrame, one row per event, sorted by ``event_at`` (stable), canonical dtypes.
    """
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    start_ts = _as_utc(start, "start") if start is not None else None
    end_ts = _as_utc(end, "end") if end is not None else None
    if start_ts is not None and end_ts is not None and end_ts < start_ts:
        raise ValueError(f"end ({end_ts}) is before start ({start_ts})")
    if columns is not None:
        unknown = [c for c in columns if c not in EVENTS.names]
        if unknown:
            raise ValueError(f"unknown event columns {unknown}; canonical columns are {list(EVENTS.names)}")
        columns = list(dict.fromkeys(["event_at", *columns]))
    files = _event_files(settings, start_ts, end_ts)
    if not files:
        if not missing_ok and not table_path(settings, "events").is_dir():
            raise FileNotFoundError(
                f"no events table under {table_path(settings, 'events')}; ingest events first: "
                "`tenure ingest events FILE`"
            )
        frame = empty_frame("events")
        return frame[columns] if columns is not None else frame
    dataset = ds.dataset([str(f) for f in files], schema=_events_arrow_schema(), format="parquet")
    flt = None
    if start_ts is not None:
        flt = pc.field("event_at") >= start_ts.to_pydatetime()
    if end_ts is not None:
        cond = pc.field("event_at") <= end_ts.to_pydatetime()
        flt = cond if flt is None else (flt & cond)
    if customer_ids is not None:
        cond = pc.field("customer_id").isin(sorted({str(c) for c in customer_ids}))
        flt = cond if flt is None else (flt & cond)
    if event_types is not None:
        cond = pc.field("event_type").isin(sorted({str(t) for t in event_types}))
        flt = cond if flt is None else (flt & cond)
    table = dataset.to_table(columns=columns, filter=flt)
    frame = table.to_pandas()
    if len(frame) > 1:
        # int64 nanoseconds: a tz-aware column's to_numpy() is an object array (seconds per million rows)
        times = frame["event_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        if not (times[1:] >= times[:-1]).all():
            frame = frame.iloc[np.argsort(times, kind="stable")].reset_index(drop=True)
    if columns is None:
        return conform(frame, "events")
    return frame


def stored_event_ids(settings: Settings):
    """Every stored ``event_id`` as a pyarrow string array (empty when nothing is stored)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = _event_files(settings, None, None)
    if not files:
        return pa.array([], type=pa.string())
    dataset = ds.dataset([str(f) for f in files], schema=_events_arrow_schema(), format="parquet")
    return dataset.to_table(columns=["event_id"]).column("event_id").combine_chunks()


def _upsert(settings: Settings, frame: pd.DataFrame, table: str) -> UpsertResult:
    spec = TABLES[table]
    new = conform(frame, table)
    if new[spec.key].duplicated().any():
        dup = new.loc[new[spec.key].duplicated(), spec.key].iloc[0]
        raise ValueError(f"{table} to store hold {spec.key} {dup!r} more than once; de-duplicate first")
    existing = _read_single(settings, table, missing_ok=True)
    if len(existing):
        known = new[spec.key].isin(existing[spec.key])
        updated = int(known.sum())
        kept = existing[~existing[spec.key].isin(new[spec.key])]
        combined = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        combined = conform(combined, table)
    else:
        updated = 0
        combined = new
    _atomic_replace(combined, table_path(settings, table) / f"{table}.parquet", table)
    logger.info("stored %s: %d inserted, %d updated (%d in total)", table, len(new) - updated, updated,
                len(combined))
    return UpsertResult(inserted=len(new) - updated, updated=updated)


def upsert_customers(settings: Settings, frame: pd.DataFrame) -> UpsertResult:
    """Insert or replace customers by ``customer_id`` (a stored row is replaced whole).

    Parameters
    ----------
    frame: valid canonical customers (DataFrame, one row per customer; validate with
        :mod:`features.contract` first when the data is untrusted).
    """
    return _upsert(settings, frame, "customers")


def upsert_items(settings: Settings, frame: pd.DataFrame) -> UpsertResult:
    """Insert or replace items by ``item_id`` (a stored row is replaced whole)."""
    return _upsert(settings, frame, "items")


class _IdSet:
    """A set of event ids for repeated membership tests: sorted 64-bit hashes + exact check.

    Building it hashes each id once (``pandas.util.hash_array``); a look-up is a
    ``searchsorted`` plus an exact string comparison of the hits (Arrow), so a hash collision
    never makes a new id look stored. Far cheaper than re-hashing millions of stored ids per
    chunk.
    """

    _BLOCK = 1_000_000

    def __init__(self) -> None:
        self._hashes: list[np.ndarray] = []
        self._ids: list = []  # Arrow string arrays, in the order of the matching hashes
        self.size = 0

    @staticmethod
    def _hash(ids: np.ndarray) -> np.ndarray:
        return pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False)

    def add(self, ids) -> None:
        """Add ids (Arrow string array or array of str)."""
        import pyarrow as pa

        arr = ids if isinstance(ids, pa.Array) else pa.array(np.asarray(ids, dtype=object), type=pa.string())
        for start in range(0, len(arr), self._BLOCK):
            block = arr.slice(start, self._BLOCK)
            h = self._hash(block.to_numpy(zero_copy_only=False))
            order = np.argsort(h, kind="stable")
            self._hashes.append(h[order])
            self._ids.append(block.take(pa.array(order)))
            self.size += len(block)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean array: which of ``ids`` (array of str) are in the set."""
        import pyarrow as pa
        import pyarrow.compute as pc

        ids = np.asarray(ids, dtype=object)
        out = np.zeros(len(ids), dtype=bool)
        if not self.size or not len(ids):
            return out
        h = self._hash(ids)
        for hashes, stored in zip(self._hashes, self._ids):
            pos = np.minimum(np.searchsorted(hashes, h), len(hashes) - 1)
            hit = np.flatnonzero((hashes[pos] == h) & ~out)
            if len(hit):
                same = pc.equal(stored.take(pa.array(pos[hit])), pa.array(ids[hit], type=pa.string()))
                out[hit[same.fill_null(False).to_numpy(zero_copy_only=False)]] = True
        return out


class EventWriter:
    """Appends events in several batches and commits them all at once (all or nothing).

    Each :meth:`add` skips events whose ``event_id`` is stored already (or was added earlier in
    this writer) and stages the rest as Parquet files in a hidden folder; :meth:`commit` moves
    every staged file into its ``event_date=`` partition and undoes the moves if one fails;
    :meth:`abort` drops the staged files. Readers never see staged files.
    """

    def __init__(self, settings: Settings, run_id: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.root = table_path(settings, "events")
        self.staging = self.root / f".staging-{self.run_id}"
        self._known: _IdSet | None = None  # ids stored before this writer, loaded lazily
        self._staged = _IdSet()  # ids staged by this writer
        self._files: list[tuple[Path, Path]] = []
        self._batches = 0
        self.written = 0
        self.skipped = 0

    def stored_mask(self, event_ids: np.ndarray) -> np.ndarray:
        """Boolean array: which of these ids were stored before this writer started."""
        return self._stored().contains(event_ids)

    def _stored(self) -> _IdSet:
        if self._known is None:
            self._known = _IdSet()
            self._known.add(stored_event_ids(self.settings))
        return self._known

    def add(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Stage valid canonical events; returns ``(staged, skipped_as_already_stored)``."""
        events = conform(frame, "events")
        if events.empty:
            return 0, 0
        if events["event_id"].duplicated().any():
            dup = events.loc[events["event_id"].duplicated(), "event_id"].iloc[0]
            raise ValueError(f"events to store hold event_id {dup!r} more than once; de-duplicate first")
        ids_np = events["event_id"].to_numpy(dtype=object)
        seen = self._stored().contains(ids_np) | self._staged.contains(ids_np)
        skipped = int(seen.sum())
        if skipped:
            events = events[~seen]
            ids_np = ids_np[~seen]
        self.skipped += skipped
        if events.empty:
            return 0, skipped
        self._staged.add(ids_np)
        self.staging.mkdir(parents=True, exist_ok=True)
        batch = self._batches
        self._batches += 1
        # one Arrow conversion, then one slice per day (rows sorted by day, stable)
        ns = events["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        day_no = ns // (86_400 * 10**9)
        order = np.argsort(day_no, kind="stable")
        events = events.iloc[order]
        day_no = day_no[order]
        import pyarrow as pa

        arrow = pa.Table.from_pandas(events, schema=_events_arrow_schema(), preserve_index=False)
        starts = np.flatnonzero(np.r_[True, day_no[1:] != day_no[:-1]])
        ends = np.r_[starts[1:], len(day_no)]
        name = f"part-{self.run_id}-{batch:04d}.parquet"
        for lo, hi in zip(starts, ends):
            date = pd.Timestamp(int(day_no[lo]) * 86_400 * 10**9, tz="UTC").strftime("%Y-%m-%d")
            src = self.staging / f"event_date={date}__{name}"
            _write_parquet(arrow.slice(int(lo), int(hi - lo)), src, "events")
            self._files.append((src, self.root / f"event_date={date}" / name))
        self.written += len(events)
        return len(events), skipped

    @property
    def staged_files(self) -> list[tuple[Path, Path]]:
        """``(staged file, its place in the table)`` of everything added and not yet committed."""
        return list(self._files)

    def commit(self) -> AppendResult:
        """Move every staged file into place; on failure undo the moves made and re-raise."""
        moved: list[Path] = []
        try:
            for src, dst in self._files:
                dst.parent.mkdir(parents=True, exist_ok=True)
                if dst.exists():
                    raise FileExistsError(f"{dst} exists already; run ids must be unique")
                os.replace(src, dst)
                moved.append(dst)
        except BaseException:
            for dst in moved:
                dst.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
        partitions = len({dst.parent for dst in moved})
        logger.info("stored %d events in %d partitions (%d already stored, skipped)",
                    self.written, partitions, self.skipped)
        result = AppendResult(written=self.written, skipped_duplicates=self.skipped, partitions=partitions)
        self._files = []
        return result

    def abort(self) -> None:
        """Drop everything staged; the tables stay as they were."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self._files = []


def append_events(settings: Settings, frame: pd.DataFrame, run_id: str | None = None) -> AppendResult:
    """Append events whose ``event_id`` is not stored yet, partitioned by ``event_date`` (UTC).

    Parameters
    ----------
    frame: valid canonical events (DataFrame, one row per event, unique ``event_id``).
    run_id: names the part files (``part-<run_id>-0000.parquet``); random when None.

    Returns
    -------
    AppendResult with rows written and rows skipped because their event_id was already stored.
    """
    writer = EventWriter(settings, run_id)
    try:
        writer.add(frame)
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def compact_events(settings: Settings, dates: Iterable[str] | None = None) -> int:
    """Merge each partition's part files into one (atomically); returns partitions compacted.

    Frequent small ingests (the service's event log) leave many small files; compaction
    keeps reads fast. Safe to run at any time the tables are not being written.
    """
    import pyarrow.parquet as pq

    root = table_path(settings, "events")
    wanted = set(dates) if dates is not None else None
    done = 0
    for part in sorted(root.glob("event_date=*")):
        if wanted is not None and part.name.split("=", 1)[1] not in wanted:
            continue
        files = sorted(p for p in part.glob("*.parquet") if not p.name.startswith("."))
        if len(files) < 2:
            continue
        frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        frame = frame.sort_values("event_at", kind="stable")
        target = part / f"part-compact-{uuid.uuid4().hex[:12]}.parquet"
        _atomic_replace(conform(frame, "events"), target, "events")
        for f in files:
            f.unlink()
        done += 1
    return done
