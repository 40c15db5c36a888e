"""Ingestion: read customer/item/event files (CSV, Parquet, JSON lines), validate, store, report.

Good rows are stored (customers and items upserted by id, events appended unless their
``event_id`` is stored already); bad rows go to one rejects CSV per run under
``settings.paths.rejects_dir``. Event files are read in chunks and committed once per run
(all or nothing), so memory stays flat and a failure half-way leaves the tables unchanged.
"""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from tenure.features.contract import REJECT_COLUMNS, TimeBounds, ValidationResult, validate_frame
from tenure.features.schema import TABLES
from tenure.settings import Settings

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".parquet", ".pq", ".jsonl", ".ndjson")
CHUNK_ROWS: int = 250_000
"""Rows validated at a time (events); bounds the memory of one ingestion."""

Progress = Callable[[int], None]


@dataclass
class FileReport:
    """What happened to one input (file or in-memory source)."""

    table: str
    source: str
    rows_read: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped_duplicates: int = 0
    inserted: int = 0
    updated: int = 0
    seconds: float = 0.0
    file_error: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    attribute_types: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Customers: ``{extra column: (type, reason)}`` as stored (see :mod:`features.attributes`)."""
    quality: dict | None = None
    """Events: the batch's data-quality report (:mod:`features.quality`), when checked."""
    quarantined: str | None = None
    """Events: the quarantine batch id when the batch was held back (``tenure data accept BATCH``)."""
    skipped_erased: int = 0
    """Rows of erased customers (tombstones, :mod:`features.tombstones`) left out before validation."""

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class IngestReport:
    """Outcome of one ingestion run (one or more files)."""

    run_id: str
    files: list[FileReport] = field(default_factory=list)
    rejects_path: Path | None = None
    rows_read: int = 0
    accepted: int = 0
    rejected_rows: int = 0
    skipped_duplicates: int = 0

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def ok(self) -> bool:
        """True when no row was rejected."""
        return self.rejected == 0 and not any(f.file_error for f in self.files)

    def reasons(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for f in self.files:
            for k, v in f.reasons.items():
                total[k] = total.get(k, 0) + v
        return dict(sorted(total.items(), key=lambda kv: -kv[1]))


class IngestRun:
    """One ingestion run: shares a run id and one rejects file across its inputs.

    Use as a context manager, or call :meth:`finish` at the end; the rejects file is written
    (atomically) only when there were rejects.
    """

    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.progress = progress
        self.report = IngestReport(run_id=time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6])
        self._rejects: list[pd.DataFrame] = []
        from tenure.features.tombstones import Tombstones

        self._tombstones = Tombstones.from_settings(settings)  # erased customers: skipped on re-ingestion

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    # -------------------------------------------------------------- inputs
    def ingest_file(self, table: str, path: Path | str, label_column: str | None = None) -> FileReport:
        """Validate and store one file of ``table`` (customers, items or events)."""
        path = Path(path)
        _check_table(table)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (or is not a file)")
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use one of {list(SUPPORTED_SUFFIXES)}")
        try:
            if path.stat().st_size == 0:
                raise FileUnreadable("the file is empty (0 bytes): expected a header row or data")
            if table == "events":
                return self._ingest_events(_read_chunks(path, CHUNK_ROWS), str(path))
            chunks = list(_read_chunks(path, CHUNK_ROWS))
        except FileUnreadable as exc:
            return self._unreadable(table, path, str(exc))
        frames = [c.frame for c in chunks if len(c.rows)] or [c.frame for c in chunks[:1]]  # header only: no rows
        raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rows = np.concatenate([c.rows for c in chunks]) if chunks else np.zeros(0, dtype=np.int64)
        malformed = [m for c in chunks for m in c.malformed]
        return self.ingest_frame(table, raw, str(path), rows=rows, label_column=label_column,
                                 malformed=malformed)

    def _unreadable(self, table: str, path: Path, reason: str) -> FileReport:
        """Record a file that could not be read at all: one rejects entry naming it, nothing stored."""
        logger.error("%s: %s", path, reason)
        report = FileReport(table=table, source=str(path), file_error=reason, reasons={"unreadable file": 1})
        self._rejects.append(pd.DataFrame({"file": [str(path)], "row": pd.array([pd.NA], dtype="Int64"),
                                           "column": [""], "value": [""], "reason": [f"unreadable file: {reason}"]}))
        self.report.files.append(report)
        return report

    def ingest_frame(self, table: str, raw: pd.DataFrame, source: str, rows: np.ndarray | None = None,
                     label_column: str | None = None, apply_mapping: bool = True,
                     malformed: list[tuple[int, str, str]] | None = None) -> FileReport:
        """Validate and store rows already in memory (adapters, tests)."""
        _check_table(table)
        rows = np.arange(1, len(raw) + 1, dtype=np.int64) if rows is None else rows
        if table == "events":
            return self._ingest_events(iter([_Chunk(raw, rows, malformed or [])]), source,
                                       apply_mapping=apply_mapping)
        from tenure.features import tables

        started = time.perf_counter()
        mapping = self._mapping(table) if apply_mapping else None
        from tenure.features.tombstones import drop_tombstoned

        raw, rows, erased = drop_tombstoned(raw, rows, self._tombstones, mapping) if table == "customers" else (raw, rows, 0)
        types = self._attribute_types(raw, mapping, label_column) if table == "customers" else {}
        result = validate_frame(raw, table, source, rows=rows, label_column=label_column, mapping=mapping,
                                attribute_types={c: k for c, (k, _) in types.items()},
                                defaults=self.settings.data.column_defaults.get(table),
                                snapshot=table == "customers" and label_column is None
                                and tables.customers_have_labels(self.settings))
        report = self._report_from(result)
        report.attribute_types = types
        report.skipped_erased, report.rows_read = erased, report.rows_read + erased
        extra: list[pd.DataFrame] = []
        self._count_malformed(_Chunk(raw, rows, malformed or []), source, report, extra)
        self._rejects.extend(extra)
        if result.file_error is None and len(result.valid):
            upsert = tables.upsert_customers if table == "customers" else tables.upsert_items
            res = upsert(self.settings, result.valid)
            report.inserted, report.updated = res.inserted, res.updated
            if types:
                from tenure.features.attributes import write_attribute_types

                overridden = self.settings.data.attribute_types
                write_attribute_types(self.settings, {c: k for c, (k, _) in types.items() if c not in overridden})
        report.seconds = time.perf_counter() - started
        self._keep(result, report)
        if self.progress:
            self.progress(result.rows_read)
        return report

    def ingest_dir(self, directory: Path | str) -> list[FileReport]:
        """Ingest ``customers.*``, then ``items.*``, then ``events*.*`` files of a folder."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a folder")
        found = {t: _files_for(directory, t) for t in ("customers", "items", "events")}
        if not any(found.values()):
            raise FileNotFoundError(
                f"{directory} holds no customers.*, items.* or events*.* file "
                f"({', '.join(SUPPORTED_SUFFIXES)}); run `tenure generate` or point --from-dir elsewhere"
            )
        out = []
        for table in ("customers", "items", "events"):
            for f in found[table]:
                out.append(self.ingest_file(table, f))
        return out

    def ingest_event_log(self) -> list[FileReport]:
        """Ingest every ``*.jsonl`` of ``settings.paths.event_log_dir`` (already stored ids are skipped)."""
        folder = Path(self.settings.paths.event_log_dir)
        files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        if not files:
            logger.info("no event log files under %s", folder)
        return [self.ingest_file("events", f) for f in files]

    # -------------------------------------------------------------- events
    def _ingest_events(self, chunks: Iterator[_Chunk], source: str, apply_mapping: bool = True) -> FileReport:
        from tenure.features import tables

        started = time.perf_counter()
        report = FileReport(table="events", source=source)
        known_c = pd.Index(tables.read_customers(self.settings, missing_ok=True)["customer_id"].to_numpy(dtype=object))
        known_i = pd.Index(tables.read_items(self.settings, missing_ok=True)["item_id"].to_numpy(dtype=object))
        writer = tables.EventWriter(self.settings)
        seen: dict = {}
        rejects: list[pd.DataFrame] = []
        try:
            for chunk in chunks:
                self._count_malformed(chunk, source, report, rejects)
                if chunk.frame.empty and not len(chunk.rows):
                    continue
                frame, rows, skipped = _drop_stored(chunk.frame, chunk.rows, writer,
                                                    self._mapping("events") if apply_mapping else None)
                report.skipped_duplicates += skipped
                report.rows_read += skipped
                from tenure.features.tombstones import drop_tombstoned

                frame, rows, erased = drop_tombstoned(frame, rows, self._tombstones,
                                                      self._mapping("events") if apply_mapping else None)
                report.skipped_erased += erased
                report.rows_read += erased
                result = validate_frame(frame, "events", source, rows=rows, known_customers=known_c,
                                        known_items=known_i,
                                        mapping=self._mapping("events") if apply_mapping else None,
                                        defaults=self.settings.data.column_defaults.get("events"),
                                        time_bounds=TimeBounds.from_settings(self.settings))
                if result.file_error is not None:
                    rejects.append(result.rejects)
                    # the whole file is refused: count its remaining rows, store nothing
                    writer.abort()
                    report.file_error = result.file_error
                    report.rows_read += result.rows_read + sum(len(c.rows) for c in chunks)
                    report.rejected = report.rows_read
                    report.accepted = report.skipped_duplicates = 0
                    for k, v in result.reasons.items():
                        report.reasons[k] = report.reasons.get(k, 0) + v
                    break
                result = _reject_cross_chunk_duplicates(result, seen)
                rejects.append(result.rejects)
                report.rows_read += result.rows_read
                report.rejected += result.rejected_rows
                for k, v in result.reasons.items():
                    report.reasons[k] = report.reasons.get(k, 0) + v
                written, skipped = writer.add(result.valid)
                report.accepted += written
                report.skipped_duplicates += skipped
                if self.progress:
                    self.progress(result.rows_read)
            else:
                from tenure.features.quarantine import hold_if_broken

                if not hold_if_broken(self.settings, writer, report, f"{self.report.run_id}-{len(self.report.files)}"):
                    writer.commit()
        except BaseException:
            writer.abort()
            raise
        self._rejects.extend(rejects)
        report.inserted = 0 if report.quarantined else report.accepted
        report.seconds = time.perf_counter() - started
        self.report.files.append(report)
        return report

    def _count_malformed(self, chunk: _Chunk, source: str, report: FileReport, rejects: list[pd.DataFrame]) -> None:
        if chunk.malformed:
            rejects.append(_malformed_rejects(source, chunk.malformed))
            report.rows_read += len(chunk.malformed)
            report.rejected += len(chunk.malformed)
            for _, reason, _text in chunk.malformed:
                key = reason.split(":", 1)[0]
                report.reasons[key] = report.reasons.get(key, 0) + 1

    # -------------------------------------------------------------- helpers
    def _attribute_types(self, raw: pd.DataFrame, mapping: dict[str, str] | None,
                         label_column: str | None) -> dict[str, tuple[str, str]]:
        """``{extra column: (type, reason)}`` of a customers frame: settings' overrides, then the
        types stored by earlier ingests, then inference from these rows."""
        from tenure.features.attributes import infer_attribute_types, types_path
        from tenure.features.contract import apply_mapping
        from tenure.features.schema import CUSTOMERS

        frame = apply_mapping(raw, mapping)
        extras = [c for c in frame.columns if c not in CUSTOMERS.names and c != label_column]
        if not extras:
            return {}
        path = types_path(self.settings)
        known = json.loads(path.read_text()) if path.is_file() else {}
        data = self.settings.data
        return infer_attribute_types(frame, extras, overrides=data.attribute_types, known=known,
                                     max_levels=data.max_category_levels)

    def _mapping(self, table: str) -> dict[str, str]:
        return dict(getattr(self.settings.columns, table))

    def _report_from(self, result: ValidationResult) -> FileReport:
        return FileReport(table=result.table, source=result.source, rows_read=result.rows_read,
                          accepted=len(result.valid) if result.file_error is None else 0,
                          rejected=result.rejected_rows, file_error=result.file_error,
                          reasons=dict(result.reasons))

    def _keep(self, result: ValidationResult, report: FileReport) -> None:
        self._rejects.append(result.rejects)
        self.report.files.append(report)

    def finish(self) -> IngestReport:
        """Write the rejects file (if any rejects), total the counts and return the report."""
        files = self.report.files
        self.report.rows_read = sum(f.rows_read for f in files)
        self.report.accepted = sum(f.accepted for f in files)
        self.report.rejected_rows = sum(f.rejected for f in files)
        self.report.skipped_duplicates = sum(f.skipped_duplicates for f in files)
        frames = [r for r in self._rejects if len(r)]
        if frames and self.report.rejects_path is None:
            rejects = pd.concat(frames, ignore_index=True)[list(REJECT_COLUMNS)]
            folder = Path(self.settings.paths.rejects_dir)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"rejects-{self.report.run_id}.csv"
            tmp = folder / f".{path.name}.tmp"
            rejects.to_csv(tmp, index=False)
            tmp.replace(path)
            self.report.rejects_path = path
            logger.warning("%d problems in %d rows rejected; see %s", len(rejects), self.report.rejected, path)
        return self.report


def _check_table(table: str) -> None:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; expected one of {sorted(TABLES)}")


def _files_for(directory: Path, table: str) -> list[Path]:
    pattern = f"{table}*" if table == "events" else f"{table}.*"
    return sorted(p for p in directory.glob(pattern) if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def _drop_stored(frame: pd.DataFrame, rows: np.ndarray, writer, mapping: dict | None
                 ) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Leave out rows whose event_id is stored already (they would be skipped anyway), before
    validating: re-ingesting a file or a growing event log then costs a hash look-up per row."""
    source_name = next((src for src, dst in (mapping or {}).items() if dst == "event_id"), "event_id")
    if source_name not in frame.columns or frame.empty:
        return frame, rows, 0
    ids = frame[source_name]
    if ids.dtype != object or pd.api.types.infer_dtype(ids, skipna=True) != "string":
        return frame, rows, 0  # unusual ids: validation turns them into strings first
    stored = writer.stored_mask(ids.to_numpy(dtype=object))
    n = int(stored.sum())
    if not n:
        return frame, rows, 0
    keep = ~stored
    return frame[keep].reset_index(drop=True), rows[keep], n


def _reject_cross_chunk_duplicates(result: ValidationResult, seen: dict) -> ValidationResult:
    """Duplicates of ``event_id`` across chunks of one file: later rows are rejected like in-chunk ones.

    ``seen`` holds the accepted ids of earlier chunks (an id set for the membership test, plus
    the ids and row numbers, looked up only when a duplicate turns up).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from tenure.features.tables import _IdSet

    if not seen:
        seen.update(set=_IdSet(), ids=[], rows=[])
    valid = result.valid
    ids = valid["event_id"].to_numpy(dtype=object)
    rows = result.valid_rows
    dup = seen["set"].contains(ids)
    if dup.any():
        dup_ids = ids[dup]
        known = pa.concat_arrays(seen["ids"])
        pos = pc.index_in(pa.array(dup_ids, type=pa.string()), value_set=known).to_numpy(zero_copy_only=False)
        first = np.concatenate(seen["rows"])[pos.astype(np.int64)]
        rej = pd.DataFrame({
            "file": result.source,
            "row": pd.array(rows[dup], dtype="Int64"),
            "column": "event_id",
            "value": dup_ids,
            "reason": [f"duplicate event_id in file (first at row {r})" for r in first],
        })
        key = "duplicate event_id in file"
        result.rejects = pd.concat([result.rejects, rej], ignore_index=True)
        result.rejected_rows += int(dup.sum())
        result.reasons[key] = result.reasons.get(key, 0) + int(dup.sum())
        result.valid = valid[~dup].reset_index(drop=True)
        result.valid_rows = rows[~dup]
        ids, rows = ids[~dup], rows[~dup]
    arrow_ids = pa.array(ids, type=pa.string())
    seen["set"].add(arrow_ids)
    seen["ids"].append(arrow_ids)
    seen["rows"].append(rows)
    return result


# ------------------------------------------------------------------ readers

@dataclass
class _Chunk:
    """Raw rows of a file with their 1-based data row numbers, and rows that could not be split."""

    frame: pd.DataFrame
    rows: np.ndarray
    malformed: list[tuple[int, str, str]] = field(default_factory=list)  # (row, reason, raw text)


class FileUnreadable(ValueError):
    """A file that cannot be read as its type says (empty, truncated, corrupt, not UTF-8)."""


def _read_chunks(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    """Yield chunks of a CSV, Parquet or JSON-lines file.

    Raises
    ------
    FileUnreadable
        When the file itself cannot be read (a reader's error, with its message, at any chunk).
    """
    import csv

    import pyarrow as pa

    suffix = path.suffix.lower()
    reader = _read_csv if suffix == ".csv" else _read_parquet if suffix in (".parquet", ".pq") else _read_jsonl
    produced = False
    try:
        for chunk in reader(path, chunk_rows):
            produced = True
            yield chunk
    except (pa.ArrowException, OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        where = "after the first rows" if produced else "from the start"
        raise FileUnreadable(f"cannot read it as {suffix.lstrip('.')} {where}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None



def _read_csv(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    """CSV, every value read as a string (typing is validation's job); empty = missing."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise FileUnreadable("no header row: the CSV file has no columns")
    bad: list[tuple[int, str, str]] = []

    def on_invalid(row) -> str:
        bad.append((int(row.number or 1) - 1,
                    f"malformed CSV row: expected {row.expected_columns} fields, got {row.actual_columns}",
                    (row.text or "")[:200]))
        return "skip"

    reader = pcsv.open_csv(
        path,
        read_options=pcsv.ReadOptions(use_threads=False, block_size=32 << 20, encoding="utf8",
                                      column_names=None),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                            strings_can_be_null=True, quoted_strings_can_be_null=True,
                                            null_values=[""]),
    )
    position = 0
    reported = 0
    for batch in reader:
        frame = batch.to_pandas()
        n = len(frame)
        rows = _shift_rows(np.arange(position + 1, position + n + 1, dtype=np.int64),
                           np.array(sorted(b[0] for b in bad), dtype=np.int64))
        position += n
        new_bad, reported = bad[reported:], len(bad)
        for i in range(0, max(n, 1), chunk_rows):
            yield _Chunk(frame.iloc[i:i + chunk_rows].reset_index(drop=True), rows[i:i + chunk_rows],
                         new_bad if i == 0 else [])
    if len(bad) > reported or position == 0:  # malformed rows at the end, or a header without rows
        yield _Chunk(pd.DataFrame(columns=header), np.zeros(0, dtype=np.int64), bad[reported:])


def _shift_rows(positions: np.ndarray, malformed: np.ndarray) -> np.ndarray:
    """Turn positions among well-formed rows into data row numbers, stepping over malformed rows."""
    if len(malformed) == 0:
        return positions
    out = positions.copy()
    for r in np.sort(malformed):
        out[out >= r] += 1
    return out


def _read_parquet(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    position = 0
    for batch in pf.iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        n = len(frame)
        yield _Chunk(frame, np.arange(position + 1, position + n + 1, dtype=np.int64))
        position += n


def _read_jsonl(path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    """JSON lines; blank lines are skipped, a line that is not a JSON object is rejected."""
    with open(path, encoding="utf-8") as fh:
        batch: list[str] = []
        numbers: list[int] = []
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            batch.append(line if line.endswith("\n") else line + "\n")
            numbers.append(lineno)
            if len(batch) >= chunk_rows:
                yield _parse_jsonl_batch(batch, numbers)
                batch, numbers = [], []
        if batch:
            yield _parse_jsonl_batch(batch, numbers)


def _parse_jsonl_batch(lines: list[str], numbers: list[int]) -> _Chunk:
    try:
        frame = pd.read_json(io.StringIO("".join(lines)), lines=True, dtype=False, convert_dates=False,
                             convert_axes=False)
        if len(frame) == len(lines):
            return _Chunk(frame, np.asarray(numbers, dtype=np.int64))
    except ValueError:
        pass
    # slow path, only for a batch with a broken line: find the lines that are not JSON objects
    records, good, malformed = [], [], []
    for text, no in zip(lines, numbers):
        try:
            obj = json.loads(text.strip())
        except json.JSONDecodeError as exc:
            malformed.append((no, f"invalid JSON: {exc.msg}", text.strip()[:200]))
            continue
        if not isinstance(obj, dict):
            malformed.append((no, "invalid JSON: a line must hold one JSON object", text.strip()[:200]))
            continue
        records.append(obj)
        good.append(no)
    return _Chunk(pd.DataFrame.from_records(records), np.asarray(good, dtype=np.int64), malformed)


def _malformed_rejects(source: str, malformed: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({
        "file": source,
        "row": pd.array([m[0] for m in malformed], dtype="Int64"),
        "column": "",
        "value": [m[2] for m in malformed],
        "reason": [m[1] for m in malformed],
    })


# ------------------------------------------------------------------ convenience

def ingest(settings: Settings, source: Path | str, progress: Progress | None = None) -> IngestReport:
    """Ingest a folder (``customers.*``, ``items.*``, ``events*.*``, e.g. ``raw_dir`` or the
    service's ``event_log_dir``) or one events file, in one run.

    Returns
    -------
    IngestReport (the rejects file, if any, is written under ``settings.paths.rejects_dir``).
    """
    source = Path(source)
    with IngestRun(settings, progress) as run:
        if source.is_dir():
            run.ingest_dir(source)
        else:
            run.ingest_file("events", source)
    return run.report


def ingest_files(settings: Settings, inputs: list[tuple[str, Path]], progress: Progress | None = None,
                 label_column: str | None = None) -> IngestReport:
    """Ingest ``(table, path)`` pairs in order in one run; returns the report (rejects file written)."""
    with IngestRun(settings, progress) as run:
        for table, path in inputs:
            run.ingest_file(table, path, label_column=label_column)
    return run.report


def ingest_shop_frames(settings: Settings, source: str, customers: pd.DataFrame | None = None,
                       items: pd.DataFrame | None = None, events: pd.DataFrame | None = None,
                       progress: Progress | None = None) -> IngestReport:
    """Validate and store canonical frames (e.g. from an adapter) in one run, customers first."""
    with IngestRun(settings, progress) as run:
        for table, frame in (("customers", customers), ("items", items), ("events", events)):
            if frame is not None:
                run.ingest_frame(table, frame, f"{source}:{table}", apply_mapping=False)
    return run.report
