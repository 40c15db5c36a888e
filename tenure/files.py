"""Small file helpers shared by the rooms that write durably (tables, the event log)."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file, or a folder after a rename or create in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_sqlite_wal(path: Path, attempts: int = 50, timeout_s: float = 30.0):
    """Open the SQLite file ``path`` in WAL mode, safe when several processes open it at the same time.

    The switch to WAL takes a lock that SQLite's busy timeout does not wait for, so a worker starting
    beside another fails with ``database is locked``; the switch is retried here (up to ``attempts``
    times, 20-400 ms apart) before giving up. Returns the connection (``check_same_thread=False``).
    """
    import random
    import sqlite3
    import time

    db = sqlite3.connect(path, check_same_thread=False, timeout=timeout_s)
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return db
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                db.close()
                raise
            time.sleep(min(0.4, 0.02 * 2 ** min(attempt, 5)) * (0.5 + random.random()))
    raise AssertionError("unreachable")
