"""Benchmark: the customer-value model on CDNOW, the literature's split (39 weeks calibration, 39 holdout).

CDNOW (``../shared/datasets/cdnow/CDNOW_master.txt``): 23,570 customers who first bought in
1997-Q1, purchases until 1998-06-30. Calibration: 1997-01-01 .. 1997-09-30 (39 weeks); holdout:
1997-10-01 .. 1998-06-30 (39 weeks). An order is a customer's purchases on one day (as in
``tenure.insight.value``); predicted: each customer's orders in the holdout, and spend.

Compared, per customer (mean absolute error):
- BG/NBD (+ Gamma-Gamma for spend), ``tenure.insight.value`` (lifetimes, maximum likelihood);
- naive "same as last period": as many repeat orders (and as much spend) as in calibration;
- the recency (hiatus) rule: a customer whose last order is within 13 weeks of the split keeps
  their calibration rate, anyone quieter buys nothing (``insight.value.recency_rule``).

Also the fitted parameters (the literature reports r=0.243, alpha=4.414, a=0.793, b=2.426 on the
1/10 sample of 2,357 customers with weekly T) and the fit's time. Logged to MLflow (experiment
``tenure-value-cdnow`` under ``--mlruns``).

    .venv/bin/python benchmarks/clv_cdnow.py [--path ../shared/datasets] [--mlruns /tmp/mlruns]

Writes benchmarks/results/clv_cdnow.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "clv_cdnow.json"
CALIBRATION_END = pd.Timestamp("1997-09-30T23:59:59", tz="UTC")
HOLDOUT_END = pd.Timestamp("1998-06-30T23:59:59", tz="UTC")
HOLDOUT_WEEKS = 39.0
HIATUS_WEEKS = 13.0


def read_cdnow(path: Path) -> pd.DataFrame:
    """CDNOW purchases as ``customer_id``, ``event_at`` (UTC), ``amount``."""
    file = path / "cdnow" / "CDNOW_master.txt" if path.is_dir() else path
    raw = pd.read_csv(file, sep=r"\s+", header=0, names=["customer_id", "date", "cds", "amount"],
                      dtype={"customer_id": str, "date": str})
    return pd.DataFrame({"customer_id": raw["customer_id"],
                         "event_at": pd.to_datetime(raw["date"], format="%Y%m%d", utc=True),
                         "amount": raw["amount"].astype(float)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--mlruns", type=Path, default=None, help="MLflow store folder (default: a temp folder).")
    args = parser.parse_args()

    from tenure.insight.value import fit_value_model, recency_rule, rfm_summary

    purchases = read_cdnow(args.path)
    summary = rfm_summary(purchases, CALIBRATION_END, time_unit_days=7.0)
    holdout = purchases[(purchases["event_at"] > CALIBRATION_END) & (purchases["event_at"] <= HOLDOUT_END)]
    days = holdout["event_at"].dt.floor("D")
    orders = holdout.assign(day=days).groupby(["customer_id", "day"])["amount"].sum().reset_index()
    actual_orders = orders.groupby("customer_id").size().reindex(summary.index, fill_value=0).to_numpy(float)
    actual_spend = orders.groupby("customer_id")["amount"].sum().reindex(summary.index, fill_value=0.0).to_numpy(float)

    t0 = time.perf_counter()
    model = fit_value_model(summary, time_unit_days=7.0)
    fit_s = time.perf_counter() - t0
    predicted = model.expected_purchases(summary, HOLDOUT_WEEKS * 7)
    predicted_spend = predicted * model.expected_order_value(summary)
    calib_spend = (summary["monetary_value"] * summary["frequency"]).to_numpy(float)  # repeat spend in calibration
    rules = {
        "bgnbd": predicted,
        "naive_same_as_last_period": summary["frequency"].to_numpy(float),
        "recency_rule_13_weeks": recency_rule(summary, HOLDOUT_WEEKS, hiatus=HIATUS_WEEKS),
    }
    spend_rules = {
        "bgnbd_gamma_gamma": predicted_spend,
        "naive_same_as_last_period": calib_spend,
        "recency_rule_13_weeks": recency_rule(summary, HOLDOUT_WEEKS, hiatus=HIATUS_WEEKS)
        * np.where(summary["orders"] > 0, _mean_order(purchases, summary), 0.0),
    }
    mae = {name: float(np.abs(pred - actual_orders).mean()) for name, pred in rules.items()}
    mae_spend = {name: float(np.abs(pred - actual_spend).mean()) for name, pred in spend_rules.items()}
    totals = {"actual": float(actual_orders.sum()), **{name: float(pred.sum()) for name, pred in rules.items()}}
    result = {
        "benchmark": "clv_cdnow",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "data": {"customers": len(summary), "calibration": "1997-01-01..1997-09-30 (39 weeks)",
                 "holdout": "1997-10-01..1998-06-30 (39 weeks)", "order": "a customer's purchases on one day",
                 "holdout_orders": totals["actual"]},
        "mae_holdout_orders_per_customer": mae,
        "mae_holdout_spend_per_customer": mae_spend,
        "total_holdout_orders": totals,
        "params": model.params,
        "fit_seconds": round(fit_s, 2),
        "bgnbd_beats_naive": mae["bgnbd"] < mae["naive_same_as_last_period"],
        "bgnbd_beats_recency": mae["bgnbd"] < mae["recency_rule_13_weeks"],
    }
    result["mlflow_run_id"] = _track(result, args.mlruns)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _mean_order(purchases: pd.DataFrame, summary: pd.DataFrame) -> np.ndarray:
    """Each customer's mean order value in calibration (all orders, the first included)."""
    calib = purchases[purchases["event_at"] <= CALIBRATION_END]
    orders = calib.assign(day=calib["event_at"].dt.floor("D")).groupby(["customer_id", "day"])["amount"].sum()
    return orders.groupby(level="customer_id").mean().reindex(summary.index, fill_value=0.0).to_numpy(float)


def _track(result: dict, mlruns: Path | None) -> str:
    """Log the benchmark's figures as an MLflow run (explicit client, no global state)."""
    import tempfile

    from tenure.registry.models import mlflow_client

    folder = mlruns or Path(tempfile.mkdtemp(prefix="tenure-clv-mlruns-"))
    folder.mkdir(parents=True, exist_ok=True)
    client = mlflow_client(f"sqlite:///{folder.resolve()}/mlflow.db")
    name = "tenure-value-cdnow"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        name, artifact_location=(folder / "artifacts").resolve().as_uri())
    run_id = client.create_run(experiment_id, tags={"mlflow.runName": "cdnow-39-39"}).info.run_id
    client.log_param(run_id, "split", "39/39 weeks")
    for key, value in {**{f"mae_{k}": v for k, v in result["mae_holdout_orders_per_customer"].items()},
                       **{f"mae_spend_{k}": v for k, v in result["mae_holdout_spend_per_customer"].items()},
                       **{f"param_{k}": v for k, v in result["params"].items()}}.items():
        client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id)
    return run_id


if __name__ == "__main__":
    main()
