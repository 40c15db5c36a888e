"""``tenure export audience --experiment``: holdout left out, arms by hash, treatments recorded once, control held back."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import yaml
from typer.testing import CliRunner

from tenure.experiments.assignment import Assigner
from tenure.pipelines.cli import app

WINBACK = {"name": "winback", "arms": [{"name": "control", "share": 0.5},
                                        {"name": "offer", "share": 0.5, "offer": "10% off", "channel": "email"}]}


def _config(churn_workspace, trained_churn, tmp_path, **experiments):
    """The shared churn workspace's data copied (treatments are written to it), its registry read as is."""
    del trained_churn  # a champion exists
    data = tmp_path / "data"
    shutil.copytree(churn_workspace.paths.data_dir, data)
    values = churn_workspace.model_dump(mode="json")
    values["paths"] = {"data_dir": str(data), "reports_dir": str(tmp_path / "reports"),
                       "exports_dir": str(tmp_path / "exports")}
    values["serving"]["model_cache_dir"] = str(data / "model_cache")
    values["experiments"] = {"holdout_share": 0.1, "definitions": [WINBACK], **experiments}
    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump(values))
    from tenure.settings import load_settings

    return config, load_settings(config)


def _export(config, *extra):
    return CliRunner().invoke(app, ["--config", str(config), "export", "audience", "--risk", "low", "--risk", "medium",
                                    "--risk", "high", "--source", "snapshot", "--json", *extra])


def test_campaign_export_splits_records_and_holds_back(churn_workspace, trained_churn, tmp_path):
    from tenure.features.tables import read_events

    config, settings = _config(churn_workspace, trained_churn, tmp_path)
    result = _export(config, "--experiment", "winback", "--out", str(tmp_path / "aud.csv"))
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    campaign = doc["campaign"]
    audience = pd.read_csv(tmp_path / "aud.csv")
    assigner = Assigner.from_settings(settings)
    assert set(audience["arm"]) == {"offer"} and set(audience["offer"]) == {"10% off"}
    assert all(a == "offer" for a in assigner.assign("winback", audience["customer_id"]))
    by_arm = campaign["customers_by_arm"]
    assert by_arm["offer"] == len(audience) and by_arm["control"] == campaign["control_held_back"] > 0
    assert campaign["holdout_excluded"] > 0 and campaign["recorded"] == by_arm["offer"] + by_arm["control"]
    treatments = read_events(settings, columns=["customer_id", "event_type", "campaign", "arm", "offer"])
    treatments = treatments[treatments["event_type"] == "treatment"]
    assert len(treatments) == campaign["recorded"] and set(treatments["campaign"]) == {"winback"}
    assert not any(assigner.in_holdout(c) for c in treatments["customer_id"])  # the holdout is never contacted
    assert treatments.loc[treatments["arm"] == "control", "offer"].isna().all()

    again = json.loads(_export(config, "--experiment", "winback", "--out", str(tmp_path / "aud2.csv")).stdout)
    assert again["campaign"]["recorded"] == 0 and again["campaign"]["already_recorded"] == campaign["recorded"]


def test_unknown_or_inactive_experiment_writes_nothing(churn_workspace, trained_churn, tmp_path):
    from tenure.features.tables import read_events

    config, settings = _config(churn_workspace, trained_churn, tmp_path)
    result = _export(config, "--experiment", "nope", "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 1 and "unknown experiment 'nope'; defined: winback" in result.output
    assert not (tmp_path / "x.csv").exists()
    assert not read_events(settings, columns=["event_type"])["event_type"].eq("treatment").any()
    paused = {**WINBACK, "name": "paused_one", "status": "paused"}
    config, _ = _config(churn_workspace, trained_churn, tmp_path / "p", definitions=[WINBACK, paused])
    result = _export(config, "--experiment", "paused_one", "--out", str(tmp_path / "y.csv"))
    assert result.exit_code == 1 and "is paused, not active" in result.output and not (tmp_path / "y.csv").exists()
