"""The small demo, run once per session into a temporary workspace; its stores feed several tests."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from tenure.settings import Settings, load_settings


def isolated_overrides(root: Path) -> dict[str, Any]:
    """Settings overrides that put every store of tenure under ``root`` (``root/data``, ``root/mlruns``, ...)."""
    stores = {name: str(root / name.removesuffix("_dir")) for name in ("data_dir", "reports_dir", "exports_dir")}
    mlruns = root / "mlruns"
    return {
        "paths": stores,
        "mlflow": {"tracking_uri": f"sqlite:///{mlruns / 'mlflow.db'}", "artifact_root": str(mlruns / "artifacts")},
        "serving": {"model_cache_dir": str(Path(stores["data_dir"]) / "model_cache")},
        "monitoring": {"alert_sinks": [{"kind": "jsonl", "path": str(Path(stores["reports_dir"]) / "alerts.jsonl")}]},
    }


@dataclasses.dataclass
class DemoOutcome:
    settings: Settings
    summary: dict[str, Any]
    overrides: dict[str, Any]
    error: BaseException | None


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoOutcome:
    """Run ``tenure demo --small`` once (library entry point) and keep its stores and summary."""
    import os

    from tenure.pipelines.demo import SMALL, DemoError, run_demo

    for name in list(os.environ):
        if name.startswith("TENURE_"):
            os.environ.pop(name)
    root = tmp_path_factory.mktemp("demo")
    overrides = isolated_overrides(root)
    settings = load_settings(None, **overrides)
    log = logging.getLogger("tests.demo")
    error = None
    try:
        summary = run_demo(settings, SMALL, say=lambda kind, text: log.info("[%s] %s", kind, text))
    except DemoError as exc:
        import json

        error = exc
        path = settings.paths.reports_dir / "demo_summary.json"
        summary = json.loads(path.read_text()) if path.exists() else {}
    return DemoOutcome(settings=settings, summary=summary, overrides=overrides, error=error)
