"""A LocalCluster of 2 workers (threads of the test process: starts in about a second) and small shops for
the engine tests. (The root conftest's workspace helpers are not importable from here, so the two small
helpers below follow them.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tenure.settings import Settings, load_settings


@pytest.fixture(scope="module")
def cluster_client():
    """A ``distributed.Client`` on a LocalCluster of 2 single-thread workers, shared by a test module."""
    from tenure.compute.cluster import dask_client
    from tenure.settings import ComputeSettings

    with dask_client(ComputeSettings(engine="dask", local_workers=2, threads_per_worker=1)) as client:
        yield client


def workspace(root: Path, **overrides) -> Settings:
    """Settings with every store under ``root`` (like the root conftest's ``workspace_settings``)."""
    from tenure.settings import _deep_merge

    base = {
        "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                  "exports_dir": str(root / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                   "artifact_root": str(root / "mlruns" / "artifacts")},
        "churn": {"n_estimators": 60, "early_stopping_rounds": 10},
    }
    return load_settings(None, **_deep_merge(base, overrides))


def simulated_shop(settings: Settings, n_customers: int = 700, days: int = 150, seed: int = 11) -> None:
    """Simulate, ingest, build weekly snapshots locally and apply the Feast definitions."""
    from tenure.feature_repo.store import apply_definitions
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables, snapshot_times

    shop = simulate_shop(n_customers=n_customers, n_items=60, days=days, seed=seed, start="2026-01-01")
    with IngestRun(settings) as run:
        run.ingest_frame("customers", shop.customers, source="sim customers")
        run.ingest_frame("items", shop.items, source="sim items")
        run.ingest_frame("events", shop.events, source="sim events")
    build_feature_tables(settings, snapshot_times(pd.Timestamp("2026-01-15", tz="UTC"), shop.events["event_at"].max(),
                                                  every_days=7))
    apply_definitions(settings)
