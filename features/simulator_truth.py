"""The simulated shop's true rates, written beside its files (``rates_truth.json``) so a benchmark can check
what the KPI report recovers.

Two kinds of truth:

- *latent*: what only the simulator knows. ``true_churn``: at each month's first instant T, of
  the customers who are still customers (signed up, not gone before T), the share who really
  leave (``Shop.truth.left_at``) within (T, T + H]. The report can only see activity, so its
  churn rate (no qualifying activity for H days) is an estimate of this.
- *realised*: rates of the generated events computed here with plain pandas, independently of
  ``tenure.insight.kpis`` (conversion, order value, repurchase, NPS, CSAT, CES, resolution time,
  per channel): the report must find the same numbers after ingestion.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TRUTH_FILE = "rates_truth.json"


def true_rates(shop, horizon_days: int = 30) -> dict[str, Any]:
    """True rates of a simulated shop (see the module docstring).

    Parameters
    ----------
    shop: a :class:`tenure.features.simulator.Shop`.
    horizon_days: the churn horizon H (``churn.horizon_days``).

    Returns
    -------
    dict: ``horizon_days``, ``true_churn`` (``months``: list of {month, customers, left,
    churn_rate}; ``churn_rate``: pooled), ``realised`` (headline rates) and ``channels``
    ({channel: rates}).
    """
    if horizon_days < 1:
        raise ValueError(f"churn horizon must be at least 1 day, got {horizon_days}")
    events = shop.events
    truth = shop.truth.merge(shop.customers[["customer_id", "signup_at"]], on="customer_id", how="left")
    start, end = events["event_at"].min(), events["event_at"].max()
    horizon = pd.Timedelta(days=horizon_days)
    months = []
    for t in pd.date_range(start.ceil("D"), end, freq="MS"):
        if t - horizon < start or t + horizon > end:
            continue
        customer = (truth["signup_at"] <= t) & (truth["left_at"].isna() | (truth["left_at"] > t))
        left = customer & truth["left_at"].notna() & (truth["left_at"] <= t + horizon)
        months.append({"month": t.strftime("%Y-%m"), "customers": int(customer.sum()), "left": int(left.sum()),
                       "churn_rate": float(left.sum() / customer.sum()) if customer.any() else None})
    n_customers = sum(m["customers"] for m in months)
    return {
        "horizon_days": horizon_days,
        "true_churn": {"months": months,
                       "churn_rate": sum(m["left"] for m in months) / n_customers if n_customers else None},
        "realised": _realised(events),
        "channels": {str(c): _realised(g) for c, g in events.groupby("channel", sort=True)},
    }


def _realised(events: pd.DataFrame) -> dict[str, float | None]:
    """Event rates with plain pandas (one definition each, as in docs/insight.md)."""
    day = events["event_at"].dt.floor("D")
    purchases = events[events["event_type"] == "purchase"]
    orders = purchases.assign(day=day[purchases.index]).groupby(["customer_id", "day"])["amount"].sum()
    per_customer = orders.groupby(level="customer_id").size()
    is_session = events["event_type"] == "session"
    sessions = pd.MultiIndex.from_arrays([events.loc[is_session, "customer_id"], day[is_session]]).unique()
    converted = int(orders.index.isin(sessions).sum())
    nps, csat, ces = (events[c].dropna() for c in ("nps", "csat", "ces"))
    hours = events.loc[events["event_type"] == "support_ticket", "resolution_hours"].dropna()

    def share(mask: pd.Series) -> float | None:
        return float(mask.mean()) if len(mask) else None

    return {
        "conversion_rate": converted / len(sessions) if len(sessions) else None,
        "average_order_value": float(orders.sum() / len(orders)) if len(orders) else None,
        "repurchase_rate": share(per_customer >= 2),
        "nps": 100.0 * (share(nps >= 9) - share(nps <= 6)) if len(nps) else None,
        "csat": share(csat >= 4),
        "ces": float(ces.mean()) if len(ces) else None,
        "resolution_hours_median": float(np.median(hours)) if len(hours) else None,
    }


def write_rates(shop, out_dir: str | os.PathLike, horizon_days: int = 30) -> Path:
    """Write :func:`true_rates` as ``out_dir/rates_truth.json`` (atomically) and return its path."""
    path = Path(out_dir) / TRUTH_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(true_rates(shop, horizon_days), indent=2))
    tmp.replace(path)
    return path
