"""The demo's pipeline break: an upstream export with amounts in cents is caught and quarantined.

A copy of the first replay week (new event ids), with ``amount`` x100 as a broken upstream job
would send it, goes through the real ingestion; the data-quality checks name the column and the
break, the batch is held in the quarantine (not stored, so never trained on), and the pipeline
alert goes to the data team's route. The replay itself is untouched.
"""

from __future__ import annotations

from typing import Any

from tenure.pipelines.demo.config import Say
from tenure.settings import Settings


def pipeline_break(settings: Settings, data, say: Say) -> dict[str, Any]:
    """Ingest a broken batch and report what happened (JSON-ready)."""
    import pandas as pd

    from tenure.features.ingest import IngestRun
    from tenure.features.sim_drift import apply_break
    from tenure.features.tables import read_events
    from tenure.monitoring.alerts import sinks_from_settings
    from tenure.monitoring.watch import pipeline_alerts

    week = data.replay_events[data.replay_events["event_at"] < data.replay_start + pd.Timedelta(days=7)].copy()
    week["event_id"] = "upstream-export-" + week["event_id"].astype(str)
    broken, _ = apply_break(week, None, "units", data.replay_start)
    stored_before = len(read_events(settings, columns=["event_id"]))
    with IngestRun(settings) as run:
        report = run.ingest_frame("events", broken, "upstream export (amounts in cents)", apply_mapping=False)
    stored_after = len(read_events(settings, columns=["event_id"]))
    alerts = pipeline_alerts(settings, sinks_from_settings(settings.monitoring.alert_sinks, settings.paths.reports_dir))
    findings = [f["message"] for f in (report.quality or {}).get("findings", [])]
    for line in findings:
        say("warn", f"pipeline break: {line}")
    if report.quarantined:
        say("ok", f"batch {report.quarantined} ({len(broken):,} events) quarantined: not stored, never trained on; "
                  f"`tenure data accept {report.quarantined}` would store it")
    for alert in alerts:
        say("info", f"alert to {alert.route} ({alert.severity}): {alert.title}")
    return {"rows": len(broken), "quarantined": report.quarantined, "findings": findings,
            "stored_rows_added": stored_after - stored_before,
            "alerts": [{"title": a.title, "route": a.route, "severity": a.severity} for a in alerts]}
