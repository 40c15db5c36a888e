"""open_sqlite_wal: the SQLite stores the service's workers share (consent, triggers, feature state) open safely together."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tenure.files import open_sqlite_wal


def test_the_wal_switch_waits_for_a_writer_that_holds_the_file(tmp_path: Path) -> None:
    """Another process mid-write (a RESERVED lock) makes the WAL switch fail at once, busy timeout or not:
    it is retried until the writer is done, as when the service's workers start together."""
    path = tmp_path / "store.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # what one try gives (seen in CI)
        sqlite3.connect(path, timeout=5).execute("PRAGMA journal_mode=WAL")
    done = threading.Timer(0.5, lambda: writer.execute("COMMIT"))
    done.start()
    t0 = time.monotonic()
    db = open_sqlite_wal(path)
    waited = time.monotonic() - t0
    done.join()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    assert waited >= 0.4
    db.close()
    writer.close()


def test_the_shared_stores_open_in_wal_mode(tmp_path: Path) -> None:
    """The consent store and the live feature state go through it (readers never wait for the writer)."""
    from tenure.privacy.consent import ConsentStore
    from tenure.serving.feature_updater import open_state_db

    ConsentStore(tmp_path / "consent.sqlite")
    open_state_db(tmp_path).close()
    for name in ("consent.sqlite", "feature_state.sqlite"):
        db = sqlite3.connect(tmp_path / name)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_a_file_that_is_not_a_database_fails_at_once(tmp_path: Path) -> None:
    """Only 'locked' is retried: any other error (here a text file) surfaces on the first try."""
    path = tmp_path / "not.sqlite"
    path.write_text("this is not a database " * 100)
    t0 = time.monotonic()
    with pytest.raises(sqlite3.DatabaseError):
        open_sqlite_wal(path)
    assert time.monotonic() - t0 < 5
