"""A complete small workspace for service tests and benchmarks: data, features online, both champions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tenure.settings import Settings, _deep_merge, load_settings

API_KEY = "test-key-0123456789"


def serving_settings(root: Path, **overrides) -> Settings:
    """Settings with every store under ``root`` and one API key."""
    base = {
        "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"), "exports_dir": str(root / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                   "artifact_root": str(root / "mlruns" / "artifacts")},
        "churn": {"n_estimators": 60, "early_stopping_rounds": 10},
        "recommender": {"iterations": 5, "factors": 16},
        "serving": {"api_keys": [API_KEY], "model_cache_dir": str(root / "data" / "model_cache"),
                    "reload_interval_s": 1.0, "prediction_log_flush_s": 0.2},
    }
    return load_settings(None, **_deep_merge(base, overrides))


def build_workspace(settings: Settings, n_customers: int = 600, n_items: int = 60, days: int = 150, seed: int = 5):
    """Simulate, ingest, build + apply + materialize features, train and promote both models."""
    from feature_repo.store import apply_definitions, materialize
    from features.ingest import IngestRun
    from features.simulator import simulate_shop
    from features.snapshots import build_feature_tables, snapshot_times
    from training.churn_pipeline import train_churn
    from training.recommender_pipeline import train_recommender
    from training.registry import promote

    shop = simulate_shop(n_customers=n_customers, n_items=n_items, days=days, seed=seed, start="2026-01-01")
    with IngestRun(settings) as run:
        run.ingest_frame("customers", shop.customers, source="sim customers")
        run.ingest_frame("items", shop.items, source="sim items")
        run.ingest_frame("events", shop.events, source="sim events")
    end = shop.events["event_at"].max()
    build_feature_tables(settings, snapshot_times(pd.Timestamp("2026-01-15", tz="UTC"), end, every_days=7) + [end])
    apply_definitions(settings)
    materialize(settings)
    train_churn(settings, promote=True)
    train_recommender(settings, num_threads=1)
    promote(settings, "recommender")
    return shop
