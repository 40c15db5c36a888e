"""Fixtures every room's tests share: isolated settings with all stores under a temp folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from tenure.settings import Settings, load_settings

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Build settings whose data, reports, MLflow store and Feast files live under ``tmp_path``.

    Keyword arguments are nested overrides, e.g. ``make_settings(churn={"horizon_days": 14})``.
    Environment variables of the developer's shell are ignored.
    """
    for name in list(__import__("os").environ):
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
