"""``tenure.jsonable.to_jsonable``: the one JSON helper, for summaries, logs and ``--json`` output."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from tenure.jsonable import to_jsonable


@dataclasses.dataclass
class _Result:
    version: str
    auc: float
    at: datetime


def test_plain_values_and_containers():
    value = {1: (1, 2.5, "a", None, True), "s": {3}}
    assert to_jsonable(value) == {"1": [1, 2.5, "a", None, True], "s": [3]}


def test_numpy_pandas_dates_paths_and_dataclasses():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        "i": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True), "arr": np.array([[1, 2], [3, 4]]),
        "ts": pd.Timestamp(when), "d": date(2026, 1, 2), "path": Path("/tmp/x"),
        "result": _Result("3", np.float64(0.81), when), "series": pd.Series([1.0, math.nan]),
    }
    out = to_jsonable(value)
    assert out == {
        "i": 7, "f": 0.5, "b": True, "arr": [[1, 2], [3, 4]], "ts": "2026-01-02T03:04:05+00:00",
        "d": "2026-01-02", "path": "/tmp/x",
        "result": {"version": "3", "auc": 0.81, "at": "2026-01-02T03:04:05+00:00"}, "series": [1.0, None],
    }
    assert type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON


def test_missing_values_become_null():
    values = [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("nan"), pd.NaT, pd.NA]
    assert to_jsonable(values) == [None] * len(values)


def test_as_a_json_dumps_default_hook():
    line = json.dumps({"p": np.float32(0.25), "at": pd.Timestamp("2026-01-01", tz="UTC"), "x": object.__new__(object)},
                      default=to_jsonable)
    record = json.loads(line)
    assert record["p"] == 0.25 and record["at"] == "2026-01-01T00:00:00+00:00" and record["x"].startswith("<object")
