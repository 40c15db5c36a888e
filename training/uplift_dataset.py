"""The uplift model's training frame: one row per customer of a randomised campaign.

Features are the customer features (``features.customer_features``, the churn model's own) as
of the moment of treatment, so the model learns from what was known when the campaign was sent;
the label is the experiment outcome ``churned`` in the horizon after it
(``experiments.outcomes``); ``treated`` is any arm other than control. Categorical attributes are
integer codes from a vocabulary learned on the training rows (:class:`FeatureEncoder`; an unseen
value is -1, which LightGBM treats as its own bin).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tenure.features.customer_features import (
    CUSTOMER_CATEGORICAL_FEATURES,
    CUSTOMER_FEATURE_COLUMNS,
    compute_customer_features,
)


@dataclass
class FeatureEncoder:
    """Customer features (DataFrame) -> float matrix, categorical columns as learned integer codes.

    Attributes
    ----------
    columns: feature columns, in matrix order.
    vocabulary_: categorical column -> list of values seen in ``fit``.
    """

    columns: tuple[str, ...] = CUSTOMER_FEATURE_COLUMNS
    vocabulary_: dict[str, list[str]] = field(default_factory=dict)

    def fit(self, frame: pd.DataFrame) -> FeatureEncoder:
        """Learn the categorical vocabularies from ``frame`` (one row per customer)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"feature columns missing: {missing}")
        self.vocabulary_ = {c: sorted(frame[c].astype(str).unique()) for c in self.columns
                            if c in CUSTOMER_CATEGORICAL_FEATURES}
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Array of shape (n_customers, n_features), float (NaN = missing)."""
        out = np.empty((len(frame), len(self.columns)), dtype=float)
        for j, col in enumerate(self.columns):
            if col in self.vocabulary_:
                codes = {v: i for i, v in enumerate(self.vocabulary_[col])}
                out[:, j] = frame[col].astype(str).map(codes).fillna(-1).to_numpy(dtype=float)
            else:
                out[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        return out

    def transform_rows(self, rows: Sequence[dict]) -> np.ndarray:
        """The same for online feature rows (list of dicts, e.g. the service's churn feature rows)."""
        return self.transform(pd.DataFrame(list(rows), columns=list(self.columns)))


def uplift_frame(events: pd.DataFrame, customers: pd.DataFrame, items: pd.DataFrame, name: str, horizon_days: int,
                 qualifying_event_types: Sequence[str], control: str = "control") -> pd.DataFrame:
    """Customers of campaign ``name`` with their features at treatment, ``treated`` and ``churned``.

    Only customers whose outcome window has ended are returned. Treatments at several moments
    get the features as of each moment (one feature computation per distinct treatment time).

    Raises
    ------
    UnknownExperimentError
        When no treatment event names ``name``.
    ValueError
        When no customer's window has ended, or one arm is missing.
    """
    from tenure.experiments.outcomes import TREATMENT_EVENT, experiment_outcomes

    data = experiment_outcomes(events, name, horizon_days, qualifying_event_types)
    outcomes = data.matured
    if outcomes.empty:
        raise ValueError(f"campaign {name!r}: no customer's {horizon_days}-day window has ended yet")
    arms = set(outcomes["arm"])
    if control not in arms or arms == {control}:
        raise ValueError(f"campaign {name!r}: uplift needs a {control!r} arm and a treated arm; found {sorted(arms)}")
    history = events[events["event_type"] != TREATMENT_EVENT]
    parts = []
    for at, group in outcomes.groupby("assigned_at"):
        feats = compute_customer_features(history[history["event_at"] < at], customers, items, at)
        parts.append(group.merge(feats, on="customer_id", how="inner"))
    frame = pd.concat(parts, ignore_index=True)
    frame["treated"] = frame["arm"] != control
    return frame
