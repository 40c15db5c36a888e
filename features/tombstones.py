"""Tombstones: salted hashes of erased customers, so that re-ingesting old files skips them.

``<paths.data_dir>/privacy/tombstones.json`` holds a random salt (made on the first erasure) and
the hashes ``sha256(salt + customer_id)`` (32 hex characters) of every erased customer: no raw
id. Ingestion leaves out customer and event rows of a tombstoned id before validating them (so
they are neither stored nor written to a rejects file); erasure receipts name the person by the
same hash. Whoever holds the workspace can test a guessed id against the list (that is what makes
re-ingestion skip it); the list cannot be read back into ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tenure.files import fsync_path

logger = logging.getLogger(__name__)


def tombstones_path(settings) -> Path:
    """``<paths.data_dir>/privacy/tombstones.json``."""
    return Path(settings.paths.data_dir) / "privacy" / "tombstones.json"


class Tombstones:
    """The tombstone list of one workspace (read on creation; :meth:`add` writes it atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self._salt: str | None = data.get("salt")
        self._hashes: dict[str, str] = dict(data.get("hashes", {}))  # hash -> erased_at

    @classmethod
    def from_settings(cls, settings) -> Tombstones:
        return cls(tombstones_path(settings))

    def __len__(self) -> int:
        return len(self._hashes)

    def hash(self, customer_id: str) -> str:
        """The salted hash that stands for ``customer_id`` (the salt is made on first use)."""
        if self._salt is None:
            self._salt = secrets.token_hex(16)
        return hashlib.sha256((self._salt + str(customer_id)).encode()).hexdigest()[:32]

    def add(self, customer_ids: Iterable[str], at: str) -> list[str]:
        """Tombstone these customers (written before any store is touched); returns their hashes."""
        hashes = [self.hash(c) for c in customer_ids]
        for h in hashes:
            self._hashes.setdefault(h, at)
        self._write()
        return hashes

    def contains(self, customer_ids) -> np.ndarray:
        """Boolean mask: which of ``customer_ids`` are tombstoned."""
        ids = np.asarray(customer_ids, dtype=object)
        if not self._hashes or self._salt is None:
            return np.zeros(len(ids), dtype=bool)
        return np.fromiter((self.hash(c) in self._hashes for c in ids), dtype=bool, count=len(ids))

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"salt": self._salt, "hashes": self._hashes}, indent=0, sort_keys=True))
        fsync_path(tmp)
        os.replace(tmp, self.path)
        fsync_path(self.path.parent)


def drop_tombstoned(frame, rows: np.ndarray, tombstones: Tombstones, mapping: dict | None = None):
    """``(frame, rows, n)`` without the rows of tombstoned customers (ingestion, before validation)."""
    if not len(tombstones) or frame.empty:
        return frame, rows, 0
    column = next((src for src, dst in (mapping or {}).items() if dst == "customer_id"), "customer_id")
    if column not in frame.columns:
        return frame, rows, 0
    erased = tombstones.contains(frame[column].astype(str).to_numpy(dtype=object))
    n = int(erased.sum())
    if not n:
        return frame, rows, 0
    keep = ~erased
    return frame[keep].reset_index(drop=True), rows[keep], n
