"""Prometheus metrics of tenure, exported on BentoML's ``/metrics`` beside its request counts and latencies."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class ServiceMetrics:
    """The service's own metrics (BentoML already counts requests and times them per route)."""

    scores: object
    unknown_customers: object
    missing_features: object
    strategies: object
    events: object
    model_info: object
    registry_up: object
    reloads: object
    event_lag: object
    event_backlog: object
    triggers: object

    @classmethod
    def create(cls) -> ServiceMetrics:
        """Register the metrics with BentoML's (multi-process aware) Prometheus client."""
        import bentoml

        return cls(
            scores=bentoml.metrics.Counter(name="tenure_churn_scores_total", documentation="Customers scored"),
            unknown_customers=bentoml.metrics.Counter(
                name="tenure_unknown_customers_total", documentation="Customers asked for but absent from the online store"),
            missing_features=bentoml.metrics.Counter(
                name="tenure_missing_feature_values_total", documentation="Missing feature values in scored vectors"),
            strategies=bentoml.metrics.Counter(
                name="tenure_recommend_strategy_total", documentation="Recommendations by strategy", labelnames=["strategy"]),
            events=bentoml.metrics.Counter(
                name="tenure_events_total", documentation="Events received by outcome", labelnames=["status"]),
            model_info=bentoml.metrics.Gauge(
                name="tenure_model_version", documentation="Served model version (1 = in service)",
                labelnames=["model", "version"], multiprocess_mode="livemax"),
            registry_up=bentoml.metrics.Gauge(
                name="tenure_registry_reachable", documentation="1 when the last registry check succeeded",
                multiprocess_mode="livemin"),
            reloads=bentoml.metrics.Counter(name="tenure_model_reloads_total", documentation="Model swaps"),
            event_lag=bentoml.metrics.Histogram(
                name="tenure_event_to_online_seconds",
                documentation="From an event's acknowledgement (group commit) to its customer's online features",
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)),
            event_backlog=bentoml.metrics.Gauge(
                name="tenure_event_backlog_seconds",
                documentation="Age of the oldest acknowledged event whose online features are not updated yet",
                multiprocess_mode="livemax"),
            triggers=bentoml.metrics.Counter(
                name="tenure_triggers_total", documentation="Proactive trigger messages by outcome",
                labelnames=["outcome"]),
        )
