"""Realised performance once labels have matured: churn ROC-AUC/calibration/lift, recommendation hit rate.

Churn: the newest feature snapshot whose label window has passed is scored by the champion
and compared with what actually happened (labels by :mod:`features.labels`), then set
against the metrics the model promised on its test window at training time.
Recommendations: share of served recommendation lists that contain an item the customer
bought within the evaluation horizon after serving (purchases in the service's event log),
against the offline ``hit_rate_at_k``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tenure.monitoring.snapshots import Snapshots, as_snapshots

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
    snapshots: pd.DataFrame | Snapshots,
    events: pd.DataFrame,
    customers: pd.DataFrame,
    horizon_days: int,
    qualifying_event_types: Sequence[str],
    score,
    data_end: pd.Timestamp | None = None,
) -> dict[str, Any] | None:
    """Realised churn metrics on the newest matured snapshot, or None when none has matured.

    Parameters
    ----------
    snapshots:
        Batch feature table (``customer_id``, ``event_timestamp`` and features): a frame, or a
        :class:`~tenure.monitoring.snapshots.SnapshotTable` (only the matured snapshot's rows are read).
    events, customers:
        Canonical tables, for the labels (events: at least those within ``horizon_days`` of the
        matured cut-off and the cancellations before, :func:`tenure.monitoring.snapshots.label_events`).
    score:
        Callable ``DataFrame -> array of probabilities`` (the champion).
    data_end:
        The newest stored event's time (default: the newest of ``events``).
    """
    from tenure.features.labels import label_churn, matured_cutoffs

    snapshots = as_snapshots(snapshots)
    if data_end is None:
        if events.empty:
            return None
        data_end = events["event_at"].max()
    matured = matured_cutoffs(snapshots.as_of_times(), data_end, horizon_days)
    if not matured:
        return None
    cutoff = matured[-1]
    labels = label_churn(events, customers, [cutoff], horizon_days, qualifying_event_types)
    rows = snapshots.rows([cutoff]).merge(labels[["customer_id", "label"]], on="customer_id")
    if len(rows) < 30:
        return None
    metrics = churn_metrics(rows["label"].to_numpy(), score(rows))
    metrics["window"] = str(cutoff)
    return metrics


def read_purchases(event_log_dir: Path, pseudonymize_key: bytes | None = None) -> pd.DataFrame:
    """Purchases in the service's event log (``events-*.jsonl``): ``customer_id``, ``item_id``, ``event_at`` (UTC).

    With ``pseudonymize_key`` (the service's log key, :func:`tenure.pseudonym.log_key`) the
    ``customer_id`` column holds the same keyed hash as the prediction log, so the two join.
    """
    from tenure.pseudonym import customer_ref

    rows = []
    for path in sorted(Path(event_log_dir).glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if event.get("event_type") == "purchase" and event.get("item_id") and event.get("event_at"):
                    rows.append((customer_ref(pseudonymize_key, str(event["customer_id"])), str(event["item_id"]),
                                 event["event_at"]))
    frame = pd.DataFrame(rows, columns=["customer_id", "item_id", "event_at"])
    frame["event_at"] = pd.to_datetime(frame["event_at"], utc=True, format="ISO8601", errors="coerce")
    return frame.dropna(subset=["event_at"])


def recommendation_hit_rate(recommend_log: pd.DataFrame, purchases: pd.DataFrame, horizon_days: float,
                            now: pd.Timestamp | None = None) -> dict[str, Any] | None:
    """Share of served lists with an item the customer bought within ``horizon_days`` after serving.

    Parameters
    ----------
    recommend_log:
        One row per served list: ``customer_id``, ``logged_at`` (UTC), ``items`` (list of item ids).
    purchases:
        One row per purchase: ``customer_id``, ``item_id``, ``event_at`` (UTC), e.g. :func:`read_purchases`.
    horizon_days:
        How long after serving a purchase counts (the offline figure's holdout length).
    now:
        Lists served less than ``horizon_days`` before ``now`` (default: the newest purchase)
        have not had their full chance yet and are left out ("not matured").

    Returns
    -------
    ``{served_lists, matured_lists, hits, hit_rate}``; ``hit_rate`` is None (with a ``note``)
    when no list has matured. None when nothing was served.
    """
    if horizon_days <= 0:
        raise ValueError(f"hit-rate horizon must be positive, got {horizon_days} days")
    if recommend_log.empty:
        return None
    missing = {"customer_id", "logged_at", "items"} - set(recommend_log.columns)
    if missing:
        raise ValueError(f"recommend log lacks columns {sorted(missing)}")
    horizon = pd.Timedelta(days=horizon_days)
    if now is None:
        now = purchases["event_at"].max() if len(purchases) else None
    served_at = pd.to_datetime(recommend_log["logged_at"], utc=True)
    matured = served_at + horizon <= now if now is not None else pd.Series(False, index=recommend_log.index)
    bought: dict[str, list[tuple[pd.Timestamp, str]]] = {}
    for cid, item, at in zip(purchases["customer_id"], purchases["item_id"], purchases["event_at"]):
        bought.setdefault(str(cid), []).append((at, str(item)))
    hits = 0
    for cid, items, at, ok in zip(recommend_log["customer_id"], recommend_log["items"], served_at, matured):
        if not ok:
            continue
        wanted = set(map(str, items if items is not None else []))
        hits += any(at <= when <= at + horizon and item in wanted for when, item in bought.get(str(cid), []))
    n_matured = int(np.sum(matured))
    out: dict[str, Any] = {"served_lists": len(recommend_log), "matured_lists": n_matured, "hits": hits,
                           "hit_rate": hits / n_matured if n_matured else None, "horizon_days": float(horizon_days)}
    if not n_matured:
        out["note"] = (f"no served list is {horizon_days:g} days older than the newest logged purchase yet; "
                       "hit rate not measured")
    return out
