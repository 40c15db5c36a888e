"""A labelled churn snapshot end to end: ingest -> train (source detected) -> promote -> Feast online -> score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _customers(n: int, seed: int, label: bool) -> pd.DataFrame:
    """Customers whose churn follows their contract, charges and support calls (plus noise)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["monthly", "annual", "two_year"], n, p=[0.5, 0.3, 0.2])
    charges = rng.uniform(20, 120, n)
    calls = rng.poisson(1.5, n)
    logit = -1.5 + 1.8 * (contract == "monthly") + 0.02 * (charges - 70) + 0.5 * (calls - 1.5)
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame({
        "customer_id": [f"s{seed}-{i}" for i in range(n)],
        "contract": contract,
        "monthly_charges": [f"{x:.2f}" for x in charges],
        "total_charges": [f"{x * 12:.2f}" if i % 50 else " " for i, x in enumerate(charges)],
        "support_calls": calls.astype(str),
        "paperless": rng.choice(["Yes", "No"], n),
        "phone": [f"555-{i:04d}" for i in range(n)],
    })
    if label:
        frame["churn"] = np.where(churn, "yes", "no")
    return frame


def test_snapshot_trains_promotes_and_serves_new_customers(make_settings, tmp_path: Path) -> None:
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import apply_definitions, materialize, open_store
    from tenure.features.ingest import IngestRun
    from tenure.registry.champion import load_champion
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote
    from tenure.training.sources import detect_churn_source

    settings = make_settings(churn={"n_estimators": 60, "early_stopping_rounds": 10})
    with pytest.raises(ValueError, match="--label-column"):
        detect_churn_source(settings)  # an empty workspace says what to ingest
    _customers(1500, 1, label=True).to_csv(tmp_path / "snapshot.csv", index=False)
    with IngestRun(settings) as run:
        report = run.ingest_file("customers", tmp_path / "snapshot.csv", label_column="churn")
    assert report.rejected == 0
    assert report.attribute_types["phone"][0] == "ignore"
    assert detect_churn_source(settings) == "snapshot"

    result = train_churn(settings, source="snapshot")
    assert result.metrics["tenure"]["roc_auc"] > 0.7
    assert "logistic" in result.metrics
    assert "recency_rule" not in result.metrics  # no events, no recency
    decision = promote(settings, "churn")
    assert decision.promoted
    champion = load_champion(settings, "churn")
    features = champion.runtime.feature_names
    assert "phone" not in features and "monthly_charges" in features and "contract" in features

    # new customers, no label, ingested later; then the attributes go online
    new = _customers(3, 2, label=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    with IngestRun(settings) as run:
        report = run.ingest_file("customers", tmp_path / "new.csv")
    assert report.accepted == 3, report.reasons
    apply_definitions(settings)
    materialize(settings)
    reader = OnlineFeatureReader(open_store(settings), "churn_v1")
    rows = reader.read([*new["customer_id"], "nobody"])
    assert rows[-1] is None
    assert rows[0]["monthly_charges"] == pytest.approx(float(new["monthly_charges"].iloc[0]))
    assert rows[0]["contract"] == new["contract"].iloc[0]
    scorer = champion.runtime
    X = scorer.vectorize(rows[:3])
    assert scorer.missing_counts(X).tolist() == [1, 0, 0]  # only customer 0's blank total_charges
    p = scorer.predict_proba(X)
    assert np.all((p > 0) & (p < 1))


@pytest.mark.realdata
def test_telco_through_the_generic_snapshot_path(shared_datasets: Path, tmp_path: Path, monkeypatch) -> None:
    """The Telco CSV as any user's file: `tenure ingest customers FILE --label-column Churn`, then training."""
    import os

    import yaml
    from typer.testing import CliRunner

    from tenure.pipelines.cli import app
    from tenure.settings import load_settings
    from tenure.training.churn_dataset import build_snapshot_training_set
    from tenure.training.churn_pipeline import train_churn

    for name in list(os.environ):
        if name.startswith("TENURE_"):
            monkeypatch.delenv(name, raising=False)
    paths = {"data_dir": str(tmp_path / "data"), "reports_dir": str(tmp_path / "reports"),
             "exports_dir": str(tmp_path / "exports")}
    mlflow = {"tracking_uri": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
              "artifact_root": str(tmp_path / "mlruns" / "artifacts")}
    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump({"paths": paths, "mlflow": mlflow}))
    file = shared_datasets / "telco_churn" / "telco_customer_churn.csv"
    result = CliRunner().invoke(app, ["--config", str(config), "ingest", "customers", str(file),
                                      "--label-column", "Churn"])
    assert result.exit_code == 0, result.output
    assert "TotalCharges" in result.output and "numeric" in result.output
    assert "tenure train churn" in result.output  # the next step is named

    settings = load_settings(None, paths=paths, mlflow=mlflow, churn={"n_estimators": 80, "early_stopping_rounds": 15})
    frame, numeric, categorical = build_snapshot_training_set(settings)
    assert len(frame) == 7043 and abs(frame["label"].mean() - 0.265) < 0.01
    assert {"tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"} <= set(numeric)
    assert {"Contract", "PaymentMethod", "InternetService"} <= set(categorical)
    assert frame["TotalCharges"].isna().sum() == 11  # the blanks of customers with tenure 0
    result = train_churn(settings, source="snapshot")
    assert result.metrics["tenure"]["roc_auc"] > 0.82
