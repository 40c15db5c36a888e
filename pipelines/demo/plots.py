"""The PNG plots logged with the champions' MLflow runs (ROC, calibration, lift, importance)."""

from __future__ import annotations

from pathlib import Path

from tenure.pipelines.demo.nightly import MODEL_KINDS
from tenure.settings import Settings


def champion_plots(settings: Settings) -> dict[str, list[str]]:
    """Local paths of the PNG files under each champion's run artifacts (file stores only)."""
    from urllib.parse import unquote, urlparse

    from tenure.registry.models import configure_mlflow, get_alias_version, model_name_for

    client = configure_mlflow(settings)
    found: dict[str, list[str]] = {}
    for kind in MODEL_KINDS:
        version = get_alias_version(settings, kind, "champion")
        if version is None:
            continue
        run_id = client.get_model_version(model_name_for(settings, kind), version).run_id
        uri = client.get_run(run_id).info.artifact_uri
        if not uri.startswith("file:"):
            continue
        root = Path(unquote(urlparse(uri).path))
        found[kind] = sorted(str(p) for p in root.rglob("*.png"))
    return found
