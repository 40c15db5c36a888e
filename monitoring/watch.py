"""Every model watched, every alert routed: pipeline alerts, performance before labels, recommender triggers.

Helpers of :func:`tenure.monitoring.runner.run_monitoring_pass` (and of ``tenure ingest``, which
raises the pipeline alert of a quarantined batch in the run that ingests it):

- :func:`pipeline_alerts` — one *pipeline* alert per quarantined batch not alerted yet, and per
  feature whose missing share jumped in the current window (the data is broken, not the world);
- :func:`estimate_current` — the CBPE estimate of the churn champion's ROC-AUC on the current
  window (no labels needed), recalibrated on the reference sample;
- :func:`current_event_shifts` — event-level world-change signals from the stored events;
- :func:`recommender_check` — the recommender's served hit rate (per strategy, with a 95 %
  Wilson interval) and catalogue coverage against its offline figures, as a retrain decision
  with the same cool-down as churn.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tenure.monitoring.alerts import Alert, dispatch, routed
from tenure.monitoring.policy import RetrainDecision, retrain_decision
from tenure.monitoring.state import load_json_state, save_json_state

logger = logging.getLogger(__name__)

PIPELINE_STATE = "pipeline_alerts.json"


# ----------------------------------------------------------------------------- pipeline
def pipeline_alerts(settings, sinks, missing_share: dict[str, dict[str, float]] | None = None,
                    model_version: str | None = None, report_path: str | None = None) -> list[Alert]:
    """Send one pipeline alert per newly quarantined batch and one for features gone missing.

    Parameters
    ----------
    settings: the full settings (paths, quality thresholds, alert routes).
    sinks: alert sinks (:func:`tenure.monitoring.alerts.sinks_from_settings`).
    missing_share: ``{feature: {"reference": share, "current": share}}`` of a drift report, or None.
    model_version, report_path: for the feature alert.

    Returns
    -------
    The alerts sent (a batch is alerted once: ``state_dir/pipeline_alerts.json``).
    """
    from tenure.features.quarantine import list_batches

    state_path = settings.paths.state_dir / PIPELINE_STATE
    state = load_json_state(state_path)
    alerted = set(state.get("batches", []))
    routes = settings.monitoring.alert_routes
    sent = []
    for batch in list_batches(settings, "quarantined"):
        if batch["batch"] in alerted:
            continue
        findings = [f["message"] for f in batch["quality"]["findings"]]
        alert = routed(Alert(
            model="data", model_version=None, kind="pipeline",
            title=f"Pipeline break: batch {batch['batch']} quarantined ({', '.join(batch['columns'])})",
            findings=[f"{batch['rows']:,} events from {batch['source']} held back from the tables", *findings],
            report_path=None, confidence="measured on every row of the batch against the "
            f"{settings.quality.baseline_days} days of stored events before it",
            next_action=f"fix the upstream source and ingest again, or `tenure data accept {batch['batch']}` "
                        f"(or `tenure data discard {batch['batch']}`); no training uses the batch until then"),
            routes)
        dispatch(alert, sinks)
        alerted.add(batch["batch"])
        sent.append(alert)
    if missing_share:
        limit = settings.quality.max_missing_increase
        gone = {c: v for c, v in missing_share.items()
                if v.get("current") is not None and v["current"] - (v.get("reference") or 0.0) > limit}
        if gone:
            alert = routed(Alert(
                model="churn", model_version=model_version, kind="pipeline",
                title=f"Pipeline break: features arrive empty ({', '.join(sorted(gone))})",
                findings=[f"{c}: missing in {v['current']:.0%} of current rows (reference {v.get('reference') or 0:.0%})"
                          for c, v in sorted(gone.items())],
                report_path=report_path, confidence=f"missing share up by more than {limit:.0%} (quality.max_missing_increase)",
                next_action="check the feature pipeline (materialisation, online store, upstream columns); "
                            "drift in these features is a symptom, not a changed world"), routes)
            dispatch(alert, sinks)
            sent.append(alert)
    if sent:
        save_json_state(state_path, {"batches": sorted(alerted)})
    return sent


# ----------------------------------------------------------------------------- performance before labels
def estimate_current(current: pd.DataFrame, reference: pd.DataFrame, promised: float | None) -> dict[str, Any] | None:
    """CBPE estimate on the current window's ``prediction``, recalibrated on the reference's labels."""
    from tenure.monitoring.estimation import estimate_performance

    if "prediction" not in current.columns or current["prediction"].notna().sum() < 30:
        return None
    p = pd.to_numeric(current["prediction"], errors="coerce").dropna().clip(0, 1).to_numpy()
    ref_p = ref_y = None
    if {"prediction", "label"} <= set(reference.columns):
        rows = reference[["prediction", "label"]].apply(pd.to_numeric, errors="coerce").dropna()
        ref_p, ref_y = rows["prediction"].clip(0, 1).to_numpy(), rows["label"].to_numpy()
    return estimate_performance(p, ref_p, ref_y, promised)


def current_event_shifts(settings, window: timedelta) -> list[Any]:
    """Event-level shifts of the newest ``window`` of stored events against the weeks before it."""
    from tenure.features.tables import latest_event_time, read_events
    from tenure.monitoring.event_drift import event_drift

    days = max(1, round(window / timedelta(days=1)))
    baseline = max(settings.monitoring.event_baseline_days, days)
    end = latest_event_time(settings)  # the newest day's partition only; history of any age (a replayed dataset)
    if end is None:
        return []
    events = read_events(settings, start=end - pd.Timedelta(days=days + baseline + 29), end=end,
                         columns=["customer_id", "event_at", "event_type", "amount"])
    return event_drift(events, end, days, baseline, settings.monitoring)


# ----------------------------------------------------------------------------- recommender
def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``hits / n``."""
    if n <= 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def served_coverage(settings, since: datetime) -> dict[str, Any] | None:
    """Distinct items in the recommend lists served since ``since`` / items in the catalogue."""
    from tenure.features.tables import read_items
    from tenure.monitoring.sources import read_prediction_log

    log = read_prediction_log(settings.paths.prediction_log_dir, "recommend", since=since)
    if log.empty or "items" not in log.columns:
        return None
    catalogue = len(read_items(settings, missing_ok=True))
    if not catalogue:
        return None
    served = {str(i) for items in log["items"] if items is not None for i in items}
    return {"lists": len(log), "distinct_items": len(served), "catalogue": catalogue,
            "coverage": len(served) / catalogue}


def recommender_check(summary: dict[str, Any] | None, coverage: dict[str, Any] | None, offline_coverage: float | None,
                      settings, last_retrain_at: datetime | None, now: datetime, dry_run: bool,
                      can_retrain: bool) -> RetrainDecision:
    """Retrain decision of the recommender from its served hit rates and coverage.

    A strategy triggers when its matured lists number at least ``recommender_min_matured_lists``,
    its served hit rate is below the offline one by more than ``recommender_hit_rate_drop_tolerance``
    and the upper end of its 95 % Wilson interval is below the offline one too. Coverage (over at
    least ``recommender_min_matured_lists`` served lists) triggers below
    ``(1 - recommender_coverage_drop_tolerance) x`` the offline ``coverage_at_k``. Held back
    by dry run, no action, or the cool-down, as churn.
    """
    m = settings
    reasons, kinds = [], []
    for strategy, row in ((summary or {}).get("by_strategy") or {}).items():
        offline, rate = row.get("offline_hit_rate"), row.get("hit_rate")
        n, hits = int(row.get("matured_lists") or 0), int(row.get("hits") or 0)
        if offline is None or rate is None or n < m.recommender_min_matured_lists:
            continue
        low, high = wilson_interval(hits, n)
        row["hit_rate_interval_95"] = [low, high]
        if offline - rate > m.recommender_hit_rate_drop_tolerance and high < offline:
            reasons.append(f"{strategy} served hit rate {rate:.3f} (95% interval {low:.3f}-{high:.3f}, "
                           f"{n} matured lists) vs offline {offline:.3f}")
            kinds.append(f"recommender:hit_rate:{strategy}")
    if coverage and offline_coverage and coverage["lists"] >= m.recommender_min_matured_lists:
        # a few lists cannot cover what the offline evaluation over every customer covers
        floor = (1 - m.recommender_coverage_drop_tolerance) * offline_coverage
        if coverage["coverage"] < floor:
            reasons.append(f"served catalogue coverage {coverage['coverage']:.1%} below {floor:.1%} "
                           f"(offline coverage_at_k {offline_coverage:.1%}, {coverage['lists']} lists)")
            kinds.append("recommender:coverage")
    return retrain_decision(reasons, kinds, dry_run=dry_run, can_retrain=can_retrain,
                            last_retrain_at=last_retrain_at, now=now, cooldown_hours=m.retrain_cooldown_hours)


def drift_confidence(drift, estimate: dict[str, Any] | None) -> str:
    """How sure a churn alert is, in words: how far over threshold, and the CBPE estimate's own error."""
    parts = []
    if drift is not None:
        over = [f for f in drift.features if f.drifted]
        if over:
            ratio = float(np.median([f.score / f.threshold for f in over if f.threshold]))
            parts.append(f"{len(over)} of {len(drift.features)} features over their thresholds "
                         f"(median {ratio:.1f}x the threshold)")
    if estimate and estimate.get("reference_roc_auc") is not None:
        err = abs(estimate["reference_estimated_roc_auc"] - estimate["reference_roc_auc"])
        parts.append(f"CBPE estimate {estimate['estimated_roc_auc']:.3f} (its error on the labelled reference "
                     f"{err:.3f}; reference ECE {estimate['reference_ece']:.3f})")
    return "; ".join(parts) or "thresholds of the policy"


# ----------------------------------------------------------------------------- early outcome / concept
def early_outcome_cohorts(cutoffs: Sequence[pd.Timestamp], data_end: pd.Timestamp, days: int,
                          baseline_days: int) -> tuple[pd.Timestamp, list[pd.Timestamp]] | None:
    """The early-outcome cohort and its reference cohorts among the snapshot ``cutoffs``, or None.

    The cohort is the newest cut-off whose ``days`` have passed by ``data_end`` (the newest stored
    event); the references are the cut-offs of the ``baseline_days`` before it whose ``days`` ended
    by the cohort's cut-off. None when no cut-off has matured or none precedes it in the baseline.
    """
    span = pd.Timedelta(days=days)
    cuts = sorted(pd.Timestamp(c) for c in cutoffs)
    matured = [c for c in cuts if c + span <= data_end]
    if not matured:
        return None
    cohort = matured[-1]
    refs = [c for c in cuts if cohort - pd.Timedelta(days=baseline_days) <= c and c + span <= cohort]
    return (cohort, refs) if refs else None


def early_outcome_current(settings, score, categorical: list[str]) -> dict[str, Any] | None:
    """The early-outcome check on the batch feature table: the newest snapshot whose
    ``monitoring.early_outcome_days`` have passed (in the stored events) against the snapshots of the
    ``early_outcome_baseline_days`` before it whose early outcomes ended by its cut-off.

    Parameters
    ----------
    settings: the full settings (paths, churn qualifying events, monitoring thresholds).
    score: ``DataFrame -> DataFrame`` with ``prediction`` (the champion on the rows).
    categorical: the champion's categorical features (tested as segments).

    Returns
    -------
    :func:`tenure.monitoring.early_outcome.early_outcome_check`'s dict with ``cohort`` and
    ``reference_cohorts``; None when switched off, or no snapshot's early outcome has passed.
    """
    from tenure.features.labels import label_churn
    from tenure.features.tables import latest_event_time, read_customers
    from tenure.monitoring.early_outcome import early_outcome_check
    from tenure.monitoring.runner import alive_population
    from tenure.monitoring.snapshots import feature_table, label_events

    m = settings.monitoring
    k = m.early_outcome_days
    table = feature_table(settings)
    if k <= 0 or not table.exists():
        return None
    cuts = table.as_of_times()
    data_end = latest_event_time(settings)
    if data_end is None:
        return None
    chosen = early_outcome_cohorts(cuts, data_end, k, m.early_outcome_baseline_days)
    if chosen is None:
        return None
    cohort, refs = chosen
    events = label_events(settings, [cohort, *refs], k)  # only the events these cohorts' outcomes need
    labels = label_churn(events, read_customers(settings), [cohort, *refs], k, settings.churn.qualifying_event_types)
    labels = labels.rename(columns={"label": "outcome"})
    labels["event_timestamp"] = pd.to_datetime(labels["event_timestamp"], utc=True)
    rows = table.rows([cohort, *refs])  # only the cohorts' snapshots are read
    rows = rows.assign(event_timestamp=pd.to_datetime(rows["event_timestamp"], utc=True))
    rows = alive_population(rows.reset_index(drop=True), settings.churn.horizon_days)
    rows = rows.merge(labels[["customer_id", "event_timestamp", "outcome"]], on=["customer_id", "event_timestamp"])
    if rows.empty:
        return None
    rows = score(rows).assign(cohort=lambda x: x["event_timestamp"])
    current = rows[rows["event_timestamp"] == cohort]
    reference = rows[rows["event_timestamp"] != cohort]
    result = early_outcome_check(current, reference, categorical, days=k, max_p_value=m.early_outcome_max_p_value,
                                 min_auc_drop=m.early_outcome_min_auc_drop,
                                 min_rate_increase=m.early_outcome_min_rate_increase)
    result["cohort"] = cohort.isoformat()
    result["reference_cohorts"] = [c.isoformat() for c in refs]
    return result
