"""The background updater: event log -> per-customer incremental state -> online features, in micro-batches.

One per machine, in the updater process (:mod:`serving.updater_process`, which calls
:meth:`FeatureUpdater.step` whenever the log grew; :meth:`FeatureUpdater.start` runs the same loop
in a thread, for tests and tools). It reads what was logged since its last position
(:func:`serving.event_intake.read_log`), folds the events into each customer's
:class:`features.incremental.CustomerState`, evaluates the touched customers' features at the
event-time clock, writes them online with **one** write per micro-batch, and every
``checkpoint_interval_s`` checkpoints the changed states, the clock and the log position in one
SQLite transaction (``<event_log_dir>/feature_state.sqlite``). After a restart it resumes from
that position; what was applied after it is applied again, which is harmless (the restored
states have not seen those events, and the writes repeat the same values).

A customer's state starts from the stored history (the ingested events table, read once, off
the request path) the first time one of their events arrives, and from the checkpoint after a
restart.

The as-of time of a push is the *event-time clock*: the newest event time seen so far (never
going back), the way a batch snapshot uses one as-of for every customer.

The service runs it in a process of its own (:mod:`serving.updater_process`, started and
restarted by one of the service's workers), so its pandas and Python work never holds a request
worker's GIL. One process at a time applies the log: the one holding ``feature_updater.lock``
(an ``flock``; a process that dies releases it and the next one takes over).

What the request workers need from it goes through ``feature_state.sqlite`` (WAL: readers do not
wait for the writer), read by :class:`UpdaterView`:

- ``applied``: how far the online store is up to date (``wait_for_features``, ``/readyz``);
- ``applied_log``: end position and wall time of each recent micro-batch (the workers turn it
  into the ack -> online lag histogram against their own commit times);
- ``recent``: each touched customer's live item events, weighted (fresh ``/recommend`` answers);
- ``forget``: erasure requests by keyed hash (``DELETE /customers/{id}``, ``tenure forget``),
  applied before the next micro-batch and before every checkpoint;
- ``status``: the applying process's pid, heartbeat and last error.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenure.features.incremental import CustomerState, ItemCatalog, Profile, fold, parse_time_ns
from tenure.files import open_sqlite_wal
from tenure.serving.background import BackgroundLoop
from tenure.serving.event_intake import LogPosition, read_log

logger = logging.getLogger(__name__)


STATE_FILE = "feature_state.sqlite"


def open_state_db(folder: Path) -> sqlite3.Connection:
    """``feature_state.sqlite`` in ``folder`` with its tables (WAL: the workers read while the updater writes)."""
    db = open_sqlite_wal(Path(folder) / STATE_FILE)
    db.execute("PRAGMA synchronous=NORMAL")  # the event log is the truth; a lost tail is applied again
    db.execute("CREATE TABLE IF NOT EXISTS state (customer_id TEXT PRIMARY KEY, data TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS progress (k INTEGER PRIMARY KEY CHECK (k = 0), file TEXT, "
               "offset INTEGER, clock_ns INTEGER)")
    # how far the online store is up to date (every micro-batch; progress above lags by the checkpoint interval)
    db.execute("CREATE TABLE IF NOT EXISTS applied (k INTEGER PRIMARY KEY CHECK (k = 0), file TEXT, offset INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS applied_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT, "
               "offset INTEGER, applied_at REAL)")
    db.execute("CREATE TABLE IF NOT EXISTS recent (customer_id TEXT PRIMARY KEY, items TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS forget (seq INTEGER PRIMARY KEY AUTOINCREMENT, ref TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS status (k INTEGER PRIMARY KEY CHECK (k = 0), pid INTEGER, "
               "beat REAL, last_error TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS control (k TEXT PRIMARY KEY, v TEXT)")  # e.g. the served model versions
    # the salt of erasure requests' hashes: random per state folder, so a request's row names no one
    # to somebody without this file (as the tombstones' salt does)
    db.execute("INSERT OR IGNORE INTO control VALUES ('forget_salt', ?)", (secrets.token_hex(16),))
    db.commit()
    return db


def forget_salt(db: sqlite3.Connection) -> str:
    """The state folder's salt for :func:`forget_ref` (made by :func:`open_state_db`)."""
    return str(db.execute("SELECT v FROM control WHERE k = 'forget_salt'").fetchone()[0])


def forget_ref(customer_id: str, salt: str) -> str:
    """How an erasure request names a customer in the ``forget`` table: ``sha256(salt + id)`` (the row is
    deleted once applied)."""
    return hashlib.sha256(f"{salt}{customer_id}".encode()).hexdigest()


def request_forget(folder: Path, customer_ids) -> int:
    """Ask the updater process to forget these customers (and drop their ``recent`` rows now); returns requests.

    The rows of ``state`` and ``recent`` are deleted by the erasure itself (``serving.erasure``);
    this reaches the states the updater holds in memory, which it would otherwise write back.
    """
    ids = sorted({str(c) for c in customer_ids})
    if not ids or not Path(folder).is_dir():
        return 0
    db = open_state_db(folder)
    try:
        with db:
            salt = forget_salt(db)
            db.executemany("INSERT INTO forget (ref) VALUES (?)", [(forget_ref(cid, salt),) for cid in ids])
            db.executemany("DELETE FROM recent WHERE customer_id = ?", [(cid,) for cid in ids])
    finally:
        db.close()
    return len(ids)


@dataclass
class AppliedBatch:
    """What one micro-batch did (passed to the ``on_applied`` callbacks)."""

    position: LogPosition
    as_of_ns: int
    features: dict[str, dict[str, Any]]  # customer_id -> feature dict (CUSTOMER_FEATURE_COLUMNS)
    n_events: int
    applied_at: float  # wall time after the push


class FeatureUpdater(BackgroundLoop):
    """Keeps online customer features in step with the event log (see the module docstring).

    Parameters
    ----------
    log_dir:
        The event log folder (``paths.event_log_dir``); the checkpoint lives there too.
    profiles:
        ``customer_id -> Profile`` (the customer table); events of others are ignored.
    catalog:
        Item prices and categories.
    history:
        ``list of customer ids -> list of canonical event dicts`` of their stored events.
    push:
        ``(list of (customer_id, feature dict), as_of_ns) -> None``: write online (one call per batch).
    interval_s:
        Longest sleep between looks at the log when no commit wakes it.
    recent_weights:
        ``event_type -> weight`` (``recommender.event_weights``): when given, each touched
        customer's weighted live item events are written to the ``recent`` table every micro-batch.
    max_customers_in_memory:
        States kept in memory (least recently touched first out; they stay in the checkpoint).
    """

    def __init__(self, log_dir: Path, profiles: Mapping[str, Profile], catalog: ItemCatalog,
                 history: Callable[[list[str]], list[dict[str, Any]]],
                 push: Callable[[list[tuple[str, dict[str, Any]]], int], None],
                 interval_s: float = 0.5, max_customers_in_memory: int = 200_000,
                 checkpoint_interval_s: float = 5.0, recent_weights: Mapping[str, float] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.profiles = profiles
        self.catalog = catalog
        self._history = history
        self._push = push
        self.interval_s = interval_s
        self.max_customers = max_customers_in_memory
        self.checkpoint_interval_s = checkpoint_interval_s
        self.recent_weights = dict(recent_weights) if recent_weights is not None else None
        self._dirty: dict[str, CustomerState] = {}  # states changed since the last checkpoint
        self._checkpointed_at = time.monotonic()
        self.on_applied: list[Callable[[AppliedBatch], None]] = []
        self._db = open_state_db(self.log_dir)
        row = self._db.execute("SELECT file, offset, clock_ns FROM progress WHERE k = 0").fetchone()
        self.position = LogPosition(row[0], row[1]) if row else LogPosition()
        self.clock_ns: int = row[2] if row else -(2**63)
        self._states: OrderedDict[str, CustomerState] = OrderedDict()
        self._lock = threading.Lock()  # guards _states against readers (recent_items)
        super().__init__("feature-updater")
        self.last_error: str | None = None
        self.applied_at: float | None = None
        self.owner = False  # holds feature_updater.lock: this process applies the log
        self._lock_fd: int | None = None

    # --- life cycle ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Finish the current micro-batch, stop, close the checkpoint."""
        self._stop_thread()
        if self.owner or self._thread is None:
            self._checkpoint()  # what was applied since the last checkpoint
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        self._db.close()

    def _take_ownership(self) -> bool:
        """Try to become the one process that applies the log (non-blocking ``flock``)."""
        if self.owner:
            return True
        if self._lock_fd is None:
            self._lock_fd = os.open(self.log_dir / "feature_updater.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.owner = True
        self._forget_memory()  # another process may have applied the log meanwhile: start from its checkpoint
        logger.info("this process applies the event log to the online features (from %s)", self.position)
        return True

    def applied_position(self) -> LogPosition:
        """How far the log has been applied (by this process, or by the one holding the lock)."""
        if self.owner:
            return self.position
        row = self._db.execute("SELECT file, offset FROM applied WHERE k = 0").fetchone()
        return LogPosition(row[0], row[1]) if row else LogPosition()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._take_ownership():
                continue
            if not self.apply_available(self._stop):
                self._stop.wait(1.0)

    def apply_available(self, stop: threading.Event) -> bool:
        """Apply micro-batches until the log is drained or ``stop`` is set; False after a failure.

        A failure is logged and kept in ``last_error``, and the states in memory are dropped: the
        next call starts again from the last checkpoint.
        """
        try:
            while not stop.is_set() and self.step():
                pass
        except Exception as exc:
            self.last_error = f"online feature update failed: {exc}"
            logger.exception("online feature update failed; retrying from %s", self.position)
            self._forget_memory()
            return False
        self.last_error = None
        return True

    # --- one micro-batch -----------------------------------------------------------------------
    def step(self, max_bytes: int = 4 << 20) -> bool:
        """Apply what was logged since :attr:`position`; True when there was something."""
        self.apply_forget_requests()
        records, after = read_log(self.log_dir, self.position, max_bytes)
        if after == self.position:
            return False
        if not records:
            self._applied(after)
            return True
        ids = list(dict.fromkeys(str(r["customer_id"]) for r in records))
        states = self._load(ids)
        with self._lock:
            touched = fold(states, records, self.profiles, self.catalog, live=True)
            newest = max(parse_time_ns(r["event_at"]) for r in records)
            self.clock_ns = max(self.clock_ns, newest)
            features: dict[str, dict[str, Any]] = {}
            for cid in sorted(touched):
                state = states[cid]
                state.prune(self.clock_ns)
                row = state.features(self.clock_ns)
                if row is not None:
                    features[cid] = row
        if features:
            self._push(list(features.items()), self.clock_ns)
        self.applied_at = time.time()
        self._dirty.update((cid, states[cid]) for cid in touched)
        if self.recent_weights is not None:
            with self._lock:
                recent = [(cid, json.dumps(states[cid].recent_items(self.recent_weights), separators=(",", ":")))
                          for cid in sorted(touched)]
            self._db.executemany("INSERT OR REPLACE INTO recent VALUES (?, ?)", recent)  # committed with `applied`
        self._applied(after)
        batch = AppliedBatch(after, self.clock_ns, features, len(records), self.applied_at)
        for callback in self.on_applied:
            try:
                callback(batch)
            except Exception:
                logger.exception("callback after an online feature update failed")
        return True

    def _load(self, ids: Sequence[str]) -> dict[str, CustomerState]:
        """States of ``ids``: memory, else the checkpoint, else built from the stored history."""
        with self._lock:
            out = {cid: self._states[cid] for cid in ids if cid in self._states}
        missing = [cid for cid in ids if cid not in out and cid in self.profiles]
        if missing:
            for start in range(0, len(missing), 500):
                chunk = missing[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for cid, data in self._db.execute(f"SELECT customer_id, data FROM state WHERE customer_id IN ({marks})",
                                                  chunk):
                    out[cid] = CustomerState.from_json(json.loads(data))
            fresh = [cid for cid in missing if cid not in out]
            if fresh:
                for cid in fresh:
                    out[cid] = CustomerState(profile=self.profiles[cid])
                fold(out, self._history(fresh), self.profiles, self.catalog, live=False)
        with self._lock:
            for cid, state in out.items():
                self._states[cid] = state
                self._states.move_to_end(cid)
            while len(self._states) > self.max_customers:
                self._states.popitem(last=False)
        return out

    def _applied(self, position: LogPosition) -> None:
        """The online store is up to date to ``position``: record it; checkpoint when the interval has passed.

        The checkpoint (changed states + position + clock, one transaction) is taken every
        ``checkpoint_interval_s``: a restart replays the log from it, which is harmless (states
        de-duplicate on ``event_id``, the pushes write the same values again).
        """
        self.position = position
        now = time.time()
        self._db.execute("INSERT OR REPLACE INTO applied VALUES (0, ?, ?)", (position.file, position.offset))
        seq = self._db.execute("INSERT INTO applied_log (file, offset, applied_at) VALUES (?, ?, ?)",
                               (position.file, position.offset, now)).lastrowid
        if seq % 500 == 0:  # keep the last ~1,000 micro-batches
            self._db.execute("DELETE FROM applied_log WHERE seq <= ?", (seq - 1000,))
        self._db.commit()
        if time.monotonic() - self._checkpointed_at >= self.checkpoint_interval_s:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self._db.in_transaction:
            self._db.commit()
        self._db.execute("BEGIN IMMEDIATE")  # an erasure committed before this cannot be undone by it
        try:
            self.apply_forget_requests(in_transaction=True)
            rows = [(cid, json.dumps(state.to_json(), separators=(",", ":"))) for cid, state in self._dirty.items()]
            self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", rows)
        except BaseException:
            self._db.rollback()
            raise
        self._db.execute("INSERT OR REPLACE INTO progress VALUES (0, ?, ?, ?)",
                         (self.position.file, self.position.offset, self.clock_ns))
        self._db.commit()
        self._dirty.clear()
        self._checkpointed_at = time.monotonic()

    def apply_forget_requests(self, in_transaction: bool = False) -> int:
        """Forget the customers of erasure requests logged since the last look (``forget`` table); returns states dropped."""
        rows = self._db.execute("SELECT seq, ref FROM forget").fetchall()
        if not rows:
            if not in_transaction:
                self._db.commit()  # end the read
            return 0
        wanted = {ref for _, ref in rows}
        with self._lock:
            known = [*self.profiles.keys(), *self._states.keys()]
        salt = forget_salt(self._db)
        ids = sorted({cid for cid in known if forget_ref(cid, salt) in wanted})
        n = self.forget(ids)
        # applied: the request leaves the table (its hashes are not kept)
        self._db.execute("DELETE FROM forget WHERE seq <= ?", (max(seq for seq, _ in rows),))
        if not in_transaction:
            self._db.commit()
        logger.info("erasure request(s) applied: %d customer(s) forgotten here, %d state(s) in memory",
                    len(ids), n)
        return n

    def control(self, key: str) -> str | None:
        """A value the workers set (:meth:`UpdaterView.set_control`), or None."""
        row = self._db.execute("SELECT v FROM control WHERE k = ?", (key,)).fetchone()
        self._db.commit()
        return row[0] if row else None

    def set_control(self, key: str, value: str) -> None:
        """Tell the workers something (``updater_models``: the versions triggers are scored with)."""
        self._db.execute("INSERT OR REPLACE INTO control VALUES (?, ?)", (key, value))
        self._db.commit()

    def heartbeat(self, pid: int | None = None) -> None:
        """Record that this process is alive and applying (``status``: pid, time, last error)."""
        self._db.execute("INSERT OR REPLACE INTO status VALUES (0, ?, ?, ?)",
                         (pid if pid is not None else os.getpid(), time.time(), self.last_error))
        self._db.commit()

    def forget(self, customer_ids) -> int:
        """Erasure: drop these customers' states (memory, pending checkpoint, profile, rows); returns states dropped.

        Their rows are also removed on disk by ``serving.erasure`` (the ``feature_state`` store),
        which asks a running updater process to call this (:func:`request_forget`). The caller commits.
        """
        ids = {str(c) for c in customer_ids}
        with self._lock:
            n = sum(self._states.pop(cid, None) is not None for cid in ids)
        for cid in ids:
            self._dirty.pop(cid, None)
            if isinstance(self.profiles, dict):
                self.profiles.pop(cid, None)
        if ids:  # rows a micro-batch wrote while the erasure ran (the erasure deleted those before it)
            self._db.executemany("DELETE FROM recent WHERE customer_id = ?", [(c,) for c in ids])
            self._db.executemany("DELETE FROM state WHERE customer_id = ?", [(c,) for c in ids])
        return n

    def _forget_memory(self) -> None:
        """After a failed batch: drop in-memory states (they may hold events not checkpointed) and re-read the position."""
        with self._lock:
            self._states.clear()
        self._dirty.clear()
        row = self._db.execute("SELECT file, offset, clock_ns FROM progress WHERE k = 0").fetchone()
        self.position = LogPosition(row[0], row[1]) if row else LogPosition()
        self.clock_ns = row[2] if row else -(2**63)

    # --- reads for the request path ------------------------------------------------------------
    def recent_items(self, customer_id: str, weights: Mapping[str, float]) -> list[tuple[str, float]]:
        """``(item_id, weight)`` per live item event of the customer, for a fresh user vector."""
        with self._lock:
            state = self._states.get(customer_id)
            return state.recent_items(weights) if state is not None else []

    def features_of(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's features at the clock from the in-memory state (None when not in memory)."""
        with self._lock:
            state = self._states.get(customer_id)
            return state.features(self.clock_ns) if state is not None else None


class UpdaterView:
    """What a request worker reads of the updater's progress in ``feature_state.sqlite`` (another process writes it).

    Every read is one indexed SQLite query (tens of microseconds; WAL readers never wait for the
    writer), so it may run on the event loop.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._db = open_state_db(self.log_dir)
        self._lock = threading.Lock()
        self._seen_seq = self._query("SELECT COALESCE(MAX(seq), 0) FROM applied_log")[0][0]

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def applied_position(self) -> LogPosition:
        """How far the online store is up to date."""
        rows = self._query("SELECT file, offset FROM applied WHERE k = 0")
        return LogPosition(rows[0][0], rows[0][1]) if rows else LogPosition()

    def new_batches(self) -> list[tuple[LogPosition, float]]:
        """End position and wall time of the micro-batches applied since the last call, oldest first."""
        rows = self._query("SELECT seq, file, offset, applied_at FROM applied_log WHERE seq > ? ORDER BY seq",
                           (self._seen_seq,))
        if rows:
            self._seen_seq = rows[-1][0]
        return [(LogPosition(f, o), at) for _, f, o, at in rows]

    def recent_items(self, customer_id: str) -> list[tuple[str, float]]:
        """The customer's live item events as ``(item_id, weight)`` (``recommender.event_weights``)."""
        rows = self._query("SELECT items FROM recent WHERE customer_id = ?", (customer_id,))
        return [(str(i), float(w)) for i, w in json.loads(rows[0][0])] if rows else []

    def set_control(self, key: str, value: str) -> None:
        """Tell the updater process something (``models``: the versions the workers serve).

        A write waits for the updater's transaction (a checkpoint): it uses a connection of its own,
        so the reads of the request path never wait behind it.
        """
        db = sqlite3.connect(self.log_dir / STATE_FILE, timeout=30)
        try:
            with db:
                db.execute("INSERT OR REPLACE INTO control VALUES (?, ?)", (key, value))
        finally:
            db.close()

    def status(self) -> dict[str, Any]:
        """``pid``, ``beat`` (wall time of its last heartbeat), ``last_error`` of the applying process and
        ``models`` (the versions its triggers score with, "" without triggers); {} before one ran."""
        rows = self._query("SELECT pid, beat, last_error FROM status WHERE k = 0")
        if not rows:
            return {}
        models = self._query("SELECT v FROM control WHERE k = 'updater_models'")
        return {**dict(zip(("pid", "beat", "last_error"), rows[0])), "models": models[0][0] if models else None}

    def close(self) -> None:
        with self._lock:
            self._db.close()
