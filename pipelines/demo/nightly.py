"""Monitoring in the demo: a quiet pass before the drift, the nightly job after the replay
(refresh, monitoring, retraining by policy), and the hot reload of the new champion."""

from __future__ import annotations

import time
from typing import Any

from tenure.pipelines.demo.config import Say
from tenure.pipelines.service_client import ServiceClient
from tenure.settings import Settings

MODEL_KINDS = ("churn", "recommender")


def monitoring_info(result: Any) -> dict[str, Any]:
    """A monitoring pass (``monitoring.runner.MonitoringResult``) for the summary: the full result,
    and its alerts, report paths and retrain record (``decision``, ``summary``, ``outcome``) on top."""
    raw = result.as_dict()
    return {"result": raw, "alerts": raw["alerts"], "reports": raw["report_paths"], "retrain": raw["retrain"]}


def quiet_pass(settings: Settings, say: Say) -> dict[str, Any]:
    """A monitoring pass on the newest snapshot before the replay (no drift yet): no alert expected.

    No retrain action is given, so even a false alarm would change nothing; the summary records it.
    """
    from tenure.monitoring import run_monitoring_pass

    result = run_monitoring_pass(settings, window=None, mode="snapshot", retrain=None)
    info = monitoring_info(result)
    drift = result.drift or {}
    say("result" if not info["alerts"] else "warn",
        f"before the drift ({result.mode}): {result.verdict}; "
        f"{len(info['alerts'])} alert(s), drift share {drift.get('drift_share') or 0:.0%}")
    return {"verdict": result.verdict, "mode": result.mode, "alerts": info["alerts"],
            "drift_share": drift.get("drift_share"), "drifted": drift.get("drifted"), "reports": info["reports"]}


def nightly(settings: Settings, say: Say) -> tuple[dict[str, Any], dict[str, Any]]:
    """The nightly job after the replay; returns (step statuses, monitoring info).

    Ingest the day files and the service's event log, rebuild the feature snapshot, then one
    monitoring pass on it (alive customers, like the reference) with retraining by policy.
    The snapshot, not the prediction log, is compared: the replay scores the customers who
    were active each day, a busier crowd than the training reference, so the log would read
    as drift even without one (docs/monitoring.md, Limits).
    """
    from tenure.monitoring import run_monitoring_pass
    from tenure.pipelines.flows import make_retrain, run_steps

    time.sleep(max(settings.serving.prediction_log_flush_s, 0) + 0.5)  # let the service flush its logs
    steps = {r.step: {"status": r.status, "duration_s": r.duration_s}
             for r in run_steps(settings, ("ingest", "features"))}
    result = run_monitoring_pass(settings, window=None, mode="snapshot", retrain=make_retrain(settings))
    info = monitoring_info(result)
    for alert in info["alerts"][:1]:
        say("warn", f"alert: {alert}")
    for path in info["reports"][:4]:
        say("info", f"report: {path}")
    retrain = info["retrain"] or {}
    decision = retrain.get("decision") or {}
    say("result", f"retrain decision: {'retrain' if decision.get('triggered') else 'no retrain'} "
                  f"({'; '.join(decision.get('reasons') or []) or decision.get('blocked_by') or 'healthy'})")
    if decision.get("triggered") and retrain.get("summary"):
        say("result", f"outcome: {retrain['summary']}")
    return steps, info


def retrain_claim(info: dict[str, Any]) -> dict[str, Any] | None:
    """What the nightly pass decided about retraining, for the summary's claims (None when no decision)."""
    retrain = info.get("retrain")
    if not retrain:
        return None
    decision = retrain.get("decision") or {}
    return {"triggered": decision.get("triggered"), "reasons": decision.get("reasons"),
            "blocked_by": decision.get("blocked_by"), "outcome": retrain.get("summary")}


def champion_versions(settings: Settings) -> dict[str, str | None]:
    """The registry's ``champion`` version of each model kind."""
    from tenure.registry.models import get_alias_version

    return {kind: get_alias_version(settings, kind, "champion") for kind in MODEL_KINDS}


def reload_champions(client: ServiceClient, settings: Settings, probe: str | None, say: Say,
                     before: dict[str, str | None]) -> tuple[dict[str, str | None], dict[str, Any]]:
    """``POST /admin/reload``, then score ``probe`` to see which churn version answers.

    Returns (the registry's champions now, the reload record).
    """
    after = champion_versions(settings)
    answer = client.reload()
    served = client.churn_score([probe])[0].get("model_version") if probe else None
    say("ok", f"champions before {before}, after {after}; the service now serves churn model v{served}")
    return after, {"answer": answer, "served_churn_model_version": served}
