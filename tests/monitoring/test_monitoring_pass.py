"""A whole monitoring pass on the shared simulated workspace, with a real registry and gate."""

from __future__ import annotations

import json

import pytest

from tenure.monitoring import run_monitoring_pass
from tenure.settings import AlertSinkSettings

pytestmark = pytest.mark.slow


def _sensitive(settings):
    """Thresholds so low that the newest snapshot counts as drifted: the policy fires."""
    monitoring = settings.monitoring.model_copy(update={
        "numerical_threshold": 1e-6, "categorical_threshold": 1e-6, "drift_share_threshold": 0.05,
        "alert_sinks": [AlertSinkSettings(kind="jsonl")],
    })
    paths = settings.paths.model_copy(update={"reports_dir": settings.paths.reports_dir / "sensitive",
                                              "data_dir": settings.paths.data_dir})
    return settings.model_copy(update={"monitoring": monitoring, "paths": paths})


def test_healthy_snapshot_writes_a_report_and_no_alert(churn_workspace, trained_churn):
    result = run_monitoring_pass(churn_workspace, mode="snapshot", retrain=lambda: pytest.fail("must not retrain"))
    assert result.model_version is not None
    assert result.report_paths and result.report_paths[0].endswith("report.html")
    summary = json.loads((churn_workspace.paths.reports_dir / result.report_paths[0].split("/")[-2] / "summary.json").read_text())
    assert summary["model_version"] == result.model_version
    assert summary["drift"]["prediction"]["column"] == "prediction"
    assert summary["drift"]["bands"]["column"] == "risk_band"  # bands cut with the run's logged thresholds
    assert set(summary["drift"]["band_mix"]["reference"]) <= {"low", "medium", "high"}
    # history shorter than a season: monitoring.reference auto keeps the champion's training sample
    assert summary["reference"].startswith("no snapshot 365 +/- 14 days before")
    # early outcome / concept: the newest snapshot whose 14 days have passed, against the weeks before
    early = summary["early_outcome"]
    assert early["days"] == 14 and early["rows"] >= 100 and early["reference_cohorts"]
    assert max(early["reference_cohorts"]) < early["cohort"]
    assert {f["signal"] for f in early["findings"]} >= {"auc", "calibration"}
    # the per-segment CUSUM kept between passes, and the recent reference that confirms drift (what each said)
    assert early["sequential"]["last_cohort"] == early["cohort"] and early["sequential"]["threshold"] > 0
    recent = summary["recent_reference"]
    assert recent["reference"]
    if recent["applied"]:
        assert set(recent["confirmed"]) == set(recent["drifted_primary"]) & set(recent["drifted_recent"])
        assert set(summary["drift"]["drifted"]) == set(recent["confirmed"])
    index = (churn_workspace.paths.reports_dir / "index.html").read_text()
    assert result.report_paths[0].split("/")[-2] in index  # the report is listed with a link
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=churn_workspace.mlflow.tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["tenure.kind"] == "monitoring"
    assert run.data.tags["tenure.model_version"] == result.model_version
    assert "drift_share" in run.data.metrics
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")} >= {
        "monitoring/report.html", "monitoring/summary.json"}
    if result.verdict == "healthy":
        assert result.alerts == []


def test_dry_run_alerts_but_retrains_nothing_then_gate_blocks_a_worse_model(churn_workspace, trained_churn):
    from tenure.registry.models import get_alias_version
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote

    settings = _sensitive(churn_workspace)
    champion = get_alias_version(settings, "churn", "champion")
    dry = run_monitoring_pass(settings, mode="snapshot", dry_run=True,
                              retrain=lambda: pytest.fail("dry run must not retrain"))
    assert dry.alerts and "dry run" in dry.retrain["summary"]
    alerts = [json.loads(line) for line in (settings.paths.reports_dir / "alerts.jsonl").read_text().splitlines()]
    assert alerts[-1]["model_version"] == champion
    assert "held back (dry run)" in alerts[-1]["next_action"]
    assert any(f.startswith("risk bands: low") for f in alerts[-1]["findings"])
    assert alerts[-1]["report_path"].endswith("report.html")

    weak = settings.model_copy(update={"churn": settings.churn.model_copy(
        update={"num_leaves": 2, "n_estimators": 1, "learning_rate": 0.01, "candidates": ["lightgbm"]})})
    calls = []

    def retrain_worse():
        calls.append(1)
        result = train_churn(weak)
        return {"models": {"churn": {"gate": promote(settings, "churn").as_dict(), "run": result.run_id}}}

    fired = run_monitoring_pass(settings, mode="snapshot", retrain=retrain_worse)
    assert calls == [1]
    assert "not promoted" in fired.retrain["summary"]
    assert get_alias_version(settings, "churn", "champion") == champion  # a worse model never replaces it
    assert any(a.startswith("Retraining finished") for a in fired.alerts)

    again = run_monitoring_pass(settings, mode="snapshot", retrain=retrain_worse)
    assert calls == [1]  # cool-down
    assert "cool-down" in again.retrain["summary"]
