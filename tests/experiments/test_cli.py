"""The experiment commands end to end on a simulated campaign whose truth is known, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tenure.features.sim_campaigns import CampaignSpec, write_campaign_truth
from tenure.features.simulator import simulate_shop
from tenure.pipelines.cli import app

WINBACK = {"name": "winback", "arms": [{"name": "control", "share": 0.5},
                                        {"name": "offer", "share": 0.5, "offer": "10% off", "channel": "email"}]}


@pytest.fixture(scope="module")
def campaign_workspace(tmp_path_factory):
    """A simulated shop with a campaign on day 90, ingested; the config file defines the experiment."""
    from tenure.features.ingest import ingest_shop_frames
    from tenure.settings import load_settings

    root = tmp_path_factory.mktemp("experiments")
    values = {"paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                        "exports_dir": str(root / "exports")},
              "experiments": {"definitions": [WINBACK]}}
    config = root / "tenure.yaml"
    config.write_text(yaml.safe_dump(values))
    settings = load_settings(config)
    shop = simulate_shop(1500, 40, 130, seed=21, campaign=CampaignSpec(day=90))
    ingest_shop_frames(settings, "sim", shop.customers, shop.items, shop.events)
    write_campaign_truth(shop.campaign_truth, settings.paths.raw_dir)
    return config, settings, shop


def _run(config, *args):
    return CliRunner().invoke(app, ["--config", str(config), *args])


def test_list_shows_the_definition_and_the_treated_customers(campaign_workspace):
    config, _, shop = campaign_workspace
    result = _run(config, "experiments", "list", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (winback,) = doc["experiments"]
    assert winback["status"] == "active" and [a["arm"] for a in winback["arms"]] == ["control", "offer"]
    assert winback["treated_customers"] == len(shop.campaign_truth) and doc["holdout_share"] == 0.1


def test_report_measures_what_the_simulator_did(campaign_workspace):
    config, settings, shop = campaign_workspace
    result = _run(config, "experiments", "report", "winback", "--json", "--cuped")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    truth = shop.campaign_truth
    realised = np.where(truth["arm"] == "offer", truth["churn_if_treated"], truth["churn_if_control"])
    for arm in report["arms"]:
        in_arm = (truth["arm"] == arm["arm"]).to_numpy()
        assert arm["customers"] == in_arm.sum()
        assert arm["churn_rate"] == pytest.approx(realised[in_arm].mean())  # the report reads the truth's outcome
    retention = next(d for d in report["differences"] if d["metric"] == "retention_rate")
    assert retention["low"] < retention["estimate"] < retention["high"]
    assert report["true_retention_effect"]["offer"] == pytest.approx(truth["retention_effect"].mean())
    assert report["srm"] is not None and not report["srm"]["flagged"]
    assert report["cuped"]["differences"] and settings.paths.reports_dir.joinpath("experiments", "winback.html").is_file()
    html = settings.paths.reports_dir.joinpath("experiments", "winback.html").read_text()
    assert "Differences to control" in html and "true effect (simulator)" in html


def test_unknown_experiment_and_bad_definitions_are_clear_errors(campaign_workspace, tmp_path):
    config, _, _ = campaign_workspace
    result = _run(config, "experiments", "report", "nope")
    assert result.exit_code == 1
    assert "unknown experiment 'nope'" in result.output and "campaigns found: winback" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"experiments": {"definitions": [
        {"name": "x", "arms": [{"name": "control", "share": 0.6}, {"name": "offer", "share": 0.6}]}]}}))
    result = _run(bad, "experiments", "list")
    assert result.exit_code == 1 and "arm shares must sum to 1, got 1.2" in result.output


def test_plan(campaign_workspace):
    config, _, _ = campaign_workspace
    result = _run(config, "experiments", "plan", "--baseline", "0.2", "--mde", "-0.02", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["customers_per_arm"] == 6036 and plan["customers_in_experiment"] == 12072
    assert plan["eligible_customers_needed"] == 13414  # 12,072 / 0.9, rounded up
    result = _run(config, "experiments", "plan", "--baseline", "1.5", "--mde", "0.02")
    assert result.exit_code == 1 and "baseline rate must be in (0, 1)" in result.output


def test_a_treatment_for_an_unknown_customer_stores_nothing(campaign_workspace):
    from tenure.features.tables import read_events
    from tenure.pipelines.campaigns import (
        experiment_definition,
        record_treatments,
        treatment_events,
    )

    _, settings, shop = campaign_workspace
    before = len(read_events(settings, columns=["event_type"]))
    known = shop.customers["customer_id"].iloc[0]
    events = treatment_events([known, "nobody"], ["offer", "control"], experiment_definition(settings, "winback"),
                              pd.Timestamp("2026-05-01", tz="UTC").to_pydatetime())
    with pytest.raises(ValueError, match=r"1 treatment event\(s\) rejected, nothing recorded \(nobody: unknown customer_id"):
        record_treatments(settings, events, "test")
    assert len(read_events(settings, columns=["event_type"])) == before
