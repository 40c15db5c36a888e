"""``uplift`` on ``/churn-score`` answers: the uplift champion's predicted churn reduction, per treatment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def uplift_by_customer(runtime: Any, rows: Sequence[dict[str, Any]]) -> list[dict[str, float]]:
    """``[{"<campaign>/<arm>": churn reduction}, ...]``, one dict per feature row (the rows already scored for churn).

    ``runtime`` is a :class:`tenure.registry.uplift_runtime.UpliftRuntime`; features it needs and the row
    lacks count as missing (LightGBM's own handling), so the answer never fails for a missing feature.
    """
    if runtime is None or not rows:
        return [{} for _ in rows]
    values = runtime.predict_rows(rows)
    key = runtime.treatment
    return [{key: round(float(v), 6)} for v in values]
