"""Feast definitions of tenure: entities, sources, feature views, push sources, feature services.

This file only declares; infrastructure (stores, registry) is rendered from settings by
``feature_repo.store``. Sources point at the Parquet tables under ``settings.paths.features_dir``,
so they are built by functions that take that folder, never from a fixed path. Apply them with
``tenure features apply`` (not ``feast apply``, which cannot know the data folder).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64, Int64, String

from tenure.features.attributes import ATTRIBUTE_TABLE
from tenure.features.customer_features import (
    CUSTOMER_ACTIVITY_FEATURES,
    CUSTOMER_CATEGORICAL_FEATURES,
    CUSTOMER_COUNT_FEATURES,
)
from tenure.features.item_features import ITEM_POPULARITY_FEATURES
from tenure.features.snapshots import CREATED_COLUMN, CUSTOMER_TABLE, ITEM_TABLE, TIMESTAMP_COLUMN

OWNER = "features@tenure"
"""Who answers questions about these features (the features room)."""

CUSTOMER_ACTIVITY_VIEW = "customer_activity"
CUSTOMER_PROFILE_VIEW = "customer_profile"
CUSTOMER_ATTRIBUTES_VIEW = "customer_attributes"
ITEM_VIEW = "item_features"
CUSTOMER_ACTIVITY_PUSH = "customer_activity_push"
CUSTOMER_PROFILE_PUSH = "customer_profile_push"
CHURN_SERVICE = "churn_v1"
RECOMMENDER_SERVICE = "recommender_v1"

# Activity values age fast (recency, 7/30-day counts). Snapshots are weekly; three missed
# snapshots means the pipeline is broken, and a 3-week-old vector would mislead the model.
ACTIVITY_TTL = timedelta(days=21)
# Plan, region, channel and consent change rarely; a quarter-old value is still usable.
PROFILE_TTL = timedelta(days=90)
# The extra columns of the customers file (contract, charges, ...) hold until the customer is
# ingested again; they do not age, so no TTL (0 = values never expire).
ATTRIBUTES_TTL = timedelta(0)
# Item popularity is weekly like customer activity.
ITEM_TTL = timedelta(days=21)

# Recommender reads these activity features to pick a strategy (new, lapsed or broad buyers).
RECOMMENDER_ACTIVITY_FEATURES: tuple[str, ...] = (
    "days_since_last_purchase",
    "purchases_30d",
    "distinct_categories_365d",
    "views_30d",
)

# --- entities ----------------------------------------------------------------------------------

# Why: every churn score and recommendation is about one known customer.
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A known customer of the business (customers.customer_id, a string).",
    owner=OWNER,
    tags={"pii": "pseudonymous-id"},
)

# Why: recommendations rank items; item popularity and catalogue data describe them.
item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalogue item (items.item_id, a string).",
    owner=OWNER,
    tags={"pii": "none"},
)


# --- sources -------------------------------------------------------------------------------------

def customer_source(features_dir: Path) -> FileSource:
    """Batch source: weekly customer snapshots written by ``tenure features build``."""
    return FileSource(
        name="customer_features_batch",
        path=str(Path(features_dir).resolve() / CUSTOMER_TABLE),
        timestamp_field=TIMESTAMP_COLUMN,
        created_timestamp_column=CREATED_COLUMN,
        description="features/snapshots.py output: one row per (customer, as-of time).",
        owner=OWNER,
    )


def item_source(features_dir: Path) -> FileSource:
    """Batch source: weekly item snapshots written by ``tenure features build``."""
    return FileSource(
        name="item_features_batch",
        path=str(Path(features_dir).resolve() / ITEM_TABLE),
        timestamp_field=TIMESTAMP_COLUMN,
        created_timestamp_column=CREATED_COLUMN,
        description="features/snapshots.py output: one row per (item, as-of time).",
        owner=OWNER,
    )


def customer_attributes_source(features_dir: Path) -> FileSource:
    """Batch source: the typed extra columns of the customers table, written by ``tenure features
    apply``/``materialize`` (:func:`features.attributes.write_attribute_table`)."""
    return FileSource(
        name="customer_attributes_batch",
        path=str(Path(features_dir).resolve() / ATTRIBUTE_TABLE),
        timestamp_field=TIMESTAMP_COLUMN,
        created_timestamp_column=CREATED_COLUMN,
        description="features/attributes.py output: one row per customer (event_timestamp = sign-up).",
        owner=OWNER,
    )


def customer_activity_push_source(features_dir: Path) -> PushSource:
    """Why: after ``POST /events`` the service recomputes one customer's activity and pushes it,
    so the next score sees the event without waiting for the weekly snapshot."""
    return PushSource(
        name=CUSTOMER_ACTIVITY_PUSH,
        batch_source=customer_source(features_dir),
        description="Fresh customer activity features pushed by the service after an event.",
        owner=OWNER,
    )


def customer_profile_push_source(features_dir: Path) -> PushSource:
    """Why: a customer who signed up after the last snapshot still needs a profile online."""
    return PushSource(
        name=CUSTOMER_PROFILE_PUSH,
        batch_source=customer_source(features_dir),
        description="Customer profile (consent, plan, region, channel) pushed with fresh activity.",
        owner=OWNER,
    )


# --- feature views -------------------------------------------------------------------------------

def _float_or_int(name: str):
    return Int64 if name in CUSTOMER_COUNT_FEATURES else Float64


def customer_activity_view(features_dir: Path) -> FeatureView:
    """Why: recency, frequency, value, trends, engagement and service quality are what
    churn is predicted from; one view so they share a TTL and one push path."""
    return FeatureView(
        name=CUSTOMER_ACTIVITY_VIEW,
        entities=[customer],
        ttl=ACTIVITY_TTL,
        schema=[Field(name=name, dtype=_float_or_int(name)) for name in CUSTOMER_ACTIVITY_FEATURES],
        source=customer_activity_push_source(features_dir),
        online=True,
        description=(
            "Customer activity as of event_timestamp: recency in days (NaN = never), counts and "
            "revenue over 7/30/90 days (0 = none), 30-day trends in [-1, 1], tenure, returns, "
            "basket, sessions, views, support tickets, last NPS/CSAT. Definitions: docs/features.md."
        ),
        owner=OWNER,
        tags={"domain": "activity", "refresh": "weekly snapshot + push after events", "pii": "none"},
    )


def customer_profile_view(features_dir: Path) -> FeatureView:
    """Why: consent gates personalisation and the profile segments customers; these come from
    the customer table, not from events, and change rarely, so they live apart with a longer TTL."""
    return FeatureView(
        name=CUSTOMER_PROFILE_VIEW,
        entities=[customer],
        ttl=PROFILE_TTL,
        schema=[
            Field(name="consent_personalization", dtype=Int64,
                  description="1 when the customer allows personalisation, else 0."),
            *[Field(name=name, dtype=String, description=f"Customer {name.replace('_', ' ')} ('unknown' if missing).")
              for name in CUSTOMER_CATEGORICAL_FEATURES],
        ],
        source=customer_profile_push_source(features_dir),
        online=True,
        description="Customer profile: personalisation consent (0/1) and plan, region, acquisition channel.",
        owner=OWNER,
        tags={"domain": "profile", "refresh": "weekly snapshot", "pii": "consent"},
    )


def customer_attributes_view(features_dir: Path, attributes: Mapping[str, str]) -> FeatureView:
    """Why: a labelled snapshot (one row per customer, no events) is scored from its attributes;
    they come from the customers file, typed at ingest, so the schema follows the workspace's data.

    ``attributes``: ``{column: numeric | boolean | category}`` (:mod:`features.attributes`);
    numbers and flags (1.0 / 0.0) are Float64, categories String.
    """
    if not attributes:
        raise ValueError("customer_attributes_view needs at least one attribute")
    return FeatureView(
        name=CUSTOMER_ATTRIBUTES_VIEW,
        entities=[customer],
        ttl=ATTRIBUTES_TTL,
        schema=[Field(name=name, dtype=String if kind == "category" else Float64,
                      description=f"Customer attribute {name!r} ({kind}).")
                for name, kind in attributes.items()],
        source=customer_attributes_source(features_dir),
        online=True,
        description="Typed extra columns of the customers table (numbers, yes/no as 1/0, categories).",
        owner=OWNER,
        tags={"domain": "profile", "refresh": "features apply/materialize after an ingest", "pii": "attributes"},
    )


def item_features_view(features_dir: Path) -> FeatureView:
    """Why: the recommender filters and backs off to popular items; it needs category, price,
    availability and recent popularity per item."""
    return FeatureView(
        name=ITEM_VIEW,
        entities=[item],
        ttl=ITEM_TTL,
        schema=[
            Field(name="category", dtype=String, description="Item category ('unknown' if missing)."),
            Field(name="price", dtype=Float64, description="List price (NaN if missing)."),
            Field(name="available", dtype=Int64, description="1 when the item can be sold, else 0."),
            *[Field(name=name, dtype=Int64) for name in ITEM_POPULARITY_FEATURES],
        ],
        source=item_source(features_dir),
        online=True,
        description="Item catalogue data and popularity: purchases, distinct buyers and views over 7/30 days.",
        owner=OWNER,
        tags={"domain": "catalogue", "refresh": "weekly snapshot", "pii": "none"},
    )


# --- feature services ----------------------------------------------------------------------------

def feature_services(activity: FeatureView, profile: FeatureView,
                     attributes: FeatureView | None = None) -> list[FeatureService]:
    """One service per model version: training and serving read the same list.

    ``attributes`` (the customer attribute view, when the customers table has typed extra
    columns) joins ``churn_v1``, so a model trained on a labelled snapshot is served from it.
    """
    churn_v1 = FeatureService(
        name=CHURN_SERVICE,
        features=[activity, profile, *([attributes] if attributes is not None else [])],
        description="What the churn model v1 reads: every activity feature, consent, the profile categoricals "
                    "and the customer attributes (when there are any).",
        owner=OWNER,
        tags={"model": "churn", "version": "1"},
    )
    recommender_v1 = FeatureService(
        name=RECOMMENDER_SERVICE,
        features=[profile, activity[list(RECOMMENDER_ACTIVITY_FEATURES)]],
        description="What the recommender v1 reads per customer: consent, segment attributes and buying breadth.",
        owner=OWNER,
        tags={"model": "recommender", "version": "1"},
    )
    return [churn_v1, recommender_v1]


def all_definitions(features_dir: Path, attributes: Mapping[str, str] | None = None) -> list:
    """Every Feast object of tenure, sources pointing under ``features_dir``.

    ``attributes``: the served customer attributes ``{column: type}`` (none: no attribute view).
    """
    activity = customer_activity_view(features_dir)
    profile = customer_profile_view(features_dir)
    items = item_features_view(features_dir)
    extra = []
    attribute_view = None
    if attributes:
        attribute_view = customer_attributes_view(features_dir, attributes)
        extra = [customer_attributes_source(features_dir), attribute_view]
    return [
        customer,
        item,
        customer_source(features_dir),
        item_source(features_dir),
        customer_activity_push_source(features_dir),
        customer_profile_push_source(features_dir),
        activity,
        profile,
        items,
        *extra,
        *feature_services(activity, profile, attribute_view),
    ]
