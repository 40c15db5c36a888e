"""Customer value: the RFM summary, parameter recovery on data from the model itself, the files, the ranking, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tenure.insight.value import (
    fit_value_model,
    load_customer_values,
    rank_by_value_at_risk,
    recency_rule,
    rfm_summary,
)

END = pd.Timestamp("2026-03-31T23:59:59", tz="UTC")


def test_rfm_summary_counts_orders_as_customer_days():
    purchases = pd.DataFrame({
        "customer_id": ["a", "a", "a", "a", "b", "c"],
        "event_at": pd.to_datetime(["2026-01-01T10:00Z", "2026-01-01T11:00Z", "2026-01-15T09:00Z", "2026-04-02T09:00Z",
                                    "2026-03-04T10:00Z", "2026-05-01T10:00Z"], utc=True),
        "amount": [10.0, 5.0, 30.0, 99.0, 20.0, 7.0],
    })
    summary = rfm_summary(purchases, END)
    assert list(summary.index) == ["a", "b"]  # c bought after the end; a's April order is not counted
    a = summary.loc["a"]
    assert a["orders"] == 2 and a["frequency"] == 1  # two lines on Jan 1 are one order
    assert a["recency"] == pytest.approx(14 / 7) and a["T"] == pytest.approx((END.value / 86_400e9 - 20454) / 7)
    assert a["monetary_value"] == 30.0  # the repeat order only (Gamma-Gamma's input)
    assert summary.loc["b", "frequency"] == 0 and summary.loc["b", "monetary_value"] == 0.0
    with pytest.raises(ValueError, match="amount"):
        rfm_summary(purchases.drop(columns="amount"), END)


def test_bgnbd_recovers_the_parameters_of_data_it_generated():
    from lifetimes.generate_data import beta_geometric_nbd_model

    truth = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    np.random.seed(7)  # lifetimes draws from numpy's global generator
    data = beta_geometric_nbd_model(T=39.0, size=4000, **truth)
    summary = pd.DataFrame({"frequency": data["frequency"].astype(int), "recency": data["recency"],
                            "T": data["T"], "monetary_value": 0.0, "orders": data["frequency"].astype(int) + 1})
    model = fit_value_model(summary)
    assert model.purchase_model == "bgnbd" and model.spend_model is None  # no spend given: mean order value
    for name, value in truth.items():
        assert model.params[name] == pytest.approx(value, rel=0.35), name
    p_alive = model.p_alive(summary)
    assert ((p_alive >= 0) & (p_alive <= 1)).all()
    quiet = summary.assign(recency=0.0, frequency=3)  # three repeats long ago: less likely alive than just now
    recent = summary.assign(recency=summary["T"], frequency=3)
    assert (model.p_alive(quiet) <= model.p_alive(recent) + 1e-12).all()


def test_recency_rule_keeps_recent_buyers_at_their_rate():
    summary = pd.DataFrame({"frequency": [3, 3], "recency": [38.0, 10.0], "T": [39.0, 39.0], "orders": [4, 4]})
    assert recency_rule(summary, 39.0, hiatus=13.0).tolist() == [4.0, 0.0]


def test_value_at_risk_ranking_puts_valuable_risky_customers_first():
    audience = pd.DataFrame({"customer_id": ["x", "y", "z", "new"], "churn_probability": [0.9, 0.2, 0.5, 0.99]})
    values = pd.DataFrame({"customer_id": ["x", "y", "z"], "expected_value": [10.0, 500.0, 100.0],
                           "p_alive": [0.5, 0.9, 0.7], "expected_purchases": [1.0, 5.0, 2.0]})
    ranked = rank_by_value_at_risk(audience, values)
    assert ranked["customer_id"].tolist() == ["y", "z", "x", "new"]
    assert ranked["value_at_risk"].tolist() == pytest.approx([100.0, 50.0, 9.0, 0.0])
    assert np.isnan(ranked.loc[3, "p_alive"])


def test_no_values_yet_says_how_to_fit_them(settings):
    with pytest.raises(FileNotFoundError, match="tenure train value"):
        load_customer_values(settings)


def test_train_value_and_rank_an_audience_by_value_at_risk(trained_churn, churn_workspace, tmp_path: Path):
    from tenure.pipelines.cli import app

    s = churn_workspace
    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump({
        "paths": {"data_dir": str(s.paths.data_dir), "reports_dir": str(s.paths.reports_dir),
                  "exports_dir": str(tmp_path / "exports")},
        "mlflow": {"tracking_uri": s.mlflow.tracking_uri, "artifact_root": str(s.mlflow.artifact_root)},
    }))
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, ["--config", str(config), *args])

    fit = cli("train", "value", "--json")
    assert fit.exit_code == 0, fit.output
    fitted = json.loads(fit.stdout)
    assert fitted["run_id"] and fitted["customers"] > 100
    assert fitted["metrics"]["mae_model"] < fitted["metrics"]["mae_recency"]
    values = load_customer_values(s)
    assert {"customer_id", "expected_purchases", "expected_value", "p_alive"} <= set(values.columns)
    assert values["expected_value"].notna().all() and (values["expected_value"] >= 0).all()
    assert values["p_alive"].between(0, 1).all()
    from tenure.registry.models import mlflow_client

    run = mlflow_client(s.mlflow.tracking_uri).get_run(fitted["run_id"])
    assert "mae_naive" in run.data.metrics and run.data.params["horizon_days"] == "365"

    out = tmp_path / "audience.csv"
    ranked = cli("export", "audience", "--risk", "low", "--risk", "medium", "--risk", "high", "--rank",
                 "value_at_risk", "--source", "snapshot", "--out", str(out), "--json")
    assert ranked.exit_code == 0, ranked.output
    frame = pd.read_csv(out)
    assert {"expected_value", "p_alive", "value_at_risk"} <= set(frame.columns)
    assert frame["value_at_risk"].is_monotonic_decreasing
    assert frame["value_at_risk"].iloc[0] > 0
    bad = cli("export", "audience", "--rank", "loyalty")
    assert bad.exit_code == 2 and "value_at_risk" in bad.output


def test_the_service_reads_values_once_and_again_only_when_the_file_changes(tmp_path: Path):
    import os

    from tenure.serving.customer_values import CustomerValues

    path = tmp_path / "customer_values.parquet"
    values = CustomerValues(path, check_every_s=0.0)
    assert values.get("a") is None  # no model yet: no expected_value
    pd.DataFrame({"customer_id": ["a", "b"], "expected_value": [12.5, float("nan")]}).to_parquet(path)
    assert values.get("a") == 12.5 and values.get("b") is None  # NaN is no value
    pd.DataFrame({"customer_id": ["a"], "expected_value": [40.0]}).to_parquet(path)
    os.utime(path, (1, 1))  # a different modification time: read again
    assert values.get("a") == 40.0
    slow = CustomerValues(path, check_every_s=3600.0)
    pd.DataFrame({"customer_id": ["a"], "expected_value": [99.0]}).to_parquet(path)
    assert slow.get("a") == 40.0  # not looked at again within the hour: no file read per request
    path.write_bytes(b"not parquet")
    os.utime(path, (2, 2))
    assert values.get("a") == 40.0  # a broken file keeps the previous values
