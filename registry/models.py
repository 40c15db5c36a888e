"""Models at rest in the MLflow registry: names, aliases, versions, and the record of gate decisions.

Aliases carry the state: ``challenger`` is the newest candidate, ``champion`` is what the
service loads. Every decision is recorded as tags on the versions involved, and the champion
history (for rollback) as a tag on the registered model. Deciding a promotion is training's
job (``training.gate``); this module only reads and writes the registry.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tenure.settings import Settings

logger = logging.getLogger(__name__)

ModelKind = Literal["churn", "recommender"]
CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"


@dataclasses.dataclass(frozen=True)
class GateDecision:
    """The outcome of a promotion gate or rollback.

    ``promoted`` says whether the ``champion`` alias now points at ``challenger_version``.
    Comparators fill ``promoted``, ``reason`` and the two metric dicts; the registry
    fills the names and versions.
    """

    promoted: bool
    reason: str
    challenger_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    champion_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    model_name: str = ""
    challenger_version: str | None = None
    champion_version: str | None = None
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for tags, alerts and CLI output)."""
        return dataclasses.asdict(self)


def configure_mlflow(settings: Settings) -> mlflow.tracking.MlflowClient:  # noqa: F821
    """Point MLflow at the tracking store of ``settings`` and return a client.

    For a ``sqlite:///`` URI the parent folder is created. Call this at the start of a
    pipeline step, never at import time.
    """
    import mlflow

    uri = settings.mlflow.tracking_uri
    client = mlflow_client(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    logger.debug("MLflow tracking at %s", uri)
    return client


def mlflow_client(tracking_uri: str) -> mlflow.tracking.MlflowClient:  # noqa: F821
    """An explicit client for ``tracking_uri`` (also the registry); touches no process-wide MLflow setting.

    For a ``sqlite:///`` URI the parent folder is created, so a fresh workspace reads as an
    empty registry rather than an unreachable one.
    """
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def model_name_for(settings: Settings, kind: str) -> str:
    """Registered model name of ``kind`` (``churn``, ``recommender`` or ``uplift``)."""
    if kind == "churn":
        return settings.mlflow.churn_model_name
    if kind == "recommender":
        return settings.mlflow.recommender_model_name
    if kind == "uplift":
        return settings.mlflow.uplift_model_name
    raise ValueError(f"model kind must be 'churn', 'recommender' or 'uplift', got {kind!r}")


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """Version number behind ``alias`` of model ``name``; None when the model or the alias does not exist.

    Any other registry error (store unreachable, permissions) is raised: "no champion" and
    "cannot tell" must not look the same to a gate or a service.
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def is_not_found(exc: Exception) -> bool:
    """True when an MLflow error says the registered model or alias does not exist."""
    code = str(getattr(exc, "error_code", ""))
    return "RESOURCE_DOES_NOT_EXIST" in code or "not found" in str(exc).lower()


def get_alias_version(settings: Settings, kind: str, alias: str = CHAMPION) -> str | None:
    """Version number behind ``alias`` of the ``kind`` model, or None when unset."""
    client = configure_mlflow(settings)
    return alias_version(client, model_name_for(settings, kind), alias)


def register_version(
    settings: Settings,
    kind: str,
    run_id: str,
    artifact_path: str = "model",
    tags: dict[str, str] | None = None,
    model_uri: str | None = None,
) -> str:
    """Register a logged model as a new version and alias it ``challenger``.

    ``model_uri`` (``ModelInfo.model_uri`` of ``log_model``, MLflow 3's ``models:/m-...``) wins;
    otherwise ``runs:/<run_id>/<artifact_path>`` is registered.

    Returns
    -------
    str
        The new version number.
    """
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"tenure {kind} model; aliases champion/challenger")
    # The explicit client, not ``mlflow.register_model``: that one prints "Registered model ...
    # already exists" and "Created version ..." to stderr on every call, past any log filter.
    if model_uri and model_uri.startswith(_LOGGED_MODEL_PREFIX):
        source, model_id = model_uri, model_uri.removeprefix("models:/")
    else:
        source, model_id = _run_model_source(client, run_id, artifact_path)
    version = client.create_model_version(name, source, run_id=run_id, tags=tags or {}, model_id=model_id)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    logger.info("registered %s version %s (run %s) as %s", name, version.version, run_id, CHALLENGER)
    return str(version.version)


_LOGGED_MODEL_PREFIX = "models:/m-"


def _run_model_source(client: Any, run_id: str, artifact_path: str) -> tuple[str, str | None]:
    """Source URI (and logged-model id) of the model at ``artifact_path`` of run ``run_id``.

    MLflow 3 keeps ``log_model`` output as a logged model (``models:/m-...``) linked to the run;
    older runs keep an ``MLmodel`` under the run's artifacts.
    """
    from mlflow.exceptions import MlflowException

    run = client.get_run(run_id)
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'")
    for model in logged:
        if model.name == artifact_path:
            return f"models:/{model.model_id}", model.model_id
    artifacts = {a.path for a in client.list_artifacts(run_id, artifact_path)}
    if f"{artifact_path}/MLmodel" in artifacts:
        return f"{run.info.artifact_uri}/{artifact_path}", None
    raise MlflowException(f"run {run_id} has no model at artifact path {artifact_path!r}")


def champion_history(client: Any, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags or {}
    try:
        history = json.loads(tags.get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable %s tag on %s", HISTORY_TAG, name)
        return []
    return [str(v) for v in history]


def record_decision(client: Any, name: str, version: str | None, decision: GateDecision, role: str) -> None:
    if version is None:
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    tags = {
        f"gate.{role}.decided_at": now,
        f"gate.{role}.promoted": str(decision.promoted).lower(),
        f"gate.{role}.reason": decision.reason[:4000],
        f"gate.{role}.challenger_version": str(decision.challenger_version),
        f"gate.{role}.champion_version": str(decision.champion_version),
        f"gate.{role}.challenger_metrics": json.dumps(decision.challenger_metrics, sort_keys=True),
        f"gate.{role}.champion_metrics": json.dumps(decision.champion_metrics, sort_keys=True),
        f"gate.{role}.forced": str(decision.forced).lower(),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def move_champion(client: Any, name: str, new_version: str, old_version: str | None) -> None:
    history = champion_history(client, name)
    if old_version is not None and (not history or history[-1] != old_version):
        history.append(old_version)
    history.append(new_version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))
    client.set_registered_model_alias(name, CHAMPION, new_version)


def list_versions(settings: Settings, kind: str, metric_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Versions of the ``kind`` model, newest first, with aliases, run id and key metrics."""
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        return []
    aliases_by_version: dict[str, list[str]] = {}
    for alias, version in (registered.aliases or {}).items():
        aliases_by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name='{name}'"):
        metrics: dict[str, float] = {}
        if mv.run_id and metric_keys:
            try:
                run_metrics = client.get_run(mv.run_id).data.metrics
                metrics = {k: run_metrics[k] for k in metric_keys if k in run_metrics}
            except MlflowException:
                pass
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases_by_version.get(str(mv.version), [])),
                "run_id": mv.run_id,
                "created_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                "metrics": metrics,
                "tags": dict(mv.tags or {}),
            }
        )
    rows.sort(key=lambda r: int(r["version"]), reverse=True)
    return rows
