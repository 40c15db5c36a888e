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


def test_telco_trains_end_to_end(shared_datasets: Path, tmp_path: Path) -> None:
    from training.churn_pipeline import train_churn

    settings = workspace_settings(tmp_path)
    result = train_churn(settings, source="telco", path=shared_datasets / "telco_churn")
    assert result.version
    assert result.metrics["tenure"]["roc_auc"] > 0.7
    assert min(result.split_rows.values()) > 0


def test_cdnow_trains_end_to_end(shared_datasets: Path, tmp_path: Path) -> None:
    from training.churn_pipeline import train_churn

    settings = workspace_settings(tmp_path)
    result = train_churn(settings, source="cdnow", path=shared_datasets / "cdnow")
    assert result.version
    assert 0.5 < result.metrics["tenure"]["roc_auc"] <= 1.0
    assert min(result.split_rows.values()) > 0
