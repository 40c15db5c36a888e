"""The champions the service holds: loaded from the MLflow registry, cached on disk, hot-swapped.

A reload builds the new model objects completely, then replaces one reference, so a request
in flight keeps the objects it started with and never sees half a model. When the registry
cannot be reached the last good models stay in service (or, at start, the local cached copy).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry.champion import ModelCache

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedModels:
    """One consistent set of served models (replaced as a whole)."""

    churn: Any | None = None
    churn_version: str | None = None
    recommender: Any | None = None
    recommender_version: str | None = None


Loader = Callable[[Path], Any]


def settle_heap() -> None:
    """Collect garbage once, then leave every object alive now out of later collections.

    A serving process holds ~400k long-lived objects (libraries, models, the feature store);
    Python's full collections walk all of them (~0.65 s measured), which stalled requests at
    high rates. ``gc.freeze`` keeps them out; after a model swap the previous models' garbage
    is collected first (one pause per promotion).
    """
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelStore:
    """Holds the current champions; :meth:`refresh` swaps in newly promoted ones.

    Resolving aliases and downloading versions is :class:`registry.champion.ModelCache`'s job
    (the one implementation every room uses); this class adds what only a service needs:
    the swap, keeping the last good models, and starting from the cache when the registry is down.

    Parameters
    ----------
    tracking_uri:
        MLflow tracking/registry URI.
    model_names:
        ``{"churn": "tenure-churn", "recommender": "tenure-recommender"}``.
    loaders:
        ``{kind: folder -> runtime}``; the service passes ``registry.champion.RUNTIME_LOADERS``.
    cache_dir:
        The model cache (``settings.serving.model_cache_dir``).
    """

    def __init__(self, tracking_uri: str, model_names: dict[str, str], loaders: dict[str, Loader], cache_dir: Path) -> None:
        self.tracking_uri = tracking_uri
        self.model_names = dict(model_names)
        self.loaders = dict(loaders)
        self.cache = ModelCache(tracking_uri, self.model_names, Path(cache_dir))
        self.current = LoadedModels()
        self.registry_reachable = False
        self.from_cache = False
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def cache_dir(self) -> Path:
        """Root of the local model copies."""
        return self.cache.cache_dir

    # --- registry ------------------------------------------------------------------------------
    def _champion_versions(self) -> dict[str, str | None]:
        client = self.cache.client()
        return {kind: self.cache.alias_version(kind, client=client) for kind in self.model_names}

    def _download(self, kind: str, version: str) -> Path:
        return self.cache.download(kind, version)

    def _load(self, kind: str, folder: Path, version: str) -> Any:
        model = self.loaders[kind](folder)
        model.model_version = version
        return model

    # --- public --------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Check the aliases; load and swap in any new champion. Returns True when something changed."""
        with self._lock:
            try:
                wanted = self._champion_versions()
            except Exception as exc:  # noqa: BLE001  registry down (any client error): keep serving
                self.registry_reachable = False
                self.last_error = f"registry unreachable: {type(exc).__name__}: {exc}"
                logger.warning("%s; keeping versions %s/%s", self.last_error,
                               self.current.churn_version, self.current.recommender_version)
                if self.current.churn is None and self.current.recommender is None:
                    return self._load_cached()
                return False
            self.registry_reachable = True
            self.from_cache = False
            self.last_error = None
            update: dict[str, Any] = {}
            for kind, version in wanted.items():
                if version is None or version == getattr(self.current, f"{kind}_version"):
                    continue
                try:
                    model = self._load(kind, self._download(kind, version), version)
                except Exception as exc:
                    self.last_error = f"could not load {kind} version {version}: {exc}"
                    logger.exception("could not load %s version %s; keeping the current one", kind, version)
                    continue
                self.cache.mark_current(kind, version)
                update[kind] = model
                update[f"{kind}_version"] = version
                logger.info("loaded %s champion version %s", kind, version)
            if update:
                self.current = dataclasses.replace(self.current, **update)
                self.from_cache = False
                settle_heap()
            return bool(update)

    def _load_cached(self) -> bool:
        update: dict[str, Any] = {}
        for kind in self.model_names:
            version = self.cache.current_version(kind)
            if version is None:
                continue
            try:
                update[kind] = self._load(kind, self.cache.model_dir(kind, version), version)
                update[f"{kind}_version"] = version
                logger.warning("registry down: serving cached %s version %s", kind, version)
            except Exception:
                logger.exception("cached %s version %s is unreadable", kind, version)
        if update:
            self.current = dataclasses.replace(self.current, **update)
            self.from_cache = True
            settle_heap()
        return bool(update)

    def start_polling(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` seconds in a daemon thread until :meth:`stop`."""
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                except Exception:
                    logger.exception("model refresh failed")

        self._thread = threading.Thread(target=loop, name="tenure-model-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the polling thread."""
        self._stop.set()
