"""The background updater: event log -> per-customer incremental state -> online features, in micro-batches.

One thread per service process. It wakes after every group commit of the event log (or every
``events.update_interval_s``), reads what was logged since its last position
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

With several worker processes (``serving.workers > 1``) every worker appends to the same log,
and one of them at a time runs the updater: the one holding ``feature_updater.lock`` (an
``flock``; a worker that dies releases it and another takes over within ``interval_s``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenure.features.incremental import CustomerState, ItemCatalog, Profile, fold, parse_time_ns
from tenure.serving.background import BackgroundLoop
from tenure.serving.event_intake import LogPosition, read_log

logger = logging.getLogger(__name__)


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
    max_customers_in_memory:
        States kept in memory (least recently touched first out; they stay in the checkpoint).
    """

    def __init__(self, log_dir: Path, profiles: Mapping[str, Profile], catalog: ItemCatalog,
                 history: Callable[[list[str]], list[dict[str, Any]]],
                 push: Callable[[list[tuple[str, dict[str, Any]]], int], None],
                 interval_s: float = 0.5, max_customers_in_memory: int = 200_000,
                 checkpoint_interval_s: float = 5.0) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.profiles = profiles
        self.catalog = catalog
        self._history = history
        self._push = push
        self.interval_s = interval_s
        self.max_customers = max_customers_in_memory
        self.checkpoint_interval_s = checkpoint_interval_s
        self._dirty: dict[str, CustomerState] = {}  # states changed since the last checkpoint
        self._checkpointed_at = time.monotonic()
        self.on_applied: list[Callable[[AppliedBatch], None]] = []
        self._db = sqlite3.connect(self.log_dir / "feature_state.sqlite", check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (customer_id TEXT PRIMARY KEY, data TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS progress (k INTEGER PRIMARY KEY CHECK (k = 0), file TEXT, "
                         "offset INTEGER, clock_ns INTEGER)")
        # how far the online store is up to date (every micro-batch; progress above lags by the checkpoint interval)
        self._db.execute("CREATE TABLE IF NOT EXISTS applied (k INTEGER PRIMARY KEY CHECK (k = 0), file TEXT, "
                         "offset INTEGER)")
        self._db.commit()
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
            try:
                while not self._stop.is_set() and self.step():
                    pass
                self.last_error = None
            except Exception as exc:
                self.last_error = f"online feature update failed: {exc}"
                logger.exception("online feature update failed; retrying from %s", self.position)
                self._forget_memory()
                self._stop.wait(1.0)

    # --- one micro-batch -----------------------------------------------------------------------
    def step(self, max_bytes: int = 4 << 20) -> bool:
        """Apply what was logged since :attr:`position`; True when there was something."""
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
        self._db.execute("INSERT OR REPLACE INTO applied VALUES (0, ?, ?)", (position.file, position.offset))
        self._db.commit()
        if time.monotonic() - self._checkpointed_at >= self.checkpoint_interval_s:
            self._checkpoint()

    def _checkpoint(self) -> None:
        rows = [(cid, json.dumps(state.to_json(), separators=(",", ":"))) for cid, state in self._dirty.items()]
        self._db.executemany("INSERT OR REPLACE INTO state VALUES (?, ?)", rows)
        self._db.execute("INSERT OR REPLACE INTO progress VALUES (0, ?, ?, ?)",
                         (self.position.file, self.position.offset, self.clock_ns))
        self._db.commit()
        self._dirty.clear()
        self._checkpointed_at = time.monotonic()

    def forget(self, customer_ids) -> int:
        """Erasure: drop these customers' states (memory, pending checkpoint, profile); returns states dropped.

        Their checkpoint rows are removed on disk by ``serving.erasure`` (the ``feature_state`` store).
        """
        ids = {str(c) for c in customer_ids}
        with self._lock:
            n = sum(self._states.pop(cid, None) is not None for cid in ids)
        for cid in ids:
            self._dirty.pop(cid, None)
            if isinstance(self.profiles, dict):
                self.profiles.pop(cid, None)
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
