"""The one typed settings object of tenure: read once at an entry point, passed down explicitly.

Sources, highest priority first: keyword arguments, environment variables
(``TENURE_...``, nested with ``__``, e.g. ``TENURE_CHURN__HORIZON_DAYS=45``), a YAML
file (``--config FILE`` or ``TENURE_CONFIG``), then the embedded defaults below.
Nothing here imports the heavy stack, so the CLI can start fast.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

EVENT_TYPES: tuple[str, ...] = (
    "view",
    "add_to_cart",
    "purchase",
    "return",
    "session",
    "support_ticket",
    "survey",
    "subscription_cancel",
    "exposure",
    "treatment",
)


class _Section(BaseModel):
    """Base of every settings section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathSettings(_Section):
    """Where tenure keeps its files. Relative paths are resolved against the working directory."""

    data_dir: Path = Field(Path("data"), description="Root of generated, ingested and derived data.")
    reports_dir: Path = Field(Path("reports"), description="Evidently reports, alerts, monitoring index.")
    exports_dir: Path = Field(Path("exports"), description="Audience files and batch scores.")

    # Derived locations (kept here so every room agrees on them).
    @property
    def raw_dir(self) -> Path:
        """Generated or user-supplied source files (CSV/Parquet) before ingestion."""
        return self.data_dir / "raw"

    @property
    def tables_dir(self) -> Path:
        """Validated canonical tables: ``tables/customers``, ``tables/items``, ``tables/events``."""
        return self.data_dir / "tables"

    @property
    def rejects_dir(self) -> Path:
        """Rejected rows, one CSV per ingestion run (file, row, column, reason)."""
        return self.data_dir / "rejects"

    @property
    def features_dir(self) -> Path:
        """Batch feature tables (Parquet with ``event_timestamp`` and ``created``)."""
        return self.data_dir / "features"

    @property
    def feast_dir(self) -> Path:
        """Feast registry and SQLite online store of the embedded profile."""
        return self.data_dir / "feast"

    @property
    def event_log_dir(self) -> Path:
        """Durable append-only log of events accepted by ``POST /events`` (JSON lines)."""
        return self.data_dir / "event_log"

    @property
    def prediction_log_dir(self) -> Path:
        """Served predictions and recommendations (JSON lines) for monitoring."""
        return self.data_dir / "prediction_log"

    @property
    def state_dir(self) -> Path:
        """Small state files: pipeline step markers, alert de-duplication, retrain cool-down."""
        return self.data_dir / "state"


class ColumnMappingSettings(_Section):
    """Map user column names to the canonical ones, per table: ``{source_name: canonical_name}``."""

    customers: dict[str, str] = Field(default_factory=dict)
    items: dict[str, str] = Field(default_factory=dict)
    events: dict[str, str] = Field(default_factory=dict)


AttributeType = Literal["numeric", "boolean", "category", "ignore"]
"""How an extra customer column is used: a number, a yes/no flag, a category, or not a feature."""


class DataSettings(_Section):
    """How ingestion types extra customer columns (attributes) and fills absent optional columns."""

    attribute_types: dict[str, AttributeType] = Field(
        default_factory=dict,
        description="Override the inferred type of an extra customer column (after the column mapping), "
                    "e.g. {zip_code: category, notes: ignore}: numeric | boolean | category | ignore.",
    )
    max_category_levels: int = Field(
        100, ge=2, le=10_000,
        description="A text column with more distinct values than this (ids, names, free text) is not a feature.",
    )
    column_defaults: dict[Literal["customers", "items", "events"], dict[str, str | float | bool | None]] = Field(
        default_factory=dict,
        description="Values for optional canonical columns a file lacks, per table, e.g. "
                    "{items: {category: all}}; a filled column is logged as a warning. "
                    "(items.price, when absent, is NaN with a warning without any setting.)",
    )


class FeastSettings(_Section):
    """Feature store: the same definitions, two infrastructure profiles."""

    repo_path: Path = Field(Path("feature_repo"), description="Folder with the Feast definitions.")
    project: str = Field("tenure", pattern=r"^[a-z][a-z0-9_]*$")
    profile: Literal["local", "production"] = Field(
        "local",
        description="local: SQLite online store, registry file under data/; production: Redis online "
        "store, SQL registry on PostgreSQL. Both use feast.offline_store over the Parquet feature tables.",
    )
    offline_store: Literal["duckdb", "file"] = Field(
        "duckdb",
        description="Offline store (training-set joins, materialization) of both profiles: duckdb "
        "(Feast's DuckDB store through ibis, the feast[duckdb] extra; 28 s for the 1.14M-row churn join "
        "at 100k customers) or file (Feast's Dask-based store; 252 s, 2.3x the memory), tested equal.",
    )
    redis_connection_string: str = Field("127.0.0.1:6379", description="host:port[,db=N,password=...]")
    registry_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        description="SQLAlchemy URL of the SQL registry (production profile).",
    )
    snapshot_every_days: int = Field(7, ge=1, description="Spacing of batch feature snapshots.")


class MlflowSettings(_Section):
    """Tracking and model registry."""

    tracking_uri: str = Field(
        "sqlite:///mlruns/mlflow.db", description="MLflow tracking URI (also the registry)."
    )
    artifact_root: Path = Field(Path("mlruns/artifacts"), description="Where runs store artifacts.")
    churn_experiment: str = "tenure-churn"
    recommender_experiment: str = "tenure-recommender"
    churn_model_name: str = "tenure-churn"
    recommender_model_name: str = "tenure-recommender"
    uplift_experiment: str = Field("tenure-uplift", description="MLflow experiment of uplift training runs.")
    uplift_model_name: str = Field("tenure-uplift", description="Registered uplift model (experiments/, docs/experiments.md).")


class ChurnSettings(_Section):
    """How churn is defined, and how the churn model is trained and gated."""

    horizon_days: int = Field(30, ge=1, le=365, description="No qualifying activity for this long = churned.")
    qualifying_event_types: list[str] = Field(
        default_factory=lambda: ["purchase", "session", "view", "add_to_cart"],
        description="Event types that count as activity for the churn label.",
    )
    cutoff_every_days: int = Field(7, ge=1, description="Spacing of training cut-offs.")
    history_days: int = Field(180, ge=7, description="How far back cut-offs go.")
    join_rows_per_call: int = Field(
        250_000, ge=1_000,
        description="At most this many training rows (whole cut-offs) per Feast get_historical_features call "
                    "when building the training set; bounds its memory, the result does not depend on it.",
    )
    validation_cutoffs: int = Field(2, ge=1, description="Latest matured cut-offs before the test ones.")
    test_cutoffs: int = Field(1, ge=1, description="Latest matured cut-offs, held out for testing.")
    calibration: Literal["auto", "isotonic", "sigmoid", "beta"] = Field(
        "auto", description="auto: sigmoid below isotonic_min_rows validation rows, isotonic from there; any method "
                            "that lowers validation ROC-AUC by more than calibration_max_auc_drop falls back to sigmoid.")
    isotonic_min_rows: int = Field(5000, ge=10, description="Validation rows from which calibration 'auto' is isotonic.")
    calibration_max_auc_drop: float = Field(0.002, ge=0, le=0.1, description="Largest ROC-AUC loss calibration may cause.")
    candidates: list[Literal["lightgbm", "lightgbm_shallow", "logistic", "blend"]] = Field(
        default_factory=lambda: ["lightgbm", "lightgbm_shallow", "logistic", "blend"],
        description="Models fitted on every run; the best validation ROC-AUC is chosen (training.churn_selection).")
    logistic_c_grid: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0],
                                         description="Inverse regularisation strengths tried for the logistic candidate.")
    refit_on_validation: bool = Field(True, description="Refit the chosen configuration on training + validation rows.")
    segment_min_rows: int = Field(50, ge=1, description="Segments with fewer test rows are not scored.")
    gate_segment_tolerance: float = Field(0.02, ge=0, le=0.5,
                                          description="Allowed drop of the worst segment's ROC-AUC vs the champion.")
    num_leaves: int = Field(31, ge=2)
    learning_rate: float = Field(0.05, gt=0, le=1)
    n_estimators: int = Field(500, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    risk_bands: Literal["thresholds", "percentiles"] = "thresholds"
    medium_threshold: float = Field(0.3, gt=0, lt=1, description="Probability from which risk is medium.")
    high_threshold: float = Field(0.6, gt=0, lt=1, description="Probability from which risk is high.")
    gate_auc_tolerance: float = Field(0.005, ge=0, le=0.2, description="Allowed ROC-AUC drop vs champion.")
    gate_calibration_tolerance: float = Field(0.01, ge=0, le=0.2, description="Allowed calibration-error rise.")
    random_state: int = 42

    @field_validator("qualifying_event_types")
    @classmethod
    def _known_event_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; allowed: {list(EVENT_TYPES)}")
        if not value:
            raise ValueError("at least one qualifying event type is needed")
        return value

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> ChurnSettings:
        if self.medium_threshold >= self.high_threshold:
            raise ValueError(
                f"medium_threshold ({self.medium_threshold}) must be below "
                f"high_threshold ({self.high_threshold})"
            )
        return self


class RecommenderSettings(_Section):
    """Interactions, ALS and its evaluation."""

    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "return": -5.0},
        description="Confidence added per event type; negative weights subtract, missing types are ignored.",
    )
    time_decay_half_life_days: float | None = Field(None, gt=0, description="None disables time decay.")
    weighting: Literal["none", "bm25", "tfidf"] = "none"
    factors: int = Field(64, ge=1)
    regularization: float = Field(0.01, ge=0)
    alpha: float = Field(1.0, gt=0, description="Confidence scaling of ALS.")
    iterations: int = Field(15, ge=1)
    use_gpu: Literal["auto", "never"] = "auto"
    mode: Literal["als", "buy_again", "blend"] = Field(
        "blend", description="als: new items only; buy_again: rebuys first; blend: both, weighted."
    )
    blend_weight: float = Field(0.5, ge=0, le=1, description="Share of the rebuy score in blend mode "
                                "(the fixed blend: used when learn_blend is off or there is too little data).")
    learn_blend: bool = Field(True, description="Blend mode learns how much ALS, buy-again, recency and "
                              "repurchase timing count, from each customer's last order before the holdout.")
    exclude_purchased_repeat_share: float = Field(
        0.2, ge=0, le=1, description="exclude_purchased 'auto': bought items stay in answers when at least "
        "this share of purchases are repeats of an item the customer bought before (decided at training).")
    order_window_hours: float = Field(
        1.0, ge=0, le=72, description="Next-basket evaluation: a customer's purchases within this many hours "
        "of their last purchase form their last order (events carry no order id).")
    k: int = Field(10, ge=1, le=1000)
    holdout_days: int = Field(14, ge=1, description="Global time cut-off for the evaluation holdout.")
    gate_ndcg_tolerance: float = Field(0.005, ge=0, le=1)
    random_state: int = 42

    @field_validator("event_weights")
    @classmethod
    def _known_weight_types(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; allowed: {list(EVENT_TYPES)}")
        return value


class ServingSettings(_Section):
    """The BentoML service."""

    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    max_batch_size: int = Field(100, ge=1, le=10_000, description="Most customers per /churn-score call.")
    max_events_per_request: int = Field(1000, ge=1, le=100_000)
    max_request_bytes: int = Field(1_048_576, ge=1024)
    api_keys: list[SecretStr] = Field(default_factory=list, description="Keys accepted in X-API-Key.")
    require_key_for_reads: bool | None = Field(
        None,
        description="Whether /churn-score, /recommend and /similar-items need X-API-Key too. Default (None): "
        "yes under the production profile (feast.profile: production), no under the local one.",
    )
    max_json_depth: int = Field(32, ge=2, le=200, description="Deepest nesting of arrays/objects in a body (400 beyond).")
    max_number_digits: int = Field(40, ge=10, le=4000, description="Longest number literal in a body (400 beyond).")
    max_context_bytes: int = Field(4096, ge=0, le=1_048_576,
                                   description="Largest /recommend `context` (JSON-encoded bytes) that is accepted and logged.")
    client_error_log_per_minute: int = Field(
        30, ge=0, le=100_000, description="Most WARNING lines a minute about rejected requests (one line each, no traceback).")
    registry_timeout_s: float = Field(
        3.0, gt=0, le=120, description="Connect/read timeout for the model registry from the service (MLflow HTTP "
        "and PostgreSQL); MLflow's own retries are switched off there so a dead registry cannot stall start-up.")
    pseudonymize_customer_ids: bool = False
    reload_interval_s: float = Field(30.0, gt=0, description="How often the registry aliases are checked.")
    model_cache_dir: Path | None = Field(
        None,
        description="Local copies of downloaded model versions (registry.champion's cache; the service "
        "starts from it while the registry is down). Default: <paths.data_dir>/model_cache.",
    )
    prediction_log_flush_s: float = Field(1.0, gt=0)
    top_reasons: int = Field(3, ge=1, le=20)


class EventSettings(_Section):
    """Events: bounds on event times (the data contract, for ``POST /events`` and ingested files alike), and
    the live path of ``POST /events`` (group commit, the online feature updater, freshness)."""

    max_future_hours: float = Field(24.0, ge=0, le=24 * 366,
                                    description="Latest accepted event time: this many hours ahead of the clock.")
    earliest: str = Field("1990-01-01T00:00:00Z",
                          description="Earliest accepted event time (ISO 8601 with offset): the shop's start or a floor.")
    # the live path (issue 15): group commit, the online feature updater, freshness
    commit_window_s: float = Field(
        0.0, ge=0, le=0.05, description="How long the event log's writer waits after a request for more to share one "
        "fsync (0: only what queued up during the previous fsync; that already groups requests under load).")
    update_interval_s: float = Field(
        0.5, gt=0, le=60, description="Longest pause of the online feature updater when no commit wakes it.")
    max_lag_s: float = Field(
        10.0, gt=0, le=86_400, description="/readyz reports not ready when an acknowledged event has waited longer "
        "than this for its online features.")
    max_customers_in_memory: int = Field(
        200_000, ge=1_000, description="Per-customer feature states the updater keeps in memory (the rest stay in "
        "its checkpoint on disk).")
    idempotency: Literal["auto", "local", "redis"] = Field(
        "auto", description="Where accepted event ids are checked: local (the event log's SQLite index, shared by the "
        "workers of one machine) or redis (also a shared index on feast.redis_connection_string, for replicas on "
        "several machines); auto: redis under the production profile, local otherwise.")
    idempotency_ttl_days: float = Field(
        30.0, gt=0, le=3650, description="How long the Redis index remembers an accepted event id (a replay after "
        "that is accepted again; the local index keeps ids for good).")

    @field_validator("earliest")
    @classmethod
    def _aware_iso(cls, value: str) -> str:
        from datetime import datetime

        try:
            parsed = datetime.fromisoformat(value)  # Python 3.11 reads a trailing Z
        except ValueError as exc:
            raise ValueError(f"events.earliest must be ISO 8601 like 1990-01-01T00:00:00Z: {exc}") from None
        if parsed.tzinfo is None:
            raise ValueError("events.earliest needs a UTC offset (add Z)")
        return value


class TriggerSettings(_Section):
    """Proactive messages when new events move a customer into a watched churn-risk band (serving/triggers.py)."""

    webhook_url: str | None = Field(None, description="Where band-crossing messages are POSTed as JSON; None = no triggers.")
    bands: list[Literal["low", "medium", "high"]] = Field(
        default_factory=lambda: ["high"], description="Entering one of these bands sends a message.")
    min_interval_s: float = Field(86_400.0, ge=0, le=90 * 86_400,
                                  description="Least time between two messages to one customer (rate limit).")
    max_attempts: int = Field(8, ge=1, le=100, description="Delivery attempts before the dead-letter file.")
    backoff_s: float = Field(1.0, gt=0, le=3600, description="First retry delay; doubles per attempt, at most 5 minutes.")
    timeout_s: float = Field(5.0, gt=0, le=120, description="HTTP timeout of one delivery.")
    recommendations: int = Field(3, ge=0, le=20, description="Recommended items added to each message (0 = none).")
    dead_letter_path: Path | None = Field(
        None, description="JSON-lines file of undeliverable messages (default: <event_log_dir>/triggers-dead-letter.jsonl).")
    redis_stream: str | None = Field(
        None, min_length=1, max_length=200, description="Redis stream (key) that band-crossing messages are added to "
        "(XADD, once per dedupe key), on the server of feast.redis_connection_string; None = no stream. Beside or "
        "instead of webhook_url; the production profile's sink for consumers on several machines.")
    redis_stream_maxlen: int = Field(1_000_000, ge=1_000, le=10**9,
                                     description="The stream is trimmed to about this many entries (XADD MAXLEN ~).")
    redis_dedupe_days: float = Field(30.0, gt=0, le=3650, description="How long the stream remembers a delivered "
                                     "dedupe key, so a message delivered again (after a crash) is not added twice.")


class PrivacySettings(_Section):
    """Consent scopes, erasure and pseudonymous logs (privacy/, docs/privacy.md)."""

    pseudonymize_logs: bool | None = Field(
        None, description="Write prediction and trigger logs with a keyed hash (HMAC-SHA256, privacy.log_hmac_secret) "
        "of the customer id instead of the id; monitoring joins on the same hash. None: on under the production "
        "profile (or when serving.pseudonymize_customer_ids is set), off under the local one.")
    log_hmac_secret: SecretStr | None = Field(
        None, min_length=16, description="Key of the log pseudonyms (at least 16 characters; keep it stable: a new key "
        "makes older log lines unjoinable). Required when logs are pseudonymised: there is no fallback.")
    default_consent: bool = Field(
        True, description="Consent of a customer to a scope (profiling, marketing) that no file or POST /consent has "
        "set yet; personalization starts from the customers table's consent_personalization.")
    receipts_dir: Path | None = Field(
        None, description="Where erasure receipts are written (default: <paths.data_dir>/privacy/receipts).")


class AttributionSettings(_Section):
    """Attribution of views, add-to-carts and purchases to the recommendations that led to them
    (monitoring/attribution.py, ``tenure report attribution``)."""

    window_hours: float = Field(
        24.0, gt=0, le=24 * 90, description="An event counts for a recommendation when it comes at most this long "
        "after the recommendation was served.")
    match_without_id: bool = Field(
        True, description="Also attribute events that carry no recommendation_id: to the customer's latest "
        "recommendation within the window that held the item (view-through); false: only events that send the id back.")
    clock_skew_s: float = Field(
        300.0, ge=0, le=86_400, description="Client event times may be this much earlier than the server's time of "
        "the recommendation (the two clocks differ).")


class AlertSinkSettings(_Section):
    """One alert destination."""

    kind: Literal["log", "jsonl", "webhook"]
    path: Path | None = None
    url: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0, le=10)
    routes: list[str] = Field(
        default_factory=list, description="Only alerts of these routes (e.g. [data_team]); empty = every alert "
        "(monitoring.alert_routes gives each kind of alert its route).")

    @model_validator(mode="after")
    def _target_present(self) -> AlertSinkSettings:
        if self.kind == "webhook" and not self.url:
            raise ValueError("an alert sink of kind 'webhook' needs a url")
        return self


class AlertRouteSettings(_Section):
    """How urgent one kind of alert is and which team it goes to."""

    severity: Literal["info", "warning", "critical"] = Field(description="How urgent.")
    route: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Team the alert goes to, e.g. ops or data_team "
                       "(sinks subscribe with alert_sinks[].routes).")


def _default_alert_routes() -> dict[str, AlertRouteSettings]:
    return {
        "pipeline": AlertRouteSettings(severity="critical", route="data_team"),
        "drift": AlertRouteSettings(severity="warning", route="data_team"),
        "performance": AlertRouteSettings(severity="critical", route="ops"),
        "recommender": AlertRouteSettings(severity="warning", route="ops"),
        "retrain": AlertRouteSettings(severity="info", route="ops"),
    }


# Evidently 0.7 drift methods by the column types they accept (evidently.legacy stattest registry).
NUMERICAL_DRIFT_METHODS = ("anderson", "cramer_von_mises", "ed", "empirical_mmd", "es", "hellinger",
                           "jensenshannon", "kl_div", "ks", "mannw", "psi", "t_test", "wasserstein")
CATEGORICAL_DRIFT_METHODS = ("TVD", "chisquare", "fisher_exact", "g_test", "hellinger", "jensenshannon",
                             "kl_div", "psi", "z")


class DriftTestSettings(_Section):
    """The drift method and threshold for one feature (overrides the per-type defaults)."""

    method: str = Field(description="Evidently drift method, e.g. wasserstein, psi, jensenshannon, ks.")
    threshold: float = Field(gt=0, description="Distance above which (or p-value below which) it drifted.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        known = sorted(set(NUMERICAL_DRIFT_METHODS) | set(CATEGORICAL_DRIFT_METHODS))
        if value not in known:
            raise ValueError(f"unknown drift method {value!r}; allowed: {known}")
        return value


class MonitoringSettings(_Section):
    """Drift checks, alerts and the retrain policy."""

    drift_share_threshold: float = Field(0.3, gt=0, le=1, description="Share of drifted features that alerts.")
    numerical_stattest: str = Field("wasserstein", description="Evidently drift method for numerical features.")
    numerical_threshold: float = Field(0.1, gt=0)
    categorical_stattest: str = Field("jensenshannon", description="Evidently drift method for categorical features.")
    # Tuned by benchmarks/monitoring_detection.py (tuning seeds 201-203, reported seeds 101-104):
    # on the alive population, ageing moves Jensen-Shannon on the categoricals by <= 0.016 while a
    # simulator drift_at change moves acquisition_channel by >= 0.06 in its first week; numerical
    # Wasserstein scores of ageing features (distinct_categories_365d, tenure_days, recency) reach
    # 0.1-0.28, so the numerical threshold and the share rule stay as they were (no false alarms,
    # but the share rule alone never reached 0.3 within five weeks of the change).
    categorical_threshold: float = Field(0.05, gt=0)
    feature_overrides: dict[str, DriftTestSettings] = Field(
        default_factory=dict,
        description="Per-feature drift method and threshold, e.g. {tenure_days: {method: psi, threshold: 0.2}}.")
    key_features: list[str] = Field(
        default_factory=lambda: ["acquisition_channel"],
        description="Any of these drifting alerts alone (acquisition mix shifts precede churn shifts).")
    auc_drop_tolerance: float = Field(0.05, ge=0, le=1)
    estimated_auc_drop_tolerance: float = Field(
        0.05, ge=0, le=1, description="Retrain when the CBPE-estimated ROC-AUC of the current window (no labels needed) "
        "is below the champion's promised test ROC-AUC by more than this (monitoring/estimation.py).")
    event_amount_threshold: float = Field(
        0.15, gt=0, description="Normed Wasserstein distance of log purchase amounts (newest window vs the weeks "
        "before) above which the world changed (monitoring/event_drift.py).")
    activity_change_threshold: float = Field(
        0.2, gt=0, le=1, description="Relative change of sessions or purchases per active customer per day (newest "
        "window vs the weeks before) above which the world changed.")
    event_baseline_days: int = Field(28, ge=7, le=365, description="Weeks before the window that event-level "
                                     "signals compare with.")
    early_outcome_days: int = Field(
        14, ge=0, le=365, description="Early outcome / concept check (monitoring/early_outcome.py): customers scored "
        "this many days ago who had no qualifying activity since are the early outcome; ROC-AUC and calibration against "
        "it are compared with the cohorts before. 0 switches the check off.")
    early_outcome_baseline_days: int = Field(28, ge=7, le=365, description="Cohorts scored this many days before the "
                                             "early-outcome cohort are its reference.")
    early_outcome_max_p_value: float = Field(1e-3, gt=0, lt=1, description="An early-outcome finding alarms only "
                                             "below this p-value (segments: Bonferroni-corrected).")
    early_outcome_min_auc_drop: float = Field(0.02, ge=0, le=1, description="Smallest drop of the ROC-AUC against "
                                              "the early outcome (reference cohorts - current) that alarms.")
    early_outcome_min_rate_increase: float = Field(
        0.03, ge=0, le=1, description="Smallest rise of the share going quiet beyond what the scores imply (overall or "
        "in a segment of a categorical feature, absolute) that alarms.")
    reference: Literal["auto", "latest", "same_season"] = Field(
        "auto", description="Drift reference: latest (the champion's training sample), same_season (feature snapshots "
        "season_days +/- season_tolerance_days before the window, scored by the champion) or auto (same_season when the "
        "batch feature table covers it, else latest).")
    season_days: int = Field(365, ge=7, le=3650, description="Length of the season for the same-season reference.")
    season_tolerance_days: int = Field(14, ge=0, le=183, description="Snapshots this many days either side of one "
                                       "season ago make the same-season reference.")
    recent_reference_days: int = Field(
        28, ge=0, le=365, description="A feature (and the churn score) counts as drifted only when it also drifts "
        "against the feature snapshot this many days (+/- 7) before the window: slow change (season, a year of ageing) "
        "is set aside, a sudden change shows against both. Held at the pre-change snapshot while a drift episode is "
        "open. 0 = the primary reference alone (monitoring/reference.py).")
    alert_routes: dict[Literal["pipeline", "drift", "performance", "recommender", "retrain"], AlertRouteSettings] = Field(
        default_factory=_default_alert_routes,
        description="Severity and route per kind of alert: pipeline (a broken batch or feature), drift (the world "
        "changed), performance (estimated or realised ROC-AUC drop), recommender (served hit rate or coverage), "
        "retrain (what the gate did). Kinds left out keep their defaults.")
    recommender_hit_rate_drop_tolerance: float = Field(
        0.05, ge=0, le=1, description="Retrain when the served hit rate of a strategy is below its offline figure by "
        "more than this, and the 95% Wilson interval's upper end is below it too.")
    recommender_min_matured_lists: int = Field(100, ge=1, description="Fewest matured lists for a hit-rate trigger.")
    recommender_coverage_drop_tolerance: float = Field(
        0.5, ge=0, le=1, description="Retrain when the catalogue coverage of the lists served in the window falls "
        "below (1 - this) x the champion's offline coverage_at_k.")
    prediction_drift_triggers: bool = Field(
        False, description="Whether a drifted churn-score distribution triggers alone (else it is reported only).")
    max_model_age_days: int = Field(30, ge=1)
    retrain_cooldown_hours: float = Field(24.0, ge=0)
    dry_run: bool = False
    window_days: int = Field(7, ge=1, description="Size of the current window of the prediction log.")
    alert_sinks: list[AlertSinkSettings] = Field(
        default_factory=lambda: [AlertSinkSettings(kind="log"), AlertSinkSettings(kind="jsonl")],
        description="Where alerts go; a jsonl sink without a path writes <reports_dir>/alerts.jsonl.",
    )

    @field_validator("alert_routes", mode="after")
    @classmethod
    def _routes_over_defaults(cls, value: dict) -> dict:
        return {**_default_alert_routes(), **value}

    @field_validator("numerical_stattest")
    @classmethod
    def _numerical_method(cls, value: str) -> str:
        if value not in NUMERICAL_DRIFT_METHODS:
            raise ValueError(f"{value!r} is no drift method for numerical features; allowed: {list(NUMERICAL_DRIFT_METHODS)}")
        return value

    @field_validator("categorical_stattest")
    @classmethod
    def _categorical_method(cls, value: str) -> str:
        if value not in CATEGORICAL_DRIFT_METHODS:
            raise ValueError(
                f"{value!r} is no drift method for categorical features; allowed: {list(CATEGORICAL_DRIFT_METHODS)}")
        return value


class DashboardSettings(_Section):
    """The service's dashboard page (``GET /dashboard``) and its JSON panels (``GET /dashboard/data/<panel>``)."""

    enabled: bool = Field(True, description="Serve /dashboard from the service (the read key applies when reads "
                          "need one).")
    refresh_s: float = Field(10.0, ge=0.5, le=3600, description="A panel's answer is reused this long before its "
                             "sources (prediction log, reports, tables) are checked for changes.")
    slow_refresh_s: float = Field(300.0, ge=5, le=86_400, description="Panels computed from the tables or the "
                                  "registry (KPIs, customer value, champions, experiments) are recomputed in the "
                                  "background at most this often.")
    first_answer_wait_s: float = Field(3.0, ge=0, le=60, description="How long a request waits for a panel that "
                                       "is still being computed for the first time before answering "
                                       "status 'computing' (the page asks again).")
    risk_mix_days: int = Field(90, ge=1, le=3650, description="Days of the prediction log drawn in the risk-band mix.")
    alerts_shown: int = Field(20, ge=1, le=1000, description="Most recent alerts listed.")
    reports_shown: int = Field(60, ge=1, le=10_000, description="Most recent monitoring passes drawn in the drift chart.")
    top_customers: int = Field(10, ge=1, le=1000, description="Customers listed by value at risk.")


class QualitySettings(_Section):
    """Data-quality checks on each ingested event batch, and the quarantine of broken ones
    (features/quality.py, docs/monitoring.md "Data quality"). A batch with a finding is stored under
    <paths.data_dir>/quarantine/<batch> instead of the tables until `tenure data accept BATCH`."""

    enabled: bool = Field(True, description="Check every event batch at ingestion (off: store as before).")
    quarantine: bool = Field(True, description="Hold a batch with a pipeline finding back from the tables "
                             "(off: store it and only report the findings).")
    baseline_days: int = Field(28, ge=1, le=365, description="Days of stored events before a batch that it is "
                               "compared with.")
    min_rows: int = Field(200, ge=1, description="Fewest rows of an event type (or source) for a check on it.")
    max_missing_increase: float = Field(0.2, gt=0, le=1, description="Missing share of a column (per event type) "
                                        "may rise by at most this much over the baseline's.")
    max_out_of_range_share: float = Field(0.05, gt=0, le=1, description="Largest share of a numeric column (per "
                                          "event type) outside the baseline's 0.1-99.9th percentiles.")
    max_duplicate_share: float = Field(0.01, gt=0, le=1, description="Largest share of events repeating another "
                                       "event's customer, time, type and item under a new event_id.")
    max_source_skew_hours: float = Field(2.0, gt=0, le=24 * 30, description="Largest lead of one source's "
                                         "(channel's) newest event over the other sources' newest.")
    max_reject_share: float = Field(0.01, ge=0, le=1, description="Largest share of rows rejected by the contract "
                                    "(types, ranges) before the batch counts as broken.")


class InsightSettings(_Section):
    """Customer insight (``insight/``): the customer-value model behind ``tenure train value``."""

    value_horizon_days: int = Field(365, ge=1, le=3650,
                                    description="Expected purchases and value are over this many days ahead.")
    value_time_unit_days: float = Field(7.0, gt=0, le=31,
                                        description="Unit of recency and T in the BG/NBD fit (7 = weeks, the literature's).")
    value_penalizer: float = Field(0.0, ge=0, le=10,
                                   description="L2 penalty on the BG/NBD and Gamma-Gamma parameters (0 = plain MLE; "
                                               "raise it when the fit does not converge on little data).")
    value_holdout_days: int = Field(90, ge=7, le=730,
                                    description="The last days held out to measure the model (MAE vs naive and recency rules).")
    value_experiment: str = Field("tenure-value", description="MLflow experiment of the value-model runs.")


class SimulatorSettings(_Section):
    """Defaults of ``tenure generate`` (each is also a CLI option)."""

    customers: int = Field(5000, ge=1)
    items: int = Field(500, ge=1)
    days: int = Field(180, ge=1)
    seed: int = 42
    start: str = Field("2026-01-01", description="First simulated day (UTC).")


_NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


class ArmSettings(_Section):
    """One arm of an experiment: its share of the experiment's customers and what it does."""

    name: str = Field(pattern=_NAME_PATTERN, description="Arm name, e.g. control, discount, message.")
    share: float = Field(gt=0, le=1, description="Share of the experiment's customers in this arm (shares sum to 1).")
    offer: str | None = Field(None, max_length=200, description="What the arm sends (recorded in treatment events); "
                              "None for a control arm.")
    channel: str | None = Field(None, max_length=64, description="Channel the arm's contact goes through (email, push...).")
    recommender: Literal["model", "popular"] = Field(
        "model", description="/recommend strategy for this arm's customers: the champion model, or the most popular "
        "items (an A/B test of the recommender).")


class ExperimentDefinition(_Section):
    """One experiment: salted hash assignment of customers (outside the global holdout) to arms."""

    name: str = Field(pattern=_NAME_PATTERN, description="Experiment (and campaign) name.")
    salt: str | None = Field(None, max_length=200, description="Hash salt; changing it re-randomises. None: the name.")
    arms: list[ArmSettings] = Field(min_length=2, description="Two or more arms whose shares sum to 1.")
    control: str = Field("control", description="The arm every other arm is compared with.")
    status: Literal["draft", "active", "paused", "finished"] = Field(
        "active", description="Only active experiments (within start..end) are assigned in answers.")
    start: datetime | None = Field(None, description="First moment of the experiment (UTC); None: no bound.")
    end: datetime | None = Field(None, description="Last moment of the experiment (UTC); None: no bound.")
    applies_to: list[Literal["churn", "recommend"]] = Field(
        default_factory=lambda: ["churn", "recommend"], description="Answers that carry this experiment's arm.")
    horizon_days: int | None = Field(None, ge=1, le=365, description="Outcome horizon of the report; None: "
                                     "churn.horizon_days.")

    @model_validator(mode="after")
    def _check_arms(self) -> ExperimentDefinition:
        names = [a.name for a in self.arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"experiment {self.name!r}: duplicate arm name(s) {dupes}")
        if "holdout" in names:
            raise ValueError(f"experiment {self.name!r}: 'holdout' is reserved for the global holdout; rename that arm")
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"experiment {self.name!r}: arm shares must sum to 1, got {total:g} "
                             f"({', '.join(f'{a.name}={a.share:g}' for a in self.arms)})")
        if self.control not in names:
            raise ValueError(f"experiment {self.name!r}: control arm {self.control!r} is not one of its arms {names}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"experiment {self.name!r}: end {self.end} is not after start {self.start}")
        return self


class ExperimentSettings(_Section):
    """Global holdout and experiments (experiments/, docs/experiments.md)."""

    holdout_share: float = Field(0.10, ge=0, lt=1, description="Share of all customers in the global holdout: never "
                                 "contacted by any campaign, never assigned to an experiment.")
    holdout_salt: str = Field("tenure-global-holdout", min_length=1, max_length=200,
                              description="Salt of the holdout hash; changing it draws a new holdout.")
    definitions: list[ExperimentDefinition] = Field(default_factory=list, description="The experiments.")

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentSettings:
        names = [d.name for d in self.definitions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate experiment name(s) {dupes}")
        return self


class ComputeSettings(_Section):
    """Where the batch pipelines run: in this process (pandas) or on a Dask cluster (``tenure.compute``)."""

    engine: Literal["local", "dask"] = Field(
        "local", description="local: pandas in this process; dask: features, training frame, LightGBM fit, scoring and "
        "samples run on a Dask cluster over customer-hash partitions (docs/cluster.md).")
    scheduler_address: str | None = Field(
        None, description="Dask scheduler to connect to, e.g. tcp://scheduler:8786; None starts a LocalCluster in this "
        "process for the run (local_workers workers).")
    local_workers: int = Field(2, ge=1, le=256, description="Workers of the LocalCluster (no scheduler_address).")
    threads_per_worker: int = Field(1, ge=1, le=64, description="Threads of each LocalCluster worker.")
    worker_processes: bool = Field(
        False, description="LocalCluster workers as processes (true) or threads of this process (false: starts in a "
        "second, no pickling; processes spread the GIL-bound pandas work over cores).")
    memory_limit: str = Field("auto", description="Memory limit of each LocalCluster worker (e.g. 4GiB; beyond it the "
                                                  "worker spills to disk), 'auto' = the machine's memory / workers.")
    partitions: int = Field(16, ge=1, le=100000, description="Customer-hash partitions of the events, customers and "
                                                             "feature tables; each is one task's working set.")

    @field_validator("scheduler_address")
    @classmethod
    def _address_form(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(f"compute.scheduler_address must look like tcp://host:8786, got {value!r}")
        return value


class Settings(BaseSettings):
    """Every setting of tenure. Build it with :func:`load_settings` at an entry point."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    paths: PathSettings = Field(default_factory=PathSettings)
    columns: ColumnMappingSettings = Field(default_factory=ColumnMappingSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    feast: FeastSettings = Field(default_factory=FeastSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    churn: ChurnSettings = Field(default_factory=ChurnSettings)
    recommender: RecommenderSettings = Field(default_factory=RecommenderSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    triggers: TriggerSettings = Field(default_factory=TriggerSettings)
    attribution: AttributionSettings = Field(default_factory=AttributionSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    insight: InsightSettings = Field(default_factory=InsightSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    experiments: ExperimentSettings = Field(default_factory=ExperimentSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    @property
    def reads_need_key(self) -> bool:
        """Whether the read routes need an API key: ``serving.require_key_for_reads``, else the profile's default."""
        if self.serving.require_key_for_reads is not None:
            return self.serving.require_key_for_reads
        return self.feast.profile == "production"

    @model_validator(mode="after")
    def _derive_model_cache_dir(self) -> Settings:
        # the cache is keyed by kind and version only, so it belongs to one workspace: it
        # follows paths.data_dir unless set explicitly
        if self.serving.model_cache_dir is None:
            self.serving.model_cache_dir = self.paths.data_dir / "model_cache"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges file < environment < overrides itself and passes the result in,
        # so the precedence is explicit and the same everywhere.
        return (init_settings,)


class SettingsError(ValueError):
    """A setting is invalid; the message names it and says what is allowed."""


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_validation_error(exc: Exception, source: str) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid settings ({source}): {exc}"
    lines = [f"invalid settings ({source}):"]
    for err in errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        env_name = "TENURE_" + "__".join(str(p).upper() for p in err.get("loc", ()))
        lines.append(f"  - {where} (env {env_name}): {err.get('msg')}; got {err.get('input')!r}")
    return "\n".join(lines)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, an optional YAML file, the environment and overrides.

    Parameters
    ----------
    config_file:
        YAML file with the same nested keys as :class:`Settings`. When None,
        ``TENURE_CONFIG`` is used if set.
    **overrides:
        Nested dicts or values that win over everything else (used by tests and the CLI).

    Raises
    ------
    SettingsError
        When the file is missing or unreadable, or any value is invalid; the message
        names each bad setting, its environment variable and what is allowed.
    """
    from pydantic import ValidationError

    path = config_file or os.environ.get("TENURE_CONFIG")
    file_values: dict[str, Any] = {}
    source = "defaults and environment"
    if path:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"config file {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must hold a mapping at the top, got {type(loaded).__name__}")
        file_values = loaded
        source = f"{path}, environment"
    values = _deep_merge(_deep_merge(file_values, _read_env_values()), overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_format_validation_error(exc, source)) from exc


#: ``TENURE_*`` variables that are not settings: the settings file, and the test suite's and
#: benchmarks' browser levers (docs/dashboard.md). Any other ``TENURE_*`` name must be a setting,
#: so a misspelt one is an error rather than silently ignored.
ENV_NOT_SETTINGS = frozenset({"TENURE_CONFIG", "TENURE_CHROMIUM", "TENURE_SKIP_BROWSER", "TENURE_DASHBOARD_SCREENSHOT"})


def _read_env_values() -> dict[str, Any]:
    """Collect ``TENURE_*`` variables into a nested dict (``__`` separates levels)."""
    values: dict[str, Any] = {}
    for name, raw in os.environ.items():
        if not name.startswith("TENURE_") or name in ENV_NOT_SETTINGS:
            continue
        parts = [p.lower() for p in name[len("TENURE_"):].split("__")]
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = _parse_env_value(raw)
    return values


def _parse_env_value(raw: str) -> Any:
    """Environment values may be JSON/YAML (lists, dicts, numbers); plain strings stay strings."""
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw
