"""Churn fixtures: one small simulated shop, ingested, with weekly feature snapshots and Feast applied."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tenure.settings import Settings, load_settings


def workspace_settings(root: Path, **overrides) -> Settings:
    """Settings with every store under ``root`` (session-scoped twin of the ``make_settings`` fixture)."""
    base = {
        "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"), "exports_dir": str(root / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", "artifact_root": str(root / "mlruns" / "artifacts")},
        "churn": {"n_estimators": 60, "early_stopping_rounds": 10},
    }
    from tenure.settings import _deep_merge

    return load_settings(None, **_deep_merge(base, overrides))


def prepare_workspace(settings: Settings, n_customers: int = 700, days: int = 150, seed: int = 11) -> None:
    """Simulate, ingest, build weekly snapshots and apply the Feast definitions."""
    from feature_repo.store import apply_definitions
    from features.ingest import IngestRun
    from features.simulator import simulate_shop
    from features.snapshots import build_feature_tables, snapshot_times

    shop = simulate_shop(n_customers=n_customers, n_items=60, days=days, seed=seed, start="2026-01-01")
    with IngestRun(settings) as run:
        run.ingest_frame("customers", shop.customers, source="sim customers")
        run.ingest_frame("items", shop.items, source="sim items")
        run.ingest_frame("events", shop.events, source="sim events")
    start = pd.Timestamp("2026-01-15", tz="UTC")
    build_feature_tables(settings, snapshot_times(start, shop.events["event_at"].max(), every_days=7))
    apply_definitions(settings)


@pytest.fixture(scope="session")
def churn_workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A ready workspace (no model trained yet)."""
    settings = workspace_settings(tmp_path_factory.mktemp("churn"))
    prepare_workspace(settings)
    return settings


@pytest.fixture(scope="session")
def trained_churn(churn_workspace: Settings):
    """One training run on the workspace, promoted (the first model becomes champion)."""
    from training.churn_pipeline import train_churn

    return train_churn(churn_workspace, promote=True)
