"""MLflow set-up from settings: tracking URI, registry and experiments with a known artifact root."""

from __future__ import annotations

import logging
from pathlib import Path

from tenure.settings import Settings

logger = logging.getLogger(__name__)


def configure_mlflow(settings: Settings) -> mlflow.tracking.MlflowClient:  # noqa: F821
    """Point MLflow at the tracking store of ``settings`` and return a client.

    For a ``sqlite:///`` URI the parent folder is created. Call this at the start of a
    pipeline step, never at import time.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    logger.debug("MLflow tracking at %s", uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(settings: Settings, name: str) -> str:
    """Return the id of experiment ``name``, creating it with an artifact root under settings."""
    import mlflow

    configure_mlflow(settings)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    root = Path(settings.mlflow.artifact_root).resolve() / name
    root.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=root.as_uri())
