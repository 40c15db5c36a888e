"""One way to turn our results into plain JSON types: summaries, logs, tags, CLI ``--json`` output.

``to_jsonable`` is used both directly (``json.dumps(to_jsonable(result))``) and as a
``json.dumps(..., default=to_jsonable)`` hook on hot paths (then it only sees the values
``json`` cannot write itself). It imports nothing heavy: numpy and pandas values are
recognised by their methods, not by importing those libraries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

_MISSING_TYPES = frozenset({"NaTType", "NAType"})  # pandas' missing timestamp and missing scalar


def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: dict (string keys), list, str, int, float, bool or None.

    - NaN, +-inf, ``pd.NaT`` and ``pd.NA`` -> None
    - numpy scalars and arrays -> Python numbers and lists (``.tolist()``)
    - datetimes, dates, times and pandas Timestamps -> ISO 8601 strings
    - dataclasses -> dicts of their fields; Paths -> strings; enums -> their values
    - tuples and sets -> lists; mappings -> dicts with ``str`` keys
    - anything else -> ``str(value)``
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # numpy's float64 is a float too
        return float(value) if math.isfinite(value) else None
    if type(value).__name__ in _MISSING_TYPES:
        return None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):  # pandas' Timestamp is a datetime
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Decimal):
        return to_jsonable(float(value))
    if hasattr(value, "tolist"):  # numpy scalars and arrays, pandas Series
        return to_jsonable(value.tolist())
    if hasattr(value, "isoformat"):  # numpy datetime64 has none; other date-likes do
        return value.isoformat()
    return str(value)
