"""End-to-end churn training on the real public datasets (Telco snapshot, CDNOW transactions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenure.settings import Settings, load_settings

pytestmark = [pytest.mark.realdata, pytest.mark.slow]



def workspace_settings(root: Path) -> Settings:
    """Every store under ``root``; few trees so the file stays within about a minute.

    Same layout as ``tests/conftest.py``'s ``workspace_settings`` (not importable under
    ``--import-mode=importlib``).
    """
    return load_settings(
        None,
        paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"), "exports_dir": str(root / "exports")},
        mlflow={"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", "artifact_root": str(root / "mlruns" / "artifacts")},
        churn={"n_estimators": 80, "early_stopping_rounds": 15},
    )


def test_telco_is_ingested_by_the_pipeline_step_then_trained(shared_datasets: Path, tmp_path: Path) -> None:
    from tenure.features.tables import read_customers
    from tenure.pipelines.flows import prepare_source
    from tenure.pipelines.steps import StepRunner
    from tenure.training.churn_pipeline import train_churn

    settings = workspace_settings(tmp_path)
    with pytest.raises(ValueError, match="prepare the workspace first"):
        train_churn(settings, source="telco")  # training never reads the dataset's files itself
    seen = []
    ws = prepare_source(settings, "telco", shared_datasets / "telco_churn", on_result=seen.append)
    assert ws.paths.data_dir == settings.paths.data_dir / "sources" / "telco"
    assert [(r.step, r.status) for r in seen] == [("ingest", "done")]
    assert len(read_customers(ws)) == 7043 and read_customers(settings, missing_ok=True).empty
    again = prepare_source(settings, "telco", shared_datasets / "telco_churn", on_result=seen.append)
    assert again == ws and seen[-1].status == "skipped"  # the same files: nothing to do
    assert [h["status"] for h in StepRunner(ws.paths.state_dir).history("ingest")] == ["done", "skipped"]

    result = train_churn(settings, source="telco")
    assert result.version
    assert result.metrics["tenure"]["roc_auc"] > 0.7
    assert min(result.split_rows.values()) > 0


def test_cdnow_goes_through_the_ingest_and_features_steps_then_trains(shared_datasets: Path, tmp_path: Path) -> None:
    from tenure.pipelines.flows import prepare_source
    from tenure.training.churn_pipeline import train_churn

    settings = workspace_settings(tmp_path)
    seen = []
    ws = prepare_source(settings, "cdnow", shared_datasets / "cdnow", on_result=seen.append)
    assert [(r.step, r.status) for r in seen] == [("ingest", "done"), ("features", "done")]
    assert seen[0].rows["accepted"] == 23570 + 1 + 69659  # customers, the one item, purchases
    assert (ws.paths.features_dir / "customer_features.parquet").is_file()
    result = train_churn(settings, source="cdnow")
    assert result.version
    assert 0.5 < result.metrics["tenure"]["roc_auc"] <= 1.0
    assert min(result.split_rows.values()) > 0
    # the training step on the same tables: CDNOW names one item, so the recommender is skipped with a reason
    # (ALS used to fail the whole step with NaN factors) and the churn model is still trained
    from tenure.pipelines.flows import train_step

    out = train_step(ws, kinds=("recommender",), promote=False)
    assert "needs at least 2" in out.details["recommender"]["skipped"]
