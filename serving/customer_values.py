"""Each customer's expected value (``tenure train value``) for ``/churn-score``, held in memory.

The values file (``features_dir/customer_values.parquet``, :mod:`tenure.insight.value`) is read
once into a dict when the service starts, and read again only when the file changed (its
modification time, looked at no more than once every ``check_every_s``): a request costs one
dict lookup, never a file read or a model evaluation.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class CustomerValues:
    """``customer_id -> expected_value`` from the value model's file (None when no model was fitted).

    Parameters
    ----------
    path: the values file.
    check_every_s: how often, at most, the file's modification time is looked at.
    """

    def __init__(self, path: Path, check_every_s: float = 60.0) -> None:
        self.path = Path(path)
        self.check_every_s = check_every_s
        self._values: dict[str, float] = {}
        self._mtime: float | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._load()

    @classmethod
    def from_settings(cls, settings) -> CustomerValues:
        from tenure.insight.value import values_path

        return cls(values_path(settings))

    def _load(self) -> None:
        self._checked = time.monotonic()
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            if self._values:
                logger.info("customer values removed (%s): /churn-score answers without expected_value", self.path)
            self._values, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(self.path, columns=["customer_id", "expected_value"])
        except Exception as exc:  # noqa: BLE001 - a bad file must not take the service down
            logger.error("customer values at %s could not be read (%s: %s); keeping the previous ones",
                         self.path, type(exc).__name__, exc)
            return
        ids = table.column("customer_id").to_pylist()
        values = table.column("expected_value").to_pylist()
        self._values = {str(c): float(v) for c, v in zip(ids, values) if v is not None and math.isfinite(v)}
        self._mtime = mtime
        logger.info("customer values of %d customers loaded from %s", len(self._values), self.path)

    def get(self, customer_id: str) -> float | None:
        """The customer's expected value over the model's horizon, or None (no model, or no value for them)."""
        if time.monotonic() - self._checked > self.check_every_s and self._lock.acquire(blocking=False):
            try:
                self._load()
            finally:
                self._lock.release()
        return self._values.get(customer_id)
