"""The one way to bring a registered model onto this machine: alias -> version -> local cache -> runtime.

Every room that needs a model (serving, monitoring, batch scoring, training's gate, the CLI)
goes through :class:`ModelCache` or the functions below. Versions are resolved with an
explicit ``MlflowClient`` for the configured tracking/registry URI, never through a
``models:/`` URI: that is resolved through MLflow's process-wide (per-thread) registry
setting, which a service thread or a test may not share.

Cache layout, under ``settings.serving.model_cache_dir``::

    <kind>/<version>/              the version's MLflow model folder (``MLmodel`` at its top)
    <kind>/<version>/.complete     written last: the folder is whole
    <kind>/.<version>.<pid>.partial a download in progress, renamed into place when done
    <kind>/current.json            the version the service loaded last (for registry outages)

A downloaded version never changes in the registry, so a folder with ``.complete`` is used as
is (a second load makes no download); a folder without it is downloaded again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.registry.models import CHAMPION, alias_version, mlflow_client, model_name_for
from tenure.settings import Settings

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".complete"
CURRENT_FILE = "current.json"
REFERENCE_ARTIFACT = "reference/reference.parquet"


class NoChampionError(ValueError):
    """The model has no version behind the requested alias (nothing trained or promoted yet)."""


@dataclasses.dataclass(frozen=True)
class Champion:
    """One registered model version, as the rooms use it.

    ``model_dir`` is set once the version's files are in the local cache, ``runtime`` once
    they are loaded (``ChurnScorer`` or ``RecommenderRuntime``); ``reference`` (a DataFrame,
    churn only) when asked for. ``alias`` is None when the version was asked for by number.
    """

    kind: str
    name: str
    version: str
    alias: str | None = CHAMPION
    run_id: str | None = None
    experiment_id: str | None = None
    created_at: datetime | None = None
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    model_dir: Path | None = None
    runtime: Any = None
    reference: Any = None

    @property
    def age_days(self) -> float:
        """Days since the version was registered (0 when unknown)."""
        if self.created_at is None:
            return 0.0
        return (datetime.now(UTC) - self.created_at).total_seconds() / 86400


# --- runtimes ----------------------------------------------------------------------------------


def _load_churn(model_dir: Path) -> Any:
    from tenure.registry.churn_scorer import ChurnScorer

    return ChurnScorer.from_model_dir(model_dir)


def _load_recommender(model_dir: Path) -> Any:
    from tenure.registry.recommender_runtime import RecommenderRuntime

    return RecommenderRuntime.from_model_dir(model_dir)


RuntimeLoader = Callable[[Path], Any]
def _load_uplift(model_dir: Path) -> Any:
    from tenure.registry.uplift_runtime import UpliftRuntime

    return UpliftRuntime.from_model_dir(model_dir)


RUNTIME_LOADERS: Mapping[str, RuntimeLoader] = {"churn": _load_churn, "recommender": _load_recommender,
                                                "uplift": _load_uplift}
"""How each kind's downloaded folder becomes the object that serves it (imported on first use)."""


def load_runtime(kind: str, model_dir: Path, version: str | None = None) -> Any:
    """The serving runtime of ``kind`` from a model folder, with ``model_version`` set to ``version``."""
    try:
        loader = RUNTIME_LOADERS[kind]
    except KeyError:
        raise ValueError(f"model kind must be one of {sorted(RUNTIME_LOADERS)}, got {kind!r}") from None
    runtime = loader(Path(model_dir))
    if version is not None:
        runtime.model_version = str(version)
    return runtime


def load_pyfunc(model_dir: Path) -> Any:
    """The MLflow pyfunc of a downloaded model folder (DataFrame in, DataFrame out; not for the hot path)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(model_dir))


# --- the cache ---------------------------------------------------------------------------------


class ModelCache:
    """Resolves aliases with an explicit client and keeps downloaded versions on local disk.

    Parameters
    ----------
    tracking_uri:
        MLflow tracking URI (also the registry).
    model_names:
        ``{kind: registered model name}``, e.g. ``{"churn": "tenure-churn"}``.
    cache_dir:
        Root of the local copies (layout in the module docstring).
    """

    def __init__(self, tracking_uri: str, model_names: Mapping[str, str], cache_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.model_names = dict(model_names)
        self.cache_dir = Path(cache_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelCache:
        """The cache of ``settings``: its tracking URI, both model names, ``serving.model_cache_dir``."""
        names = {kind: model_name_for(settings, kind) for kind in RUNTIME_LOADERS}
        return cls(settings.mlflow.tracking_uri, names, settings.serving.model_cache_dir)

    def client(self) -> Any:
        """A fresh explicit ``MlflowClient`` for this registry."""
        return mlflow_client(self.tracking_uri)

    def name(self, kind: str) -> str:
        """Registered model name of ``kind``."""
        try:
            return self.model_names[kind]
        except KeyError:
            raise ValueError(f"model kind must be one of {sorted(self.model_names)}, got {kind!r}") from None

    # --- registry reads ------------------------------------------------------------------------
    def alias_version(self, kind: str, alias: str = CHAMPION, client: Any = None) -> str | None:
        """Version behind ``alias`` of the ``kind`` model; None when unset. Registry errors are raised."""
        return alias_version(client or self.client(), self.name(kind), alias)

    def describe(self, kind: str, alias: str | None = CHAMPION, version: str | None = None) -> Champion:
        """The version behind ``alias`` (or ``version``) with its run's metrics and params; no files.

        Raises
        ------
        NoChampionError
            When ``alias`` points at nothing; the message names the model and the command to run.
        """
        client = self.client()
        name = self.name(kind)
        if version is None:
            if alias is None:
                raise ValueError("give an alias or a version to describe")
            version = alias_version(client, name, alias)
            if version is None:
                raise NoChampionError(_missing_alias_message(name, kind, alias))
        else:
            alias = None
        mv = client.get_model_version(name, str(version))
        experiment_id, metrics, params = None, {}, {}
        if mv.run_id:
            run = client.get_run(mv.run_id)
            experiment_id = run.info.experiment_id
            metrics, params = dict(run.data.metrics), dict(run.data.params)
        return Champion(
            kind=kind, name=name, version=str(mv.version), alias=alias, run_id=mv.run_id,
            experiment_id=experiment_id,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
            metrics=metrics, params=params,
        )

    # --- files ---------------------------------------------------------------------------------
    def model_dir(self, kind: str, version: str) -> Path:
        """Where version ``version`` of ``kind`` lives in the cache (whether or not it is there yet)."""
        return self.cache_dir / kind / str(version)

    def is_cached(self, kind: str, version: str) -> bool:
        """True when the version's folder is complete on disk."""
        return (self.model_dir(kind, version) / COMPLETE_MARKER).is_file()

    def download(self, kind: str, version: str) -> Path:
        """The local folder of version ``version``, downloaded unless already complete in the cache.

        The files go to ``<kind>/.<version>.<pid>.partial`` first and are renamed into place
        after ``.complete`` is written, so a killed download never looks finished; it is
        redone on the next call.
        """
        import mlflow

        version = str(version)
        target = self.model_dir(kind, version)
        if self.is_cached(kind, version):
            return target
        name = self.name(kind)
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_partials(target.parent, version)
        tmp = target.parent / f".{version}.{os.getpid()}-{threading.get_ident()}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            source = self.client().get_model_version_download_uri(name, version)
            # MLflow puts a folder's files under dst_path/<folder name>; that folder (with MLmodel
            # at its top) is what goes into place
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp),
                                                             tracking_uri=self.tracking_uri))
            (local / COMPLETE_MARKER).write_text(version)
            if self.is_cached(kind, version):  # another process finished first: keep theirs
                return target
            shutil.rmtree(target, ignore_errors=True)  # an incomplete folder (a killed download)
            local.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("downloaded %s version %s to %s", name, version, target)
        return target

    # --- what the service loaded last ------------------------------------------------------------
    def mark_current(self, kind: str, version: str) -> None:
        """Record ``version`` as the one the service loaded last (read back by :meth:`current_version`)."""
        folder = self.cache_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{CURRENT_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"version": str(version)}))
        os.replace(tmp, folder / CURRENT_FILE)

    def current_version(self, kind: str) -> str | None:
        """The version recorded by :meth:`mark_current`, or None."""
        path = self.cache_dir / kind / CURRENT_FILE
        if not path.is_file():
            return None
        try:
            return str(json.loads(path.read_text())["version"])
        except (json.JSONDecodeError, KeyError, TypeError):
            logger.warning("ignoring unreadable %s", path)
            return None

    # --- the whole load ---------------------------------------------------------------------------
    def load(self, kind: str, alias: str | None = CHAMPION, version: str | None = None,
             runtime: bool = True) -> Champion:
        """The version behind ``alias`` (or ``version``), its files in the cache, its runtime loaded.

        ``runtime=False`` stops after the download (for callers that want the pyfunc or just
        the files).

        Raises
        ------
        NoChampionError
            When ``alias`` points at nothing.
        """
        champion = self.describe(kind, alias=alias, version=version)
        folder = self.download(kind, champion.version)
        loaded = load_runtime(kind, folder, champion.version) if runtime else None
        logger.info("loaded %s version %s from %s", champion.name, champion.version, folder)
        return dataclasses.replace(champion, model_dir=folder, runtime=loaded)

    def read_reference(self, champion: Champion) -> Any:
        """The run's ``reference/reference.parquet`` as a DataFrame, or None when the run has none."""
        import tempfile

        import mlflow
        import pandas as pd
        from mlflow.exceptions import MlflowException

        if not champion.run_id:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path=REFERENCE_ARTIFACT,
                                                            dst_path=tmp, tracking_uri=self.tracking_uri)
                return pd.read_parquet(local)
            except (MlflowException, OSError) as exc:
                logger.warning("%s version %s has no reference sample: %s", champion.name, champion.version, exc)
                return None


def _missing_alias_message(name: str, kind: str, alias: str) -> str:
    if alias == CHAMPION:
        fix = f"`tenure train {kind} --promote` (or `tenure models promote {kind}` after `tenure train {kind}`)"
    else:
        fix = f"`tenure train {kind}` (registers a new version as challenger)"
    return f"{name} has no version with alias '{alias}'; run {fix} first"


def _sweep_partials(folder: Path, version: str) -> None:
    """Remove partial downloads of ``version`` whose process is gone (a killed download)."""
    for partial in folder.glob(f".{version}.*.partial"):
        owner = partial.name[len(version) + 2:].split("-", 1)[0]
        if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
            shutil.rmtree(partial, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- entry points from settings -------------------------------------------------------------------


def load_champion(settings: Settings, kind: str, alias: str = CHAMPION, runtime: bool = True) -> Champion:
    """Download (or reuse from the cache) and load the version of ``kind`` behind ``alias``.

    Raises
    ------
    NoChampionError
        When the model has no such alias yet; the message names the model and the command to run.
    """
    return ModelCache.from_settings(settings).load(kind, alias=alias, runtime=runtime)


def load_version(settings: Settings, kind: str, version: str, runtime: bool = True) -> Champion:
    """Download (or reuse from the cache) and load version ``version`` of ``kind`` (training's gate)."""
    return ModelCache.from_settings(settings).load(kind, alias=None, version=str(version), runtime=runtime)


def find_champion(settings: Settings, kind: str, alias: str = CHAMPION) -> Champion | None:
    """The version behind ``alias`` with its run's metrics and params, no files; None when unset."""
    try:
        return ModelCache.from_settings(settings).describe(kind, alias=alias)
    except NoChampionError:
        return None
