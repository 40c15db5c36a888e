"""Fixtures every room's tests share: isolated settings, and one small simulated workspace with a trained churn champion."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tenure.settings import Settings, load_settings

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


REDIS = ("127.0.0.1", 6379)
POSTGRES_REGISTRY = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def production_servers() -> dict[str, str]:
    """Feast settings of the production profile's servers (Redis online store, PostgreSQL registry).

    Skips the test when either server is not reachable; add a fresh ``project`` per test.
    """
    if not _reachable(*REDIS):
        pytest.skip(f"Redis is not reachable on {REDIS[0]}:{REDIS[1]} (start it to test the production profile)")
    if not _reachable("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432 (the production profile's registry)")
    return {"profile": "production", "redis_connection_string": f"{REDIS[0]}:{REDIS[1]}",
            "registry_url": POSTGRES_REGISTRY}


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Build settings whose data, reports, MLflow store and Feast files live under ``tmp_path``.

    Keyword arguments are nested overrides, e.g. ``make_settings(churn={"horizon_days": 14})``.
    Environment variables of the developer's shell are ignored.
    """
    for name in list(os.environ):
        if name.startswith("TENURE_"):
            monkeypatch.delenv(name, raising=False)

    def _make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "paths": {
                "data_dir": str(tmp_path / "data"),
                "reports_dir": str(tmp_path / "reports"),
                "exports_dir": str(tmp_path / "exports"),
            },
            "mlflow": {
                "tracking_uri": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                "artifact_root": str(tmp_path / "mlruns" / "artifacts"),
            },
            "serving": {"model_cache_dir": str(tmp_path / "data" / "model_cache")},
            "monitoring": {"alert_sinks": [{"kind": "jsonl", "path": str(tmp_path / "reports" / "alerts.jsonl")}]},
        }
        from tenure.settings import _deep_merge

        return load_settings(None, **_deep_merge(base, overrides))

    return _make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default settings, isolated under a temp folder."""
    return make_settings()


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` when present; tests that need it skip with a reason otherwise."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


# --- a small workspace shared by the churn, monitoring and pipeline tests -------------------------


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
    from tenure.feature_repo.store import apply_definitions
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables, snapshot_times

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
    """One training run on the workspace, then the gate (the first model becomes champion)."""
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote

    result = train_churn(churn_workspace)
    promote(churn_workspace, "churn")
    return result


# --- the CLI as a user runs it ------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke the CLI with a config file that puts every store under ``tmp_path``."""
    import yaml
    from typer.testing import CliRunner

    from tenure.pipelines.cli import app

    for name in list(os.environ):
        if name.startswith("TENURE_"):
            monkeypatch.delenv(name, raising=False)
    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump({"paths": {"data_dir": str(tmp_path / "data"),
                                                "reports_dir": str(tmp_path / "reports"),
                                                "exports_dir": str(tmp_path / "exports")}}))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["--config", str(config), *args])

    return invoke
