"""Request and response bodies of the HTTP API: typed, documented, strict (unknown fields are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChurnScoreRequest(_Strict):
    """Customers to score (one or many)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"customer_ids": ["c000001", "c000002"]}})
    customer_ids: list[str] = Field(..., min_length=1, description="Customer ids; at most serving.max_batch_size.")


class Reason(BaseModel):
    """One feature's push on the score: positive contributions raise the churn risk (log-odds)."""

    feature: str
    value: float | str | None
    contribution: float


class ChurnScore(BaseModel):
    """The score of one customer, or why there is none (``status``)."""

    customer_id: str
    status: Literal["ok", "unknown_customer"]
    churn_probability: float | None = None
    risk_band: Literal["low", "medium", "high"] | None = None
    top_reasons: list[Reason] = Field(default_factory=list)
    missing_features: int = 0
    model_version: str | None = None
    scored_at: str


class ChurnScoreResponse(BaseModel):
    """Per-customer results, in request order."""

    request_id: str
    model_version: str
    results: list[ChurnScore]


class RecommendRequest(_Strict):
    """What to recommend to one customer."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"customer_id": "c000001", "k": 10, "exclude_purchased": "auto",
                                       "categories": ["snacks"], "available_only": True}},
    )
    customer_id: str = Field(..., min_length=1)
    k: int = Field(10, ge=1, le=100, description="How many items.")
    exclude_purchased: bool | Literal["auto"] = Field(
        "auto", description="Leave out items the customer already bought: true, false, or 'auto' (the default): "
        "what training decided from the data (bought items stay in where many purchases are repeats).")
    categories: list[str] | None = Field(None, description="Only items of these categories.")
    available_only: bool = Field(True, description="Only items marked available.")
    context: dict[str, Any] | None = Field(None, description="Free-form context (page, campaign); logged.")


class RecommendedItem(BaseModel):
    """One recommended item; ``because`` lists the customer's own items that led to it."""

    item_id: str
    score: float
    because: list[str] = Field(default_factory=list)


class RecommendResponse(BaseModel):
    """Ranked items and how they were chosen."""

    request_id: str
    customer_id: str
    strategy: str = Field(..., description="als, als_fresh, buy_again, blend, popular, no_consent_popular, ...")
    items: list[RecommendedItem]
    model_version: str


class SimilarItemsRequest(_Strict):
    """Items like one item (an item page)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"item_id": "i00001", "k": 5}})
    item_id: str = Field(..., min_length=1)
    k: int = Field(10, ge=1, le=100)
    available_only: bool = False


class SimilarItemsResponse(BaseModel):
    """Similar items by ALS item factors."""

    item_id: str
    items: list[RecommendedItem]
    model_version: str


class EventIn(_Strict):
    """One event in the data contract's shape (validated again by the contract's rules)."""

    event_id: str = Field(..., min_length=1, description="Idempotency key.")
    customer_id: str = Field(..., min_length=1)
    event_at: str = Field(..., description="ISO 8601 with a UTC offset, e.g. 2026-06-01T10:00:00Z.")
    event_type: str
    item_id: str | None = None
    quantity: float | None = None
    amount: float | None = None
    channel: str | None = None
    nps: float | None = None
    csat: float | None = None
    resolution_hours: float | None = None


class EventsRequest(_Strict):
    """A batch of events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"events": [{"event_id": "e-1", "customer_id": "c000001",
                                                   "event_at": "2026-06-01T10:00:00Z", "event_type": "purchase",
                                                   "item_id": "i00001", "quantity": 1, "amount": 12.5}]}},
    )
    events: list[EventIn] = Field(..., min_length=1)


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
    features_updated: list[str] = Field(default_factory=list, description="Customers whose online features were refreshed.")


class ReloadResponse(BaseModel):
    """Model versions after a reload."""

    churn_version: str | None
    recommender_version: str | None
    changed: bool
    registry_reachable: bool
