"""The online feature updater in a process of its own, and the worker thread that keeps it running.

Why a process: the updater's work (parsing the log, folding events, computing features, Feast
writes, trigger scoring) is Python and pandas; in a request worker it holds that worker's GIL
and reads wait behind it (``/churn-score`` p99 611 ms while 1,000 events/s flowed). In a process
of its own, at a lower CPU priority (:data:`UPDATER_NICE`), the request workers only validate,
group-commit and answer.

- :func:`main` (``python -m tenure.serving.updater_process --parent PID``) is the updater
  process: it reads the settings from the same environment as the service, builds the
  :class:`~tenure.serving.feature_updater.FeatureUpdater` (and, when a trigger sink is set, the
  band-crossing outbox and its senders, with the champions the workers serve), and applies the
  durable log as it grows (it looks every :data:`POLL_S`). It exits with its parent (Linux
  ``PR_SET_PDEATHSIG``, and a check of the parent pid every loop) and on SIGTERM, after a
  checkpoint.
- :class:`UpdaterSupervisor` is a thread in every request worker: the worker holding
  ``updater_supervisor.lock`` (an ``flock``) starts the process and starts it again when it
  exits (back-off up to 10 s); if that worker dies, another worker takes the lock within
  :data:`POLL_S`. The thread also runs the worker's ``on_tick`` callbacks (the lag histogram).

Everything between the two goes through ``feature_state.sqlite`` (see
:mod:`tenure.serving.feature_updater`).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenure.serving.background import BackgroundLoop

logger = logging.getLogger(__name__)

UPDATER_NICE = 5
"""How much lower the updater process's CPU priority is than the request workers' (``os.nice``)."""
POLL_S = 0.02
"""How often the updater process looks whether the log grew, and the supervisor at its process."""
HEARTBEAT_S = 1.0
"""How often the updater process records that it is alive (and checks which models the workers serve)."""


# --- the updater process ---------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM when the thread that started this process ends (no-op elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the call above
        raise SystemExit(0)


def _log_grew(folder: Path, position) -> bool:
    """Whether the event log has bytes after ``position`` (a cheap look: one directory listing and one stat)."""
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith("events-") and n.endswith(".jsonl"))
    except OSError:
        return False
    if not names:
        return False
    if names[-1] != position.file:
        return True
    try:
        return os.stat(folder / names[-1]).st_size > position.offset
    except OSError:
        return False


def _trigger_counter():
    """``tenure_triggers_total{outcome}`` in Prometheus multiprocess mode (BentoML's folder, inherited from the
    worker), so the service's ``/metrics`` shows it; None outside a BentoML service."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    import prometheus_client

    return prometheus_client.Counter("tenure_triggers_total", "Proactive trigger messages by outcome", ["outcome"])


class UpdaterRunner:
    """The updater process's parts, built from the settings (the same ones the workers read)."""

    def __init__(self, settings) -> None:
        from tenure.features.incremental import ItemCatalog, profiles_from_frame
        from tenure.features.tables import read_customers, read_items, table_path
        from tenure.serving.feature_updater import FeatureUpdater

        self.settings = settings
        customers = read_customers(settings, missing_ok=True)
        items = read_items(settings, missing_ok=True)
        profiles = profiles_from_frame(customers) if len(customers) else {}
        catalog = ItemCatalog.from_frame(items) if len(items) else ItemCatalog()
        self.events_dir = table_path(settings, "events")
        self.store = self._open_store()
        self._views: dict[str, Any] = {}  # the feature views write_feature_rows resolved, kept between micro-batches
        self.models = None
        self._loading: threading.Thread | None = None
        self.triggers, self.sender = self._build_triggers()
        ev = settings.events
        self.updater = FeatureUpdater(settings.paths.event_log_dir, profiles, catalog, self._history, self._push,
                                      interval_s=ev.update_interval_s, max_customers_in_memory=ev.max_customers_in_memory,
                                      recent_weights=settings.recommender.event_weights)

    def _open_store(self):
        from tenure.feature_repo.store import open_store

        store = open_store(self.settings)
        online = store._get_provider().online_store
        if type(online).__name__ == "SqliteOnlineStore":  # readers (the workers) never wait for this writer
            try:
                conn = online._get_conn(store.config)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # online values are derived; the log is the truth
            except Exception:  # still correct without WAL, only slower for the readers
                logger.warning("could not switch the SQLite online store to WAL", exc_info=True)
        return store

    def _history(self, customer_ids: list[str]) -> list[dict[str, Any]]:
        """Stored events of these customers (once per customer; one scan)."""
        import pyarrow.dataset as ds

        if not self.events_dir.exists():
            return []
        dataset = ds.dataset(self.events_dir, format="parquet", partitioning="hive")
        return dataset.to_table(filter=ds.field("customer_id").isin(customer_ids)).to_pylist()

    def _push(self, rows: list[tuple[str, dict[str, Any]]], as_of_ns: int) -> None:
        """One online write per micro-batch; band crossings are queued before it (serving/triggers.py)."""
        from tenure.feature_repo.online import write_feature_rows

        if self.triggers is not None:
            self._consider_triggers(rows, as_of_ns)
        write_feature_rows(self.store, rows, as_of_ns, views=self._views)
        if self.sender is not None:
            self.sender.wake()

    # --- triggers ------------------------------------------------------------------------------
    def _build_triggers(self):
        from tenure.serving.triggers import Triggers, make_senders, sink_names

        t = self.settings.triggers
        if not sink_names(t):
            return None, None
        from tenure.feature_repo.online import OnlineFeatureReader
        from tenure.privacy.consent import ConsentStore, ConsentView
        from tenure.pseudonym import customer_ref, log_key
        from tenure.registry.champion import RUNTIME_LOADERS
        from tenure.serving.model_store import ModelStore

        settings = self.settings
        key = log_key(settings)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(settings.serving.registry_timeout_s))))
        self.models = ModelStore(
            settings.mlflow.tracking_uri,
            {"churn": settings.mlflow.churn_model_name, "recommender": settings.mlflow.recommender_model_name},
            dict(RUNTIME_LOADERS), settings.serving.model_cache_dir, timeout_s=settings.serving.registry_timeout_s)
        self.models.refresh()  # then again whenever the workers serve other versions (follow_models)
        self.reader = OnlineFeatureReader(self.store, "churn_v1")
        consent = ConsentView(ConsentStore.from_settings(settings), settings.privacy.default_consent)
        counter = _trigger_counter()

        def count(outcome: str, n: int) -> None:
            if counter is not None:
                counter.labels(outcome=outcome).inc(n)

        folder = settings.paths.event_log_dir
        triggers = Triggers(folder, t.bands, t.min_interval_s, count,
                            customer_ref=lambda cid: customer_ref(key, cid),  # band table: pseudonyms
                            may_contact=lambda cid: consent.allows(cid, "marketing"), sinks=sink_names(t))
        sender = make_senders(triggers, settings, folder, count)
        sender.start()
        return triggers, sender

    def follow_models(self, served: str | None) -> None:
        """Load the champions again (in a thread: applying goes on meanwhile, triggers score with the models
        loaded so far) when the workers serve other versions than this process scores with."""
        if self.models is None or served is None or served == self.versions():
            return
        if self._loading is not None and self._loading.is_alive():
            return

        def load() -> None:
            try:
                self.models.refresh()
                logger.info("updater process follows the served models: %s", self.versions())
            except Exception:
                logger.exception("updater process could not load the served models")

        self._loading = threading.Thread(target=load, name="updater-models", daemon=True)
        self._loading.start()

    def versions(self) -> str | None:
        return None if self.models is None else model_versions(self.models.current)

    def _consider_triggers(self, rows: list[tuple[str, dict[str, Any]]], as_of_ns: int) -> None:
        """Score the customers before and after this update and queue a message per watched band crossing."""
        from datetime import UTC, datetime

        current = self.models.current
        if current.churn is None:
            return
        ids = [cid for cid, _ in rows]
        before = dict(zip(ids, self.reader.read(ids)))
        k = self.settings.triggers.recommendations

        def extras(cid: str) -> dict[str, Any]:
            if not k or current.recommender is None:
                return {}
            try:
                recs = current.recommender.recommend(cid, k=k)
            except Exception:  # a message goes out without recommendations rather than not at all
                logger.exception("recommendations for the trigger message of %s failed", cid)
                return {}
            return {"recommendations": [item["item_id"] for item in recs.items], "recommendation_strategy": recs.strategy}

        as_of = datetime.fromtimestamp(as_of_ns / 1e9, UTC).isoformat(timespec="milliseconds")
        self.triggers.consider(current.churn, current.churn_version, before, dict(rows), as_of, extras, seq=as_of_ns)

    # --- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, parent: int | None) -> None:
        """Apply the log as it grows until ``stop`` is set or the parent is gone; checkpoint on the way out."""
        updater = self.updater
        beat_at = 0.0
        try:
            while not stop.is_set() and (parent is None or os.getppid() == parent):
                if not updater._take_ownership():  # another updater process applies the log
                    stop.wait(updater.interval_s)
                    continue
                if time.monotonic() - beat_at >= HEARTBEAT_S:
                    beat_at = time.monotonic()
                    updater.heartbeat()
                    self.follow_models(updater.control("models"))
                    updater.set_control("updater_models", self.versions() or "")
                if not updater.apply_available(stop):
                    updater.heartbeat()  # records last_error for /readyz
                    stop.wait(1.0)
                    continue
                waited = 0.0
                while (not stop.is_set() and waited < updater.interval_s
                       and not _log_grew(updater.log_dir, updater.position)):
                    time.sleep(POLL_S)
                    waited += POLL_S
        finally:
            self.close()

    def close(self) -> None:
        self.updater.stop()  # checkpoint, release the lock
        if self.sender is not None:
            self.sender.stop()
            self.triggers.close()


def model_versions(current) -> str:
    """The served champions' versions as one string (what the workers write to ``control``)."""
    return f"{current.churn_version}/{current.recommender_version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenure.serving.updater_process",
                                     description="Apply the durable event log to the online features (started by "
                                                 "the service; see serving/updater_process.py).")
    parser.add_argument("--parent", type=int, default=None, help="Exit when this process (the worker) is gone.")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _die_with_parent(args.parent)
    with contextlib.suppress(OSError):
        os.nice(UPDATER_NICE)
    stop = threading.Event()

    def starting_up(*_) -> None:  # nothing applied yet, nothing to checkpoint: leave at once
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, starting_up)
    from tenure.logging_setup import quiet_third_party
    from tenure.settings import load_settings

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s [updater %(process)d] %(message)s")
    quiet_third_party(1 if settings.log_level == "DEBUG" else 0)
    logging.getLogger("tenure").setLevel(settings.log_level)
    runner = UpdaterRunner(settings)  # the stack's imports and the stores: seconds, more on a busy machine
    for sig in (signal.SIGTERM, signal.SIGINT):  # from now on a stop finishes the micro-batch and checkpoints
        signal.signal(sig, lambda *_: stop.set())
    logger.info("updater process %d applies %s", os.getpid(), settings.paths.event_log_dir)
    try:
        runner.run(stop, args.parent)
    finally:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # this pid's live gauges leave the service's /metrics
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
    return 0


# --- the worker side -------------------------------------------------------------------------


def _code_root() -> Path:
    import tenure

    return Path(tenure.__file__).resolve().parent.parent


class UpdaterSupervisor(BackgroundLoop):
    """Starts the updater process from one worker and keeps it running (see the module docstring).

    Parameters
    ----------
    log_dir:
        The event log folder (``updater_supervisor.lock`` lives there).
    on_tick:
        Called every :data:`POLL_S` in this thread, in every worker (e.g. the lag histogram).
    command:
        The process to run (default: ``python -m tenure.serving.updater_process --parent <this pid>``).
    """

    def __init__(self, log_dir: Path, on_tick: list[Callable[[], None]] | None = None,
                 command: list[str] | None = None) -> None:
        super().__init__("updater-supervisor")
        self.log_dir = Path(log_dir)
        self.on_tick = list(on_tick or [])
        self.command = command or [sys.executable, "-m", "tenure.serving.updater_process", "--parent", str(os.getpid())]
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self._lock_fd: int | None = None
        self._next_start = 0.0
        self._backoff_s = 1.0

    @property
    def supervising(self) -> bool:
        """Whether this worker holds the lock (and so runs the updater process)."""
        return self._lock_fd is not None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _take_lock(self) -> bool:
        if self._lock_fd is not None:
            return True
        fd = os.open(self.log_dir / "updater_supervisor.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        logger.info("this worker (%d) runs the online feature updater process", os.getpid())
        return True

    def _start_process(self) -> None:
        env = dict(os.environ)
        root = str(_code_root())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL)
        self.starts += 1
        logger.info("started the online feature updater process (pid %d)", self.process.pid)

    def _check(self) -> None:
        if not self._take_lock():
            return
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                if time.monotonic() >= self._next_start + 60:
                    self._backoff_s = 1.0  # ran a minute: the next failure starts the back-off afresh
                return
            logger.warning("the online feature updater process %d exited with %s; starting it again in %.0f s",
                           self.process.pid, code, self._backoff_s)
            self.process = None
            self._next_start = time.monotonic() + self._backoff_s
            self._backoff_s = min(10.0, self._backoff_s * 2)
        if time.monotonic() >= self._next_start:
            self._start_process()
            self._next_start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._check()
            except Exception:
                logger.exception("could not start the online feature updater process")
                self._next_start = time.monotonic() + self._backoff_s
            for callback in self.on_tick:
                try:
                    callback()
                except Exception:
                    logger.exception("updater supervisor callback failed")
            self._stop.wait(POLL_S * 2.5)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the thread, then the process (SIGTERM: it checkpoints; SIGKILL after ``timeout_s``); release the lock."""
        self._stop_thread()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("the updater process %d did not stop in %.0f s; killing it", process.pid, timeout_s)
                process.kill()
                process.wait(5)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


if __name__ == "__main__":
    raise SystemExit(main())
