"""Report files: HTML + JSON per pass under ``reports/``, a static index page, and the MLflow copy."""

from __future__ import annotations

import html
import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def write_report(reports_dir: Path, kind: str, summary: dict[str, Any], snapshot=None, now: datetime | None = None) -> Path:
    """Write ``<UTC timestamp>-<kind>/summary.json`` (+ ``report.html`` from the Evidently snapshot)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(reports_dir) / f"{stamp}-{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    if snapshot is not None:
        snapshot.save_html(str(folder / "report.html"))
        summary = {**summary, "report_html": str(folder / "report.html")}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return folder


def write_index(reports_dir: Path) -> Path:
    """Regenerate ``index.html``: every report, newest first, with its verdict and key numbers."""
    reports_dir = Path(reports_dir)
    rows = []
    for summary_path in sorted(reports_dir.glob("*/summary.json"), reverse=True):
        try:
            s = json.loads(summary_path.read_text())
        except json.JSONDecodeError:
            continue
        folder = summary_path.parent.name
        drift = s.get("drift") or {}
        perf = s.get("performance") or {}
        link = f'<a href="{html.escape(folder)}/report.html">report</a>' if (summary_path.parent / "report.html").exists() else ""
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                html.escape(s.get("checked_at", "")), html.escape(s.get("kind", "")),
                html.escape(str(s.get("model_version", ""))), html.escape(s.get("mode", "")),
                f"{drift.get('drift_share', 0):.0%}" if drift else "-",
                html.escape(", ".join(drift.get("drifted", [])[:6])),
                f"{perf.get('roc_auc'):.3f}" if perf.get("roc_auc") is not None else "-",
                html.escape(s.get("verdict", "")), html.escape((s.get("retrain") or {}).get("summary", "")),
                link + f' <a href="{html.escape(folder)}/summary.json">json</a>',
            )) + "</tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>tenure monitoring</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}</style>
</head><body><h1>tenure monitoring reports</h1><p>Generated {datetime.now(UTC).isoformat(timespec='seconds')}.</p>
<table><tr><th>checked at</th><th>model</th><th>version</th><th>data</th><th>drift share</th><th>drifted</th>
<th>realised ROC-AUC</th><th>verdict</th><th>retraining</th><th>files</th></tr>{''.join(rows)}</table></body></html>"""
    index = reports_dir / "index.html"
    index.write_text(page)
    return index


def log_to_mlflow(tracking_uri: str, experiment_id: str, folder: Path, summary: dict[str, Any]) -> str | None:
    """Log the report folder and its key numbers as a ``monitoring`` run; returns the run id (None on failure).

    Uses an explicit client on ``tracking_uri``, so MLflow's process-wide settings are left alone.
    """
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        run = client.create_run(experiment_id, run_name=f"monitoring-{summary.get('kind')}", tags={
            "tenure.kind": "monitoring", "tenure.model": str(summary.get("kind")),
            "tenure.model_version": str(summary.get("model_version")),
            "tenure.verdict": str(summary.get("verdict"))[:5000],
            "tenure.data": str(summary.get("mode")),
        })
        run_id = run.info.run_id
        try:
            drift = summary.get("drift") or {}
            metrics = {"drift_share": drift.get("drift_share"), "rows_current": drift.get("rows_current")}
            for key, value in (summary.get("performance") or {}).items():
                metrics[f"realised_{key}"] = value
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    client.log_metric(run_id, key, float(value))
            client.log_artifacts(run_id, str(folder), artifact_path="monitoring")
        finally:
            client.set_terminated(run_id)
        return run_id
    except Exception as exc:  # noqa: BLE001 (reports on disk are the record; MLflow is a copy)
        logger.error("could not log the monitoring report to MLflow: %s", exc)
        return None
