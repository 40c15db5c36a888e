"""One monitoring pass: reports -> alerts -> maybe retrain, for the serving champions.

The retrain action is passed in (``retrain()`` returning what training and the promotion
gate did), so monitoring never imports training; the gate, not monitoring, decides whether
a retrained model replaces the champion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from tenure.jsonable import to_jsonable
from tenure.monitoring.alerts import Alert, EpisodeTracker, dispatch, routed, sinks_from_settings
from tenure.monitoring.drift import drift_report
from tenure.monitoring.early_outcome import alarms as early_alarms
from tenure.monitoring.early_outcome import update_cusum
from tenure.monitoring.performance import (
    matured_snapshot_performance,
    read_purchases,
    recommendation_hit_rate,
)
from tenure.monitoring.policy import RetrainState, decide_retrain
from tenure.monitoring.reference import (
    confirm_drift,
    describe_confirmation,
    recent_reference,
    seasonal_reference,
)
from tenure.monitoring.reports import log_to_mlflow, write_index, write_report
from tenure.monitoring.snapshots import feature_table, label_events
from tenure.monitoring.sources import (
    latest_snapshot,
    load_champion,
    load_champion_runtime,
    read_prediction_log,
    score_with_champion,
    with_risk_bands,
)
from tenure.monitoring.watch import (
    current_event_shifts,
    drift_confidence,
    early_outcome_current,
    estimate_current,
    pipeline_alerts,
    recommender_check,
    served_coverage,
)

logger = logging.getLogger(__name__)

NON_FEATURES = {"prediction", "label", "customer_id", "event_timestamp", "created", "risk_band"}
MIN_LOG_ROWS = 100
DRIFT_EPISODE = "churn:drift"
RECOMMENDER_EPISODE = "recommender:quality"


def _guarded(what: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, or None with a warning: a secondary check never stops the pass."""
    try:
        return compute()
    except Exception as exc:  # noqa: BLE001
        logger.warning("%s failed: %s", what, exc)
        return None


def _extra_findings(estimate: dict[str, Any] | None, shifts: list[Any], early: list[Any] = ()) -> list[str]:
    """Lines for the CBPE estimate, the event-level shifts and the early-outcome findings that alarmed."""
    lines = [x.message for x in shifts if x.alarm] + [x.message for x in early]
    if estimate and estimate.get("estimated_roc_auc") is not None and estimate.get("promised_roc_auc") is not None:
        lines.append(f"estimated ROC-AUC (CBPE, before labels) {estimate['estimated_roc_auc']:.3f} vs promised "
                     f"{estimate['promised_roc_auc']:.3f}")
    return lines


@dataclasses.dataclass
class MonitoringResult:
    """What one pass found and did (JSON-ready through :meth:`as_dict`)."""

    checked_at: str
    mode: str
    model_version: str | None
    verdict: str
    drift: dict[str, Any] | None = None
    performance: dict[str, Any] | None = None
    recommender: dict[str, Any] | None = None
    alerts: list[str] = dataclasses.field(default_factory=list)
    alert_delivery: list[dict[str, str]] = dataclasses.field(default_factory=list)
    report_paths: list[str] = dataclasses.field(default_factory=list)
    retrain: dict[str, Any] | None = None
    mlflow_run_id: str | None = None
    estimated: dict[str, Any] | None = None
    """CBPE estimate of the churn champion's ROC-AUC on the current window (no labels needed)."""
    event_shifts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    pipeline_alerts: list[str] = dataclasses.field(default_factory=list)
    early_outcome: dict[str, Any] | None = None
    """Early outcome / concept: ROC-AUC and calibration against customers gone quiet since a recent snapshot."""
    reference: str | None = None
    """Which drift reference the pass used, and why (monitoring.reference)."""
    recent_reference: dict[str, Any] | None = None
    """The recent reference that confirms drift (monitoring.recent_reference_days): which, and what each said."""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return to_jsonable(dataclasses.asdict(self))


def parse_window(window: Any, default_days: int) -> timedelta:
    """``"7d"``, ``"36h"``, an int (days) or a timedelta -> timedelta."""
    if window is None:
        return timedelta(days=default_days)
    if isinstance(window, timedelta):
        return window
    if isinstance(window, (int, float)):
        return timedelta(days=float(window))
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", str(window))
    if not match:
        raise ValueError(f"window must look like 7d, 36h or 90m, got {window!r}")
    value, unit = float(match.group(1)), match.group(2)
    return timedelta(days=value) if unit == "d" else timedelta(hours=value) if unit == "h" else timedelta(minutes=value)


def _feature_columns(reference: pd.DataFrame) -> tuple[list[str], list[str]]:
    features = [c for c in reference.columns if c not in NON_FEATURES]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(reference[c])]
    return [c for c in features if c not in categorical], categorical


def _current_window(settings, model, mode: str, since: datetime) -> tuple[str, pd.DataFrame]:
    """The current data: served vectors from the prediction log, or the newest snapshot scored by the champion.

    The frame's ``attrs["as_of"]`` is the snapshot's cut-off in snapshot mode (the same-season
    reference is a season before it)."""
    if mode in ("auto", "log"):
        log = served_population(read_prediction_log(settings.paths.prediction_log_dir, "churn", since=since),
                                settings.churn.horizon_days)
        log = without_withdrawn(settings, log, logged=True)
        if len(log) >= MIN_LOG_ROWS or (mode == "log" and len(log)):
            return "log", log
        if mode == "log":
            raise ValueError(f"the prediction log has no churn scores since {since:%Y-%m-%d %H:%M}; try --mode snapshot")
    if settings.compute.engine == "dask":  # the same rows, drawn and scored per partition on the cluster
        from functools import partial

        from tenure.compute.samples import sample_latest_snapshot_on_cluster

        as_of, scored = sample_latest_snapshot_on_cluster(settings, partial(current_rows, settings=settings,
                                                                            runtime=model()))
        if as_of is None:
            raise ValueError("no feature snapshot to monitor; run `tenure features build` first")
        scored.attrs["as_of"] = pd.Timestamp(as_of)
        return f"snapshot {as_of:%Y-%m-%d}", scored
    found = latest_snapshot(settings.paths.features_dir)
    if found is None:
        raise ValueError("no feature snapshot to monitor; run `tenure features build` first")
    as_of, frame = found
    scored = current_rows(frame, settings, model())
    scored.attrs["as_of"] = pd.Timestamp(as_of)
    return f"snapshot {as_of:%Y-%m-%d}", scored


def current_rows(frame: pd.DataFrame, settings, runtime) -> pd.DataFrame:
    """Snapshot rows as monitoring's current window holds them: the scored population, withdrawn customers
    left out, scored by the champion ``runtime`` (also each cluster partition's rule, compute.samples)."""
    return score_with_champion(runtime, without_withdrawn(settings, alive_population(frame, settings.churn.horizon_days)))


def without_withdrawn(settings, frame: pd.DataFrame, logged: bool = False) -> pd.DataFrame:
    """Rows of customers who have not withdrawn the profiling consent (privacy/consent.py).

    ``logged``: the frame comes from the prediction log, whose ids may be pseudonyms (the same key
    hashes the withdrawn ids before they are compared).
    """
    from tenure.privacy.consent import withdrawn_customers
    from tenure.pseudonym import customer_ref, log_key

    withdrawn = withdrawn_customers(settings, "profiling")
    if not withdrawn or frame.empty or "customer_id" not in frame.columns:
        return frame
    key = log_key(settings) if logged else None
    refs = {customer_ref(key, cid) for cid in withdrawn}
    keep = ~frame["customer_id"].astype(str).isin(refs)
    if not keep.all():
        logger.info("left out %d customer(s) who withdrew the profiling consent", int((~keep).sum()))
    return frame[keep].reset_index(drop=True)


def served_population(log: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """One row per customer scored in the window: the newest served vector, alive customers only.

    A customer scored a thousand times (a retry loop, a load test, a daily batch) counts once,
    as in the reference sample (one row per customer and cut-off), and customers outside the
    population the model was trained on are left out as in snapshot mode.
    """
    if log.empty or "customer_id" not in log.columns:
        return log
    newest = log.sort_values("logged_at", kind="stable").drop_duplicates("customer_id", keep="last")
    return alive_population(newest.reset_index(drop=True), horizon_days)


def alive_population(frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """Customers the churn model scores: active or signed up within the horizon (as in training).

    The reference sample holds only such customers, so a snapshot must be cut the same way or
    long-gone customers would look like drift.
    """
    if "days_since_last_activity" not in frame.columns or "tenure_days" not in frame.columns:
        return frame
    alive = (frame["days_since_last_activity"] <= horizon_days) | (frame["tenure_days"] <= horizon_days)
    return frame[alive.fillna(False)].reset_index(drop=True)


def _same_season(settings, model, anchor: pd.Timestamp, columns: list[str]) -> tuple[pd.DataFrame | None, str]:
    """The same-season drift reference from the batch feature table (``monitoring.reference``), or None."""
    m = settings.monitoring
    latest = "the champion's training sample"
    table = feature_table(settings)
    if m.reference == "latest" or not table.exists():
        return None, latest

    def prepare(rows: pd.DataFrame) -> pd.DataFrame:
        rows = without_withdrawn(settings, alive_population(rows, settings.churn.horizon_days))
        return score_with_champion(model(), rows)

    found = _guarded("same-season reference", lambda: seasonal_reference(
        table, anchor, m.reference, m.season_days, m.season_tolerance_days, prepare, columns))
    return found if found is not None else (None, latest)


def _recent(settings, model, anchor: pd.Timestamp, columns: list[str],
            frozen: Any) -> tuple[pd.DataFrame | None, str, pd.Timestamp | None]:
    """The recent reference from the batch feature table (``monitoring.recent_reference_days``), or None."""
    days = settings.monitoring.recent_reference_days
    table = feature_table(settings)
    if days == 0 or not table.exists():
        return None, ("monitoring.recent_reference_days is 0" if days == 0 else "no batch feature table") + \
            ": the primary reference alone", None

    def prepare(rows: pd.DataFrame) -> pd.DataFrame:
        rows = without_withdrawn(settings, alive_population(rows, settings.churn.horizon_days))
        return score_with_champion(model(), rows)

    held = pd.Timestamp(frozen) if frozen else None
    found = _guarded("recent reference", lambda: recent_reference(table, anchor, days, prepare,
                                                                   columns, frozen=held))
    return found if found is not None else (None, "the recent reference failed: the primary reference alone", None)


def _sequential(settings, early: dict[str, Any] | None, version: str | None) -> None:
    """Add the early outcome's cohort to the per-segment CUSUMs kept in ``state_dir`` (a new champion starts
    from zero); alarming segments join ``early["findings"]`` (and ``early["alarm"]``), ``early["sequential"]``
    keeps the sums."""
    from tenure.monitoring.state import load_json_state, save_json_state

    if not early or not early.get("cohort"):
        return
    path = settings.paths.state_dir / "early_outcome_cusum.json"
    state, found = update_cusum(load_json_state(path), early, early["cohort"], model_version=version,
                                min_rate_increase=settings.monitoring.early_outcome_min_rate_increase)
    save_json_state(path, state)
    early["findings"] = early.get("findings", []) + [f.as_dict() for f in found]
    early["alarm"] = bool(early.get("alarm") or found)
    early["sequential"] = {"sums": state.get("sums", {}), "threshold": state.get("threshold"),
                           "last_cohort": state.get("last_cohort")}


def _realised(settings, champion, model) -> dict[str, Any] | None:
    """Realised performance on the newest matured snapshot: only its rows and the events its labels need are read."""
    from tenure.features.labels import matured_cutoffs
    from tenure.features.tables import latest_event_time, read_customers

    table = feature_table(settings)
    if not table.exists():
        return None
    try:
        horizon = settings.churn.horizon_days
        data_end = latest_event_time(settings)
        matured = matured_cutoffs(table.as_of_times(), data_end, horizon) if data_end is not None else []
        if not matured:
            logger.info("no realised performance this pass: no snapshot's %d-day label window has passed", horizon)
            return None
        events = label_events(settings, matured[-1:], horizon)
        customers = read_customers(settings)

        scored: list[Any] = []

        def score(rows: pd.DataFrame):
            scored.append(score_with_champion(model(), rows)["prediction"].to_numpy())
            return scored[-1]

        result = matured_snapshot_performance(table, events, customers, horizon,
                                              settings.churn.qualifying_event_types, score, data_end=data_end)
    except (ValueError, FileNotFoundError) as exc:
        logger.info("no realised performance this pass: %s", exc)
        return None
    if result is not None:
        promised = champion.metrics.get("test_roc_auc")
        result["promised_roc_auc"] = promised
        result["auc_drop"] = (promised - result["roc_auc"]) if promised is not None else None
        # what CBPE would have said on this snapshot before its labels matured, checked against them
        estimate = estimate_current(pd.DataFrame({"prediction": scored[-1]}), champion.reference, promised) \
            if scored else None
        if estimate is not None:
            result["estimated_roc_auc"] = estimate["estimated_roc_auc"]
            result["estimation_error"] = estimate["estimated_roc_auc"] - result["roc_auc"]
    return result


def _recommender(settings) -> dict[str, Any] | None:
    """Served hit rate per strategy against the offline figure for the same kind of answer.

    A list counts when a customer bought one of its items within ``recommender.holdout_days``
    after it was served (the offline holdout's length), and only once that time has passed.
    ``als`` answers exclude bought items, so they are compared with the run's
    ``excluding_purchased/hit_rate_at_k``; ``blend``/``buy_again`` answers with ``hit_rate_at_k``.
    Fallback strategies (popular, no consent) have no offline figure.
    """
    champion = load_champion(settings, "recommender", with_reference=False)
    if champion is None:
        return None
    offline = {
        "als": champion.metrics.get("excluding_purchased/hit_rate_at_k"),
        "als_fresh": champion.metrics.get("excluding_purchased/hit_rate_at_k"),
        "blend": champion.metrics.get("hit_rate_at_k"),
        "buy_again": champion.metrics.get("hit_rate_at_k"),
    }
    return {"model_version": champion.version, "by_strategy": served_hit_rates(settings, offline),
            "offline_coverage": champion.metrics.get("coverage_at_k")}


def served_hit_rates(settings, offline: dict[str, float | None] | None = None) -> dict[str, dict[str, Any]]:
    """Served hit rate per strategy of the recommend log, joined with the event log's purchases.

    When the service logs pseudonyms (:func:`tenure.pseudonym.log_key`), the purchases' ids are
    hashed with the same key before the join, so the figure is the same as with raw ids.
    """
    from tenure.pseudonym import log_key

    log = read_prediction_log(settings.paths.prediction_log_dir, "recommend")
    purchases = read_purchases(settings.paths.event_log_dir, log_key(settings))
    by_strategy: dict[str, dict[str, Any]] = {}
    if not log.empty and "strategy" in log.columns:
        for strategy, part in log.groupby("strategy"):
            served = recommendation_hit_rate(part, purchases, settings.recommender.holdout_days) or {}
            by_strategy[str(strategy)] = {**served, "offline_hit_rate": (offline or {}).get(str(strategy))}
    return by_strategy


def _findings(drift, realised) -> list[str]:
    lines = []
    if drift is not None:
        worst = sorted((f for f in drift.features if f.drifted), key=lambda f: -f.score)
        lines.append(f"{len(worst)} of {len(drift.features)} features drifted ({drift.drift_share:.0%})")
        for f in worst[:8]:
            lines.append(f"{f.column}: {f.method} {f.score:.3f} vs threshold {f.threshold}")
        if drift.prediction is not None:
            p = drift.prediction
            lines.append(f"churn score distribution: {p.method} {p.score:.3f} vs threshold {p.threshold}"
                         + (" (drifted)" if p.drifted else ""))
        mix = drift.band_mix
        if mix.get("reference") and mix.get("current"):
            line = "risk bands: " + ", ".join(
                f"{b} {mix['reference'].get(b, 0):.0%} -> {mix['current'].get(b, 0):.0%}" for b in ("low", "medium", "high"))
            if drift.bands is not None:
                b = drift.bands
                line += f" ({b.method} {b.score:.3f} vs threshold {b.threshold}{', drifted' if b.drifted else ''})"
            lines.append(line)
        for column, values in list(drift.new_categories.items())[:3]:
            lines.append(f"new categories in {column}: {', '.join(values[:5])}")
    if realised and realised.get("auc_drop") is not None:
        lines.append(f"realised ROC-AUC {realised['roc_auc']:.3f} on {realised['window']} vs promised "
                     f"{realised['promised_roc_auc']:.3f}")
    return lines


def _outcome_summary(outcome: Any) -> str:
    """One line on what the retrain action did.

    Understands ``{"models": {kind: {"gate": {promoted, reason, challenger_version}}}}``
    (``pipelines.flows.make_retrain``) and the flat ``{model, version, promoted, reason}``.
    """
    if isinstance(outcome, dict) and "promoted" in outcome:
        verb = "promoted" if outcome.get("promoted") else "not promoted"
        return f"{outcome.get('model', 'model')} v{outcome.get('version')} {verb}: {outcome.get('reason')}"
    models = (outcome or {}).get("models", {}) if isinstance(outcome, dict) else {}
    parts = []
    for kind, info in models.items():
        gate = (info or {}).get("gate") or {}
        if gate:
            verb = "promoted" if gate.get("promoted") else "not promoted"
            parts.append(f"{kind} v{gate.get('challenger_version')} {verb}: {gate.get('reason')}")
    return "; ".join(parts) or "retraining finished"


def run_monitoring_pass(
    settings,
    window: Any = None,
    retrain: Callable[[], Any] | None = None,
    mode: str = "auto",
    dry_run: bool | None = None,
    now: datetime | None = None,
) -> MonitoringResult:
    """Check the churn champion against live data, alert, and retrain when the policy says so.

    Parameters
    ----------
    settings:
        The full settings (paths, MLflow, churn horizon and ``monitoring`` policy).
    window:
        How much of the prediction log counts as current (``"7d"``; default
        ``monitoring.window_days``).
    retrain:
        Called with no arguments when the policy fires; returns what training and the gate did.
    mode:
        ``auto`` (prediction log when it has enough rows, else the newest snapshot), ``log`` or ``snapshot``.
    dry_run:
        Decide and alert but never retrain (default ``monitoring.dry_run``).
    """
    if mode not in ("auto", "log", "snapshot"):
        raise ValueError(f"mode must be auto, log or snapshot, got {mode!r}")
    now = now or datetime.now(UTC)
    dry = settings.monitoring.dry_run if dry_run is None else dry_run
    span = parse_window(window, settings.monitoring.window_days)
    sinks = sinks_from_settings(settings.monitoring.alert_sinks, settings.paths.reports_dir)
    state_dir = settings.paths.state_dir
    tracker = EpisodeTracker(state_dir / "monitoring_episodes.json")
    retrain_state = RetrainState(state_dir / "retrain_state.json")
    result = MonitoringResult(checked_at=now.isoformat(timespec="seconds"), mode=mode, model_version=None, verdict="")

    champion = load_champion(settings, "churn")
    if champion is None:
        result.verdict = "no churn champion to monitor"
        logger.info("%s", result.verdict)
        return result
    result.model_version = champion.version
    if champion.reference is None or champion.reference.empty:
        result.verdict = f"champion v{champion.version} has no reference sample; drift not checked"
        return result

    loaded: list[Any] = []

    def model():  # loaded once, only when a pass needs to score
        if not loaded:
            loaded.append(load_champion_runtime(settings, champion))
        return loaded[0]

    source, current = _current_window(settings, model, mode, now - span)
    result.mode = source
    reference = with_risk_bands(champion.reference, champion.params)
    numerical, categorical = _feature_columns(reference)
    anchor = current.attrs.get("as_of", pd.Timestamp(now))
    seasonal, result.reference = _same_season(settings, model, anchor, numerical + categorical)
    drift, snapshot = drift_report(seasonal if seasonal is not None else reference, current, numerical, categorical,
                                   settings.monitoring)
    # drifted = drifted against the primary reference AND a recent snapshot (held while an episode is open)
    recent_frame, recent_why, recent_cut = _recent(settings, model, anchor, numerical + categorical,
                                                   (tracker.episode(DRIFT_EPISODE) or {}).get("recent_reference_cutoff"))
    recent_drift = None
    if recent_frame is not None:
        recent_drift = _guarded("drift against the recent reference", lambda: drift_report(
            recent_frame, current, numerical, categorical, settings.monitoring)[0])
    drift, confirmation = confirm_drift(drift, recent_drift)
    result.recent_reference = {"reference": recent_why, "cutoff": recent_cut, **confirmation}
    result.drift = drift.as_dict()
    realised = _realised(settings, champion, model)
    result.performance = realised
    try:
        result.recommender = _recommender(settings)
    except Exception as exc:  # noqa: BLE001 (the recommender check is secondary; the churn pass goes on)
        logger.warning("recommender check failed: %s", exc)

    estimate = _guarded("performance estimate", lambda: estimate_current(
        current, champion.reference, champion.metrics.get("test_roc_auc")))
    result.estimated = estimate
    shifts = _guarded("event-level shifts", lambda: current_event_shifts(settings, span)) or []
    result.event_shifts = [x.as_dict() for x in shifts]
    result.early_outcome = _guarded("early outcome", lambda: early_outcome_current(
        settings, lambda rows: score_with_champion(model(), rows), categorical))
    _guarded("sequential early outcome", lambda: _sequential(settings, result.early_outcome, champion.version))
    early = early_alarms(result.early_outcome)
    decision = decide_retrain(
        drift_share=drift.drift_share, drifted=drift.drifted,
        auc_drop=(realised or {}).get("auc_drop"), model_age_days=champion.age_days,
        settings=settings.monitoring, last_retrain_at=retrain_state.last_retrain_at("churn"), now=now,
        dry_run=dry, can_retrain=retrain is not None,
        estimated_auc_drop=(estimate or {}).get("estimated_auc_drop"),
        prediction_drifted=bool(drift.prediction is not None and drift.prediction.drifted), event_shifts=shifts,
        early_outcome=early,
    )
    coverage = _guarded("served coverage", lambda: served_coverage(settings, now - span))
    rec_decision = recommender_check(
        result.recommender, coverage, (result.recommender or {}).get("offline_coverage"), settings.monitoring,
        retrain_state.last_retrain_at("recommender"), now, dry, retrain is not None)
    if result.recommender is not None:
        result.recommender["coverage"] = coverage
        result.recommender["decision"] = dataclasses.asdict(rec_decision)
    problem = decision.triggered
    result.verdict = "drift or degradation: " + "; ".join(decision.reasons) if problem else "healthy"
    summary = {"kind": "churn", "checked_at": result.checked_at, "model_version": champion.version,
               "mode": source, "window": str(span), "verdict": result.verdict,
               "drift": result.drift, "performance": realised, "recommender": result.recommender,
               "estimated": estimate, "event_shifts": result.event_shifts,
               "early_outcome": result.early_outcome, "reference": result.reference,
               "recent_reference": result.recent_reference,
               "retrain": {"decision": dataclasses.asdict(decision), "summary": decision.describe()}}
    folder = write_report(settings.paths.reports_dir, "churn", to_jsonable(summary), snapshot, now)
    result.report_paths.append(str(folder / "report.html"))
    routes = settings.monitoring.alert_routes
    sent = _guarded("pipeline alerts", lambda: pipeline_alerts(
        settings, sinks, drift.missing_share, champion.version, str(folder / "report.html"))) or []
    result.pipeline_alerts = [a.title for a in sent]
    result.alerts.extend(result.pipeline_alerts)

    if problem:
        if tracker.should_alert(DRIFT_EPISODE, drift.drift_share, decision.kinds):
            performance = {"auc_drop", "estimated_auc_drop"} & set(decision.kinds) or \
                [k for k in decision.kinds if k.startswith("early_outcome:")]
            alert = routed(Alert(model="churn", model_version=champion.version,
                                 title=f"Churn model v{champion.version}: {'; '.join(decision.reasons)}",
                                 findings=_findings(drift, realised) + _extra_findings(estimate, shifts, early)
                                 + [describe_confirmation(confirmation, str(result.reference), recent_why)],
                                 report_path=str(folder / "report.html"), next_action=decision.describe(),
                                 kind="performance" if performance else "drift",
                                 confidence=drift_confidence(drift, estimate)), routes)
            result.alert_delivery.append(dispatch(alert, sinks))
            result.alerts.append(alert.title)
        else:
            logger.info("drift episode already alerted; suppressing the repeat")
        if recent_cut is not None and not (tracker.episode(DRIFT_EPISODE) or {}).get("recent_reference_cutoff"):
            tracker.note(DRIFT_EPISODE, recent_reference_cutoff=pd.Timestamp(recent_cut).isoformat())
    elif tracker.close(DRIFT_EPISODE):
        logger.info("drift episode closed: the current window looks like the reference again")
    if rec_decision.triggered:
        if tracker.should_alert(RECOMMENDER_EPISODE, 0.0, rec_decision.kinds):
            alert = routed(Alert(model="recommender", model_version=(result.recommender or {}).get("model_version"),
                                 title=f"Recommender: {'; '.join(rec_decision.reasons)}", findings=rec_decision.reasons,
                                 report_path=str(folder / "report.html"), next_action=rec_decision.describe(),
                                 kind="recommender", confidence="95% Wilson intervals of the served hit rates; "
                                 "coverage over every list served in the window"), routes)
            result.alert_delivery.append(dispatch(alert, sinks))
            result.alerts.append(alert.title)
    elif tracker.close(RECOMMENDER_EPISODE):
        logger.info("recommender episode closed")

    result.retrain = {"decision": dataclasses.asdict(decision), "summary": decision.describe()}
    if (decision.fire or rec_decision.fire) and retrain is not None:
        logger.warning("retraining: %s", "; ".join(decision.reasons + rec_decision.reasons))
        try:
            outcome = retrain()
            text = _outcome_summary(outcome)
            result.retrain["outcome"] = to_jsonable(outcome)
        except Exception as exc:
            outcome, text = {"error": str(exc)}, f"retraining failed: {exc}"
            result.retrain["outcome"] = outcome
            logger.exception("retraining failed")
        for fired, name in ((decision.fire, "churn"), (rec_decision.fire, "recommender")):
            if fired:
                retrain_state.record(name, to_jsonable(outcome), now)
        result.retrain["summary"] = text
        alert = routed(Alert(model="churn", model_version=champion.version, title="Retraining finished",
                             findings=[text], report_path=str(folder / "report.html"),
                             next_action="the promotion gate decided; `tenure models list churn` shows the versions",
                             severity="info", kind="retrain"), routes)
        result.alert_delivery.append(dispatch(alert, sinks))
        result.alerts.append(f"{alert.title}: {text}")
        summary["retrain"] = result.retrain
        summary["report_html"] = str(folder / "report.html")
        (folder / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2))
    run_id = log_to_mlflow(settings.mlflow.tracking_uri, champion.experiment_id, folder, to_jsonable(summary))
    result.mlflow_run_id = run_id
    write_index(settings.paths.reports_dir)
    return result
