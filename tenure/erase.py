"""Small shared helpers of erasure (every room's ``forget`` uses them on its own files).

- :func:`blank_json_lines` erases records from an append-only JSON-lines file *in place*: each
  matching line is overwritten by spaces of the same length. Byte offsets stay valid (the event
  log's index and the feature updater's checkpoint point into these files), a writer appending
  at the end meanwhile loses nothing, and every reader already skips blank lines.
- :func:`byte_hits` searches files for raw ids as whole tokens (the verification's last check).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def _token_pattern(ids: Iterable[str]) -> re.Pattern[bytes] | None:
    """Bytes regex matching any id as a whole token (not inside a longer id)."""
    parts = sorted({re.escape(str(i).encode()) for i in ids if str(i)}, key=len, reverse=True)
    if not parts:
        return None
    return re.compile(rb"(?<![A-Za-z0-9_])(" + b"|".join(parts) + rb")(?![A-Za-z0-9_])")  # grep -w's boundaries


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _matching_lines(data: bytes, ids: set[str], pattern: re.Pattern[bytes]) -> Iterator[tuple[int, int, str, Any]]:
    """``(offset, length without the newline, matched id, record)`` of each JSON line holding one of ``ids``."""
    offset = 0
    for line in data.splitlines(keepends=True):
        body = line.rstrip(b"\r\n")
        if pattern.search(body):
            try:
                record = json.loads(body)
            except ValueError:
                record = None
            hit = next((s for s in _strings(record) if s in ids), None) if record is not None else None
            if hit is not None:
                yield offset, len(body), hit, record
        offset += len(line)


def count_json_lines(path: Path, ids: Iterable[str]) -> dict[str, int]:
    """Lines of a JSON-lines file per id that holds the id as a string value (only ids with lines)."""
    ids = {str(i) for i in ids}
    pattern = _token_pattern(ids)
    path = Path(path)
    if pattern is None or not path.is_file():
        return {}
    counts: dict[str, int] = {}
    for _, _, hit, _ in _matching_lines(path.read_bytes(), ids, pattern):
        counts[hit] = counts.get(hit, 0) + 1
    return counts


def blank_json_lines(path: Path, ids: Iterable[str], removed: list | None = None) -> int:
    """Overwrite, in place, every line of a JSON-lines file that holds one of ``ids`` as a string value.

    Only whole lines present when the call starts are touched; the file keeps its length and
    inode, and is fsynced. Returns how many lines were blanked; ``removed`` (a list) receives
    the blanked records (e.g. to drop their event ids from an index).
    """
    ids = {str(i) for i in ids}
    pattern = _token_pattern(ids)
    path = Path(path)
    if pattern is None or not path.is_file():
        return 0
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]  # a line still being written is left alone
    matches = list(_matching_lines(data, ids, pattern))
    spans = [(offset, length) for offset, length, _, _ in matches]
    if removed is not None:
        removed.extend(record for _, _, _, record in matches)
    if not spans:
        return 0
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, length in spans:
            os.pwrite(fd, b" " * length, offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(spans)


def byte_hits(paths: Iterable[Path], ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Raw-byte search: ``{file: {id: hits}}`` for files holding an id as a whole word (only files with hits).

    Uses GNU/BSD ``grep -a -o -w -F`` (Aho-Corasick: gigabytes a second) when it is installed,
    else a Python regex with the same word boundaries (letters, digits, underscore). Compressed
    files (Parquet pages, for one) may hide an id from a byte search: the stores' own checks read
    them structurally; this is the last, format-blind check.
    """
    import shutil
    import subprocess
    import tempfile

    ids = sorted({str(i) for i in ids if str(i)})
    files = [str(p) for p in paths if Path(p).is_file()]
    found: dict[str, dict[str, int]] = {}
    if not ids or not files:
        return found
    grep = shutil.which("grep")
    if grep is not None and not any("\n" in i for i in ids):
        with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as handle:
            handle.write("\n".join(ids) + "\n")
        try:
            for start in range(0, len(files), 200):
                done = subprocess.run([grep, "-aowFHZ", "-f", handle.name, "--", *files[start:start + 200]],
                                      capture_output=True, check=False)  # 1 = no hit
                if done.returncode > 1:
                    raise OSError(f"grep failed: {done.stderr.decode(errors='replace')[:200]}")
                for line in done.stdout.splitlines():
                    name, _, hit = line.partition(b"\0")
                    counts = found.setdefault(name.decode(errors="replace"), {})
                    key = hit.decode(errors="replace")
                    counts[key] = counts.get(key, 0) + 1
            return found
        finally:
            os.unlink(handle.name)
    pattern = _token_pattern(ids)
    for path in files:
        counts: dict[str, int] = {}
        for match in pattern.finditer(Path(path).read_bytes()):
            key = match.group(1).decode(errors="replace")
            counts[key] = counts.get(key, 0) + 1
        if counts:
            found[path] = counts
    return found


def files_under(*roots: Path) -> list[Path]:
    """Every regular file under the given folders (missing folders are skipped)."""
    out: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out += sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return out


def sqlite_rows(path: Path, ids: Iterable[str], delete: bool = False) -> dict[str, int]:
    """Rows of a SQLite file that name one of ``ids``: per table, rows whose ``customer_id`` is one of
    them or whose JSON text columns (``body``, ``data``, ``message``) hold one as a value.

    With ``delete`` they are removed (``secure_delete``: overwritten on disk; the WAL is
    checkpointed and truncated). Returns ``{table: rows}`` (only tables with rows).
    """
    import sqlite3

    ids = {str(i) for i in ids}
    path = Path(path)
    if not ids or not path.is_file():
        return {}
    pattern = _token_pattern(ids)
    found: dict[str, int] = {}
    db = sqlite3.connect(path, timeout=30)
    try:
        db.execute("PRAGMA secure_delete=ON")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            hits: list[int] = []
            if "customer_id" in columns:
                marks = ",".join("?" * len(ids))
                hits += [r[0] for r in db.execute(f'SELECT rowid FROM "{table}" WHERE customer_id IN ({marks})', list(ids))]
            for column in (c for c in ("body", "data", "message") if c in columns):
                for rowid, text in db.execute(f'SELECT rowid, "{column}" FROM "{table}"'):
                    if isinstance(text, str) and pattern.search(text.encode()):
                        try:
                            record = json.loads(text)
                        except ValueError:
                            record = None
                        if record is None or any(s in ids for s in _strings(record)):
                            hits.append(rowid)
            hits = sorted(set(hits))
            if hits:
                found[table] = len(hits)
                if delete:
                    with db:
                        db.executemany(f'DELETE FROM "{table}" WHERE rowid = ?', [(h,) for h in hits])
        if delete and found:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return found
