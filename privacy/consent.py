"""Consent per customer and purpose, with when and through which channel, kept as an append-only history.

Scopes (purposes):

- ``personalization``: recommendations from the customer's own history (``/recommend``);
  without it the service answers with non-personal lists.
- ``profiling``: churn scoring (``/churn-score`` answers ``no_consent``; training and
  monitoring leave the customer out).
- ``marketing``: audiences and triggers (exports and band-crossing messages skip the customer).

The history is a SQLite table (``<data_dir>/privacy/consent.sqlite``) that is only appended to
(an ``UPDATE`` is refused by the database itself); erasure is the one exception and removes all
of a person's rows. A customer's state in a scope is the change with the latest ``at`` (later
recorded wins a tie), so a late-arriving old file cannot undo a newer withdrawal. Without any
change, ``personalization`` follows the customers table's ``consent_personalization`` and the
other scopes ``privacy.default_consent``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.files import open_sqlite_wal

logger = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = ("personalization", "profiling", "marketing")
"""The purposes a customer can consent to or withdraw from."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consent_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    granted INTEGER NOT NULL,
    at TEXT NOT NULL,
    channel TEXT,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consent_by_customer ON consent_changes (customer_id, scope, at);
CREATE TRIGGER IF NOT EXISTS consent_append_only BEFORE UPDATE ON consent_changes
BEGIN SELECT RAISE(ABORT, 'the consent history is append-only'); END;
"""


@dataclass(frozen=True)
class ConsentChange:
    """One consent decision.

    Attributes
    ----------
    customer_id: who.
    scope: one of :data:`SCOPES`.
    granted: True when given, False when withdrawn.
    at: when the customer decided (tz-aware).
    channel: through which channel (web, app, email, call centre, ...), if known.
    source: how it reached tenure (``api``, ``file:<name>``, ``cli``).
    """

    customer_id: str
    scope: str
    granted: bool
    at: datetime
    channel: str | None = None
    source: str = "api"

    def __post_init__(self) -> None:
        if not isinstance(self.customer_id, str) or not self.customer_id.strip():
            raise ValueError(f"customer_id must be a non-empty string, got {self.customer_id!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown consent scope {self.scope!r}; allowed: {list(SCOPES)}")
        if self.at.tzinfo is None:
            raise ValueError(f"consent time of {self.customer_id} must carry a UTC offset, got {self.at.isoformat()}")


def consent_path(settings) -> Path:
    """Where the consent history lives: ``<paths.data_dir>/privacy/consent.sqlite``."""
    return Path(settings.paths.data_dir) / "privacy" / "consent.sqlite"


def parse_time(value: Any, where: str = "at") -> datetime:
    """An ISO 8601 time with an offset (``Z`` allowed), as an aware UTC datetime; ValueError names ``where``."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip().upper().replace("Z", "+00:00")  # RFC 3339 allows 't' and 'z'
        if len(text) > 18 and text[16:19] == ":60":  # a leap second: the second before it
            text = text[:17] + "59" + text[19:]
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{where}: not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{where}: add a UTC offset (e.g. Z) to {value!r}")
    return parsed.astimezone(UTC)


class ConsentStore:
    """The append-only consent history and the current state derived from it.

    Parameters
    ----------
    path:
        The SQLite file (created with its folder on first use).

    Thread-safe: one connection, used under a lock. Several processes may share the file
    (SQLite's WAL mode); :meth:`changed` tells a reader cheaply that another one wrote.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = open_sqlite_wal(self.path)
        self._db.execute("PRAGMA secure_delete=ON")  # erased rows are overwritten, not left in free pages
        self._db.executescript(_SCHEMA)
        self._db.commit()
        self._data_version = -1

    @classmethod
    def from_settings(cls, settings) -> ConsentStore:
        return cls(consent_path(settings))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(self, changes: Iterable[ConsentChange]) -> int:
        """Append the changes in one transaction; returns how many were recorded."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        rows = [(c.customer_id, c.scope, int(bool(c.granted)), c.at.astimezone(UTC).isoformat(timespec="milliseconds"),
                 c.channel, c.source, now) for c in changes]
        if not rows:
            return 0
        with self._lock, self._db:
            self._db.executemany("INSERT INTO consent_changes (customer_id, scope, granted, at, channel, source, "
                                 "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        logger.info("recorded %d consent change(s)", len(rows))
        return len(rows)

    def changed(self) -> bool:
        """True when the history changed since the last call (any process; a few microseconds)."""
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0] + self._db.total_changes
        if version == self._data_version:
            return False
        self._data_version = version
        return True

    def current(self, customer_ids: Iterable[str] | None = None) -> dict[str, dict[str, bool]]:
        """Explicit state per customer and scope: ``{customer_id: {scope: granted}}`` (latest ``at`` wins).

        Customers and scopes without any change are absent (their baseline applies).
        """
        sql = ("SELECT customer_id, scope, granted FROM consent_changes c WHERE seq = (SELECT seq FROM consent_changes d "
               "WHERE d.customer_id = c.customer_id AND d.scope = c.scope ORDER BY at DESC, seq DESC LIMIT 1)")
        params: list[str] = []
        if customer_ids is not None:
            params = list(dict.fromkeys(customer_ids))
            if not params:
                return {}
            sql += f" AND customer_id IN ({','.join('?' * len(params))})"
        state: dict[str, dict[str, bool]] = {}
        with self._lock:
            for cid, scope, granted in self._db.execute(sql, params):
                state.setdefault(cid, {})[scope] = bool(granted)
        return state

    def by_scope(self) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
        """``{scope: (customers who granted it explicitly, customers who withdrew it)}`` (current state)."""
        granted: dict[str, set[str]] = {s: set() for s in SCOPES}
        withdrawn: dict[str, set[str]] = {s: set() for s in SCOPES}
        for cid, scopes in self.current().items():
            for scope, ok in scopes.items():
                (granted if ok else withdrawn)[scope].add(cid)
        return {s: (frozenset(granted[s]), frozenset(withdrawn[s])) for s in SCOPES}

    def withdrawn(self, scope: str) -> frozenset[str]:
        """Customers whose current state in ``scope`` is withdrawn."""
        if scope not in SCOPES:
            raise ValueError(f"unknown consent scope {scope!r}; allowed: {list(SCOPES)}")
        return self.by_scope()[scope][1]

    def history(self, customer_id: str) -> list[dict[str, Any]]:
        """Every recorded change of one customer, oldest first (subject access, audits)."""
        with self._lock:
            rows = self._db.execute("SELECT scope, granted, at, channel, source, recorded_at FROM consent_changes "
                                    "WHERE customer_id = ? ORDER BY seq", (customer_id,)).fetchall()
        return [{"scope": s, "granted": bool(g), "at": a, "channel": c, "source": src, "recorded_at": r}
                for s, g, a, c, src, r in rows]

    def count(self, customer_ids: Iterable[str]) -> dict[str, int]:
        """Rows held per customer id (only ids with rows)."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return {}
        with self._lock:
            return dict(self._db.execute(f"SELECT customer_id, COUNT(*) FROM consent_changes WHERE customer_id IN "
                                         f"({','.join('?' * len(ids))}) GROUP BY customer_id", ids).fetchall())

    def forget(self, customer_ids: Iterable[str]) -> int:
        """Erasure: remove every row of these customers (overwritten on disk, WAL checkpointed); returns rows removed."""
        ids = list(dict.fromkeys(customer_ids))
        if not ids:
            return 0
        with self._lock:
            with self._db:
                removed = self._db.execute(f"DELETE FROM consent_changes WHERE customer_id IN "
                                           f"({','.join('?' * len(ids))})", ids).rowcount
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed


def effective_consent(explicit: Mapping[str, bool], scope: str, baseline: bool | None, default: bool) -> bool:
    """A customer's consent in ``scope``: an explicit change wins, else the baseline (personalization's
    customers-table flag), else ``default`` (``privacy.default_consent``)."""
    if scope in explicit:
        return explicit[scope]
    return default if baseline is None else bool(baseline)


def changes_from_records(records: Iterable[Mapping[str, Any]], source: str) -> tuple[list[ConsentChange], list[str]]:
    """Consent changes from file or request records, and one reason per bad record (``row N: ...``).

    A record: ``customer_id``, ``scope`` (one of :data:`SCOPES`, or ``all``), ``granted``
    (true/false, yes/no, 1/0, or ``status`` granted/withdrawn), ``at`` or ``event_at`` (ISO 8601
    with offset), optional ``channel``; ``event_type``, when present, must be ``consent``.
    """
    changes, problems = [], []
    for n, record in enumerate(records, start=1):
        try:
            changes += _changes_of(record, source)
        except ValueError as exc:
            problems.append(f"row {n}: {exc}")
    return changes, problems


_TRUE = {"true", "yes", "1", "granted", "given", "opt_in", "opt-in"}
_FALSE = {"false", "no", "0", "withdrawn", "revoked", "opt_out", "opt-out"}


def _changes_of(record: Mapping[str, Any], source: str) -> list[ConsentChange]:
    kind = record.get("event_type")
    if kind not in (None, "", "consent") and not (isinstance(kind, float) and math.isnan(kind)):
        raise ValueError(f"event_type must be 'consent', got {kind!r}")
    cid = record.get("customer_id")
    if cid is None or not str(cid).strip():
        raise ValueError("customer_id is missing")
    scope = str(record.get("scope") or "").strip()
    scopes = list(SCOPES) if scope == "all" else [scope]
    if scopes[0] not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)} or 'all', got {scope!r}")
    value = record.get("granted", record.get("status"))
    text = str(value).strip().lower()
    if isinstance(value, bool):
        granted = value
    elif text in _TRUE:
        granted = True
    elif text in _FALSE:
        granted = False
    else:
        raise ValueError(f"granted must be true/false (or status granted/withdrawn), got {value!r}")
    at = parse_time(record.get("at") or record.get("event_at"), "at")
    channel = record.get("channel")
    channel = None if channel is None or (isinstance(channel, float) and math.isnan(channel)) else str(channel)
    return [ConsentChange(str(cid).strip(), s, granted, at, channel, source) for s in scopes]


class ConsentView:
    """The current consent state in memory for the service's hot path, refreshed when the history changed.

    Parameters
    ----------
    store:
        The history.
    default:
        Consent in a scope without any change or baseline (``privacy.default_consent``).

    :meth:`allows` checks for changes first (``PRAGMA data_version``, microseconds), so a change
    recorded by this process, another worker or ``tenure consent`` counts from the next request.
    """

    def __init__(self, store: ConsentStore, default: bool = True) -> None:
        self.store = store
        self.default = default
        self._state: dict[str, tuple[frozenset[str], frozenset[str]]] = {s: (frozenset(), frozenset()) for s in SCOPES}
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        """Reload the state when the history changed (or always with ``force``)."""
        if self.store.changed() or force:
            state = self.store.by_scope()
            with self._lock:
                self._state = state

    def allows(self, customer_id: str, scope: str, baseline: bool | None = None, refresh: bool = True) -> bool:
        """Whether ``scope`` may be used for this customer now (see :func:`effective_consent`).

        ``refresh=False`` skips the change check (a batch checks once, then asks per customer).
        """
        if refresh:
            self.refresh()
        granted, withdrawn = self._state[scope]
        if customer_id in withdrawn:
            return False
        if customer_id in granted:
            return True
        return self.default if baseline is None else bool(baseline)

    def record(self, changes: list[ConsentChange]) -> dict[str, dict[str, bool]]:
        """Append changes and return the affected customers' explicit state after them."""
        self.store.record(changes)
        self.refresh(force=True)
        return self.store.current(c.customer_id for c in changes)


def withdrawn_customers(settings, scope: str) -> frozenset[str]:
    """Customers whose current consent in ``scope`` is withdrawn, for batch work (training, monitoring, exports).

    Reads the history when it exists (and creates nothing when it does not: no withdrawals).
    """
    path = consent_path(settings)
    if not path.exists():
        return frozenset()
    store = ConsentStore(path)
    try:
        return store.withdrawn(scope)
    finally:
        store.close()


CONSENT_FILE_SUFFIXES = (".csv", ".jsonl", ".parquet")


def consent_files(folder: Path) -> list[Path]:
    """``consent*.csv|jsonl|parquet`` files of a folder (what ``tenure ingest --from-dir`` records as consent)."""
    folder = Path(folder)
    return sorted(p for p in folder.glob("consent*") if p.suffix in CONSENT_FILE_SUFFIXES) if folder.is_dir() else []


def ingest_consent_file(settings, path: Path) -> dict[str, Any]:
    """Append the consent events of one file to the history; all or nothing.

    Rows: ``customer_id``, ``scope`` (or ``all``), ``granted`` (or ``status``), ``at`` or
    ``event_at``, optional ``channel`` and ``event_type`` (= ``consent``). Rows of erased
    customers (tombstones) are skipped.

    Raises
    ------
    ValueError
        When the file cannot be read or any row is bad (the first problems are named with
        their row numbers); nothing is recorded then.
    """
    import pandas as pd

    from tenure.features.tombstones import Tombstones

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif path.suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        elif path.suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            raise ValueError(f"use .csv, .jsonl or .parquet, got {path.suffix!r}")
    except ValueError as exc:
        raise ValueError(f"{path}: unreadable consent file: {exc}") from None
    changes, problems = changes_from_records(frame.to_dict("records"), f"file:{path.name}")
    if problems:
        raise ValueError(f"{path}: {len(problems)} bad row(s), nothing recorded: " + "; ".join(problems[:5]))
    tombstones = Tombstones.from_settings(settings)
    dead = tombstones.contains([c.customer_id for c in changes]) if len(tombstones) else [False] * len(changes)
    skipped = int(sum(dead))
    changes = [c for c, d in zip(changes, dead) if not d]
    store = ConsentStore.from_settings(settings)
    try:
        recorded = store.record(changes)
    finally:
        store.close()
    return {"file": str(path), "recorded": recorded, "customers": len({c.customer_id for c in changes}),
            "skipped_erased": skipped}
