"""Data drift, prediction drift and data quality between a reference sample and a current window.

Pure: ``(reference, current, columns, thresholds) -> (DriftSummary, Evidently snapshot)``; the
caller decides where the snapshot and summary go. Every column gets an explicit type in the
Evidently ``DataDefinition`` (its type guessing is fragile) and an explicit drift method
and threshold (numerical: ``monitoring.numerical_stattest``; categorical:
``monitoring.categorical_stattest``; per feature: ``monitoring.feature_overrides`` or the
``overrides`` argument). Prediction drift is the same test on the churn probability and a
categorical test on the risk-band mix.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
BAND_COLUMN = "risk_band"


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """Drift of one column: the method's score against its threshold."""

    column: str
    kind: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclasses.dataclass
class DriftSummary:
    """What changed between reference and current, in numbers an alert can quote."""

    rows_reference: int
    rows_current: int
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    band_mix: dict[str, dict[str, float]]
    missing_share: dict[str, dict[str, float]]
    out_of_range_share: dict[str, float]
    new_categories: dict[str, list[str]]
    bands: FeatureDrift | None = None

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features (prediction excluded)."""
        return [f.column for f in self.features if f.drifted]

    @property
    def drift_share(self) -> float:
        """Share of features that drifted."""
        return len(self.drifted) / len(self.features) if self.features else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = dataclasses.asdict(self)
        out["drifted"] = self.drifted
        out["drift_share"] = self.drift_share
        return out


def _method_for(column: str, kind: str, settings, overrides: Mapping[str, tuple[str, float]]) -> tuple[str, float]:
    """(method, threshold) of ``column``: the argument's override, the setting's, else the type default."""
    from tenure.settings import CATEGORICAL_DRIFT_METHODS, NUMERICAL_DRIFT_METHODS

    chosen = None
    if column in overrides:
        chosen = tuple(overrides[column])
    elif column in getattr(settings, "feature_overrides", {}):
        o = settings.feature_overrides[column]
        chosen = (o.method, o.threshold)
    if chosen is not None:
        allowed = CATEGORICAL_DRIFT_METHODS if kind == "categorical" else NUMERICAL_DRIFT_METHODS
        if chosen[0] not in allowed:
            raise ValueError(f"drift method {chosen[0]!r} cannot test the {kind} column {column!r}; "
                             f"use one of {list(allowed)}")
        return str(chosen[0]), float(chosen[1])
    if kind == "categorical":
        return settings.categorical_stattest, settings.categorical_threshold
    return settings.numerical_stattest, settings.numerical_threshold


def _band_mix(frame: pd.DataFrame) -> dict[str, float]:
    if BAND_COLUMN not in frame.columns or frame.empty:
        return {}
    return {str(k): float(v) for k, v in frame[BAND_COLUMN].value_counts(normalize=True).sort_index().items()}


def data_quality(reference: pd.DataFrame, current: pd.DataFrame, numerical: Sequence[str],
                 categorical: Sequence[str]) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, list[str]]]:
    """Missing shares (reference vs current), share of current values outside the reference range, new categories."""
    missing = {
        c: {"reference": float(reference[c].isna().mean()), "current": float(current[c].isna().mean())}
        for c in [*numerical, *categorical] if c in reference.columns and c in current.columns
    }
    out_of_range = {}
    for c in numerical:
        ref = pd.to_numeric(reference[c], errors="coerce").dropna()
        cur = pd.to_numeric(current[c], errors="coerce").dropna()
        if len(ref) and len(cur):
            out_of_range[c] = float(((cur < ref.min()) | (cur > ref.max())).mean())
    new = {}
    for c in categorical:
        unseen = sorted(set(current[c].dropna().astype(str)) - set(reference[c].dropna().astype(str)))
        if unseen:
            new[c] = unseen[:20]
    return missing, out_of_range, new


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    settings,
    overrides: Mapping[str, tuple[str, float]] | None = None,
    min_rows: int = 30,
):
    """Run the Evidently drift report of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current:
        DataFrames, one row per scored customer, with the feature columns and optionally
        ``prediction`` (churn probability) and ``risk_band`` (both sides needed for each test).
    numerical, categorical:
        Feature columns by type.
    settings:
        The ``monitoring`` settings section (methods and thresholds).
    overrides:
        ``{column: (method, threshold)}`` for particular features; wins over
        ``settings.feature_overrides``.

    Returns
    -------
    (DriftSummary, evidently Snapshot)

    Raises
    ------
    ValueError
        When either side has fewer than ``min_rows`` rows, no feature is shared, or an
        override names a method that cannot test its column's type.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import DriftedColumnsCount, MissingValueCount, ValueDrift

    overrides = dict(overrides or {})
    if len(reference) < min_rows or len(current) < min_rows:
        raise ValueError(
            f"drift needs at least {min_rows} rows on each side; reference has {len(reference)}, current {len(current)}"
        )
    numerical = [c for c in numerical if c in reference.columns and c in current.columns]
    categorical = [c for c in categorical if c in reference.columns and c in current.columns]
    if not numerical and not categorical:
        raise ValueError("reference and current share no feature column; is the reference from this model?")
    has_prediction = PREDICTION_COLUMN in reference.columns and PREDICTION_COLUMN in current.columns
    has_bands = BAND_COLUMN in reference.columns and BAND_COLUMN in current.columns
    columns = ([*numerical, *categorical] + ([PREDICTION_COLUMN] if has_prediction else [])
               + ([BAND_COLUMN] if has_bands else []))
    ref, cur = reference[columns].copy(), current[columns].copy()
    for c in numerical + ([PREDICTION_COLUMN] if has_prediction else []):
        ref[c] = pd.to_numeric(ref[c], errors="coerce").astype(float)
        cur[c] = pd.to_numeric(cur[c], errors="coerce").astype(float)
    for c in categorical + ([BAND_COLUMN] if has_bands else []):
        ref[c] = ref[c].astype("string").fillna("unknown").astype(str)
        cur[c] = cur[c].astype("string").fillna("unknown").astype(str)
    definition = DataDefinition(
        numerical_columns=numerical + ([PREDICTION_COLUMN] if has_prediction else []),
        categorical_columns=categorical + ([BAND_COLUMN] if has_bands else []),
    )
    # a feature with no value on one side (no sessions in a purchases-only history) has no distribution to
    # compare: left out of the drift tests (Evidently refuses it); its missing share is still checked below
    empty = [c for c in numerical if ref[c].isna().all() or cur[c].isna().all()]
    if empty:
        logger.info("no drift test for %s: no values in the reference or the current window", ", ".join(empty))
    tested = [c for c in numerical if c not in empty]
    kinds = {**{c: "numerical" for c in tested}, **{c: "categorical" for c in categorical}}
    if has_prediction:
        kinds[PREDICTION_COLUMN] = "numerical"
    if has_bands:
        kinds[BAND_COLUMN] = "categorical"
    chosen = {c: _method_for(c, k, settings, overrides) for c, k in kinds.items()}
    metrics: list[Any] = [ValueDrift(column=c, method=m, threshold=t) for c, (m, t) in chosen.items()]
    metrics.append(DriftedColumnsCount(columns=[*tested, *categorical]))
    metrics.extend(MissingValueCount(column=c) for c in [*numerical, *categorical])
    snapshot = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    scores, failed = _read_snapshot(snapshot)
    results = {
        c: FeatureDrift(column=c, kind=kinds[c], method=m, threshold=float(t),
                        score=float(scores.get(c, np.nan)), drifted=c in failed)
        for c, (m, t) in chosen.items()
    }
    missing, out_of_range, new = data_quality(ref, cur, numerical, categorical)
    summary = DriftSummary(
        rows_reference=len(ref),
        rows_current=len(cur),
        features=[results[c] for c in [*tested, *categorical]],
        prediction=results.get(PREDICTION_COLUMN),
        bands=results.get(BAND_COLUMN),
        band_mix={"reference": _band_mix(reference), "current": _band_mix(current)},
        missing_share=missing,
        out_of_range_share=out_of_range,
        new_categories=new,
    )
    return summary, snapshot


def _read_snapshot(snapshot) -> tuple[dict[str, float], set[str]]:
    """Per-column drift scores and the columns whose drift test failed."""
    data = snapshot.dict()
    scores: dict[str, float] = {}
    for metric in data.get("metrics", []):
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric.get("value", np.nan))
    failed = set()
    for test in data.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift") and test.get("status") == "FAIL":
            failed.add(params["column"])
    return scores, failed
