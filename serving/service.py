"""The tenure BentoML service: ``/churn-score``, ``/recommend``, ``/similar-items``, ``/events``, ``/admin/reload``.

One ``@bentoml.service`` class holds the champions (hot-swapped from the MLflow registry),
the Feast online reader, the event intake and the prediction log. Settings are read once,
when the service starts (``TENURE_CONFIG`` and ``TENURE_*`` variables). The hot path uses
numpy and the model runtimes only; pandas appears only when ``/events`` must reject or normalise an event (the
contract's own rules). The online feature updater and the triggers run in a process of their own
(serving/updater_process.py), started and restarted by one of the workers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import anyio.to_thread
import bentoml
from pydantic import ValidationError
from starlette.responses import JSONResponse

from tenure.serving.dashboard import dashboard_app
from tenure.serving.privacy_api import ConsentRequest, ConsentResponse, forget_app, record_consent
from tenure.serving.schemas import (
    ChurnScore,
    ChurnScoreRequest,
    ChurnScoreResponse,
    EventIn,
    EventResult,
    EventsRequest,
    EventsResponse,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    ReloadResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
)
from tenure.serving.security import ApiGuard
from tenure.serving.uplift_scores import uplift_by_customer

logger = logging.getLogger(__name__)

HOT_ROUTES = ("/churn-score", "/recommend", "/similar-items", "/events")
FAST_ROUTES = ("/churn-score", "/recommend")
INLINE_MAX_CUSTOMERS = 10
"""/churn-score requests with at most this many customers run on the event loop, larger ones in a thread."""


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail or []}, status_code=status)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _iso_seconds(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class SettingsGuard(ApiGuard):
    """:class:`ApiGuard` configured from the service's settings, with the fast path of the read routes.

    A valid small ``/churn-score`` or ``/recommend`` request is answered here, right after the
    guard has checked and parsed it, by the same service code the BentoML endpoint runs
    (:meth:`TenureService.answer_fast`); everything else (invalid bodies, large batches, a busy
    store, errors) goes on to the BentoML endpoint, which answers it as before. BentoML's
    metrics middleware sits in front of this one, so every request is still counted and timed.
    """

    def __init__(self, app) -> None:
        from tenure.serving.openapi import REQUEST_MODELS, build_openapi
        from tenure.settings import load_settings

        settings = load_settings()
        s = settings.serving
        super().__init__(
            app, [k.get_secret_value() for k in s.api_keys], settings.reads_need_key, s.max_request_bytes,
            models=REQUEST_MODELS, max_depth=s.max_json_depth, max_number_digits=s.max_number_digits,
            error_log_per_minute=s.client_error_log_per_minute,
            openapi=lambda: build_openapi(settings.reads_need_key, s.max_batch_size, s.max_events_per_request),
        )
        self.max_context_bytes = s.max_context_bytes
        self._service = None

    def validate(self, model, parsed: dict):
        """The request model of a body, with the configured bound of ``/recommend``'s context."""
        return model.model_validate(parsed, context={"max_context_bytes": self.max_context_bytes})

    async def answer(self, path: str, body, send) -> bool:
        if path not in FAST_ROUTES and path != "/events":
            return False
        if self._service is None:
            try:
                self._service = bentoml.get_current_service()
            except Exception:  # noqa: BLE001  not initialised yet: the endpoint answers
                return False
        if path == "/events":  # validated here already; the endpoint would parse and validate it again
            payload = await self._service.answer_events_fast(body)
        else:
            payload = self._service.answer_fast(path, body)
        if payload is None:
            return False
        await send({"type": "http.response.start", "status": 200, "headers": _fast_headers(len(payload))})
        await send({"type": "http.response.body", "body": payload})
        return True


def _fast_headers(length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(length).encode()),
            (b"server", b"BentoML Service/tenure")]


class _StoreBusy(Exception):
    """The store lock is held (by a push or a large read) and the caller would not wait."""


class _Serialized:
    """An online feature reader whose reads hold a lock (see ``TenureService._store_lock``)."""

    def __init__(self, reader, lock: threading.Lock | None) -> None:
        self._reader = reader
        self._lock = lock

    def read(self, customer_ids, wait: bool = True):
        """``OnlineFeatureReader.read`` under the lock; raises :class:`_StoreBusy` if ``wait`` is false and it is held."""
        return self.read_timed(customer_ids, wait)[0]

    def read_timed(self, customer_ids, wait: bool = True):
        """``OnlineFeatureReader.read_timed`` (rows and their as-of times) under the lock."""
        if self._lock is None:
            return self._reader.read_timed(customer_ids)
        if not self._lock.acquire(blocking=wait):
            raise _StoreBusy
        try:
            return self._reader.read_timed(customer_ids)
        finally:
            self._lock.release()


@bentoml.service(
    name="tenure",
    traffic={"timeout": 30},
    # per-request access log lines and (unsampled) OpenTelemetry spans cost more CPU than scoring
    # a customer; request counts and latencies stay in /metrics
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": list(HOT_ROUTES)},
)
class TenureService:
    """Churn scores, recommendations and event intake for marketing automation."""

    def __init__(self) -> None:
        from tenure.feature_repo.online import OnlineFeatureReader
        from tenure.feature_repo.store import open_store
        from tenure.logging_setup import quiet_third_party
        from tenure.registry.champion import RUNTIME_LOADERS
        from tenure.serving.metrics import ServiceMetrics
        from tenure.serving.model_store import ModelStore, settle_heap
        from tenure.serving.prediction_log import PredictionLog
        from tenure.settings import load_settings

        self.settings = settings = load_settings()
        from tenure.pseudonym import log_key

        self.log_key = log_key(settings)  # before anything loads: a missing secret stops the start with its reason
        # Third-party warnings and INFO chatter stay out of the service log unless it runs at DEBUG.
        quiet_third_party(1 if settings.log_level == "DEBUG" else 0)
        logging.getLogger("tenure").setLevel(settings.log_level)
        self.metrics = ServiceMetrics.create()
        # an HTTP registry that does not answer must fail a check in seconds, not after MLflow's
        # minutes of retries (the service process only; an operator's own values win)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(settings.serving.registry_timeout_s))))
        self.models = ModelStore(
            settings.mlflow.tracking_uri,
            {"churn": settings.mlflow.churn_model_name, "recommender": settings.mlflow.recommender_model_name,
             "uplift": settings.mlflow.uplift_model_name},  # uplift: optional (tenure train uplift --promote)
            dict(RUNTIME_LOADERS),
            settings.serving.model_cache_dir,
            timeout_s=settings.serving.registry_timeout_s,
        )
        self.models.refresh()
        self.models.start_polling(settings.serving.reload_interval_s)
        self.store_error: str | None = None
        # Feast's SQLite online store shares one connection between threads: concurrent writes
        # (an erasure) and reads break its transactions ("cannot start a transaction within a
        # transaction"), so store calls of this process take turns there; Redis needs no lock.
        # The updater process writes through its own connection (SQLite's WAL: reads do not wait)
        lock = threading.Lock() if settings.feast.profile == "local" else None
        self._store_lock = lock if lock is not None else contextlib.nullcontext()
        try:
            self.store = open_store(settings)
            self.churn_reader = _Serialized(OnlineFeatureReader(self.store, "churn_v1"), lock)
            self.reco_reader = _Serialized(OnlineFeatureReader(self.store, "recommender_v1"), lock)
        except Exception as exc:  # noqa: BLE001  the service still starts and says why it is not ready
            self.store, self.churn_reader, self.reco_reader = None, None, None
            self.store_error = "the feature store could not be opened (details in the service log)"
            logger.error("feature store not available: %s: %s", type(exc).__name__, exc)
        self.prediction_log = PredictionLog(  # keyed hash of ids (privacy.log_hmac_secret, no fallback)
            settings.paths.prediction_log_dir, settings.serving.prediction_log_flush_s, pseudonymize_key=self.log_key)
        from tenure.serving.experiment_arms import ExperimentArms

        self.arms = ExperimentArms.from_settings(settings)  # experiment arms on answers and in the log (pure hashing)
        from tenure.serving.customer_values import CustomerValues

        self.values = CustomerValues.from_settings(settings)  # expected_value in /churn-score (insight room's model)
        from tenure.privacy.consent import ConsentStore, ConsentView

        # consent per scope (privacy/consent.py): a change counts from the next request, no restart
        self.consent = ConsentView(ConsentStore.from_settings(settings), settings.privacy.default_consent)
        self.intake = self._build_intake()
        self.intake.start()
        self._publish_versions()
        settle_heap()  # everything loaded: keep it out of the garbage collector's full passes

    # --- set-up helpers ------------------------------------------------------------------------
    def _build_intake(self):
        """The live event path (serving/live_events.py): validator and durable log here, the updater in its process."""
        from tenure.features.tables import read_customers, read_items
        from tenure.serving.live_events import LiveEvents
        from tenure.serving.updater_process import model_versions

        settings = self.settings
        customers = read_customers(settings, missing_ok=True)
        items = read_items(settings, missing_ok=True)
        intake = LiveEvents.build(settings, customers, items, observe_lag=self.metrics.event_lag.observe)
        if intake.supervisor is not None:  # the updater process scores triggers with the champions served here
            intake.supervisor.on_tick.append(lambda: intake.publish_models(model_versions(self.models.current)))
        return intake

    def _publish_versions(self) -> None:
        current = self.models.current
        self.metrics.registry_up.set(1 if self.models.registry_reachable else 0)
        for model, version in (("churn", current.churn_version), ("recommender", current.recommender_version)):
            if version:
                self.metrics.model_info.labels(model=model, version=version).set(1)

    def readiness(self) -> dict[str, Any]:
        """What is loaded: both champions, the feature store, and whether the registry answers."""
        current = self.models.current
        state = {
            "ready": current.churn is not None and current.recommender is not None and self.store is not None,
            "churn_model_version": current.churn_version,
            "recommender_model_version": current.recommender_version,
            "feature_store": self.store is not None,
            "registry_reachable": self.models.registry_reachable,
            "models_from_cache": self.models.from_cache,
        }
        problems = [p for p in (self.store_error, self.models.problem) if p]  # plain words, no exception text
        state["event_updater"] = self.intake.updater_state()  # the updater process: pid, heartbeat age, models
        lagging = self.intake.problem(self.settings.events.max_lag_s)  # online features behind acknowledged events
        if lagging:
            problems.append(lagging)
            state["ready"] = False
        if current.churn is None:
            problems.append(f"no champion of {self.settings.mlflow.churn_model_name} loaded")
        if current.recommender is None:
            problems.append(f"no champion of {self.settings.mlflow.recommender_model_name} loaded")
        state["problems"] = problems
        return state

    def __is_ready__(self) -> bool:
        return bool(self.readiness()["ready"])

    def answer_fast(self, path: str, body: ChurnScoreRequest | RecommendRequest | dict) -> bytes | None:
        """The JSON answer to a small valid read request, or None to leave it to the BentoML endpoint.

        ``body`` is the request model the guard validated (a dict is validated here). Runs on the
        event loop (see :data:`INLINE_MAX_CUSTOMERS`); never waits for the store lock.
        """
        try:
            if path == "/churn-score":
                request = body if isinstance(body, ChurnScoreRequest) else ChurnScoreRequest.model_validate(body)
                if len(request.customer_ids) > INLINE_MAX_CUSTOMERS:
                    return None
                response = self._churn_score(request.customer_ids, wait=False)
            elif path == "/recommend":
                r = body if isinstance(body, RecommendRequest) else RecommendRequest.model_validate(body)
                response = self._recommend(r.customer_id, r.k, r.exclude_purchased, r.categories, r.available_only,
                                           r.context, wait=False)
            else:
                return None
        except (ValidationError, _StoreBusy):
            return None  # the endpoint gives the usual 400 with field messages, or waits for the store
        except Exception:  # the endpoint runs it again and answers with BentoML's error handling
            logger.exception("fast path of %s failed; passing the request on to the endpoint", path)
            return None
        if isinstance(response, JSONResponse):
            return None  # an error answer: the endpoint makes it again, with BentoML's own handling
        return response.__pydantic_serializer__.to_json(response)

    async def answer_events_fast(self, body: EventsRequest | dict) -> bytes | None:
        """The JSON answer to a valid ``/events`` request (the guard's fast path), or None for the endpoint.

        Error answers (an empty or too large batch, a failed log write) are left to the endpoint,
        which makes them again with BentoML's handling; nothing was logged for them.
        """
        try:
            request = body if isinstance(body, EventsRequest) else EventsRequest.model_validate(body)
        except ValidationError:
            return None
        response = await self._events(request.events, request.wait_for_features)
        if isinstance(response, JSONResponse):
            return None
        return response.__pydantic_serializer__.to_json(response)

    # --- endpoints -----------------------------------------------------------------------------
    @bentoml.api(route="/churn-score", input_spec=ChurnScoreRequest)
    async def churn_score(self, customer_ids: list[str]) -> ChurnScoreResponse:
        """Calibrated churn probability, risk band and top reasons per customer (batch, in order)."""
        if len(customer_ids) <= INLINE_MAX_CUSTOMERS:
            # small requests are computed on the event loop (under a millisecond): a hop to the
            # thread pool and back costs more CPU than the work. Never wait for the store lock here
            try:
                return self._churn_score(customer_ids, wait=False)
            except _StoreBusy:
                pass
        return await anyio.to_thread.run_sync(self._churn_score, customer_ids)

    def _churn_score(self, customer_ids: list[str], wait: bool = True) -> ChurnScoreResponse | JSONResponse:
        current = self.models.current
        scorer = current.churn
        if scorer is None or self.churn_reader is None:
            return _error(503, "no churn model or feature store loaded yet: train and promote a model "
                               "(tenure train churn --promote) and check /readyz",
                          [{"msg": self.store_error or self.models.problem or "no champion"}])
        limit = self.settings.serving.max_batch_size
        if not customer_ids:
            return _error(422, "customer_ids must not be empty", [{"loc": ["customer_ids"], "msg": "empty list"}])
        if len(customer_ids) > limit:
            return _error(413, f"at most {limit} customers per request (serving.max_batch_size)",
                          [{"loc": ["customer_ids"], "msg": f"got {len(customer_ids)}"}])
        rows, as_of = self.churn_reader.read_timed(customer_ids, wait=wait)  # as-of: freshness of each row
        request_id = uuid.uuid4().hex
        scored_at = _now()
        now_s = datetime.fromisoformat(scored_at).timestamp()
        active = self.arms.active("churn", now_s)
        arms = [self.arms.of(cid, active) for cid in customer_ids]  # [] of {} without experiments
        self.consent.refresh()
        blocked = {i for i, cid in enumerate(customer_ids) if not self.consent.allows(cid, "profiling", refresh=False)}
        known = [i for i, row in enumerate(rows) if row is not None and i not in blocked]  # no profiling consent: no score
        by_position: dict[int, ChurnScore] = {}
        if known:
            vectors = [rows[i] for i in known]
            X = scorer.vectorize(vectors)
            p, reasons = scorer.score(X, self.settings.serving.top_reasons)
            bands = scorer.risk_bands(p)
            percentiles = scorer.percentiles(p)
            uplifts = uplift_by_customer(current.uplift, vectors)  # [{}...] without an uplift champion
            missing = scorer.missing_counts(X)
            n_missing = int(missing.sum())
            if n_missing:
                self.metrics.missing_features.inc(n_missing)
            for n, i in enumerate(known):
                cid = customer_ids[i]
                by_position[i] = ChurnScore(customer_id=cid, status="ok", churn_probability=float(p[n]),
                                            risk_band=bands[n], top_reasons=reasons[n], missing_features=int(missing[n]),
                                            percentile=None if percentiles is None else float(percentiles[n]),
                                            model_version=current.churn_version, scored_at=scored_at,
                                            features_as_of=_iso_seconds(as_of[i]),
                                            feature_age_s=None if as_of[i] is None else round(now_s - as_of[i], 3),
                                            arms=arms[i], expected_value=self.values.get(cid),
                                            uplift=uplifts[n] or None)
                self.prediction_log.add({
                    "kind": "churn", "request_id": request_id, "logged_at": scored_at,
                    "customer_id": self.prediction_log.customer_ref(cid), "model_version": current.churn_version,
                    "features": vectors[n],  # a fresh dict per request; NaN -> null when written
                    "churn_probability": float(p[n]), "risk_band": bands[n], "arms": arms[i],
                })
        unknown = len(customer_ids) - len(known) - len(blocked)
        if unknown:
            self.metrics.unknown_customers.inc(unknown)
        if known:
            self.metrics.scores.inc(len(known))
        results = [by_position.get(i) or ChurnScore(customer_id=cid, status="no_consent" if i in blocked else "unknown_customer",
                                                    model_version=current.churn_version, scored_at=scored_at,
                                                    arms=arms[i])
                   for i, cid in enumerate(customer_ids)]
        return ChurnScoreResponse(request_id=request_id, model_version=current.churn_version, results=results)

    @bentoml.api(route="/recommend", input_spec=RecommendRequest)
    async def recommend(
        self,
        customer_id: str,
        k: int = 10,
        exclude_purchased: bool | Literal["auto"] = "auto",
        categories: list[str] | None = None,
        available_only: bool = True,
        context: dict[str, Any] | None = None,
    ) -> RecommendResponse:
        """Top-k items for one customer, with the strategy used and the items behind each."""
        args = (customer_id, k, exclude_purchased, categories, available_only, context)
        try:  # one customer: on the event loop, as /churn-score (see there)
            return self._recommend(*args, wait=False)
        except _StoreBusy:
            return await anyio.to_thread.run_sync(self._recommend, *args)

    def _recommend(self, customer_id: str, k: int, exclude_purchased: bool | str, categories: list[str] | None,
                   available_only: bool, context: dict[str, Any] | None,
                   wait: bool = True) -> RecommendResponse | JSONResponse:
        current = self.models.current
        runtime = current.recommender
        if runtime is None:
            return _error(503, "no recommender loaded yet: train and promote one (tenure train recommender --promote)")
        if not customer_id:
            return _error(422, "customer_id must not be empty", [{"loc": ["customer_id"], "msg": "empty"}])
        if not 1 <= k <= 100:
            return _error(422, "k must be between 1 and 100", [{"loc": ["k"], "msg": f"got {k}"}])
        consent = True
        if self.reco_reader is not None:
            row = self.reco_reader.read([customer_id], wait=wait)[0]
            if row is not None and row.get("consent_personalization") is not None:
                value = row["consent_personalization"]
                consent = bool(value) if not (isinstance(value, float) and math.isnan(value)) else True
        consent = self.consent.allows(customer_id, "personalization", baseline=consent)  # a later change wins
        recent = self.intake.recent_items(customer_id)  # live events (the updater process writes them)
        arms = self.arms.of(customer_id, self.arms.active("recommend"))
        if arms and self.arms.recommender_strategy(arms) == "popular":  # an experiment arm A/B-tests the recommender
            recs = runtime.popular(k, categories=categories, available_only=available_only)
        else:
            recs = runtime.recommend(customer_id, k=k, exclude_purchased=exclude_purchased, categories=categories,
                                     available_only=available_only, consent=consent, recent_items=recent or None)
        self.metrics.strategies.labels(strategy=recs.strategy).inc()
        request_id = uuid.uuid4().hex  # also the recommendation_id that events send back (attribution)
        self.prediction_log.add({
            "kind": "recommend", "request_id": request_id, "recommendation_id": request_id, "logged_at": _now(),
            "customer_id": self.prediction_log.customer_ref(customer_id), "model_version": current.recommender_version,
            "strategy": recs.strategy, "items": [item["item_id"] for item in recs.items], "context": context,
            "arms": arms,
        })
        return RecommendResponse(request_id=request_id, recommendation_id=request_id, customer_id=customer_id,
                                 strategy=recs.strategy,
                                 items=[RecommendedItem(**item) for item in recs.items],
                                 model_version=current.recommender_version, arms=arms)

    @bentoml.api(route="/similar-items", input_spec=SimilarItemsRequest)
    def similar_items(self, item_id: str, k: int = 10, available_only: bool = False) -> SimilarItemsResponse:
        """Items like ``item_id`` by the recommender's item factors (for an item page)."""
        current = self.models.current
        if current.recommender is None:
            return _error(503, "no recommender loaded yet")
        if not 1 <= k <= 100:
            return _error(422, "k must be between 1 and 100", [{"loc": ["k"], "msg": f"got {k}"}])
        try:
            items = current.recommender.similar_items(item_id, k=k, available_only=available_only)
        except (KeyError, ValueError) as exc:
            return _error(404, f"unknown item {item_id!r}", [{"loc": ["item_id"], "msg": str(exc)}])
        return SimilarItemsResponse(item_id=item_id, items=[RecommendedItem(**i) for i in items],
                                    model_version=current.recommender_version)

    @bentoml.api(route="/events", input_spec=EventsRequest)
    async def events(self, events: list[EventIn], wait_for_features: bool = False) -> EventsResponse:
        """Validate, de-duplicate and durably log events (group commit), then acknowledge.

        Online features are updated right after, by the updater process (serving/updater_process.py);
        with ``wait_for_features`` the answer also waits (up to ``events.max_lag_s``) until they are.
        """
        return await self._events(events, wait_for_features)

    async def _events(self, events: list[EventIn], wait_for_features: bool) -> EventsResponse | JSONResponse:
        import asyncio

        limit = self.settings.serving.max_events_per_request
        if not events:
            return _error(422, "events must not be empty", [{"loc": ["events"], "msg": "empty list"}])
        if len(events) > limit:
            return _error(413, f"at most {limit} events per request (serving.max_events_per_request)",
                          [{"loc": ["events"], "msg": f"got {len(events)}"}])
        raw = [e.model_dump() for e in events]
        validator = self.intake.validator
        checked = validator.validate(raw)  # plain Python for clean events, on the event loop
        if checked is None:  # something to reject or normalise: the contract's own (pandas) rules, in a thread
            checked = await anyio.to_thread.run_sync(validator.slow, raw)
        accepted, reasons = checked
        try:
            flags, position = await asyncio.wrap_future(
                self.intake.log.submit([{k: v for k, v in e.items() if k != "_position"} for e in accepted]))
        except Exception:  # nothing of this request is acknowledged
            logger.exception("event log write failed")
            return _error(503, "the events could not be logged durably; nothing was accepted, send them again")
        status = {e["_position"]: ("accepted" if fresh else "duplicate") for e, fresh in zip(accepted, flags)
                  if fresh is not None}  # None: another machine is logging this event_id right now
        reasons |= {e["_position"]: ["event_id: another request is logging this event right now; send it again"]
                    for e, fresh in zip(accepted, flags) if fresh is None}
        results = [EventResult(event_id=event["event_id"], status="rejected", reasons=reasons.get(i, []))
                   if i not in status else EventResult(event_id=event["event_id"], status=status[i])
                   for i, event in enumerate(raw)]
        counts = {s: sum(r.status == s for r in results) for s in ("accepted", "duplicate", "rejected")}
        for name, n in counts.items():
            if n:
                self.metrics.events.labels(status=name).inc(n)
        updated: list[str] = []
        if wait_for_features and counts["accepted"] and await self.intake.wait_applied(
                position, self.settings.events.max_lag_s):
            known = self.intake.validator.known_customers
            updated = sorted({e["customer_id"] for e, fresh in zip(accepted, flags) if fresh} & known)
        return EventsResponse(accepted=counts["accepted"], duplicates=counts["duplicate"], rejected=counts["rejected"],
                              results=results, features_updated=updated)

    @bentoml.api(route="/consent", input_spec=ConsentRequest)
    def consent_change(self, customer_id: str, scopes: dict[str, bool], channel: str | None = None,
                       at: str | None = None) -> ConsentResponse:
        """Record a customer's consent per scope (needs an API key); effective from the next request."""
        try:
            return record_consent(self.consent, ConsentRequest(customer_id=customer_id, scopes=scopes, channel=channel,
                                                               at=at))
        except ValueError as exc:
            return _error(400, "invalid consent change", [{"loc": ["at"], "msg": str(exc), "type": "value_error"}])

    def forget_customers(self, customer_ids: list[str]) -> dict[str, Any]:
        """Erase customers everywhere, this process's memory first (``DELETE /customers/{id}``); returns the receipt.

        The service keeps answering meanwhile: only the online store's own step holds the store lock.
        """
        from tenure.privacy.erasure import forget_customers, workspace_stores
        from tenure.privacy.stores import Store
        from tenure.serving.erasure import serving_stores

        def locked(fn):
            def run(ids):
                with self._store_lock:
                    return fn(ids)
            return run

        self.prediction_log.flush()  # queued records reach the files, where erasure finds them
        stores = [Store(s.name, s.where, locked(s.count), locked(s.forget), s.export) if s.name == "feast_online" else s
                  for s in workspace_stores(self.settings, feature_store=self.store)]
        memory = Store("serving.memory", "this service process: event validator, loaded recommender; the updater "
                       "process's feature states (an erasure request it applies before its next micro-batch)",
                       self._count_in_memory, self._forget_in_memory)
        receipt = forget_customers(self.settings, customer_ids, [memory, *stores,
                                                                 *serving_stores(self.settings, self.log_key)])
        self.consent.refresh(force=True)
        return receipt

    def _count_in_memory(self, ids: list[str]) -> dict[str, int]:
        recommender = self.models.current.recommender
        return {cid: n for cid in ids if (n := int(cid in self.intake.validator.known_customers)
                                          + int(recommender is not None and recommender.knows_customer(cid)))}

    def _forget_in_memory(self, ids: list[str]) -> int:
        from tenure.registry.recommender_erasure import forget_in_runtime

        n = self.intake.forget(ids)  # their events are refused from now on; the updater process drops their states
        if self.models.current.recommender is not None:
            n += forget_in_runtime(self.models.current.recommender, ids)
        return n

    @bentoml.api(route="/admin/reload")
    def reload(self) -> ReloadResponse:
        """Check the registry now and swap in newly promoted champions (needs an API key).

        Answers 503 with the reason when the registry could not be checked (the models in
        service stay as they were).
        """
        before = self.models.current
        changed = self.models.refresh()
        if changed:
            self.metrics.reloads.inc()
        self._publish_versions()
        after = self.models.current
        if not self.models.registry_reachable:
            return _error(503, f"reload failed: {self.models.problem}; still serving churn version "
                               f"{after.churn_version} and recommender version {after.recommender_version}",
                          [{"loc": ["registry"], "msg": self.models.problem or "unreachable", "type": "registry_unavailable"}])
        return ReloadResponse(churn_version=after.churn_version, recommender_version=after.recommender_version,
                              changed=changed or before is not after, registry_reachable=self.models.registry_reachable)

    def __metrics__(self, content: str) -> str:
        self._publish_versions()
        self.metrics.event_backlog.set(self.intake.freshness.backlog_s())
        return content

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.models.stop()
        self.prediction_log.close()
        self.intake.close()  # stops the updater process too (it checkpoints)


TenureService.add_asgi_middleware(SettingsGuard)
# DELETE /customers/{id}: erasure with a receipt (serving/privacy_api.py); the guard asks for the API key
TenureService.mount_asgi_app(forget_app(), path="/customers")
# GET /dashboard: the page and its JSON panels (serving/dashboard.py), behind the read key when reads need one
TenureService.mount_asgi_app(dashboard_app(), path="/dashboard")
