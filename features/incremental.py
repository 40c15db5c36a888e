"""Per-customer feature state kept up to date event by event (the online twin of ``customer_features``).

:func:`features.customer_features.compute_customer_features` rebuilds features from a table
of events. The service cannot afford that per event, so it keeps, per customer, a small
:class:`CustomerState` and folds each new event into it (:meth:`CustomerState.add`, O(log n)),
then evaluates the features at an as-of time T (:meth:`CustomerState.features`, one pass over
the customer's own events in the look-back). The two must agree: the property test
(``tests/features/test_incremental.py``) holds them equal over random event streams, every
feature, float tolerance.

What the state keeps, and why
-----------------------------
- ``events``: the customer's events that feed a feature, as compact tuples sorted by time
  (:data:`Ev`), pruned to the look-back (:data:`~features.customer_features.LOOKBACK_DAYS`)
  behind the newest time seen. Windows are half-open ``(T - N days, T]`` at an arbitrary T, so
  per-day totals cannot answer the boundary day exactly; the events of the window can, and a
  customer's year of events is small (tens to hundreds of tuples).
- ``ids``: the event ids folded in (replays and the stored history overlapping the log are
  de-duplicated on ``event_id``, as batch ingestion does).
- the profile (signup time, consent, categorical attributes) from the customer table.

Everything here is plain Python (no pandas) so the service's updater thread stays cheap, and
the state serialises to JSON (:meth:`CustomerState.to_json` / :meth:`CustomerState.from_json`)
for the updater's checkpoint.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tenure.features.customer_features import (
    CUSTOMER_CATEGORICAL_FEATURES,
    CUSTOMER_COUNT_FEATURES,
    CUSTOMER_FEATURE_COLUMNS,
    LOOKBACK_DAYS,
    UNKNOWN_CATEGORY,
)
from tenure.features.sentiment import NEGATIVE_AT, TEXT_EVENT_TYPES, text_sentiment

NS_PER_DAY = 86_400 * 10**9

# event kinds that feed a feature (others only matter when they carry a survey answer)
_KINDS = ("view", "add_to_cart", "purchase", "return", "session", "support_ticket")
_ACTIVITY = frozenset(("view", "add_to_cart", "purchase", "session"))
OTHER = "other"


class Ev(NamedTuple):
    """One folded event: time (int ns, UTC), id, kind, and what the features read of it.

    ``amount`` is the purchase amount filled as the batch code fills it (``amount``, else item
    price x quantity, else 0); ``category`` the purchased item's category (None when unknown);
    ``resolution``, ``nps``, ``csat`` NaN when absent; ``item_id`` and ``event_type`` are kept
    for fresh recommendations; ``live`` is true for events that came through the event log
    (the stored history is already in the recommender's training rows); ``sentiment`` the score
    of a ticket's or survey's ``text`` (:mod:`features.sentiment`), NaN without one.
    """

    t: int
    event_id: str
    kind: str
    amount: float
    category: str | None
    resolution: float
    nps: float
    csat: float
    item_id: str | None
    event_type: str
    live: bool
    sentiment: float = math.nan


def parse_time_ns(value: Any) -> int:
    """An ISO 8601 time with offset (or a datetime / pandas Timestamp) as int ns since the epoch, UTC.

    Raises
    ------
    ValueError
        When ``value`` is not an aware time.
    """
    if hasattr(value, "value") and hasattr(value, "tzinfo"):  # pandas Timestamp: exact ns
        if value.tzinfo is None:
            raise ValueError(f"naive time {value!r}: add a UTC offset")
        return int(value.value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        frac_ns = 0
        dot = text.find(".")
        if dot != -1:  # fromisoformat keeps microseconds only: read the fraction to ns ourselves
            end = dot + 1
            while end < len(text) and text[end].isdigit():
                end += 1
            digits = text[dot + 1:end]
            if not digits:
                raise ValueError(f"unparseable time {value!r}")
            frac_ns = int(digits[:9].ljust(9, "0"))
            text = text[:dot] + text[end:]
        parsed = datetime.fromisoformat(text)
    elif isinstance(value, datetime):
        parsed, frac_ns = value.replace(microsecond=0), value.microsecond * 1000
    else:
        raise TypeError(f"not a time: {value!r}")
    if parsed.tzinfo is None:
        raise ValueError(f"naive time {value!r}: add a UTC offset")
    seconds = int((parsed - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * 10**9 + frac_ns


def _num(value: Any) -> float:
    """A float, NaN for None/missing/unparseable (as ``pd.to_numeric(errors='coerce')``)."""
    if value is None:
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


@dataclass
class ItemCatalog:
    """Prices and categories of items, for filling purchase amounts and counting categories."""

    price: dict[str, float] = field(default_factory=dict)
    category: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, items) -> ItemCatalog:
        """From the canonical items table (pandas DataFrame with ``item_id``, ``price``, ``category``)."""
        ids = items["item_id"].astype(str).tolist()
        prices = ([_num(p) for p in items["price"].tolist()] if "price" in items.columns else [math.nan] * len(ids))
        if "category" in items.columns:
            import pandas as pd  # once, when the service starts

            cats = [None if pd.isna(c) else str(c) for c in items["category"].astype("string").tolist()]
        else:
            cats = [None] * len(ids)
        return cls(price=dict(zip(ids, prices)), category=dict(zip(ids, cats)))


@dataclass
class Profile:
    """What the customer table says about one customer."""

    signup_ns: int
    consent: int
    attributes: dict[str, str]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Profile:
        """From one canonical customer row (dict); missing attributes become ``"unknown"``."""
        consent = record.get("consent_personalization")
        consent_ok = consent is not None and not (isinstance(consent, float) and math.isnan(consent)) and \
            str(consent) != "<NA>" and bool(consent)
        attributes = {}
        for name in CUSTOMER_CATEGORICAL_FEATURES:
            value = record.get(name)
            missing = value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "<NA>"
            attributes[name] = UNKNOWN_CATEGORY if missing else str(value)
        return cls(signup_ns=parse_time_ns(record["signup_at"]), consent=int(consent_ok), attributes=attributes)


def profiles_from_frame(customers) -> dict[str, Profile]:
    """``customer_id -> Profile`` from the canonical customers table (last row wins, as in batch)."""
    out: dict[str, Profile] = {}
    for record in customers.to_dict(orient="records"):
        out[str(record["customer_id"])] = Profile.from_record(record)
    return out


def make_event(record: Mapping[str, Any], catalog: ItemCatalog, live: bool) -> Ev:
    """Fold one canonical event (dict with ``event_at`` as ISO string or Timestamp) into an :class:`Ev`."""
    event_type = str(record["event_type"])
    kind = event_type if event_type in _KINDS else OTHER
    item = record.get("item_id")
    item = None if item is None or (isinstance(item, float) and math.isnan(item)) else str(item)
    amount = math.nan
    category = None
    if kind == "purchase":
        amount = _num(record.get("amount"))
        if math.isnan(amount):
            quantity = _num(record.get("quantity"))
            quantity = 1.0 if math.isnan(quantity) else quantity
            amount = catalog.price.get(item, math.nan) * quantity if item is not None else math.nan
        if math.isnan(amount):
            amount = 0.0
        category = catalog.category.get(item) if item is not None else None
    sentiment = text_sentiment(record.get("text")) if event_type in TEXT_EVENT_TYPES else math.nan
    return Ev(t=parse_time_ns(record["event_at"]), event_id=str(record["event_id"]), kind=kind, amount=amount,
              category=category, resolution=_num(record.get("resolution_hours")), nps=_num(record.get("nps")),
              csat=_num(record.get("csat")), item_id=item, event_type=event_type, live=live, sentiment=sentiment)


def _feeds_a_feature(ev: Ev) -> bool:
    return ev.kind != OTHER or not math.isnan(ev.nps) or not math.isnan(ev.csat) or not math.isnan(ev.sentiment)


def _trend(recent: float, previous: float) -> float:
    total = recent + previous
    return (recent - previous) / total if total > 0 else 0.0


@dataclass
class CustomerState:
    """One customer's incremental feature state (see the module docstring).

    Attributes
    ----------
    profile: the customer-table facts.
    events: :class:`Ev` tuples sorted by ``(t, event_id)``.
    ids: the ids of ``events`` (for de-duplication on ``event_id``).
    newest_ns: the newest event time folded in (the pruning clock).
    """

    profile: Profile
    events: list[Ev] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    newest_ns: int = -(2**63)

    def add(self, ev: Ev) -> bool:
        """Fold one event in; False (and nothing changes) when its id was folded in before or it feeds no feature."""
        if ev.event_id in self.ids:
            return False
        if not _feeds_a_feature(ev):  # changes no feature: nothing to keep (nor to de-duplicate)
            return False
        self.ids.add(ev.event_id)
        bisect.insort(self.events, ev, key=lambda e: (e.t, e.event_id))
        self.newest_ns = max(self.newest_ns, ev.t)
        return True

    def prune(self, clock_ns: int) -> None:
        """Drop events that no as-of time at or after ``clock_ns`` can see (older than the look-back)."""
        horizon = clock_ns - (LOOKBACK_DAYS + 1) * NS_PER_DAY
        cut = bisect.bisect_right(self.events, horizon, key=lambda e: e.t)
        if cut:
            for ev in self.events[:cut]:
                self.ids.discard(ev.event_id)
            del self.events[:cut]

    def features(self, as_of_ns: int) -> dict[str, Any] | None:
        """Every feature of :data:`~features.customer_features.CUSTOMER_FEATURE_COLUMNS` at ``as_of_ns``.

        Exactly what ``compute_customer_features`` gives for this customer at that time, given
        the same events (ints for counts and consent, floats with NaN for the rest, strings for
        the attributes); None when the customer signed up after ``as_of_ns``.
        """
        t = as_of_ns
        p = self.profile
        if p.signup_ns > t:
            return None
        day = NS_PER_DAY
        times = [e.t for e in self.events]
        lo = bisect.bisect_right(times, t - LOOKBACK_DAYS * day)
        hi = bisect.bisect_right(times, t)
        start = {d: t - d * day for d in (7, 30, 60, 90)}
        purchases = dict.fromkeys((7, 30, 90), 0)
        revenue = dict.fromkeys((7, 30, 90), 0.0)
        prev_purchases, prev_revenue = 0, 0.0
        sessions_30 = prev_sessions = views_30 = carts_30 = returns_90 = 0
        tickets = {30: 0, 90: 0}
        resolved = {30: [0, 0.0], 90: [0, 0.0]}
        categories: set[str] = set()
        last = {"purchase": None, "session": None, "activity": None}
        last_nps: tuple[int, float] | None = None
        last_csat: tuple[int, float] | None = None
        voice_n, voice_total, negative_tickets = 0, 0.0, 0
        for e in self.events[lo:hi]:
            et, kind = e.t, e.kind
            if not math.isnan(e.sentiment) and et > start[30]:
                voice_n += 1
                voice_total += e.sentiment
                negative_tickets += kind == "support_ticket" and e.sentiment <= NEGATIVE_AT
            if not math.isnan(e.nps) and (last_nps is None or (et, e.nps) >= last_nps):
                last_nps = (et, e.nps)
            if not math.isnan(e.csat) and (last_csat is None or (et, e.csat) >= last_csat):
                last_csat = (et, e.csat)
            if kind in _ACTIVITY:
                last["activity"] = et
            if kind == "purchase":
                last["purchase"] = et
                if e.category is not None:
                    categories.add(e.category)
                for d in (7, 30, 90):
                    if et > start[d]:
                        purchases[d] += 1
                        revenue[d] += e.amount
                if start[60] < et <= start[30]:
                    prev_purchases += 1
                    prev_revenue += e.amount
            elif kind == "session":
                last["session"] = et
                if et > start[30]:
                    sessions_30 += 1
                elif et > start[60]:
                    prev_sessions += 1
            elif kind == "view":
                views_30 += et > start[30]
            elif kind == "add_to_cart":
                carts_30 += et > start[30]
            elif kind == "return":
                returns_90 += et > start[90]
            elif kind == "support_ticket":
                for d in (30, 90):
                    if et > start[d]:
                        tickets[d] += 1
                        if not math.isnan(e.resolution):
                            resolved[d][0] += 1
                            resolved[d][1] += e.resolution

        def recency(when: int | None) -> float:
            return math.nan if when is None else (t - when) / day

        out: dict[str, Any] = {
            "days_since_last_purchase": recency(last["purchase"]),
            "days_since_last_session": recency(last["session"]),
            "days_since_last_activity": recency(last["activity"]),
        }
        for d in (7, 30, 90):
            out[f"purchases_{d}d"] = purchases[d]
            out[f"revenue_{d}d"] = float(revenue[d])
        out["purchase_trend_30d"] = _trend(purchases[30], prev_purchases)
        out["revenue_trend_30d"] = _trend(revenue[30], prev_revenue)
        out["session_trend_30d"] = _trend(sessions_30, prev_sessions)
        out["tenure_days"] = (t - p.signup_ns) / day
        out["distinct_categories_365d"] = len(categories)
        out["returns_90d"] = returns_90
        out["return_rate_90d"] = returns_90 / purchases[90] if purchases[90] else math.nan
        out["avg_basket_90d"] = revenue[90] / purchases[90] if purchases[90] else math.nan
        out["sessions_30d"] = sessions_30
        out["views_30d"] = views_30
        out["add_to_carts_30d"] = carts_30
        for d in (30, 90):
            out[f"tickets_{d}d"] = tickets[d]
            n, total = resolved[d]
            out[f"resolution_hours_{d}d"] = total / n if n else math.nan
        out["last_nps"] = last_nps[1] if last_nps else math.nan
        out["last_csat"] = last_csat[1] if last_csat else math.nan
        out["sentiment_30d"] = voice_total / voice_n if voice_n else math.nan
        out["negative_tickets_30d"] = negative_tickets
        out["consent_personalization"] = p.consent
        out.update(p.attributes)
        return {name: (int(out[name]) if name in CUSTOMER_COUNT_FEATURES else out[name])
                for name in CUSTOMER_FEATURE_COLUMNS}

    def recent_items(self, weights: Mapping[str, float], limit: int = 500) -> list[tuple[str, float]]:
        """``(item_id, weight)`` per live item event (newest ``limit``), for a fresh user vector."""
        out = []
        for e in self.events[::-1]:
            if len(out) >= limit:
                break
            w = weights.get(e.event_type, 0.0)
            if e.live and e.item_id and w:
                out.append((e.item_id, w))
        out.reverse()
        return out

    # --- checkpoint ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A dict for ``json.dumps`` (NaN stays NaN, which Python's json reads back); ids are those of ``events``."""
        return {"signup_ns": self.profile.signup_ns, "consent": self.profile.consent,
                "attributes": self.profile.attributes, "newest_ns": self.newest_ns, "events": self.events}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustomerState:
        """The state :meth:`to_json` wrote."""
        def nan(x):
            return math.nan if x is None else float(x)

        events = [Ev(t=int(e[0]), event_id=e[1], kind=e[2], amount=nan(e[3]), category=e[4], resolution=nan(e[5]),
                     nps=nan(e[6]), csat=nan(e[7]), item_id=e[8], event_type=e[9], live=bool(e[10]),
                     sentiment=nan(e[11]) if len(e) > 11 else math.nan)  # checkpoints before the voice features
                  for e in data["events"]]
        profile = Profile(signup_ns=int(data["signup_ns"]), consent=int(data["consent"]),
                          attributes=dict(data["attributes"]))
        return cls(profile=profile, events=events, ids={e.event_id for e in events}, newest_ns=int(data["newest_ns"]))


def fold(states: dict[str, CustomerState], records: Iterable[Mapping[str, Any]], profiles: Mapping[str, Profile],
         catalog: ItemCatalog, live: bool) -> set[str]:
    """Fold canonical event records into ``states`` (created from ``profiles`` on first sight).

    Events of customers without a profile are ignored (as in batch). Returns the ids of the
    customers whose state changed.
    """
    touched: set[str] = set()
    for record in records:
        cid = str(record["customer_id"])
        state = states.get(cid)
        if state is None:
            profile = profiles.get(cid)
            if profile is None:
                continue
            state = states[cid] = CustomerState(profile=profile)
        if state.add(make_event(record, catalog, live)):
            touched.add(cid)
    return touched
