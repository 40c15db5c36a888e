"""Realised performance once labels have matured: churn ROC-AUC/calibration/lift, recommendation hit rate.

Churn: the newest feature snapshot whose label window has passed is scored by the champion
and compared with what actually happened (labels by :mod:`features.labels`), then set
against the metrics the model promised on its test window at training time.
Recommendations: share of served recommendation lists that contain an item the customer
later bought (purchases in the service's event log), against the offline ``hit_rate_at_k``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def churn_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, expected calibration error (10 equal-frequency bins) and top-decile lift."""
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(np.unique(y)) < 2:
        raise ValueError(f"the labelled window has a single class ({len(y)} rows); realised ROC-AUC is undefined")
    order = np.argsort(p, kind="stable")
    ece = sum(len(c) * abs(p[c].mean() - y[c].mean()) for c in np.array_split(order, 10) if len(c)) / len(y)
    top = np.argsort(-p, kind="stable")[: max(1, len(y) // 10)]
    return {"roc_auc": float(roc_auc_score(y, p)), "ece": float(ece),
            "lift_top10": float(y[top].mean() / y.mean()), "rows": float(len(y)), "churn_rate": float(y.mean())}


def matured_snapshot_performance(
    snapshots: pd.DataFrame,
    events: pd.DataFrame,
    customers: pd.DataFrame,
    horizon_days: int,
    qualifying_event_types: Sequence[str],
    score,
) -> dict[str, Any] | None:
    """Realised churn metrics on the newest matured snapshot, or None when none has matured.

    Parameters
    ----------
    snapshots:
        Batch feature table (``customer_id``, ``event_timestamp`` and features).
    events, customers:
        Canonical tables, for the labels.
    score:
        Callable ``DataFrame -> array of probabilities`` (the champion).
    """
    from features.labels import label_churn, matured_cutoffs

    if events.empty or snapshots.empty:
        return None
    data_end = events["event_at"].max()
    matured = matured_cutoffs(pd.to_datetime(snapshots["event_timestamp"].unique(), utc=True), data_end, horizon_days)
    if not matured:
        return None
    cutoff = matured[-1]
    labels = label_churn(events, customers, [cutoff], horizon_days, qualifying_event_types)
    rows = snapshots[snapshots["event_timestamp"] == cutoff].merge(labels[["customer_id", "label"]], on="customer_id")
    if len(rows) < 30:
        return None
    metrics = churn_metrics(rows["label"].to_numpy(), score(rows))
    metrics["window"] = str(cutoff)
    return metrics


def recommendation_hit_rate(recommend_log: pd.DataFrame, event_log_dir: Path) -> dict[str, Any] | None:
    """Share of served lists with an item the customer bought afterwards (service event log)."""
    if recommend_log.empty:
        return None
    purchases: dict[str, set[str]] = {}
    for path in sorted(Path(event_log_dir).glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event_type") == "purchase" and event.get("item_id"):
                    purchases.setdefault(str(event["customer_id"]), set()).add(str(event["item_id"]))
    hits = [bool(set(items or []) & purchases.get(str(cid), set()))
            for cid, items in zip(recommend_log["customer_id"], recommend_log["items"])]
    return {"served_lists": len(hits), "hit_rate": float(np.mean(hits)) if hits else None}
