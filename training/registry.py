"""Model registry for both models: register challengers, gate promotion, roll back, list versions.

Aliases in the MLflow registry carry the state: ``challenger`` is the newest candidate,
``champion`` is what the service loads. Every decision is recorded as tags on the
versions involved, and the champion history (for rollback) as a tag on the registered
model. The model-specific comparison (same held-out data for both versions) lives with
each model: ``training.churn_pipeline.compare_for_gate`` and
``training.recommender_pipeline.compare_for_gate``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from tenure.settings import Settings
from training.tracking import configure_mlflow

logger = logging.getLogger(__name__)

ModelKind = Literal["churn", "recommender"]
CHAMPION = "champion"
CHALLENGER = "challenger"
_HISTORY_TAG = "champion_history"
_COMPARATORS = {
    "churn": "training.churn_pipeline",
    "recommender": "training.recommender_pipeline",
}


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


Comparator = Callable[[Settings, str, str], GateDecision]


def model_name_for(settings: Settings, kind: str) -> str:
    """Registered model name of ``kind`` (``churn`` or ``recommender``)."""
    if kind == "churn":
        return settings.mlflow.churn_model_name
    if kind == "recommender":
        return settings.mlflow.recommender_model_name
    raise ValueError(f"model kind must be 'churn' or 'recommender', got {kind!r}")


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def get_alias_version(settings: Settings, kind: str, alias: str = CHAMPION) -> str | None:
    """Version number behind ``alias`` of the ``kind`` model, or None when unset."""
    client = configure_mlflow(settings)
    return _alias_version(client, model_name_for(settings, kind), alias)


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
    import mlflow
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"tenure {kind} model; aliases champion/challenger")
    uri = model_uri or f"runs:/{run_id}/{artifact_path}"
    version = mlflow.register_model(uri, name, tags=tags or {})
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    logger.info("registered %s version %s (run %s) as %s", name, version.version, run_id, CHALLENGER)
    return str(version.version)


def _load_comparator(kind: str) -> Comparator:
    module = importlib.import_module(_COMPARATORS[kind])
    return module.compare_for_gate


def _champion_history(client: Any, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags or {}
    try:
        history = json.loads(tags.get(_HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable %s tag on %s", _HISTORY_TAG, name)
        return []
    return [str(v) for v in history]


def _record(client: Any, name: str, version: str | None, decision: GateDecision, role: str) -> None:
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


def _move_champion(client: Any, name: str, new_version: str, old_version: str | None) -> None:
    history = _champion_history(client, name)
    if old_version is not None and (not history or history[-1] != old_version):
        history.append(old_version)
    history.append(new_version)
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history[-50:]))
    client.set_registered_model_alias(name, CHAMPION, new_version)


def promote(
    settings: Settings,
    kind: str,
    force_reason: str | None = None,
    compare: Comparator | None = None,
) -> GateDecision:
    """Run the promotion gate for the ``kind`` model's ``challenger``.

    The challenger becomes champion when there is no champion yet, when the model's
    comparator (same held-out data for both) finds it not worse, or when
    ``force_reason`` is given (recorded). The decision and its numbers are written as
    tags on both versions.

    Raises
    ------
    ValueError
        When the model has no ``challenger`` version to judge.
    """
    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    challenger = _alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no '{CHALLENGER}' version to promote; train one first")
    champion = _alias_version(client, name, CHAMPION)
    base = {"model_name": name, "challenger_version": challenger, "champion_version": champion}

    if champion == challenger:
        return GateDecision(promoted=False, reason=f"version {challenger} is already the champion", **base)
    if force_reason is not None:
        if not force_reason.strip():
            raise ValueError("--force needs a non-empty reason")
        decision = GateDecision(promoted=True, reason=f"forced: {force_reason.strip()}", forced=True, **base)
    elif champion is None:
        decision = GateDecision(promoted=True, reason="no champion yet: the first model is promoted", **base)
    else:
        compared = (compare or _load_comparator(kind))(settings, champion, challenger)
        decision = dataclasses.replace(compared, **base)

    if decision.promoted:
        _move_champion(client, name, challenger, champion)
        client.delete_registered_model_alias(name, CHALLENGER)
        logger.info("%s: version %s promoted to champion (%s)", name, challenger, decision.reason)
    else:
        logger.warning("%s: version %s not promoted: %s", name, challenger, decision.reason)
    _record(client, name, challenger, decision, "challenger")
    _record(client, name, champion, decision, "champion")
    return decision


def rollback(settings: Settings, kind: str, reason: str = "manual rollback") -> GateDecision:
    """Point ``champion`` back at the version that held it before the current one.

    Raises
    ------
    ValueError
        When there is no earlier champion to return to.
    """
    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    current = _alias_version(client, name, CHAMPION)
    history = _champion_history(client, name)
    if current is None:
        raise ValueError(f"{name} has no champion to roll back")
    # The history ends with the current champion; the one before it is the target.
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise ValueError(f"{name} has no earlier champion than version {current}")
    target = history[-1]
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
    decision = GateDecision(
        promoted=True,
        reason=f"rollback: {reason}",
        model_name=name,
        challenger_version=target,
        champion_version=current,
        forced=True,
    )
    _record(client, name, current, decision, "rolled_back_from")
    _record(client, name, target, decision, "rolled_back_to")
    logger.warning("%s: champion rolled back from %s to %s (%s)", name, current, target, reason)
    return decision


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
