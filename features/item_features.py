"""Per-item features as of a cut-off time T: catalogue attributes and recent popularity.

Same time rules as the customer features: only events with ``event_at <= T`` count (an event
exactly at T counts), a window "Nd" is ``(T - N days, T]``. Counts are 0 when nothing happened;
``category`` is ``"unknown"`` when missing and ``price`` NaN when missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tenure.features.customer_features import (
    UNKNOWN_CATEGORY,
    _check_columns,
    _codes_for,
    _select,
    _to_ns,
    to_utc_timestamp,
)

ITEM_POPULARITY_FEATURES: tuple[str, ...] = (
    "item_purchases_7d",
    "item_purchases_30d",
    "item_buyers_30d",
    "item_views_7d",
    "item_views_30d",
)
"""Popularity counts (int64): events, and distinct buyers, in the last 7/30 days."""

ITEM_CATALOGUE_FEATURES: tuple[str, ...] = ("category", "price", "available")
"""From the item table: ``category`` (string), ``price`` (float64), ``available`` (0/1, int64)."""

ITEM_FEATURE_COLUMNS: tuple[str, ...] = (*ITEM_CATALOGUE_FEATURES, *ITEM_POPULARITY_FEATURES)
"""Every item feature, in output order (after ``item_id``)."""


class PreparedItemEvents:
    """Purchases and views split and sorted by time once, for many as-of times.

    Parameters
    ----------
    events:
        Canonical events (DataFrame, one row per event).
    items:
        Canonical items (DataFrame, one row per item).
    """

    def __init__(self, events: pd.DataFrame, items: pd.DataFrame) -> None:
        _check_columns(events, ("customer_id", "event_at", "event_type", "item_id"), "events")
        _check_columns(items, ("item_id",), "items")
        items = items.drop_duplicates("item_id", keep="last")
        self.item_ids = pd.Index(items["item_id"].astype(str), name="item_id")
        self.n = len(self.item_ids)
        self.category = (items["category"].astype("string").fillna(UNKNOWN_CATEGORY).to_numpy(dtype=object)
                         if "category" in items.columns else np.full(self.n, UNKNOWN_CATEGORY, dtype=object))
        self.price = (pd.to_numeric(items["price"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                      if "price" in items.columns else np.full(self.n, np.nan))
        self.available = (items["available"].astype("boolean").fillna(True).astype(bool).to_numpy().astype(np.int64)
                          if "available" in items.columns else np.ones(self.n, dtype=np.int64))
        codes = _codes_for(events["item_id"], self.item_ids)
        times = _to_ns(events["event_at"])
        etype = _codes_for(events["event_type"], pd.Index(["purchase", "view"]))
        customer, _ = pd.factorize(events["customer_id"])
        self._n_customers = int(customer.max()) + 1 if len(customer) else 1
        self.purchases = _select(events, (etype == 0) & (customer >= 0), codes, times, {"customer": customer.astype(np.int64)})
        self.views = _select(events, etype == 1, codes, times)

    def compute(self, as_of: object) -> pd.DataFrame:
        """Item features as of ``as_of``.

        Returns
        -------
        DataFrame, one row per item (sorted by ``item_id``), columns ``item_id`` +
        :data:`ITEM_FEATURE_COLUMNS`.
        """
        t = int(to_utc_timestamp(as_of).as_unit("ns").value)
        day = 86_400 * 10**9
        n = self.n
        frame = pd.DataFrame({"item_id": self.item_ids.to_numpy(dtype=object)})
        frame["category"] = self.category
        frame["price"] = self.price
        frame["available"] = self.available
        frame["item_purchases_7d"] = self.purchases.count(t - 7 * day, t, n)
        frame["item_purchases_30d"] = self.purchases.count(t - 30 * day, t, n)
        sl = self.purchases.window(t - 30 * day, t)
        width = max(self._n_customers, 1)
        pairs = np.unique(self.purchases.codes[sl] * width + self.purchases.values["customer"][sl])
        frame["item_buyers_30d"] = np.bincount(pairs // width, minlength=n).astype(np.int64)
        frame["item_views_7d"] = self.views.count(t - 7 * day, t, n)
        frame["item_views_30d"] = self.views.count(t - 30 * day, t, n)
        return frame.sort_values("item_id", kind="stable").reset_index(drop=True)


def compute_item_features(events: pd.DataFrame, items: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """Features of every item as of ``as_of``.

    Parameters
    ----------
    events:
        Canonical events (DataFrame, one row per event).
    items:
        Canonical items (DataFrame, one row per item).
    as_of:
        Cut-off time T (string, datetime or Timestamp; naive = UTC).

    Returns
    -------
    DataFrame, one row per item, sorted by ``item_id``; columns ``item_id`` +
    :data:`ITEM_FEATURE_COLUMNS`.
    """
    as_of_ts = to_utc_timestamp(as_of)
    return PreparedItemEvents(events, items).compute(as_of_ts)


def compute_item_feature_snapshots(events: pd.DataFrame, items: pd.DataFrame, as_of: Sequence[object]) -> pd.DataFrame:
    """Item features at several as-of times, preparing the events once.

    Returns
    -------
    DataFrame, one row per (item, T), ``event_timestamp`` = T after ``item_id``.
    """
    times = sorted({to_utc_timestamp(t) for t in as_of})
    if not times:
        raise ValueError("at least one as-of time is needed, got none")
    prepared = PreparedItemEvents(events, items)
    frames = []
    for t in times:
        frame = prepared.compute(t)
        frame.insert(1, "event_timestamp", t)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


__all__ = [
    "ITEM_CATALOGUE_FEATURES",
    "ITEM_FEATURE_COLUMNS",
    "ITEM_POPULARITY_FEATURES",
    "UNKNOWN_CATEGORY",
    "compute_item_feature_snapshots",
    "compute_item_features",
]
