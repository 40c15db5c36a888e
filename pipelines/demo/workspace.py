"""The demo's workspace: empty stores at the start, and the settings file of its service."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tenure.pipelines.demo.config import DemoError
from tenure.pipelines.steps import atomic_write_text
from tenure.settings import Settings

DEMO_MARKER = ".tenure-demo"


def _local_mlflow_paths(settings: Settings) -> list[Path]:
    paths = []
    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        paths.append(Path(uri.removeprefix("sqlite:///")))
    paths.append(Path(settings.mlflow.artifact_root))
    return paths


def prepare_workspace(settings: Settings, reset: bool = True) -> None:
    """Make sure the demo starts from empty stores.

    Stores left by an earlier demo (marked with ``data_dir/.tenure-demo``) are removed
    when ``reset``; anything else already there stops the demo, so it never deletes
    data it did not create.
    """
    data_dir = Path(settings.paths.data_dir)
    marker = data_dir / DEMO_MARKER
    occupied = data_dir.exists() and any(p.name != DEMO_MARKER for p in data_dir.iterdir())
    if occupied and not marker.exists():
        raise DemoError(
            "prepare",
            f"{data_dir} already holds data that the demo did not create; point the demo elsewhere "
            f"(e.g. TENURE_PATHS__DATA_DIR=demo-data) or move that folder away",
        )
    if marker.exists() and reset:
        targets = [data_dir, Path(settings.paths.reports_dir), Path(settings.paths.exports_dir),
                   Path(settings.serving.model_cache_dir), *_local_mlflow_paths(settings)]
        for target in targets:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text("created by `tenure demo`; the next demo may delete this folder\n")


def absolute_paths(values: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Settings values (``model_dump(mode="json")``) with relative store paths made absolute.

    The service process runs with the repository as its working directory, so relative
    paths would point somewhere else than for the demo process.
    """
    base = (base or Path.cwd()).resolve()

    def fix(value: str) -> str:
        return value if Path(value).is_absolute() else str(base / value)

    for key in ("data_dir", "reports_dir", "exports_dir"):
        values["paths"][key] = fix(values["paths"][key])
    values["feast"]["repo_path"] = fix(values["feast"]["repo_path"])
    values["mlflow"]["artifact_root"] = fix(values["mlflow"]["artifact_root"])
    uri = values["mlflow"]["tracking_uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        values["mlflow"]["tracking_uri"] = "sqlite:///" + fix(uri.removeprefix("sqlite:///"))
    values["serving"]["model_cache_dir"] = fix(values["serving"]["model_cache_dir"])
    for sink in values["monitoring"]["alert_sinks"]:
        if sink.get("path"):
            sink["path"] = fix(sink["path"])
    return values


def write_service_config(settings: Settings, path: Path, api_key: str) -> Path:
    """The effective settings as a YAML file for the service subprocess (mode 0600: it holds the key)."""
    import yaml

    values = absolute_paths(settings.model_dump(mode="json"))
    values["serving"]["api_keys"] = [api_key] + [k.get_secret_value() for k in settings.serving.api_keys
                                                 if k.get_secret_value() != api_key]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
    os.chmod(path, 0o600)
    return path
