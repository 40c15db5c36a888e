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
        "dashboard": {"refresh_s": 1.0},  # the dashboard's panels follow the log within a second
    }
    return load_settings(None, **_deep_merge(base, overrides))


def build_workspace(settings: Settings, n_customers: int = 600, n_items: int = 60, days: int = 150, seed: int = 5):
    """Simulate, ingest, build + apply + materialize features, train and promote both models."""
    shop = build_data(settings, n_customers=n_customers, n_items=n_items, days=days, seed=seed)
    train_models(settings)
    return shop


def build_data(settings: Settings, n_customers: int = 600, n_items: int = 60, days: int = 150, seed: int = 5):
    """Simulate and ingest a shop, build feature tables, ``feast apply`` and materialize; returns the shop."""
    from tenure.feature_repo.store import apply_definitions, materialize
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables, snapshot_times

    shop = simulate_shop(n_customers=n_customers, n_items=n_items, days=days, seed=seed, start="2026-01-01")
    with IngestRun(settings) as run:
        run.ingest_frame("customers", shop.customers, source="sim customers")
        run.ingest_frame("items", shop.items, source="sim items")
        run.ingest_frame("events", shop.events, source="sim events")
    end = shop.events["event_at"].max()
    build_feature_tables(settings, snapshot_times(pd.Timestamp("2026-01-15", tz="UTC"), end, every_days=7) + [end])
    apply_definitions(settings)
    materialize(settings)
    return shop


def train_models(settings: Settings) -> None:
    """Train both models on the ingested data and promote them to ``champion``."""
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.recommender_pipeline import train_recommender

    train_churn(settings)
    _promote_for_serving(settings, "churn")
    train_recommender(settings, num_threads=1)
    _promote_for_serving(settings, "recommender")


def _promote_for_serving(settings: Settings, kind: str) -> None:
    """Promote through the gate; a refused first model is forced, with the gate's reason recorded.

    Serving tests and the serving benchmarks measure the service, which needs a champion; on small
    generated shops the gate may rightly refuse a model that loses to its baselines.
    """
    from tenure.training.gate import promote

    decision = promote(settings, kind)
    if not decision.promoted:
        promote(settings, kind, force_reason=f"serving workspace needs a champion; the gate said: {decision.reason}")


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a YAML file for the service process (``tenure --config FILE serve``), keys included."""
    import yaml

    values = settings.model_dump(mode="json")
    values["serving"]["api_keys"] = [k.get_secret_value() for k in settings.serving.api_keys]
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
