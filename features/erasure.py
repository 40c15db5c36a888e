"""Erasure in the data room's stores: canonical tables, feature tables, and tabular files of the workspace.

Each function takes customer ids and either counts what is held on them (``count_*``: the
verification and the receipt's "found") or removes it (``forget_*``). A file that holds one of
the ids is rewritten without those rows to a temporary file, fsynced and renamed over the old
one, so a reader sees the old file or the new one, never half of one; a file without them is not
touched. Parquet files are checked by reading their ``customer_id`` column (compressed pages
hide ids from a byte search); CSV and JSON-lines files by a byte search first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from tenure.erase import blank_json_lines, byte_hits, count_json_lines, files_under
from tenure.files import fsync_path

logger = logging.getLogger(__name__)

TABULAR_SUFFIXES = (".parquet", ".csv", ".jsonl")
DOCUMENT_SUFFIXES = (".json", ".html", ".txt", ".md")
"""Reports and summaries: a JSON document loses the records (objects) that name the person; a text
or HTML page has each mention replaced by ``(erased)``."""
ID_COLUMN = "customer_id"


def _ids(customer_ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(str(c) for c in customer_ids))


def _parquet_hits(path: Path, ids: list[str], column: str) -> dict[str, int]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if column not in pq.read_schema(path).names:
        return {}
    values = pq.read_table(path, columns=[column])[column]
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        values = pc.cast(values, pa.string())
    held = values.filter(pc.is_in(values, value_set=pa.array(ids, pa.string())))
    if not len(held):
        return {}
    counts = pc.value_counts(held).to_pylist()
    return {c["values"]: int(c["counts"]) for c in counts}


def _csv_table(path: Path):
    """A CSV file with every column read as text (ids stay as written)."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        names = next(csv.reader(handle), [])
    types = {name: pa.string() for name in names}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False))


def count_in_file(path: Path, customer_ids: Iterable[str], column: str = ID_COLUMN) -> dict[str, int]:
    """Rows per customer id held in one tabular file (Parquet: ``column``; CSV: ``column`` or any cell;
    JSON lines: any string value); only ids with rows."""
    path, ids = Path(path), _ids(customer_ids)
    if not ids or not path.is_file():
        return {}
    if path.suffix == ".parquet":
        return _parquet_hits(path, ids, column)
    if path.suffix == ".jsonl":
        return count_json_lines(path, ids)
    if path.suffix == ".csv" or path.suffix in DOCUMENT_SUFFIXES:
        return byte_hits([path], ids).get(str(path), {})
    return {}


def forget_in_file(path: Path, customer_ids: Iterable[str], column: str = ID_COLUMN) -> int:
    """Remove the rows of these customers from one tabular file, atomically; returns rows removed.

    Parquet: rows whose ``column`` holds an id; CSV: rows with an id in any cell (a rejects file
    keeps the id under ``value``); JSON lines: blanked in place (:func:`tenure.erase.blank_json_lines`).
    """
    path, ids = Path(path), _ids(customer_ids)
    if not ids or not path.is_file() or (path.suffix != ".parquet" and not count_in_file(path, ids, column)):
        return 0  # (a Parquet file is read once below, and left alone without a hit)
    if path.suffix == ".jsonl":
        return blank_json_lines(path, ids)
    if path.suffix in DOCUMENT_SUFFIXES:
        return _scrub_document(path, ids)
    import pyarrow as pa
    import pyarrow.compute as pc

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if column not in pq.read_schema(path).names:
            return 0
        table = pq.read_table(path)
        values = table[column] if pa.types.is_string(table[column].type) else pc.cast(table[column], pa.string())
        erased = pc.is_in(values, value_set=pa.array(ids, pa.string()))
    else:  # csv
        table = _csv_table(path)
        erased = None
        for name in table.column_names:
            hit = pc.is_in(table[name], value_set=pa.array(ids, pa.string()))
            erased = hit if erased is None else pc.or_(erased, hit)
    n = int(pc.sum(erased).as_py() or 0)
    if not n:
        return 0
    kept = table.filter(pc.invert(erased))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.erasing")
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            pq.write_table(kept, tmp)
        else:
            import pyarrow.csv as pacsv

            pacsv.write_csv(kept, tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def _scrub_document(path: Path, ids: list[str]) -> int:
    """A JSON document without the objects that name an id (a bare id string becomes ``(erased)``); other
    text with each whole-token mention replaced. Written atomically; returns mentions removed."""
    import json
    import re

    text = path.read_text(encoding="utf-8", errors="replace")
    wanted = set(ids)
    removed = 0
    if path.suffix == ".json":
        def names(value) -> bool:
            return isinstance(value, dict) and any(isinstance(v, str) and v in wanted for v in value.values())

        def scrub(value):
            nonlocal removed
            if isinstance(value, dict):  # a record in a list that names the person is dropped (below)
                return {k: scrub(v) for k, v in value.items() if k not in wanted}
            if isinstance(value, list):
                removed += sum(names(v) for v in value)
                return [scrub(v) for v in value if not names(v)]
            if isinstance(value, str) and value in wanted:
                removed += 1
                return "(erased)"
            return value
        try:
            new = json.dumps(scrub(json.loads(text)), indent=2)
        except ValueError:
            new = None
        if new is not None and not byte_hits_text(new, ids):
            return _write_text(path, new, removed)
    pattern = re.compile(r"(?<![A-Za-z0-9_.\-])(" + "|".join(map(re.escape, sorted(ids, key=len, reverse=True)))
                         + r")(?![A-Za-z0-9_.\-])")
    new, n = pattern.subn("(erased)", text)
    return _write_text(path, new, removed + n) if n else removed


def byte_hits_text(text: str, ids: list[str]) -> bool:
    """Whether ``text`` still names one of ``ids`` as a whole token."""
    import re

    return any(re.search(r"(?<![A-Za-z0-9_.\-])" + re.escape(i) + r"(?![A-Za-z0-9_.\-])", text) for i in ids)


def _write_text(path: Path, text: str, removed: int) -> int:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.erasing")
    try:
        tmp.write_text(text, encoding="utf-8")
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return removed


def _documents(files: Iterable[Path]) -> list[Path]:
    """Tabular files and report documents (JSON, HTML, text)."""
    return [f for f in files if f.suffix in TABULAR_SUFFIXES + DOCUMENT_SUFFIXES and not f.name.startswith(".")]


def _tabular(files: Iterable[Path]) -> list[Path]:
    return [f for f in files if f.suffix in TABULAR_SUFFIXES and not f.name.startswith(".")]


def table_files(settings) -> list[Path]:
    """The canonical tables' files (customers, events partitions; items hold no customer)."""
    root = Path(settings.paths.tables_dir)
    return _tabular(files_under(root / "customers", root / "events"))


def feature_files(settings) -> list[Path]:
    """The batch feature tables (Feast's offline store) and anything else under ``features_dir``."""
    return _tabular(files_under(settings.paths.features_dir))


def input_files(settings) -> list[Path]:
    """Files the workspace received or produced around ingestion: ``raw/`` and ``rejects/``."""
    return _tabular(files_under(settings.paths.raw_dir, settings.paths.rejects_dir))


def count_files(files: Iterable[Path], customer_ids: Iterable[str]) -> dict[str, int]:
    """Rows held per customer id across ``files`` (only ids with rows)."""
    ids, total = _ids(customer_ids), {}
    for path in files:
        for cid, n in count_in_file(path, ids).items():
            total[cid] = total.get(cid, 0) + n
    return total


def forget_files(files: Iterable[Path], customer_ids: Iterable[str], threads: int = 4) -> int:
    """Remove these customers' rows from every file of ``files`` (``threads`` files at a time: Arrow
    reads and writes without holding the GIL); returns rows removed."""
    from concurrent.futures import ThreadPoolExecutor

    ids = _ids(customer_ids)
    files = list(files)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(files) or 1))) as pool:
        counts = list(pool.map(lambda path: forget_in_file(path, ids), files))
    for path, n in zip(files, counts):
        if n:
            logger.info("erased %d row(s) from %s", n, path)
    return sum(counts)
