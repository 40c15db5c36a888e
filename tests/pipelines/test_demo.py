"""End to end: the small demo runs the whole loop and its summary's claims hold; the audience file is right."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tenure.pipelines.scoring import BASE_COLUMNS, item_columns, reason_columns

pytestmark = pytest.mark.slow


def _require_demo(outcome) -> None:
    if outcome.error is not None:
        pytest.fail(f"the small demo failed: {outcome.error}\n"
                    f"{json.dumps(outcome.summary.get('failed_stage'), indent=1)}\ncause: {outcome.error.__cause__!r}")


def test_demo_summary_claims(small_demo) -> None:
    _require_demo(small_demo)
    summary = small_demo.summary
    on_disk = json.loads((small_demo.settings.paths.reports_dir / "demo_summary.json").read_text())
    assert on_disk == summary, "run_demo returns what it writes, in plain JSON types"
    claims = summary["claims"]
    assert claims["champions_exist"] is True
    assert all(summary["champions"]["initial"].values()), "both models have a champion"
    assert all(summary["champions"]["final"].values())
    assert claims["service_answered"] is True
    assert summary["calls"]["churn_scored"] > 0
    assert summary["calls"]["example_recommendation"]["items"], "/recommend returned items"
    assert claims["event_changed_score"] is True, "an event sent to /events changes that customer's score"
    assert summary["replay"]["events_via_service"] > 0 and summary["replay"]["score_calls"] > 0
    assert claims["pipeline_break_quarantined"] is True, "the broken upstream batch is held back, nothing stored"
    assert summary["pipeline_break"]["alerts"][0]["route"] == "data_team"
    assert any("median x100" in f for f in summary["pipeline_break"]["findings"]), "the alert names the units break"
    assert claims["quiet_pass_alerted"] is False, "monitoring stays quiet before the drift"
    assert summary["quiet_monitoring"]["mode"].startswith("snapshot")
    assert claims["alert_raised"] is True, "the drift episode raises an alert"
    assert "acquisition_channel" in summary["monitoring"]["result"]["drift"]["drifted"], \
        "the alert names the feature the simulator changed (new acquisition channel), not only recency"
    assert claims["retrain_decision"], "monitoring recorded a retrain decision"
    assert claims["served_new_champion"] is True, "after /admin/reload the service serves the final champion"
    assert claims["consent_withdrawal_seen"] is True, "a withdrawal through POST /consent changes the next /recommend"
    assert claims["erasure_clean"] is True, "DELETE /customers/{id} leaves nothing of the person (its receipt)"
    experiment = summary["experiment"]  # the campaign stage (pipelines/demo/experiment.py): measured vs true
    assert experiment["retention_effect"]["low"] < experiment["retention_effect"]["high"]
    assert experiment["covers_truth"] is True and experiment["srm_flagged"] is False, "demo seed: interval covers truth"
    assert experiment["saves"]["uplift"] > experiment["saves"]["random"] and Path(experiment["report"]).is_file()
    assert set(summary["timings_s"]) >= {"generate", "ingest", "features", "train", "serve", "quiet", "replay", "monitor"}


def test_demo_audience_file(small_demo) -> None:
    _require_demo(small_demo)
    audience = small_demo.summary["audience"]
    frame = pd.read_csv(audience["path"], dtype={"customer_id": str})
    n_reasons = small_demo.settings.serving.top_reasons
    expected = list(BASE_COLUMNS) + reason_columns(n_reasons) + item_columns(5) + [
        "recommendation_strategy", "recommender_model_version"]
    assert list(frame.columns) == expected
    assert len(frame) == audience["rows"] > 0
    assert set(frame["risk_band"]) <= set(audience["risk"]) and "low" not in audience["risk"], \
        "only the requested risk band(s)"
    assert frame["churn_probability"].is_monotonic_decreasing, "riskiest first"
    assert frame["item_1"].notna().all(), "every customer has a recommendation"
    assert frame["reason_1_feature"].notna().all()
    assert frame["customer_id"].is_unique


def test_export_audience_command_parquet(small_demo, tmp_path: Path) -> None:
    _require_demo(small_demo)
    import yaml
    from typer.testing import CliRunner

    from tenure.pipelines.cli import app
    from tenure.settings import _deep_merge

    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump(_deep_merge({}, small_demo.overrides)))
    out = tmp_path / "aud.parquet"
    result = CliRunner().invoke(app, ["--config", str(config), "export", "audience", "--risk", "medium",
                                      "--risk", "high", "--with-recommendations", "3", "--format", "parquet",
                                      "--out", str(out), "--source", "snapshot"])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert set(frame["risk_band"]) <= {"medium", "high"} and len(frame) > 0
    assert set(frame["feature_source"]) == {"snapshot"}
    assert {"item_1", "item_2", "item_3"} <= set(frame.columns) and "item_4" not in frame.columns
    bad = CliRunner().invoke(app, ["--config", str(config), "export", "audience", "--risk", "extreme"])
    assert bad.exit_code == 2


def test_demo_steps_are_recorded_and_skipped_on_rerun(small_demo) -> None:
    _require_demo(small_demo)
    from tenure.pipelines.flows import run_step
    from tenure.pipelines.steps import StepRunner

    runner = StepRunner(small_demo.settings.paths.state_dir)
    done = {m["step"] for m in runner.markers()}
    assert {"ingest", "features", "train", "score"} <= done
    # the demo's last stage erases a customer after its score step (the tables changed: it runs once
    # more, without them); a second run with nothing changed is skipped
    first = run_step(small_demo.settings, "score")
    again = run_step(small_demo.settings, "score")
    assert again.status == "skipped", "nothing changed since the previous score step"
    assert again.rows["customers_scored"] == first.rows["customers_scored"] > 0
