"""Buffered prediction log: the request thread appends to memory, a background thread writes JSON lines.

Format (one object a line, under ``prediction_log_dir/<kind>-YYYYMMDD-<pid>.jsonl``) is in
``docs/CONTRACTS.md``; monitoring reads it. Flushed every ``flush_s`` seconds and on shutdown.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.jsonable import to_jsonable
from tenure.pseudonym import customer_ref

logger = logging.getLogger(__name__)


class PredictionLog:
    """Collects records in memory and writes them in batches off the hot path.

    Parameters
    ----------
    folder:
        Where the JSON-lines files go.
    flush_s:
        Seconds between background flushes.
    pseudonymize_key:
        When set, customer ids are written as a keyed hash (:func:`tenure.pseudonym.customer_ref`).
    """

    def __init__(self, folder: Path, flush_s: float = 1.0, pseudonymize_key: bytes | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_s = flush_s
        self._key = pseudonymize_key
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tenure-prediction-log", daemon=True)
        self._thread.start()

    def customer_ref(self, customer_id: str) -> str:
        """The customer id as written to logs (pseudonymised when configured)."""
        return customer_ref(self._key, customer_id)

    def add(self, record: dict[str, Any]) -> None:
        """Queue one record (cheap: a list append under a lock); NaN feature values are written as null."""
        with self._lock:
            self._buffer.append(record)

    def flush(self) -> int:
        """Write everything queued; returns how many records were written."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        by_file: dict[Path, list[str]] = {}
        day = datetime.now(UTC).strftime("%Y%m%d")
        for record in batch:
            features = record.get("features")
            if features:  # NaN (a missing value) is written as null, here rather than on the request path
                record["features"] = {k: None if isinstance(v, float) and math.isnan(v) else v
                                      for k, v in features.items()}
            path = self.folder / f"{record['kind']}-{day}-{os.getpid()}.jsonl"
            by_file.setdefault(path, []).append(json.dumps(record, separators=(",", ":"), default=to_jsonable))
        for path, lines in by_file.items():
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:
                logger.exception("prediction log flush failed")

    def close(self) -> None:
        """Stop the background thread and write what is left."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.flush()

