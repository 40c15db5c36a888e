"""Treatment events + ordinary events -> one row per customer of an experiment, with its outcomes.

A customer enters an experiment with its first ``treatment`` event of that campaign (the arm
is the one recorded there; control customers get a treatment event too, with no offer: they
were assigned and deliberately not contacted). Outcomes are read from the ordinary events in
``(assigned_at, assigned_at + horizon]``:

- ``churned``: no qualifying activity (``churn.qualifying_event_types``) in the window, or a
  ``subscription_cancel`` in it (the data contract's churn label, as of the treatment);
  ``retained`` is its complement;
- ``repurchased``: at least one purchase in the window;
- ``revenue``: purchase amounts minus refunded returns in the window.

The pre-period covariates for CUPED come from ``[assigned_at - horizon, assigned_at)``:
``pre_activity`` (qualifying events) and ``pre_revenue``. A customer whose window has not ended
by the last event in the data is ``matured = False`` and left out of the analysis; a customer
recorded in two arms is left out too (and counted).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tenure.experiments.assignment import UnknownExperimentError

logger = logging.getLogger(__name__)

TREATMENT_EVENT = "treatment"
"""Event type of a campaign assignment (sent, or held back for a control arm)."""
CANCEL_EVENT = "subscription_cancel"
OUTCOME_COLUMNS = ("churned", "retained", "repurchased", "revenue")


@dataclass
class ExperimentData:
    """The customers of one experiment and their outcomes.

    Attributes
    ----------
    name: the experiment (campaign) name.
    customers: DataFrame, one row per customer: ``customer_id``, ``arm``, ``assigned_at``,
        ``matured``, ``churned``, ``retained``, ``repurchased``, ``revenue``, ``pre_activity``,
        ``pre_revenue``.
    conflicting: customers recorded in more than one arm (left out).
    horizon_days: the outcome window.
    data_end: the last event time in the data (the window of a later treatment is not over).
    """

    name: str
    customers: pd.DataFrame
    conflicting: int
    horizon_days: int
    data_end: pd.Timestamp | None

    @property
    def matured(self) -> pd.DataFrame:
        """The customers whose outcome window has ended."""
        return self.customers[self.customers["matured"]]


def campaigns_in(events: pd.DataFrame) -> pd.DataFrame:
    """Campaigns found in the treatment events: ``campaign``, ``arms`` (sorted list), ``customers``,
    ``first_at``, ``last_at``; empty when there are none."""
    cols = ["campaign", "arms", "customers", "first_at", "last_at"]
    if "campaign" not in events.columns or events.empty:
        return pd.DataFrame(columns=cols)
    t = events[(events["event_type"] == TREATMENT_EVENT) & events["campaign"].notna()]
    if t.empty:
        return pd.DataFrame(columns=cols)
    grouped = t.groupby("campaign", sort=True)
    return pd.DataFrame({
        "campaign": list(grouped.groups),
        "arms": [sorted(g["arm"].dropna().astype(str).unique()) for _, g in grouped],
        "customers": grouped["customer_id"].nunique().to_numpy(),
        "first_at": grouped["event_at"].min().to_numpy(),
        "last_at": grouped["event_at"].max().to_numpy(),
    })


def experiment_outcomes(events: pd.DataFrame, name: str, horizon_days: int,
                        qualifying_event_types: Sequence[str], data_end: pd.Timestamp | None = None) -> ExperimentData:
    """One row per customer of experiment ``name`` with the outcomes in its window.

    Parameters
    ----------
    events:
        Canonical events (with the treatment columns ``campaign`` and ``arm``).
    name:
        The campaign / experiment name in the treatment events.
    horizon_days:
        Length of the outcome window after each customer's treatment.
    qualifying_event_types:
        Event types that count as activity (``churn.qualifying_event_types``).
    data_end:
        When the data ends (default: the last event's time).

    Raises
    ------
    UnknownExperimentError
        When no treatment event names ``name`` (the message lists the campaigns found).
    ValueError
        When ``horizon_days`` is below 1.
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be at least 1, got {horizon_days}")
    has_columns = "campaign" in events.columns and "arm" in events.columns
    treat = (events[(events["event_type"] == TREATMENT_EVENT) & (events["campaign"] == name)]
             if has_columns and not events.empty else events.iloc[0:0])
    if treat.empty:
        found = campaigns_in(events)["campaign"].tolist() if has_columns else []
        raise UnknownExperimentError(
            f"no treatment events of experiment {name!r} in the events table; campaigns found: "
            f"{', '.join(found) or 'none'} (treatments are recorded by tenure export audience --experiment, "
            "or sent as event_type 'treatment' to POST /events)")
    treat = treat.sort_values("event_at", kind="stable")
    arms_per_customer = treat.groupby("customer_id")["arm"].nunique()
    conflicting = arms_per_customer.index[arms_per_customer > 1]
    if len(conflicting):
        logger.warning("experiment %s: %d customer(s) recorded in more than one arm are left out",
                       name, len(conflicting))
    first = treat[~treat["customer_id"].isin(conflicting)].drop_duplicates("customer_id", keep="first")
    first = first[["customer_id", "arm", "event_at"]].rename(columns={"event_at": "assigned_at"})
    first = first.reset_index(drop=True)
    end = events["event_at"].max() if data_end is None else pd.Timestamp(data_end)
    horizon = pd.Timedelta(days=horizon_days)

    ids = first["customer_id"].to_numpy()
    relevant = events[events["customer_id"].isin(ids) & (events["event_type"] != TREATMENT_EVENT)]
    relevant = relevant[["customer_id", "event_at", "event_type", "amount"]].merge(
        first[["customer_id", "assigned_at"]], on="customer_id", how="inner")
    delta = relevant["event_at"] - relevant["assigned_at"]
    after = (delta > pd.Timedelta(0)) & (delta <= horizon)
    before = (delta < pd.Timedelta(0)) & (delta >= -horizon)
    etype = relevant["event_type"]
    qualifying = etype.isin(list(qualifying_event_types))
    amount = relevant["amount"].fillna(0.0)
    signed = np.where(etype == "purchase", amount, np.where(etype == "return", -amount, 0.0))
    per = pd.DataFrame({
        "customer_id": relevant["customer_id"],
        "active": after & qualifying,
        "cancelled": after & (etype == CANCEL_EVENT),
        "bought": after & (etype == "purchase"),
        "revenue": np.where(after, signed, 0.0),
        "pre_activity": (before & qualifying).astype(float),
        "pre_revenue": np.where(before, signed, 0.0),
    }).groupby("customer_id").agg(active=("active", "any"), cancelled=("cancelled", "any"),
                                  bought=("bought", "any"), revenue=("revenue", "sum"),
                                  pre_activity=("pre_activity", "sum"), pre_revenue=("pre_revenue", "sum"))
    out = first.join(per, on="customer_id")
    for col in ("active", "cancelled", "bought"):
        out[col] = out[col].eq(True)  # customers without events in the window: False
    for col in ("revenue", "pre_activity", "pre_revenue"):
        out[col] = out[col].fillna(0.0).astype(float)
    out["churned"] = ~out["active"] | out["cancelled"]
    out["retained"] = ~out["churned"]
    out["repurchased"] = out["bought"]
    out["matured"] = (out["assigned_at"] + horizon) <= end if pd.notna(end) else False
    out["arm"] = out["arm"].astype(str)
    columns = ["customer_id", "arm", "assigned_at", "matured", "churned", "retained", "repurchased", "revenue",
               "pre_activity", "pre_revenue"]
    return ExperimentData(name, out[columns], len(conflicting), int(horizon_days), end)
