"""``POST /events``: validate with the contract's rules, log durably, de-duplicate, refresh online features.

Order of work, so that nothing acknowledged is lost: (1) validate; (2) drop events whose
``event_id`` was already accepted; (3) append the new ones to the event log and fsync;
(4) remember their ids; (5) acknowledge. A crash between (3) and (4) can only log an
event twice, which ingestion de-duplicates on ``event_id``; it can never lose one.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.jsonable import to_jsonable

logger = logging.getLogger(__name__)

RECENT_EVENTS_PER_CUSTOMER = 500
HISTORY_CACHE_CUSTOMERS = 20_000


class DurableEventLog:
    """Append-only JSON-lines log (``events-YYYYMMDD.jsonl``, UTC day) plus a SQLite index of accepted ids."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "accepted_ids.sqlite", check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS accepted (event_id TEXT PRIMARY KEY, logged_at TEXT)")
        self._db.commit()

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """The ids among ``event_ids`` that were accepted before."""
        if not event_ids:
            return set()
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(event_ids), 500):
                chunk = list(event_ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                found.update(r[0] for r in self._db.execute(f"SELECT event_id FROM accepted WHERE event_id IN ({marks})", chunk))
        return found

    def append(self, events: Sequence[dict[str, Any]]) -> Path:
        """Write ``events`` as JSON lines, flush and fsync, then record their ids. Returns the file."""
        now = datetime.now(UTC)
        # one file a day (docs/CONTRACTS.md); O_APPEND + one write() per batch keeps lines whole
        # when several workers append to the same file
        path = self.folder / f"events-{now:%Y%m%d}.jsonl"
        payload = "".join(json.dumps(e, separators=(",", ":"), default=to_jsonable) + "\n" for e in events)
        with self._lock:
            new_file = not path.exists()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                view = memoryview(payload.encode())
                while view:  # os.write may write less than asked
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if new_file:  # the new directory entry must survive a crash too
                dir_fd = os.open(self.folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            self._db.executemany("INSERT OR IGNORE INTO accepted VALUES (?, ?)",
                                 [(e["event_id"], now.isoformat()) for e in events])
            self._db.commit()
        return path

    def close(self) -> None:
        """Close the id index."""
        with self._lock:
            self._db.close()


class EventIntake:
    """Validates event batches and keeps per-customer recent events for online feature updates.

    Parameters
    ----------
    log:
        The durable log.
    customers, items:
        Canonical tables (pandas) for reference checks and feature computation.
    history:
        Callable ``list of customer ids -> DataFrame | None`` of those customers' stored events
        (the ingested tables), read once per customer and then kept with the new events in memory.
    """

    def __init__(self, log: DurableEventLog, customers, items, history) -> None:
        self.log = log
        self.customers = customers
        self.items = items
        self.known_customers = customers["customer_id"].astype(str).to_numpy()
        self.known_items = items["item_id"].astype(str).to_numpy()
        self._history = history
        # stored history per customer (read from the tables once), least recently used first
        self._stored: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        # what arrived through POST /events since the start (the stored history is in the model's rows)
        self._fresh: dict[str, deque] = defaultdict(lambda: deque(maxlen=RECENT_EVENTS_PER_CUSTOMER))
        self._lock = threading.Lock()

    def validate(self, events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
        """Accepted canonical events (as JSON-ready dicts) and the reasons per rejected position."""
        import pandas as pd

        from features.contract import validate_frame

        raw = pd.DataFrame(events)
        result = validate_frame(raw, "events", source="POST /events", known_customers=self.known_customers,
                                known_items=self.known_items)
        reasons: dict[int, list[str]] = defaultdict(list)
        if result.file_error:
            for i in range(len(events)):
                reasons[i].append(result.file_error)
            return [], reasons
        for row in result.rejects.itertuples(index=False):
            position = int(row.row) - 1
            reasons[position].append(f"{row.column}: {row.reason}")
        accepted = []
        for row_number, record in zip(result.valid_rows, result.valid.to_dict(orient="records")):
            clean = {k: to_jsonable(v) for k, v in record.items()}
            clean["_position"] = int(row_number) - 1
            accepted.append(clean)
        return accepted, reasons

    def remember(self, events: Iterable[dict[str, Any]]) -> None:
        """Keep accepted events in the per-customer memory used for online features and fresh recommendations."""
        with self._lock:
            for event in events:
                self._fresh[event["customer_id"]].append(event)

    def customer_events(self, customer_ids: Sequence[str]):
        """Stored + accepted events of the given customers, one canonical DataFrame.

        The stored history of a customer is read once (one table scan for all customers not
        seen yet) and kept, least recently used first out, for :data:`HISTORY_CACHE_CUSTOMERS`
        customers; events accepted by this service are added from memory.
        """
        import pandas as pd

        ids = list(dict.fromkeys(str(c) for c in customer_ids))
        with self._lock:
            missing = [c for c in ids if c not in self._stored]
        if missing:
            stored = self._history(missing)
            loaded: dict[str, list[dict[str, Any]]] = {c: [] for c in missing}
            if stored is not None and len(stored):
                for record in stored.to_dict(orient="records"):
                    loaded[str(record["customer_id"])].append({k: to_jsonable(v) for k, v in record.items()})
            with self._lock:
                self._stored.update(loaded)
        with self._lock:
            rows: list[dict[str, Any]] = []
            for cid in ids:
                self._stored.move_to_end(cid)
                rows.extend(self._stored[cid])
                rows.extend(self._fresh.get(cid, ()))
            while len(self._stored) > HISTORY_CACHE_CUSTOMERS:
                self._stored.popitem(last=False)
        frame = pd.DataFrame(rows)
        if frame.empty:
            return frame
        frame = frame.drop_duplicates("event_id", keep="last")
        frame["event_at"] = pd.to_datetime(frame["event_at"], utc=True, format="ISO8601")
        for column in ("quantity", "amount", "nps", "csat", "resolution_hours"):
            if column in frame.columns:
                frame[column] = pd.to_numeric(frame[column], errors="coerce")
        return frame

    def recent_items(self, customer_id: str, weights: dict[str, float]) -> list[tuple[str, float]]:
        """One ``(item_id, weight)`` per remembered item event, for a fresh user vector.

        Entries are per event (not summed per item) so the runtime can tell a purchase from
        several views of the same item.
        """
        with self._lock:
            recent = list(self._fresh.get(customer_id, ()))
        out = []
        for event in recent:
            item, weight = event.get("item_id"), weights.get(event.get("event_type", ""), 0.0)
            if item and weight:
                out.append((item, weight))
        return out

