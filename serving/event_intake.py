"""``POST /events``: validate, de-duplicate, append to the durable log with group commit, acknowledge.

The request path does only this (no pandas, no feature work):

1. **validate** each event with the data contract's rules (:class:`EventValidator`: a plain-Python
   check of the common, clean case; anything it does not clearly accept goes through
   :func:`features.contract.validate_frame`, which gives the canonical reasons);
2. hand the accepted events to the log's writer thread (:meth:`DurableEventLog.submit`) and
   wait for its answer. The writer takes everything queued since its last write (a *group*),
   drops ids accepted before (the SQLite id index, one query per group), appends the new ones
   as JSON lines, ``fsync``\\ s once for the whole group, records their ids, and only then
   resolves every request of the group;
3. acknowledge.

Nothing acknowledged can be lost: the answer waits for the ``fsync``. A crash after the fsync
and before the id index commit leaves ids unindexed; the next start re-reads the log from the
index's last position and indexes them (``kill -9`` tests in ``tests/serving/test_event_log.py``).
A crash in the middle of a write leaves a partial last line that was never acknowledged: the
next write starts on a fresh line and readers skip the broken one.

Online features are refreshed off the request path by :class:`serving.feature_updater.FeatureUpdater`,
which reads the same log (:func:`read_log`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tenure.files import fsync_path, open_sqlite_wal
from tenure.jsonable import to_jsonable

logger = logging.getLogger(__name__)

LOG_PATTERN = "events-*.jsonl"


@dataclass(frozen=True, order=True)
class LogPosition:
    """A place in the event log: a day file's name and a byte offset in it (after a whole line)."""

    file: str = ""
    offset: int = 0


def _parse_lines(data: bytes, where: str) -> list[dict[str, Any]]:
    """JSON objects of whole lines; a line that is not one (a write cut by a crash) is skipped with a warning."""
    out = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            logger.warning("skipping a broken line in %s (a write cut short by a crash; never acknowledged)", where)
            continue
        if isinstance(record, dict) and "event_id" in record:
            out.append(record)
    return out


def read_log(folder: Path, start: LogPosition, max_bytes: int = 8 << 20) -> tuple[list[dict[str, Any]], LogPosition]:
    """Events logged after ``start`` (whole lines only, at most about ``max_bytes``) and the position after them.

    Day files are read in name order; a file is left for the next one only when the next one
    exists (the writer has moved on), so events appended to the current file are never skipped.
    """
    folder = Path(folder)
    files = sorted(p.name for p in folder.glob(LOG_PATTERN))
    records: list[dict[str, Any]] = []
    position = start
    for name in files:
        if name < position.file:
            continue
        offset = position.offset if name == position.file else 0
        later_exists = name != files[-1]  # checked before reading: the writer finishes a file before starting the next
        with open(folder / name, "rb") as f:
            f.seek(offset)
            data = f.read(max_bytes)
        end = data.rfind(b"\n") + 1  # whole lines only
        records.extend(_parse_lines(data[:end], name))
        position = LogPosition(name, offset + end)
        if len(data) >= max_bytes or not later_exists:
            break
        # this file is finished (a later one exists and we read to its end): go on to the next
    return records, position


class DurableEventLog:
    """Append-only JSON-lines log (``events-YYYYMMDD.jsonl``, UTC day) with group commit and an id index.

    Parameters
    ----------
    folder:
        Where the day files and ``accepted_ids.sqlite`` live (``paths.event_log_dir``).
    commit_window_s:
        How long the writer waits after the first request of a group for more to arrive
        (0: it takes only what is queued; requests that arrive during an fsync form the next group).
    remote:
        The id index shared by several machines (:class:`tenure.serving.event_idempotency.RedisIdempotency`,
        ``events.idempotency: redis``), or None: the local SQLite index alone.

    Several processes (the service's workers) may share one folder: each group commit (check the
    ids, append, fsync, index) holds an exclusive ``flock`` on ``commit.lock``, so an id sent to
    two workers at once is logged once, and the index position only moves forward.

    Attributes
    ----------
    commits : deque of (LogPosition, float)
        End position and wall time of recent group commits (for the ack -> online lag).
    """

    def __init__(self, folder: Path, commit_window_s: float = 0.0, remote=None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.commit_window_s = commit_window_s
        self.remote = remote
        self._lock_fd = os.open(self.folder / "commit.lock", os.O_RDWR | os.O_CREAT, 0o640)
        self._db = open_sqlite_wal(self.folder / "accepted_ids.sqlite")  # safe when workers start together
        self._db.execute("PRAGMA synchronous=NORMAL")  # the log is the truth; the index is rebuilt from it
        self._db.execute("CREATE TABLE IF NOT EXISTS accepted (event_id TEXT PRIMARY KEY, logged_at TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS indexed (k INTEGER PRIMARY KEY CHECK (k = 0), file TEXT, "
                         "offset INTEGER)")
        self._db.commit()
        self._db_lock = threading.Lock()
        self.commits: deque[tuple[LogPosition, float]] = deque(maxlen=100_000)
        self._listeners: list[Callable[[], None]] = []
        self.position = self._catch_up_index()
        self._fd: int | None = None
        self._fd_name = ""
        self._queue: queue.Queue = queue.Queue()
        self._writer = threading.Thread(target=self._run, name="event-log-writer", daemon=True)
        self._writer.start()

    # --- start-up -----------------------------------------------------------------------------
    def _catch_up_index(self) -> LogPosition:
        """Index ids logged after the index's last position (a crash between fsync and index commit)."""
        with self._commit_lock():
            row = self._db.execute("SELECT file, offset FROM indexed WHERE k = 0").fetchone()
            position = LogPosition(*row) if row else LogPosition()
            n = 0
            while True:
                records, after = read_log(self.folder, position)
                if after == position:
                    break
                ids = [r["event_id"] for r in records]
                self._index(ids, after)
                if self.remote is not None:  # logged before a crash, maybe not yet marked in the shared index
                    self.remote.confirm(ids)
                n += len(records)
                position = after
        if n:
            logger.info("indexed %d logged event id(s) the id index had missed (a crash after the fsync)", n)
        return position

    def _index(self, ids: Sequence[str], position: LogPosition) -> None:
        now = datetime.now(UTC).isoformat()
        with self._db_lock:
            self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?)", [(i, now) for i in ids])
            self._db.execute("INSERT OR REPLACE INTO indexed VALUES (0, ?, ?)", (position.file, position.offset))
            self._db.commit()

    # --- reading ------------------------------------------------------------------------------
    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """The ids among ``event_ids`` that were accepted before."""
        found: set[str] = set()
        with self._db_lock:
            for start in range(0, len(event_ids), 500):
                chunk = list(event_ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self._db.execute(f"SELECT event_id FROM accepted WHERE event_id IN ({marks})",
                                                            chunk))
        return found

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the writer thread; keep it short) after every group commit."""
        self._listeners.append(callback)

    # --- writing ------------------------------------------------------------------------------
    def submit(self, events: Sequence[dict[str, Any]]) -> Future:
        """Queue canonical events for the next group commit.

        Returns
        -------
        Future of ``(flags, position)``: per event True when it was logged now, False when its
        ``event_id`` had been accepted before (a replay; also within the same group), None when
        it was not logged because another machine is logging the same id right now (send it
        again); and the log position after the group (the updater has applied the events once
        it passes it).
        """
        future: Future = Future()
        if not events:
            future.set_result(([], self.position))
            return future
        if not self._writer.is_alive():
            future.set_exception(RuntimeError("the event log is closed"))
            return future
        self._queue.put((list(events), future))
        return future

    def append(self, events: Sequence[dict[str, Any]]) -> list[bool | None]:
        """:meth:`submit` and wait: True per event logged now, False per replay, None: send it again."""
        return self.submit(events).result()[0]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            if self.commit_window_s > 0:
                time.sleep(self.commit_window_s)
            stop = False
            while True:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
            try:
                results = self._commit(group)
            except Exception as exc:
                logger.exception("event log write failed for %d request(s)", len(group))
                for _, future in group:
                    future.set_exception(exc)
            else:
                for (_, future), result in zip(group, results):
                    future.set_result((result, self.position))
                for callback in self._listeners:
                    try:
                        callback()
                    except Exception:
                        logger.exception("event log listener failed")
            if stop:
                return

    @contextmanager
    def _commit_lock(self):
        """Exclusive ``flock`` on ``commit.lock`` (the workers sharing this folder take turns)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _commit(self, group: list[tuple[list[dict[str, Any]], Future]]) -> list[list[bool | None]]:
        """De-duplicate, write and fsync one group; index its ids.

        Per request, per event: True logged now, False accepted before, None not logged (another
        machine is logging the same id right now: send it again).
        """
        with self._commit_lock():
            ids = [e["event_id"] for events, _ in group for e in events]
            before = self.seen(ids)
            claims = None
            if self.remote is not None:
                claims = self.remote.claim([i for i in dict.fromkeys(ids) if i not in before])
                before |= claims.logged
            busy = claims.busy if claims is not None else set()
            try:
                return self._write_group(group, before, busy)
            except BaseException:
                if claims is not None:
                    self.remote.release(claims)
                raise

    def _write_group(self, group: list[tuple[list[dict[str, Any]], Future]], before: set[str],
                     busy: set[str]) -> list[list[bool | None]]:
        results: list[list[bool | None]] = []
        new: list[dict[str, Any]] = []
        taken: set[str] = set()
        for events, _ in group:
            flags: list[bool | None] = []
            for event in events:
                eid = event["event_id"]
                if eid in busy:
                    flags.append(None)
                    continue
                fresh = eid not in before and eid not in taken
                if fresh:
                    taken.add(eid)
                    new.append(event)
                flags.append(fresh)
            results.append(flags)
        if not new:
            return results
        payload = "".join(json.dumps(e, separators=(",", ":"), default=to_jsonable) + "\n" for e in new).encode()
        name = f"events-{datetime.now(UTC):%Y%m%d}.jsonl"
        fd = self._open(name)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":  # a write cut by a crash: start on a fresh line
            payload = b"\n" + payload
        view = memoryview(payload)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view):]
        os.fsync(fd)  # one fsync for every request of the group
        end = LogPosition(name, os.fstat(fd).st_size)
        self._index(list(taken), end)
        if self.remote is not None:
            try:
                self.remote.confirm(list(taken))
            except Exception:  # logged and acknowledged all the same; the claims expire after their lease
                logger.exception("could not mark %d logged event id(s) in the shared index", len(taken))
        self.position = end
        self.commits.append((end, time.time()))
        return results

    def _open(self, name: str) -> int:
        if self._fd is not None and self._fd_name == name:
            return self._fd
        if self._fd is not None:
            os.close(self._fd)
        path = self.folder / name
        new_file = not path.exists()
        # O_APPEND + one write() per group keeps lines whole when several workers append
        self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        self._fd_name = name
        if new_file:  # the new directory entry must survive a crash too
            fsync_path(self.folder)
        return self._fd

    def close(self) -> None:
        """Finish queued writes, stop the writer, close the files."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=30)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with self._db_lock:
            self._db.close()
        os.close(self._lock_fd)


# --- validation ---------------------------------------------------------------------------------

_FLOATS = ("quantity", "amount", "nps", "csat", "resolution_hours", "rating", "ces")


def _iso(ns: int) -> str:
    """int ns since the epoch -> ISO 8601 in UTC, as pandas writes a Timestamp (6 or 9 digits of fraction)."""
    seconds, rest = divmod(ns, 10**9)
    base = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=rest // 1000)
    if rest % 1000:
        text = base.replace(microsecond=0).isoformat()
        return text[:-6] + f".{rest:09d}" + text[-6:]
    return base.isoformat()


class EventValidator:
    """The data contract's event rules, in plain Python for the clean common case.

    :meth:`fast` accepts an event only when every rule clearly holds (ids known and without
    surrounding blanks, a known type, an aware ISO time, numbers finite and within the
    contract's bounds) and returns it in canonical form (the same dict ``validate_frame``
    gives after :func:`~tenure.jsonable.to_jsonable`); anything else returns None and the
    caller runs :meth:`slow` (``features.contract.validate_frame``) on the batch, so a rejected
    event always gets the contract's own reason. ``tests/serving/test_event_log.py`` holds the
    two equal on accepted events.
    """

    def __init__(self, known_customers: Iterable[str], known_items: Iterable[str],
                 earliest: str = "1990-01-01T00:00:00Z", max_future_hours: float = 24.0) -> None:
        from tenure.features.incremental import parse_time_ns
        from tenure.features.schema import EVENT_COLUMNS, EVENT_TYPES, EVENTS

        self.earliest_ns = parse_time_ns(earliest)
        self.max_future_ns = int(max_future_hours * 3600 * 10**9)

        self.known_customers = frozenset(str(c) for c in known_customers)
        self.known_items = frozenset(str(i) for i in known_items)
        self._types = frozenset(EVENT_TYPES)
        self._columns = EVENT_COLUMNS
        self._bounds = {c.name: (c.min_value, c.max_value) for c in EVENTS.columns if c.kind == "float"}

    @staticmethod
    def _clean_id(value: Any) -> bool:
        return isinstance(value, str) and bool(value) and value == value.strip()

    def fast(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The canonical event, or None when the slow path must decide."""
        from tenure.features.incremental import parse_time_ns

        eid, cid = event.get("event_id"), event.get("customer_id")
        if not (self._clean_id(eid) and self._clean_id(cid) and cid in self.known_customers):
            return None
        if event.get("event_type") not in self._types:
            return None
        if event.get("campaign") is not None or event.get("arm") is not None or event.get("offer") is not None:
            return None  # treatment fields: the contract's own rules decide (rare events, off the hot path)
        item = event.get("item_id")
        if item is not None and not (self._clean_id(item) and item in self.known_items):
            return None
        channel = event.get("channel")
        if channel is not None and not (self._clean_id(channel)):
            return None
        at = event.get("event_at")
        if not isinstance(at, str) or at != at.strip() or "T" not in at:
            return None
        try:
            ns = parse_time_ns(at)  # raises for a naive time
        except (TypeError, ValueError):
            return None
        if ns < self.earliest_ns or ns > time.time_ns() + self.max_future_ns:  # events.earliest / max_future_hours
            return None
        out: dict[str, Any] = {"event_id": eid, "customer_id": cid, "event_at": _iso(ns),
                               "event_type": event["event_type"], "item_id": item}
        for name in _FLOATS:
            value = event.get(name)
            if value is None:
                out[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return None
            lo, hi = self._bounds.get(name, (None, None))
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return None
            out[name] = float(value)
        out["channel"] = channel
        text = event.get("text")
        if text is not None and not (isinstance(text, str) and text.strip() == text and text):
            return None  # blanks and surrounding spaces: the contract's string rules decide
        out["text"] = text
        if not self._attribution_fields(event, out):
            return None
        return {name: out.get(name) for name in self._columns}

    def _attribution_fields(self, event: dict[str, Any], out: dict[str, Any]) -> bool:
        """Put ``recommendation_id`` and ``impressions`` (joined) into ``out``; False when the slow path must decide."""
        from tenure.features.contract import MAX_IMPRESSIONS
        from tenure.features.schema import EXPOSURE_EVENT, IMPRESSION_SEPARATOR

        rec, shown = event.get("recommendation_id"), event.get("impressions")
        if rec is not None and not self._clean_id(rec):
            return False
        if event["event_type"] != EXPOSURE_EVENT:
            out["recommendation_id"] = rec
            return shown is None
        if rec is None or not isinstance(shown, list) or not 0 < len(shown) <= MAX_IMPRESSIONS:
            return False
        if not all(self._clean_id(x) and x in self.known_items and IMPRESSION_SEPARATOR not in x for x in shown):
            return False
        out["recommendation_id"], out["impressions"] = rec, IMPRESSION_SEPARATOR.join(shown)
        return True

    def slow(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
        """``validate_frame`` on the batch: canonical accepted events (with ``_position``) and reasons per position."""
        import pandas as pd

        from tenure.features.contract import validate_frame

        result = validate_frame(pd.DataFrame(events), "events", source="POST /events",
                                known_customers=pd.Index(sorted(self.known_customers)),
                                known_items=pd.Index(sorted(self.known_items)))
        reasons: dict[int, list[str]] = {}
        if result.file_error:
            return [], {i: [result.file_error] for i in range(len(events))}
        for row in result.rejects.itertuples(index=False):
            reasons.setdefault(int(row.row) - 1, []).append(f"{row.column}: {row.reason}")
        accepted = []
        for row_number, record in zip(result.valid_rows, result.valid.to_dict(orient="records")):
            clean = {k: to_jsonable(v) for k, v in record.items()}
            clean["_position"] = int(row_number) - 1
            accepted.append(clean)
        return accepted, reasons

    def validate(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, list[str]]] | None:
        """Canonical accepted events (with ``_position``) when every event passes the fast check, else None."""
        out = []
        for position, event in enumerate(events):
            clean = self.fast(event)
            if clean is None:
                return None
            clean["_position"] = position
            out.append(clean)
        return out, {}
