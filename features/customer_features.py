"""Per-customer features as of a cut-off time T, for batch tables and for one customer online.

One code path serves both: the batch snapshots call it for 100k customers, the service calls it
for the one customer whose event just arrived, so training and serving cannot disagree.

Time rules
----------
- Only events with ``event_at <= T`` count; an event exactly at T counts.
- A window "Nd" is the half-open interval ``(T - N days, T]``.
- Nothing older than :data:`LOOKBACK_DAYS` before T is read: every feature depends only on the
  customer's events in ``(T - 365 days, T]`` and on the customer row, so an online caller that
  passes at least that much history gets exactly the batch value.
- Customers "known at T" are those with ``signup_at <= T``; others get no row. Events of
  customers missing from ``customers`` are ignored.

Missing values (the churn model trains on exactly these)
--------------------------------------------------------
- Counts and sums are 0 when nothing happened (``purchases_30d = 0``, ``revenue_30d = 0.0``).
- Recency (``days_since_last_*``) is NaN when no such event happened within the look-back.
- Ratios and means are NaN when their denominator is empty (``return_rate_90d``,
  ``avg_basket_90d``, ``resolution_hours_*``); survey answers (``last_nps``, ``last_csat``)
  are NaN when the customer never answered; ``sentiment_30d`` (mean sentiment of the
  customer's ticket and survey texts, -1..1) is NaN without a text in 30 days.
- Trends are 0 when both windows are empty (see :func:`_trend`).
- Categorical profile attributes are strings, ``"unknown"`` when missing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tenure.features.sentiment import NEGATIVE_AT, TEXT_EVENT_TYPES, score_texts

logger = logging.getLogger(__name__)

LOOKBACK_DAYS: int = 365
"""Events older than this before the as-of time never influence a feature."""

_NS_PER_DAY = 86_400 * 10**9
_NS_PER_HOUR = 3_600 * 10**9
_INT64_MIN = np.iinfo(np.int64).min

ACTIVITY_EVENT_TYPES: tuple[str, ...] = ("view", "add_to_cart", "purchase", "session")
"""Event types that count as activity for ``days_since_last_activity``."""

EVENT_COLUMNS_USED: tuple[str, ...] = (
    "customer_id", "event_at", "event_type", "item_id", "quantity", "amount", "nps", "csat", "resolution_hours",
    "text",
)
"""The event columns the customer and item features read (``event_id`` and ``channel`` are not needed)."""

UNKNOWN_CATEGORY = "unknown"
"""Value of a categorical attribute that is missing in the customer or item table."""

CUSTOMER_ACTIVITY_FEATURES: tuple[str, ...] = (
    # recency (days, fractional; NaN = never within the look-back)
    "days_since_last_purchase",
    "days_since_last_session",
    "days_since_last_activity",
    # frequency and monetary value
    "purchases_7d",
    "purchases_30d",
    "purchases_90d",
    "revenue_7d",
    "revenue_30d",
    "revenue_90d",
    # trends: last 30 days against the 30 before, in [-1, 1]
    "purchase_trend_30d",
    "revenue_trend_30d",
    "session_trend_30d",
    # relationship
    "tenure_days",
    "distinct_categories_365d",
    "returns_90d",
    "return_rate_90d",
    "avg_basket_90d",
    # engagement
    "sessions_30d",
    "views_30d",
    "add_to_carts_30d",
    # service
    "tickets_30d",
    "tickets_90d",
    "resolution_hours_30d",
    "resolution_hours_90d",
    "last_nps",
    "last_csat",
    # voice of the customer (features.sentiment): what tickets and survey comments say
    "sentiment_30d",
    "negative_tickets_30d",
)
"""Numeric features computed from events (and ``signup_at``); pushed online after each event."""

CUSTOMER_COUNT_FEATURES: tuple[str, ...] = (
    "purchases_7d",
    "purchases_30d",
    "purchases_90d",
    "distinct_categories_365d",
    "returns_90d",
    "sessions_30d",
    "views_30d",
    "add_to_carts_30d",
    "tickets_30d",
    "tickets_90d",
    "negative_tickets_30d",
)
"""The activity features that are integer counts (int64); the other activity features are float64."""

CUSTOMER_CATEGORICAL_FEATURES: tuple[str, ...] = ("plan", "region", "acquisition_channel")
"""Profile attributes, strings (``"unknown"`` when missing)."""

CUSTOMER_PROFILE_FEATURES: tuple[str, ...] = ("consent_personalization", *CUSTOMER_CATEGORICAL_FEATURES)
"""Features from the customer table: consent (0/1, int64) and the categorical attributes."""

CUSTOMER_NUMERIC_FEATURES: tuple[str, ...] = (*CUSTOMER_ACTIVITY_FEATURES, "consent_personalization")
"""Every numeric feature (activity + consent)."""

CUSTOMER_FEATURE_COLUMNS: tuple[str, ...] = (*CUSTOMER_ACTIVITY_FEATURES, *CUSTOMER_PROFILE_FEATURES)
"""Every customer feature, in output order (after ``customer_id``)."""


def to_utc_timestamp(value: object, name: str = "as_of") -> pd.Timestamp:
    """Parse a time (string, datetime, Timestamp); naive values are taken as UTC.

    Raises
    ------
    ValueError
        When the value cannot be read as a time.
    """
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a time like 2026-06-30 or 2026-06-30T12:00Z, got {value!r}") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name} must be a time, got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _to_ns(values: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch (UTC); NaT becomes INT64_MIN."""
    dt = pd.to_datetime(values, utc=True)
    if isinstance(dt, pd.Series):
        dt = pd.DatetimeIndex(dt)
    return dt.as_unit("ns").asi8


def _codes_for(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Positions of ``ids`` in ``index`` (-1 when absent); fast for categorical columns."""
    if isinstance(ids.dtype, pd.CategoricalDtype):
        cat_pos = index.get_indexer(ids.cat.categories.astype(str))
        codes = ids.cat.codes.to_numpy()
        out = np.where(codes >= 0, cat_pos[np.maximum(codes, 0)], -1)
        return out.astype(np.int64)
    if ids.dtype != object and not isinstance(ids.dtype, pd.StringDtype):
        ids = ids.astype(str)
    return index.get_indexer(ids).astype(np.int64)


@dataclass
class _TypedEvents:
    """Events of one type, sorted by time: parallel arrays."""

    times: np.ndarray  # int64 ns, ascending
    codes: np.ndarray  # int64 customer (or item) positions
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def window(self, start_ns: int, end_ns: int) -> slice:
        """Slice of the events in ``(start_ns, end_ns]``."""
        lo = int(np.searchsorted(self.times, start_ns, side="right"))
        hi = int(np.searchsorted(self.times, end_ns, side="right"))
        return slice(lo, hi)

    def count(self, start_ns: int, end_ns: int, n: int) -> np.ndarray:
        sl = self.window(start_ns, end_ns)
        return np.bincount(self.codes[sl], minlength=n).astype(np.int64)

    def total(self, name: str, start_ns: int, end_ns: int, n: int) -> np.ndarray:
        sl = self.window(start_ns, end_ns)
        return np.bincount(self.codes[sl], weights=self.values[name][sl], minlength=n)

    def last_time(self, start_ns: int, end_ns: int, n: int) -> np.ndarray:
        """Latest event time per customer in the window (INT64_MIN when none)."""
        sl = self.window(start_ns, end_ns)
        out = np.full(n, _INT64_MIN, dtype=np.int64)
        np.maximum.at(out, self.codes[sl], self.times[sl])
        return out

    def last_index(self, start_ns: int, end_ns: int, n: int) -> np.ndarray:
        """Position of each customer's latest event in the window (-1 when none)."""
        sl = self.window(start_ns, end_ns)
        out = np.full(n, -1, dtype=np.int64)
        np.maximum.at(out, self.codes[sl], np.arange(sl.start, sl.stop, dtype=np.int64))
        return out


def _select(events: pd.DataFrame, mask: np.ndarray, codes: np.ndarray, times: np.ndarray,
            value_columns: dict[str, np.ndarray] | None = None, tie_break: np.ndarray | None = None) -> _TypedEvents:
    """Keep the masked rows with a known owner and sort them by time (stable; ``tie_break`` second)."""
    keep = mask & (codes >= 0) & (times != _INT64_MIN)
    idx = np.flatnonzero(keep)
    t = times[idx]
    if tie_break is not None:
        order = np.lexsort((tie_break[idx], t))
    else:
        order = np.argsort(t, kind="stable")
    idx = idx[order]
    values = {name: arr[idx] for name, arr in (value_columns or {}).items()}
    return _TypedEvents(times=times[idx], codes=codes[idx], values=values)


def _column(events: pd.DataFrame, name: str, dtype: type = float) -> np.ndarray:
    """An optional event column as a numpy array (NaN when the column is absent)."""
    if name not in events.columns:
        return np.full(len(events), np.nan, dtype=dtype)
    return pd.to_numeric(events[name], errors="coerce").to_numpy(dtype=dtype, na_value=np.nan)


def _check_columns(frame: pd.DataFrame, required: Iterable[str], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing}; it has {list(frame.columns)}")


class PreparedCustomerEvents:
    """Events split by type and sorted by time once, so many as-of times reuse the work.

    Parameters
    ----------
    events:
        Canonical events (DataFrame, one row per event).
    customers:
        Canonical customers (DataFrame, one row per customer).
    items:
        Canonical items (DataFrame, one row per item); gives categories and prices.
    """

    def __init__(self, events: pd.DataFrame, customers: pd.DataFrame, items: pd.DataFrame) -> None:
        _check_columns(events, ("customer_id", "event_at", "event_type"), "events")
        _check_columns(customers, ("customer_id", "signup_at"), "customers")
        _check_columns(items, ("item_id",), "items")
        customers = customers.drop_duplicates("customer_id", keep="last")
        self.customer_ids = pd.Index(customers["customer_id"].astype(str), name="customer_id")
        self.n = len(self.customer_ids)
        self.signup_ns = _to_ns(customers["signup_at"])
        consent = customers.get("consent_personalization", False)
        self.consent = (
            pd.Series(consent, index=customers.index).astype("boolean").fillna(False).astype(bool).to_numpy().astype(np.int64)
        )
        self.profile = {
            col: (
                customers[col].astype("string").fillna(UNKNOWN_CATEGORY).to_numpy(dtype=object)
                if col in customers.columns
                else np.full(self.n, UNKNOWN_CATEGORY, dtype=object)
            )
            for col in CUSTOMER_CATEGORICAL_FEATURES
        }

        codes = _codes_for(events["customer_id"], self.customer_ids)
        unknown = int((codes < 0).sum())
        if unknown:
            logger.debug("ignoring %d events of customers not in the customer table", unknown)
        times = _to_ns(events["event_at"])
        type_names = ["view", "add_to_cart", "purchase", "return", "session", "support_ticket"]
        etype = _codes_for(events["event_type"], pd.Index(type_names))
        is_type = {name: etype == i for i, name in enumerate(type_names)}

        # purchases: amount (filled from price x quantity) and category code
        item_ids = pd.Index(items["item_id"].astype(str))
        if "item_id" in events.columns:
            item_pos = _codes_for(events["item_id"], item_ids)  # missing ids map to -1
        else:
            item_pos = np.full(len(events), -1, dtype=np.int64)
        price = (pd.to_numeric(items["price"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
                 if "price" in items.columns else np.full(len(items), np.nan))
        cats = items["category"].astype("string") if "category" in items.columns else pd.Series(
            pd.NA, index=items.index, dtype="string")
        cat_codes, _ = pd.factorize(cats, use_na_sentinel=True)
        self.n_categories = int(cat_codes.max()) + 1 if len(cat_codes) else 0
        p = is_type["purchase"]
        amount = _column(events, "amount")
        quantity = _column(events, "quantity")
        quantity = np.where(np.isnan(quantity), 1.0, quantity)
        item_price = np.where(item_pos >= 0, price[np.maximum(item_pos, 0)] if len(price) else np.nan, np.nan)
        filled = np.where(np.isnan(amount), item_price * quantity, amount)
        filled = np.where(np.isnan(filled), 0.0, filled)
        category = np.where(item_pos >= 0, cat_codes[np.maximum(item_pos, 0)] if len(cat_codes) else -1, -1)

        self.purchases = _select(events, p, codes, times, {"amount": filled, "category": category})
        self.returns = _select(events, is_type["return"], codes, times)
        self.sessions = _select(events, is_type["session"], codes, times)
        self.views = _select(events, is_type["view"], codes, times)
        self.carts = _select(events, is_type["add_to_cart"], codes, times)
        activity = is_type["view"] | is_type["add_to_cart"] | p | is_type["session"]
        self.activity = _select(events, activity, codes, times)
        resolution = _column(events, "resolution_hours")
        self.tickets = _select(events, is_type["support_ticket"], codes, times, {"resolution_hours": resolution})
        self.resolved = _select(events, is_type["support_ticket"] & ~np.isnan(resolution), codes, times,
                                {"resolution_hours": resolution})
        # surveys: any event carrying an answer. Answers at the same instant are ordered by value
        # (the higher one counts as the last), so the result never depends on row order and
        # needs no event_id: batch and online agree whatever order their events come in.
        nps = _column(events, "nps")
        csat = _column(events, "csat")
        self.nps = _select(events, ~np.isnan(nps), codes, times, {"nps": nps}, tie_break=nps)
        self.csat = _select(events, ~np.isnan(csat), codes, times, {"csat": csat}, tie_break=csat)
        # voice: sentiment of the texts of tickets and surveys (NaN = no text)
        sentiment = _text_sentiment(events)
        self.voice = _select(events, ~np.isnan(sentiment), codes, times, {"sentiment": sentiment})
        self.negative_tickets = _select(events, is_type["support_ticket"] & (sentiment <= NEGATIVE_AT), codes, times)

    def compute(self, as_of: object) -> pd.DataFrame:
        """Features as of ``as_of``.

        Returns
        -------
        DataFrame, one row per customer with ``signup_at <= as_of`` (sorted by ``customer_id``),
        columns ``customer_id`` + :data:`CUSTOMER_FEATURE_COLUMNS`.
        """
        t = int(to_utc_timestamp(as_of).as_unit("ns").value)
        n = self.n
        day = _NS_PER_DAY
        lookback = t - LOOKBACK_DAYS * day

        def recency(events: _TypedEvents) -> np.ndarray:
            last = events.last_time(lookback, t, n)
            return np.where(last == _INT64_MIN, np.nan, (t - last) / day)

        def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

        cols: dict[str, np.ndarray] = {}
        cols["days_since_last_purchase"] = recency(self.purchases)
        cols["days_since_last_session"] = recency(self.sessions)
        cols["days_since_last_activity"] = recency(self.activity)
        for d in (7, 30, 90):
            cols[f"purchases_{d}d"] = self.purchases.count(t - d * day, t, n)
            cols[f"revenue_{d}d"] = self.purchases.total("amount", t - d * day, t, n)
        prev_purchases = self.purchases.count(t - 60 * day, t - 30 * day, n)
        prev_revenue = self.purchases.total("amount", t - 60 * day, t - 30 * day, n)
        sessions_30 = self.sessions.count(t - 30 * day, t, n)
        prev_sessions = self.sessions.count(t - 60 * day, t - 30 * day, n)
        cols["purchase_trend_30d"] = _trend(cols["purchases_30d"], prev_purchases)
        cols["revenue_trend_30d"] = _trend(cols["revenue_30d"], prev_revenue)
        cols["session_trend_30d"] = _trend(sessions_30, prev_sessions)
        cols["tenure_days"] = (t - self.signup_ns) / day
        cols["distinct_categories_365d"] = self._distinct_categories(lookback, t)
        cols["returns_90d"] = self.returns.count(t - 90 * day, t, n)
        cols["return_rate_90d"] = ratio(cols["returns_90d"], cols["purchases_90d"])
        cols["avg_basket_90d"] = ratio(cols["revenue_90d"], cols["purchases_90d"])
        cols["sessions_30d"] = sessions_30
        cols["views_30d"] = self.views.count(t - 30 * day, t, n)
        cols["add_to_carts_30d"] = self.carts.count(t - 30 * day, t, n)
        for d in (30, 90):
            cols[f"tickets_{d}d"] = self.tickets.count(t - d * day, t, n)
            cols[f"resolution_hours_{d}d"] = ratio(
                self.resolved.total("resolution_hours", t - d * day, t, n),
                self.resolved.count(t - d * day, t, n),
            )
        cols["last_nps"] = self._last_value(self.nps, "nps", lookback, t)
        cols["last_csat"] = self._last_value(self.csat, "csat", lookback, t)
        cols["sentiment_30d"] = ratio(self.voice.total("sentiment", t - 30 * day, t, n),
                                      self.voice.count(t - 30 * day, t, n))
        cols["negative_tickets_30d"] = self.negative_tickets.count(t - 30 * day, t, n)
        cols["consent_personalization"] = self.consent
        for name in CUSTOMER_CATEGORICAL_FEATURES:
            cols[name] = self.profile[name]

        known = (self.signup_ns <= t) & (self.signup_ns != _INT64_MIN)
        ids = self.customer_ids.to_numpy(dtype=object)
        rows = np.flatnonzero(known)
        rows = rows[np.argsort(ids[rows], kind="stable")]  # output sorted by customer_id
        # one DataFrame built from typed arrays: column-by-column assignment costs ~20 ms for
        # the one-customer online path
        data = {"customer_id": ids[rows]}
        for name in CUSTOMER_FEATURE_COLUMNS:
            data[name] = np.asarray(cols[name])[rows].astype(_DTYPES[name], copy=False)
        return pd.DataFrame(data)

    def _distinct_categories(self, start_ns: int, end_ns: int) -> np.ndarray:
        sl = self.purchases.window(start_ns, end_ns)
        cat = self.purchases.values["category"][sl]
        owner = self.purchases.codes[sl]
        ok = cat >= 0
        if not ok.any():
            return np.zeros(self.n, dtype=np.int64)
        pairs = np.unique(owner[ok] * max(self.n_categories, 1) + cat[ok])
        return np.bincount(pairs // max(self.n_categories, 1), minlength=self.n).astype(np.int64)

    def _last_value(self, events: _TypedEvents, name: str, start_ns: int, end_ns: int) -> np.ndarray:
        idx = events.last_index(start_ns, end_ns, self.n)
        values = events.values[name]
        return np.where(idx >= 0, values[np.maximum(idx, 0)] if len(values) else np.nan, np.nan)


def _text_sentiment(events: pd.DataFrame) -> np.ndarray:
    """Sentiment of each event's ``text`` (:func:`features.sentiment.text_sentiment`), NaN where the event
    has no text or is not one of :data:`features.sentiment.TEXT_EVENT_TYPES`."""
    out = np.full(len(events), np.nan)
    if "text" not in events.columns or not len(events):
        return out
    rows = np.flatnonzero(events["event_type"].isin(TEXT_EVENT_TYPES).to_numpy() & events["text"].notna().to_numpy())
    if len(rows):
        out[rows] = score_texts(events["text"].to_numpy(dtype=object)[rows])
    return out


def _trend(recent: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Symmetric relative change ``(recent - previous) / (recent + previous)``, in [-1, 1].

    1 = everything happened in the recent window, -1 = nothing recent but something before,
    0 = no change or both windows empty. Scale-free, so it compares small and big spenders.
    """
    recent = np.asarray(recent, dtype=float)
    previous = np.asarray(previous, dtype=float)
    total = recent + previous
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, (recent - previous) / np.where(total > 0, total, 1.0), 0.0)


_DTYPES: dict[str, type] = {
    **{name: (np.int64 if name in CUSTOMER_COUNT_FEATURES else np.float64) for name in CUSTOMER_ACTIVITY_FEATURES},
    "consent_personalization": np.int64,
    **dict.fromkeys(CUSTOMER_CATEGORICAL_FEATURES, object),
}
"""Output dtypes: int64 counts and consent, float64 other numerics, object strings."""


def compute_customer_features(
    events: pd.DataFrame, customers: pd.DataFrame, items: pd.DataFrame, as_of: object
) -> pd.DataFrame:
    """Features of every customer known at ``as_of`` (one customer online, all in batch).

    Parameters
    ----------
    events:
        Canonical events (DataFrame, one row per event); any number of customers. Only events
        with ``event_at <= as_of`` and newer than :data:`LOOKBACK_DAYS` count.
    customers:
        Canonical customers (DataFrame, one row per customer): the customers to describe.
    items:
        Canonical items (DataFrame, one row per item): categories and prices.
    as_of:
        Cut-off time T (string, datetime or Timestamp; naive = UTC).

    Returns
    -------
    DataFrame, one row per customer with ``signup_at <= as_of``, sorted by ``customer_id``;
    columns ``customer_id`` + :data:`CUSTOMER_FEATURE_COLUMNS`.
    """
    as_of_ts = to_utc_timestamp(as_of)
    return PreparedCustomerEvents(events, customers, items).compute(as_of_ts)


def compute_customer_feature_snapshots(
    events: pd.DataFrame, customers: pd.DataFrame, items: pd.DataFrame, as_of: Sequence[object]
) -> pd.DataFrame:
    """Features at several as-of times, preparing (splitting, sorting) the events once.

    Returns
    -------
    DataFrame, one row per (customer known at T, T), with ``event_timestamp`` = T (UTC) after
    ``customer_id``; rows ordered by T, then ``customer_id``.
    """
    times = sorted({to_utc_timestamp(t) for t in as_of})
    if not times:
        raise ValueError("at least one as-of time is needed, got none")
    prepared = PreparedCustomerEvents(events, customers, items)
    frames = []
    for t in times:
        frame = prepared.compute(t)
        frame.insert(1, "event_timestamp", t)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
