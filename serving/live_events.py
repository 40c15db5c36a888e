"""The service's live event path, put together: validator, durable log, online feature updater, freshness.

:class:`LiveEvents` is what ``TenureService`` holds as ``self.intake``; ``POST /events`` uses its
validator and log (the fast, durable part); the feature updater, the triggers and their senders
run in the updater process (:mod:`tenure.serving.updater_process`), which one worker starts and
keeps running; the workers read its progress and outputs from ``feature_state.sqlite``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from tenure.features.incremental import ItemCatalog, Profile, profiles_from_frame
from tenure.serving.event_intake import DurableEventLog, EventValidator, LogPosition
from tenure.serving.feature_updater import UpdaterView, request_forget
from tenure.serving.updater_process import UpdaterSupervisor

logger = logging.getLogger(__name__)


class Freshness:
    """Acknowledgement -> online update lag, from this worker's commit times and the updater's progress.

    The updater process records the end position and wall time of every micro-batch
    (``applied_log``); :meth:`poll` (every few tens of milliseconds, in the supervisor thread)
    matches them with the group commits of this worker and observes each commit's lag.

    Parameters
    ----------
    log:
        The event log (its ``commits``: end position and wall time of each group commit).
    view:
        The updater's progress (:class:`~tenure.serving.feature_updater.UpdaterView`).
    observe:
        Called with each commit's lag in seconds once the updater has applied it (a histogram).
    """

    def __init__(self, log: DurableEventLog, view: UpdaterView,
                 observe: Callable[[float], None] | None = None) -> None:
        self._commits = log.commits
        self._view = view
        self._observe = observe
        self.last_lag_s: float | None = None

    def poll(self) -> None:
        """Observe the lag of every commit of this worker that the batches applied since the last poll covered."""
        for position, applied_at in self._view.new_batches():
            while self._commits and self._commits[0][0] <= position:
                try:
                    _, committed_at = self._commits.popleft()
                except IndexError:  # emptied meanwhile
                    break
                self.last_lag_s = max(0.0, applied_at - committed_at)
                if self._observe is not None:
                    self._observe(self.last_lag_s)

    def backlog_s(self, now: float | None = None) -> float:
        """How long the oldest acknowledged event (of this worker) not yet online has waited (0 when none waits)."""
        self.poll()
        try:
            return max(0.0, (now or time.time()) - self._commits[0][1])
        except IndexError:
            return 0.0


def shared_id_index(settings):
    """The Redis index of accepted event ids (``events.idempotency``; auto: the production profile), or None."""
    mode = settings.events.idempotency
    if mode == "local" or (mode == "auto" and settings.feast.profile != "production"):
        return None
    from tenure.serving.event_idempotency import RedisIdempotency
    from tenure.serving.redis_link import redis_client

    return RedisIdempotency(redis_client(settings.feast.redis_connection_string),
                            prefix=f"tenure:{settings.feast.project}:event:",
                            ttl_s=settings.events.idempotency_ttl_days * 86_400)


class LiveEvents:
    """Validator + durable log in this worker; the feature updater in its own process; freshness.

    Parameters
    ----------
    log, validator:
        The parts of the request path (see :mod:`tenure.serving.event_intake`).
    view:
        The updater process's progress and outputs (``feature_state.sqlite``).
    supervisor:
        The thread that starts and restarts the updater process (:mod:`tenure.serving.updater_process`);
        None: nobody starts one here (tests that run the updater themselves).
    observe_lag:
        Histogram observer for the ack -> online lag (seconds).
    """

    def __init__(self, log: DurableEventLog, validator: EventValidator, view: UpdaterView,
                 supervisor: UpdaterSupervisor | None = None,
                 observe_lag: Callable[[float], None] | None = None) -> None:
        self.log = log
        self.validator = validator
        self.view = view
        self.supervisor = supervisor
        self.freshness = Freshness(log, view, observe_lag)
        if supervisor is not None:
            supervisor.on_tick.append(self.freshness.poll)
        self._models: str | None = None
        self._started_at: float | None = None

    @classmethod
    def build(cls, settings, customers, items, observe_lag: Callable[[float], None] | None = None) -> LiveEvents:
        """From the settings and the customer and item tables (pandas)."""
        ev = settings.events
        profiles: Mapping[str, Profile] = profiles_from_frame(customers) if len(customers) else {}
        catalog = ItemCatalog.from_frame(items) if len(items) else ItemCatalog()
        validator = EventValidator(profiles.keys(), catalog.price.keys(), earliest=ev.earliest,
                                   max_future_hours=ev.max_future_hours)
        log = DurableEventLog(settings.paths.event_log_dir, commit_window_s=ev.commit_window_s,
                              remote=shared_id_index(settings))
        view = UpdaterView(settings.paths.event_log_dir)
        return cls(log, validator, view, UpdaterSupervisor(settings.paths.event_log_dir), observe_lag)

    def start(self) -> None:
        """Start the supervisor (the worker holding its lock starts the updater process; it first catches up)."""
        self._started_at = time.time()
        if self.supervisor is not None:
            self.supervisor.start()

    def recent_items(self, customer_id: str) -> list[tuple[str, float]]:
        """The customer's live item events as ``(item_id, weight)``, for a fresh user vector."""
        return self.view.recent_items(customer_id)

    def publish_models(self, versions: str) -> None:
        """Tell the updater process which champions this worker serves (it scores triggers with the same ones)."""
        if versions != self._models:
            self.view.set_control("models", versions)
            self._models = versions

    def forget(self, customer_ids) -> int:
        """Erasure: the validator refuses their events from now on; the updater process drops their states."""
        ids = set(map(str, customer_ids))
        n = len(self.validator.known_customers & ids)
        self.validator.known_customers = self.validator.known_customers - ids
        request_forget(self.log.folder, ids)
        return n

    async def wait_applied(self, position: LogPosition, timeout_s: float) -> bool:
        """Wait (without blocking the event loop) until the updater has applied the log up to ``position``."""
        deadline = time.monotonic() + timeout_s
        while self.view.applied_position() < position:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def updater_state(self) -> dict[str, Any]:
        """For ``/readyz``: the updater process's pid, seconds since its heartbeat, the models its triggers use."""
        status = self.view.status()
        beat = status.get("beat")
        return {"pid": status.get("pid"), "heartbeat_age_s": None if beat is None else round(time.time() - beat, 1),
                "models": status.get("models") or None}

    def problem(self, max_lag_s: float) -> str | None:
        """A plain sentence when online features lag behind the log by more than ``max_lag_s``, else None."""
        if self.supervisor is not None and self._started_at is not None:
            beat = self.view.status().get("beat")
            if beat is None or beat < self._started_at:  # not yet since this start: acknowledged events would wait
                return ("the online feature updater process is starting (events are logged and acknowledged; "
                        "their online features follow once it runs)")
        lag = self.freshness.backlog_s()
        if lag > max_lag_s:
            status = self.view.status()
            reason = ""
            if status.get("last_error"):
                reason = " (the updater reports errors; details in the service log)"
            elif self.supervisor is not None and self.supervisor.supervising and not self.supervisor.running():
                reason = " (the updater process is not running; it is being started again)"
            return f"online features are {lag:.1f} s behind acknowledged events (events.max_lag_s = {max_lag_s}){reason}"
        return None

    def close(self) -> None:
        """Finish queued writes, then stop the updater process (it checkpoints) and the supervisor."""
        self.log.close()
        if self.supervisor is not None:
            self.supervisor.stop()
        self.view.close()
