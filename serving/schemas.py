"""Request and response bodies of the HTTP API: typed, documented, strict.

Request models forbid unknown fields and use pydantic's strict mode: ``"k": "10"`` and
``"k": true`` are not integers, ``"amount": "12"`` is not a number. Free-form strings and lists
have upper bounds, so a body cannot grow the prediction or event log without limit.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

ID_MAX = 200
"""Longest id (customer, item, event) accepted."""
CONTEXT_MAX_BYTES = 4096
"""Default bound of ``/recommend``'s ``context`` (``serving.max_context_bytes`` sets it in the service)."""

Id = Annotated[str, Field(min_length=1, max_length=ID_MAX)]


def _whole_number(value: Any) -> Any:
    """``10.0`` -> ``10`` (JSON Schema's integer is any number without a fraction); ``"10"``, ``true`` stay invalid."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Count = Annotated[int, BeforeValidator(_whole_number)]
"""A strict integer that also takes a whole float (``10.0``), as JSON Schema's ``integer`` does."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorResponse(BaseModel):
    """Every error answer of the API (4xx and 503): a sentence, and the problems one by one."""

    error: str = Field(..., description="What went wrong, for a person.")
    detail: list[dict[str, Any]] = Field(default_factory=list,
                                         description="One entry per problem: loc (where), msg, type.")


class Readiness(BaseModel):
    """``GET /readyz``: what is loaded, and what is wrong in plain words (no internals)."""

    ready: bool
    churn_model_version: str | None = None
    recommender_model_version: str | None = None
    feature_store: bool = False
    registry_reachable: bool = False
    models_from_cache: bool = False
    event_updater: dict[str, Any] | None = Field(
        None, description="The online feature updater process: pid, heartbeat_age_s, models (its triggers' versions).")
    problems: list[str] = Field(default_factory=list)


class ReloadRequest(_Strict):
    """``POST /admin/reload`` takes no fields (an empty body is fine)."""


class ChurnScoreRequest(_Strict):
    """Customers to score (one or many)."""

    model_config = ConfigDict(extra="forbid", strict=True,
                              json_schema_extra={"example": {"customer_ids": ["c000001", "c000002"]}})
    customer_ids: list[Id] = Field(..., min_length=1, description="Customer ids; at most serving.max_batch_size.")


class Reason(BaseModel):
    """One feature's push on the score: positive contributions raise the churn risk (log-odds)."""

    feature: str = Field(..., description="The model's feature name (raw).")
    value: float | str | None = Field(..., description="The customer's value (raw; null when missing).")
    contribution: float = Field(..., description="Signed push on the log-odds of churn; positive raises the risk.")
    text: str | None = Field(None, description="The reason in plain language, rounded, with units: "
                                               "'no activity for 48 days', 'last NPS 2 of 10'.")
    direction: Literal["raises risk", "lowers risk"] | None = None


class ChurnScore(BaseModel):
    """The score of one customer, or why there is none (``status``)."""

    customer_id: str
    status: Literal["ok", "unknown_customer", "no_consent"] = Field(
        ..., description="no_consent: the customer withdrew the profiling consent (POST /consent); nothing is scored.")
    churn_probability: float | None = None
    risk_band: Literal["low", "medium", "high"] | None = None
    percentile: float | None = Field(None, description="Share (0-100) of the customer population at training "
                                                       "scoring at or below this customer; 95 = riskier than 95%.")
    top_reasons: list[Reason] = Field(default_factory=list)
    missing_features: int = 0
    model_version: str | None = None
    scored_at: str
    features_as_of: str | None = Field(None, description="As-of time of the features used (a batch snapshot's cut-off, "
                                                         "or the event-time clock of the last online update).")
    feature_age_s: float | None = Field(None, description="Seconds from features_as_of to scored_at.")
    expected_value: float | None = Field(None, description="Expected spend over insight.value_horizon_days (the "
                                         "customer-value model, tenure train value); null without one.")
    arms: dict[str, str] = Field(default_factory=dict, description="Experiment -> this customer's arm, for the active "
                                 "experiments ('holdout' = global holdout: never contact); {} without experiments.")
    uplift: dict[str, float] | None = Field(None, description="'<campaign>/<arm>' -> how much that treatment lowers this "
                                            "customer's churn probability (uplift champion); null without one.")


class ChurnScoreResponse(BaseModel):
    """Per-customer results, in request order."""

    request_id: str
    model_version: str
    results: list[ChurnScore]


class RecommendRequest(_Strict):
    """What to recommend to one customer."""

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"example": {"customer_id": "c000001", "k": 10, "exclude_purchased": "auto",
                                       "categories": ["snacks"], "available_only": True}},
    )
    customer_id: Id
    k: Count = Field(10, ge=1, le=100, description="How many items.")
    exclude_purchased: bool | Literal["auto"] = Field(
        "auto", description="Leave out items the customer already bought: true, false, or 'auto' (the default): "
        "what training decided from the data (bought items stay in where many purchases are repeats).")
    categories: list[Annotated[str, Field(max_length=ID_MAX)]] | None = Field(
        None, max_length=100, description="Only items of these categories.")
    available_only: bool = Field(True, description="Only items marked available.")
    context: dict[str, Any] | None = Field(
        None, description=f"Free-form context (page, campaign); logged. At most {CONTEXT_MAX_BYTES} bytes as JSON "
                          "(serving.max_context_bytes).")

    @field_validator("context")
    @classmethod
    def _bounded_context(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        limit = (info.context or {}).get("max_context_bytes")
        if value is not None and limit is not None:
            size = len(json.dumps(value, separators=(",", ":")).encode())
            if size > limit:
                raise ValueError(f"context is {size} bytes as JSON; at most {limit} are accepted")
        return value


class RecommendedItem(BaseModel):
    """One recommended item; ``because`` lists the customer's own items that led to it."""

    item_id: str
    score: float
    because: list[str] = Field(default_factory=list)


class RecommendResponse(BaseModel):
    """Ranked items and how they were chosen."""

    request_id: str
    recommendation_id: str = Field(..., description="Send it back on the exposure event (the list shown) and on "
                                                    "views, add-to-carts and purchases it led to (attribution).")
    customer_id: str
    strategy: str = Field(..., description="als, als_fresh, buy_again, blend, popular, no_consent_popular, ...")
    items: list[RecommendedItem]
    model_version: str
    arms: dict[str, str] = Field(default_factory=dict, description="Experiment -> this customer's arm, for the active "
                                 "experiments (an arm may serve the most popular items instead of the model).")


class SimilarItemsRequest(_Strict):
    """Items like one item (an item page)."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"example": {"item_id": "i00001", "k": 5}})
    item_id: Id
    k: Count = Field(10, ge=1, le=100)
    available_only: bool = False


class SimilarItemsResponse(BaseModel):
    """Similar items by ALS item factors."""

    item_id: str
    items: list[RecommendedItem]
    model_version: str


class EventIn(_Strict):
    """One event in the data contract's shape (validated again by the contract's rules)."""

    event_id: Id = Field(..., description="Idempotency key.")
    customer_id: Id
    event_at: str = Field(..., max_length=64, description="ISO 8601 with a UTC offset, e.g. 2026-06-01T10:00:00Z; "
                                                         "not before events.earliest, at most events.max_future_hours ahead.")
    event_type: str = Field(..., max_length=64)
    item_id: Annotated[str, Field(max_length=ID_MAX)] | None = None
    quantity: float | None = None
    amount: float | None = None
    channel: Annotated[str, Field(max_length=64)] | None = None
    nps: float | None = None
    csat: float | None = None
    resolution_hours: float | None = None
    ces: float | None = Field(None, description="Survey: customer effort 1 (very hard) .. 7 (very easy).")
    text: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="Support ticket or survey: what the customer wrote (scored for sentiment, at most 2,000 characters).")
    recommendation_id: Annotated[str, Field(max_length=ID_MAX)] | None = Field(
        None, description="The recommendation_id of the /recommend answer this event came from (attribution).")
    impressions: list[Annotated[str, Field(max_length=ID_MAX)]] | None = Field(
        None, max_length=100, description="exposure events only: the item ids shown, in order (at most 100).")
    campaign: Annotated[str, Field(max_length=ID_MAX)] | None = Field(
        None, description="treatment events only: the campaign (experiment) name.")
    arm: Annotated[str, Field(max_length=64)] | None = Field(None, description="treatment events only: the arm.")
    offer: Annotated[str, Field(max_length=ID_MAX)] | None = Field(
        None, description="treatment events only: what was sent (none for a control arm).")


class EventsRequest(_Strict):
    """A batch of events."""

    model_config = ConfigDict(
        extra="forbid", strict=True,
        json_schema_extra={"example": {"events": [{"event_id": "e-1", "customer_id": "c000001",
                                                   "event_at": "2026-06-01T10:00:00Z", "event_type": "purchase",
                                                   "item_id": "i00001", "quantity": 1, "amount": 12.5}]}},
    )
    events: list[EventIn] = Field(..., min_length=1)
    wait_for_features: bool = Field(False, description="Also wait (up to events.max_lag_s) until the customers' online "
                                                       "features include these events; they are durably logged either way.")


class EventResult(BaseModel):
    """What happened to one event."""

    event_id: str
    status: Literal["accepted", "duplicate", "rejected"]
    reasons: list[str] = Field(default_factory=list)


class EventsResponse(BaseModel):
    """Per-event outcome; accepted events are durably logged before this response is sent."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]
    features_updated: list[str] = Field(
        default_factory=list, description="With wait_for_features: customers whose online features now include the "
                                          "accepted events (empty otherwise: the update follows within about a second).")


class ReloadResponse(BaseModel):
    """Model versions after a reload."""

    churn_version: str | None
    recommender_version: str | None
    changed: bool
    registry_reachable: bool
