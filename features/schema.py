"""The data contract: canonical column names, dtypes and event types of customers, items, events.

Every room reads these names from here. All ids are strings (Python ``str`` in ``object``
columns), all timestamps are tz-aware UTC (``datetime64[ns, UTC]``), optional numeric event
fields are ``float64`` with NaN meaning "does not apply" (a view has no amount, a survey no item).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tenure.settings import EVENT_TYPES

__all__ = [
    "CUSTOMERS",
    "CUSTOMER_COLUMNS",
    "EVENTS",
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "EXPOSURE_EVENT",
    "IMPRESSION_SEPARATOR",
    "ITEMS",
    "ITEM_COLUMNS",
    "ITEM_EVENT_TYPES",
    "TABLES",
    "TREATMENT_COLUMNS",
    "TREATMENT_EVENT",
    "Column",
    "TableSpec",
    "conform",
    "empty_frame",
]

Kind = Literal["id", "string", "timestamp", "float", "bool"]

ITEM_EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "return")
"""Event types that are about one item (``item_id`` is normally set)."""

EXPOSURE_EVENT = "exposure"
"""A list of recommended items was shown: ``recommendation_id`` and ``impressions`` are required."""
IMPRESSION_SEPARATOR = "|"
"""Joins the item ids of ``impressions`` in tables and files (an item id may not contain it there)."""
TREATMENT_EVENT = "treatment"
"""A customer was put in a campaign's arm (contacted, or held back in a control arm): ``campaign`` and ``arm``
are required, ``channel`` and ``offer`` say what was sent (none for a control arm); experiments/ reads them."""
TREATMENT_COLUMNS: tuple[str, ...] = ("campaign", "arm", "offer")
"""Columns only treatment events carry."""


@dataclass(frozen=True)
class Column:
    """One canonical column.

    Attributes
    ----------
    name: canonical name.
    kind: ``id`` (non-empty string), ``string``, ``timestamp`` (UTC), ``float`` or ``bool``.
    required: the column must be present in every input file.
    nullable: a present column may hold missing values.
    min_value, max_value: inclusive bounds of a ``float`` column (None = unbounded).
    default: value used when an optional column is absent (None = missing).
    description: what it means (rendered in docs/data.md).
    """

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = True
    min_value: float | None = None
    max_value: float | None = None
    default: object = None
    description: str = ""

    @property
    def pandas_dtype(self) -> object:
        """The pandas dtype this column has in canonical frames."""
        return {
            "id": object,
            "string": object,
            "timestamp": pd.DatetimeTZDtype("ns", "UTC"),
            "float": np.float64,
            "bool": bool,
        }[self.kind]


@dataclass(frozen=True)
class TableSpec:
    """The canonical shape of one table.

    Attributes
    ----------
    name: ``customers``, ``items`` or ``events``.
    key: the id column (unique per table; ``event_id`` is the idempotency key).
    columns: canonical columns, in canonical order.
    extra_columns_allowed: whether other columns (attributes) are kept as they come.
    """

    name: str
    key: str
    columns: tuple[Column, ...]
    extra_columns_allowed: bool

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no canonical column {name!r}; it has {list(self.names)}")


CUSTOMERS = TableSpec(
    name="customers",
    key="customer_id",
    extra_columns_allowed=True,
    columns=(
        Column("customer_id", "id", required=True, nullable=False, description="Customer id (string)."),
        Column("signup_at", "timestamp", required=True, nullable=False,
               description="When the customer signed up (UTC)."),
        Column("consent_personalization", "bool", required=True, nullable=False,
               description="May recommendations use this customer's own history?"),
        Column("plan", "string", description="Plan or contract, e.g. free / monthly / annual."),
        Column("region", "string", description="Region."),
        Column("acquisition_channel", "string", description="How the customer was acquired."),
        Column("churned", "bool", description="Churn label, only for snapshot data (no events)."),
    ),
)

ITEMS = TableSpec(
    name="items",
    key="item_id",
    extra_columns_allowed=True,
    columns=(
        Column("item_id", "id", required=True, nullable=False, description="Item id (string)."),
        Column("category", "string", required=True, nullable=False, description="Item category."),
        Column("price", "float", nullable=False, min_value=0.0,
               description="Current list price (>= 0); a file without the column gets NaN, with a warning."),
        Column("available", "bool", nullable=False, default=True,
               description="Can it be recommended now? (default True)."),
    ),
)

EVENTS = TableSpec(
    name="events",
    key="event_id",
    extra_columns_allowed=False,
    columns=(
        Column("event_id", "id", required=True, nullable=False,
               description="Unique id; the idempotency key (a stored id is skipped on re-ingest)."),
        Column("customer_id", "id", required=True, nullable=False,
               description="Who; must exist in customers."),
        Column("event_at", "timestamp", required=True, nullable=False, description="When (UTC)."),
        Column("event_type", "string", required=True, nullable=False,
               description="One of " + ", ".join(EVENT_TYPES) + "."),
        Column("item_id", "id", description="Which item (view/add_to_cart/purchase/return); must exist in items."),
        Column("quantity", "float", min_value=0.0, description="Units (purchase, return, add_to_cart)."),
        Column("amount", "float", min_value=0.0,
               description="Money paid (purchase) or refunded (return), >= 0, in the shop's currency."),
        Column("channel", "string", description="web / app / email / chat / phone ..."),
        Column("nps", "float", min_value=0.0, max_value=10.0, description="Survey: Net Promoter answer 0..10."),
        Column("csat", "float", min_value=1.0, max_value=5.0, description="Survey: satisfaction 1..5."),
        Column("resolution_hours", "float", min_value=0.0,
               description="Support ticket: hours until resolved."),
        Column("rating", "float", min_value=0.0, description="Explicit rating (e.g. MovieLens stars)."),
        Column("ces", "float", min_value=1.0, max_value=7.0,
               description="Survey: customer effort 1 (very hard) .. 7 (very easy)."),
        Column("text", "string", description="Support ticket or survey: what the customer wrote (free text)."),
        Column("recommendation_id", "id",
               description="The /recommend answer this event came from (exposure, and optionally view, "
                           "add_to_cart, purchase); attribution reads it."),
        Column("impressions", "string",
               description="Exposure only: the item ids shown, in order, joined by '|' (a JSON list in POST /events)."),
        Column("campaign", "string", description="Treatment only: the campaign (experiment) name."),
        Column("arm", "string", description="Treatment only: the customer's arm (control arms are recorded too)."),
        Column("offer", "string", description="Treatment only: what was sent (none for a control arm)."),
    ),
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (CUSTOMERS, ITEMS, EVENTS)}

CUSTOMER_COLUMNS: tuple[str, ...] = CUSTOMERS.names
ITEM_COLUMNS: tuple[str, ...] = ITEMS.names
EVENT_COLUMNS: tuple[str, ...] = EVENTS.names


def empty_frame(table: str) -> pd.DataFrame:
    """An empty DataFrame with every canonical column of ``table`` in its canonical dtype."""
    spec = TABLES[table]
    return pd.DataFrame({c.name: pd.Series([], dtype=c.pandas_dtype) for c in spec.columns})


def conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Cast an already-valid frame to canonical dtypes and column order.

    Optional canonical columns that are absent are added (their default, else missing);
    extra columns follow the canonical ones (customers, items) . Values are not validated here:
    use :mod:`features.contract` for untrusted input.

    Parameters
    ----------
    frame: DataFrame, one row per entity or event.
    table: ``customers``, ``items`` or ``events``.

    Returns
    -------
    DataFrame with the canonical columns first, in canonical dtypes.
    """
    spec = TABLES[table]
    out = {}
    n = len(frame)
    for col in spec.columns:
        if col.name in frame.columns:
            values = frame[col.name]
        elif col.default is not None:
            values = pd.Series(np.full(n, col.default), index=frame.index)
        elif col.kind == "bool" and col.name == "churned":
            continue  # only present for snapshot data
        else:
            values = pd.Series(np.full(n, np.nan if col.kind == "float" else None, dtype=object),
                               index=frame.index)
        out[col.name] = _cast(values, col)
    extras = [c for c in frame.columns if c not in spec.names]
    result = pd.DataFrame(out, index=frame.index)
    if extras and spec.extra_columns_allowed:
        result = pd.concat([result, frame[extras]], axis=1)
    return result.reset_index(drop=True)


def _cast(values: pd.Series, col: Column) -> pd.Series:
    if values.dtype == col.pandas_dtype and (
        col.kind not in ("id", "string") or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")
    ):
        return values  # already canonical: no copy
    if col.kind == "timestamp":
        return pd.to_datetime(values, utc=True).astype(col.pandas_dtype)
    if col.kind == "float":
        return pd.to_numeric(values, errors="coerce").astype(np.float64)
    if col.kind == "bool":
        missing = values.isna()
        if missing.any():
            if col.default is not None:
                return values.where(~missing, col.default).astype(bool)
            return values.astype(object).where(~missing, None)  # e.g. churned unknown for some rows
        return values.astype(bool)
    if values.dtype == object:
        return values.where(values.isna(), values.astype(str)).astype(object)
    mask = values.isna()
    return values.astype(str).astype(object).where(~mask, None)
