"""The service's live event path, put together: validator, durable log, online feature updater, freshness.

:class:`LiveEvents` is what ``TenureService`` holds as ``self.intake``; ``POST /events`` uses its
validator and log (the fast, durable part), everything else runs in the updater's thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from tenure.features.incremental import ItemCatalog, Profile, profiles_from_frame
from tenure.serving.event_intake import DurableEventLog, EventValidator, LogPosition
from tenure.serving.feature_updater import AppliedBatch, FeatureUpdater

logger = logging.getLogger(__name__)


class Freshness:
    """Acknowledgement -> online update lag, from the log's commit times and the updater's progress.

    Parameters
    ----------
    log:
        The event log (its ``commits``: end position and wall time of each group commit).
    observe:
        Called with each commit's lag in seconds once the updater has applied it (a histogram).
    """

    def __init__(self, log: DurableEventLog, updater: FeatureUpdater,
                 observe: Callable[[float], None] | None = None) -> None:
        self._commits = log.commits
        self._updater = updater
        self._observe = observe
        self.last_lag_s: float | None = None

    def on_applied(self, batch: AppliedBatch) -> None:
        """Observe the lag of every commit the batch covered."""
        while self._commits and self._commits[0][0] <= batch.position:
            try:
                _, committed_at = self._commits.popleft()
            except IndexError:  # emptied meanwhile
                break
            self.last_lag_s = max(0.0, batch.applied_at - committed_at)
            if self._observe is not None:
                self._observe(self.last_lag_s)

    def backlog_s(self, now: float | None = None) -> float:
        """How long the oldest acknowledged event (of this process) not yet online has waited (0 when none waits).

        In a worker that does not run the updater, commits another worker applied are dropped
        here (their lag is observed by nobody; the histogram covers the updater's worker).
        """
        if self._commits and not self._updater.owner:
            applied = self._updater.applied_position()
            while self._commits and self._commits[0][0] <= applied:
                try:
                    self._commits.popleft()
                except IndexError:
                    break
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
    """Validator + durable log + background feature updater + freshness, for one service process.

    Parameters
    ----------
    log, validator, updater:
        The parts (see their modules).
    observe_lag:
        Histogram observer for the ack -> online lag (seconds).
    """

    def __init__(self, log: DurableEventLog, validator: EventValidator, updater: FeatureUpdater,
                 observe_lag: Callable[[float], None] | None = None) -> None:
        self.log = log
        self.validator = validator
        self.updater = updater
        self.freshness = Freshness(log, updater, observe_lag)
        updater.on_applied.append(self.freshness.on_applied)
        log.add_listener(updater.wake)

    @classmethod
    def build(cls, settings, customers, items, history: Callable[[list[str]], list[dict[str, Any]]],
              push: Callable[[list[tuple[str, dict[str, Any]]], int], None],
              observe_lag: Callable[[float], None] | None = None) -> LiveEvents:
        """From the settings, the customer and item tables (pandas), a stored-history reader and a push."""
        ev = settings.events
        profiles: Mapping[str, Profile] = profiles_from_frame(customers) if len(customers) else {}
        catalog = ItemCatalog.from_frame(items) if len(items) else ItemCatalog()
        validator = EventValidator(profiles.keys(), catalog.price.keys(), earliest=ev.earliest,
                                   max_future_hours=ev.max_future_hours)
        log = DurableEventLog(settings.paths.event_log_dir, commit_window_s=ev.commit_window_s,
                              remote=shared_id_index(settings))
        updater = FeatureUpdater(settings.paths.event_log_dir, profiles, catalog, history, push,
                                 interval_s=ev.update_interval_s, max_customers_in_memory=ev.max_customers_in_memory)
        return cls(log, validator, updater, observe_lag)

    def start(self) -> None:
        """Start the updater (it first catches up with what was logged before this start)."""
        self.updater.start()
        self.updater.wake()

    def recent_items(self, customer_id: str, weights: Mapping[str, float]) -> list[tuple[str, float]]:
        """The customer's live item events as ``(item_id, weight)``, for a fresh user vector."""
        return self.updater.recent_items(customer_id, weights)

    async def wait_applied(self, position: LogPosition, timeout_s: float) -> bool:
        """Wait (without blocking the event loop) until the updater has applied the log up to ``position``."""
        deadline = time.monotonic() + timeout_s
        while self.updater.applied_position() < position:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def problem(self, max_lag_s: float) -> str | None:
        """A plain sentence when online features lag behind the log by more than ``max_lag_s``, else None."""
        lag = self.freshness.backlog_s()
        if lag > max_lag_s:
            reason = " (the updater reports errors; details in the service log)" if self.updater.last_error else ""
            return f"online features are {lag:.1f} s behind acknowledged events (events.max_lag_s = {max_lag_s}){reason}"
        return None

    def close(self) -> None:
        """Finish queued writes and the current update, then stop."""
        self.log.close()
        self.updater.stop()
