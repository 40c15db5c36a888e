"""MLflow set-up from settings: tracking URI, registry and experiments with a known artifact root."""

from __future__ import annotations

import logging
from pathlib import Path

from tenure.registry.models import configure_mlflow
from tenure.settings import Settings

logger = logging.getLogger(__name__)


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
