"""The champions the service holds: loaded from the MLflow registry, cached on disk, hot-swapped.

A reload builds the new model objects completely, then replaces one reference, so a request
in flight keeps the objects it started with and never sees half a model. When the registry
cannot be reached the last good models stay in service (or, at start, the local cached copy).

Registry faults never stall or mislead the service:

- a ``sqlite:///`` registry whose database file does not exist counts as unreachable (the file
  is not opened, so MLflow cannot create an empty registry in its place);
- a registry on a server (PostgreSQL, MySQL, HTTP) is probed with one TCP connect of at most
  ``timeout_s`` seconds before MLflow is asked, so a dead host costs seconds, not MLflow's
  minutes of retries;
- a registry that answers but has no champion for a kind leaves the cached version in service.

``last_error`` keeps the technical reason (for the log); ``problem`` says it in plain words for
``/readyz`` and ``/admin/reload`` (no SQL, no exception text, no host names).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenure.registry.champion import ModelCache

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedModels:
    """One consistent set of served models (replaced as a whole)."""

    churn: Any | None = None
    churn_version: str | None = None
    recommender: Any | None = None
    recommender_version: str | None = None
    uplift: Any | None = None  # optional: the uplift champion (experiments), when one is promoted
    uplift_version: str | None = None


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
    timeout_s:
        The longest a registry check may wait to connect (``settings.serving.registry_timeout_s``).
    """

    def __init__(self, tracking_uri: str, model_names: dict[str, str], loaders: dict[str, Loader], cache_dir: Path,
                 timeout_s: float = 3.0) -> None:
        self.tracking_uri = tracking_uri
        self.model_names = dict(model_names)
        self.loaders = dict(loaders)
        self.cache = ModelCache(tracking_uri, self.model_names, Path(cache_dir))
        self.current = LoadedModels()
        self.registry_reachable = False
        self.from_cache = False
        self.last_error: str | None = None
        self.problem: str | None = None
        self._cached_kinds: set[str] = set()
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def cache_dir(self) -> Path:
        """Root of the local model copies."""
        return self.cache.cache_dir

    # --- registry ------------------------------------------------------------------------------
    def _champion_versions(self) -> dict[str, str | None]:
        check_registry_reachable(self.tracking_uri, self.timeout_s)
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
                self.problem = (str(exc) if isinstance(exc, RegistryUnavailable)
                                else "the model registry did not answer (details in the service log)")
                logger.warning("%s; keeping versions %s/%s", self.last_error,
                               self.current.churn_version, self.current.recommender_version)
                if self.current.churn is None and self.current.recommender is None:
                    return self._load_cached()
                return False
            self.registry_reachable = True
            self.last_error = self.problem = None
            update: dict[str, Any] = {}
            for kind, version in wanted.items():
                if version is None:
                    if getattr(self.current, kind) is None:
                        cached = self._cached_update(kind, "the registry has no champion")
                        update.update(cached)
                        self._cached_kinds |= {kind} if cached else set()
                    continue
                if version == getattr(self.current, f"{kind}_version"):
                    continue
                try:
                    model = self._load(kind, self._download(kind, version), version)
                except Exception as exc:
                    self.last_error = f"could not load {kind} version {version}: {exc}"
                    self.problem = f"could not load {kind} version {version} (details in the service log)"
                    logger.exception("could not load %s version %s; keeping the current one", kind, version)
                    continue
                self.cache.mark_current(kind, version)
                self._cached_kinds.discard(kind)
                update[kind] = model
                update[f"{kind}_version"] = version
                logger.info("loaded %s champion version %s", kind, version)
            self.from_cache = bool(self._cached_kinds)
            if update:
                self.current = dataclasses.replace(self.current, **update)
                settle_heap()
            return bool(update)

    def _cached_update(self, kind: str, why: str) -> dict[str, Any]:
        """``{kind: runtime, kind_version: version}`` from the local cache, or {} when there is none."""
        version = self.cache.current_version(kind)
        if version is None:
            return {}
        try:
            model = self._load(kind, self.cache.model_dir(kind, version), version)
        except Exception:
            logger.exception("cached %s version %s is unreadable", kind, version)
            return {}
        logger.warning("%s: serving cached %s version %s", why, kind, version)
        return {kind: model, f"{kind}_version": version}

    def _load_cached(self) -> bool:
        update: dict[str, Any] = {}
        for kind in self.model_names:
            cached = self._cached_update(kind, "registry down")
            update.update(cached)
            self._cached_kinds |= {kind} if cached else set()
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


class RegistryUnavailable(RuntimeError):
    """The registry cannot be asked (no database file, or its server does not accept connections)."""


def check_registry_reachable(tracking_uri: str, timeout_s: float) -> None:
    """Fail fast, before MLflow opens anything, when the registry cannot answer.

    ``sqlite:///PATH``: the file must exist (MLflow would otherwise create an empty registry).
    A server URI (``postgresql://``, ``mysql://``, ``http(s)://``, ...): one TCP connect to its host
    and port within ``timeout_s``; for a database, one real connection too (with the driver's
    connect timeout), since MLflow retries a failing database for minutes (15 attempts with
    exponential back-off, not configurable) and a port may accept TCP without speaking its
    protocol. Local folder stores (``file:``, plain paths) are not checked.

    Raises
    ------
    RegistryUnavailable
        With a plain-words message (no host names or driver text).
    """
    from urllib.parse import urlsplit

    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            raise RegistryUnavailable("the model registry database does not exist yet (train and promote a model, "
                                      "or check mlflow.tracking_uri)")
        return
    parts = urlsplit(tracking_uri)
    scheme = parts.scheme.split("+", 1)[0].lower()
    default_ports = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433, "http": 80, "https": 443}
    if scheme not in default_ports or not parts.hostname:
        return
    try:
        port = parts.port or default_ports[scheme]
    except ValueError:
        raise RegistryUnavailable("the model registry URI has an invalid port (check mlflow.tracking_uri)") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        logger.debug("registry probe of %s:%s failed: %s", parts.hostname, port, exc)
        raise RegistryUnavailable(f"the model registry server does not accept connections "
                                  f"(tried for {timeout_s:g} s; check mlflow.tracking_uri)") from None
    if scheme in ("http", "https"):
        return
    _probe_database(tracking_uri, scheme, timeout_s)


def _probe_database(uri: str, scheme: str, timeout_s: float) -> None:
    """One SQLAlchemy connection to the registry database, without a pool or retries."""
    import math

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    connect_args = {"connect_timeout": max(1, math.ceil(timeout_s))} if scheme in ("postgresql", "postgres", "mysql") else {}
    try:
        engine = sqlalchemy.create_engine(uri, poolclass=NullPool, connect_args=connect_args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001  any driver error means the registry cannot be read now
        logger.debug("registry database probe failed: %s: %s", type(exc).__name__, exc)
        raise RegistryUnavailable("the model registry database does not accept connections "
                                  "(check mlflow.tracking_uri and the database server)") from None
