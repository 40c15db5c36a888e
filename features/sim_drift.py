"""A library of changes for the simulated shop: the world changing, and pipelines breaking.

Two families, each with its ground truth (:class:`DriftTruth`: what changed, from when, which
columns a good detector should name):

*World changes* (the customers behave differently; a model trained before may be wrong):

- ``channel_mix`` — the simulator's own ``drift_at`` change: a new low-engagement acquisition
  channel (``social_video``), prices +20 %, another category mix, a little less buying.
- ``price_shock`` — amounts and list prices x1.5 from the change on; a quarter of purchases
  are not made (price-sensitive demand).
- ``engagement_decline`` — from the change on, 40 % of sessions, views, carts and purchases do
  not happen, and 10 % of the customers alive then leave within 60 days.
- ``seasonality`` — a yearly cycle over the whole period: activity peaks on ``drift_at`` and
  falls by 30 % half a year later. Not harmful: it must not alarm once the reference covers a
  year.
- ``concept`` — same inputs, another relation to churn: 35 % of the annual-plan customers (the
  most loyal before) alive at the change leave within 60 days. Inputs look the same at first.

*Pipeline breaks* (the world is the same, the data is wrong), applied to events or customers
that arrive from the change on (:func:`apply_break` works on one ingestion batch):

- ``nulls`` — ``amount`` of purchases and returns arrives empty.
- ``units`` — ``amount`` arrives in cents (x100).
- ``renamed_category`` — the event ``channel`` ``app`` arrives as ``mobile_app``.
- ``duplicate_events`` — 30 % of events are sent twice, with new ``event_id`` values.
- ``timezone_shift`` — the ``app`` source's ``event_at`` arrives 6 hours late (local time
  written as UTC).

World changes are post-processing of a drift-free simulation (except ``channel_mix``), so the
days before the change are identical to the quiet world of the same seed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tenure.features.simulator import Shop, simulate_shop

logger = logging.getLogger(__name__)

WORLD_KINDS: tuple[str, ...] = ("channel_mix", "price_shock", "engagement_decline", "seasonality", "concept")
PIPELINE_KINDS: tuple[str, ...] = ("nulls", "units", "renamed_category", "duplicate_events", "timezone_shift")
DRIFT_KINDS: tuple[str, ...] = WORLD_KINDS + PIPELINE_KINDS

PRICE_SHOCK_FACTOR = 1.5
PRICE_SHOCK_LOST_PURCHASES = 0.25
ENGAGEMENT_DROP = 0.4
ENGAGEMENT_LEAVERS = 0.10
SEASON_AMPLITUDE = 0.3
CONCEPT_LEAVERS = 0.35
LEAVE_WITHIN_DAYS = 60
DUPLICATE_SHARE = 0.3
TIMEZONE_SHIFT_HOURS = 6
UNITS_FACTOR = 100.0
_ACTIVITY = ("session", "view", "add_to_cart", "purchase")
_DAY = pd.Timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class DriftTruth:
    """What a drift kind changed, from when, and what a detector should name.

    Attributes
    ----------
    kind: one of :data:`DRIFT_KINDS`.
    family: ``world`` (behaviour changed) or ``pipeline`` (the data is broken).
    drift_at: day index of the change (0-based, from the simulation's start).
    starts_at: ISO UTC time of the change.
    harmful: whether an alert is expected (``seasonality`` is not harmful).
    changes: one line per change, in words.
    columns: columns a good alert names (``table.column``).
    """

    kind: str
    family: str
    drift_at: int
    starts_at: str
    harmful: bool
    changes: tuple[str, ...]
    columns: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {**dataclasses.asdict(self), "changes": list(self.changes), "columns": list(self.columns)}


def check_kind(kind: str) -> str:
    """``kind`` if it is a known drift kind, else ValueError naming the known ones."""
    if kind not in DRIFT_KINDS:
        raise ValueError(f"unknown drift kind {kind!r}; expected one of {', '.join(DRIFT_KINDS)}")
    return kind


def drift_truth(kind: str, drift_at: int, start: str | pd.Timestamp) -> DriftTruth:
    """The ground truth of ``kind`` starting on day ``drift_at`` of a simulation from ``start``."""
    check_kind(kind)
    starts = _utc_day(start) + drift_at * _DAY
    table: dict[str, tuple[bool, tuple[str, ...], tuple[str, ...]]] = {
        "channel_mix": (True, (("40% of new customers come from acquisition channel social_video (half the "
                                "engagement, much higher churn)"), "prices +20%", "browsing moves to rare categories",
                               "buying 15% less likely"), ("customers.acquisition_channel",)),
        "price_shock": (True, (f"amounts and list prices x{PRICE_SHOCK_FACTOR}",
                               f"{PRICE_SHOCK_LOST_PURCHASES:.0%} of purchases not made"),
                        ("events.amount",)),
        "engagement_decline": (True, (f"{ENGAGEMENT_DROP:.0%} of sessions, views, carts and purchases do not happen",
                                      f"{ENGAGEMENT_LEAVERS:.0%} of alive customers leave within {LEAVE_WITHIN_DAYS} days"),
                               ("events.session", "events.view")),
        "seasonality": (False, ((f"yearly cycle: activity peaks on day {drift_at}, "
                                 f"{SEASON_AMPLITUDE:.0%} lower half a year later (whole period)"),),
                        ()),
        "concept": (True, ((f"{CONCEPT_LEAVERS:.0%} of annual-plan customers alive at the change leave within "
                            f"{LEAVE_WITHIN_DAYS} days (the loyal segment churns; inputs unchanged at first)"),),
                    ("customers.plan",)),
        "nulls": (True, ("events.amount of purchases and returns arrives empty",), ("events.amount",)),
        "units": (True, (f"events.amount arrives x{UNITS_FACTOR:.0f} (cents instead of euros)",), ("events.amount",)),
        "renamed_category": (True, ("events.channel 'app' arrives as 'mobile_app'",), ("events.channel",)),
        "duplicate_events": (True, (f"{DUPLICATE_SHARE:.0%} of events sent twice with new event ids",),
                             ("events.event_id",)),
        "timezone_shift": (True, ((f"event_at of the 'app' source arrives {TIMEZONE_SHIFT_HOURS} h late "
                                   "(local time written as UTC)"),), ("events.event_at",)),
    }
    harmful, changes, columns = table[kind]
    family = "world" if kind in WORLD_KINDS else "pipeline"
    return DriftTruth(kind, family, int(drift_at), starts.isoformat(), harmful, changes, columns)


def simulate_drifted_shop(
    n_customers: int,
    n_items: int,
    days: int,
    seed: int,
    kind: str,
    drift_at: int,
    start: str = "2026-01-01",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Shop, DriftTruth]:
    """Simulate a shop whose world changes, or whose pipeline breaks, on day ``drift_at``.

    Parameters
    ----------
    n_customers, n_items, days, seed, start, progress: as :func:`tenure.features.simulator.simulate_shop`.
    kind: one of :data:`DRIFT_KINDS`.
    drift_at: day index (0-based) of the change, ``0 <= drift_at < days``.

    Returns
    -------
    (Shop, DriftTruth): the tables as a source would deliver them (pipeline breaks applied to
    the rows from the change on) and the ground truth. ``shop.truth`` has the customers'
    ``left_at`` after the change (world kinds that make customers leave update it).
    """
    check_kind(kind)
    if not 0 <= drift_at < days:
        raise ValueError(f"drift_at must be a day in 0..{days - 1}, got {drift_at}")
    truth = drift_truth(kind, drift_at, start)
    if kind == "channel_mix":
        return simulate_shop(n_customers, n_items, days, seed, start=start, drift_at=drift_at,
                             progress=progress), truth
    shop = simulate_shop(n_customers, n_items, days, seed, start=start, drift_at=None, progress=progress)
    since = pd.Timestamp(truth.starts_at)
    rng = np.random.default_rng([seed, zlib.crc32(kind.encode())])
    if kind in PIPELINE_KINDS:
        events, customers = apply_break(shop.events, shop.customers, kind, since, seed)
        return dataclasses.replace(shop, events=events, customers=customers), truth
    if kind == "price_shock":
        shop = _price_shock(shop, since, rng)
    elif kind == "engagement_decline":
        shop = _engagement_decline(shop, since, rng)
    elif kind == "seasonality":
        shop = _seasonality(shop, since, rng)
    else:
        shop = _concept(shop, since, rng)
    logger.info("drift kind %s from %s: %d events", kind, since.date(), len(shop.events))
    return shop, truth


def apply_break(
    events: pd.DataFrame,
    customers: pd.DataFrame | None,
    kind: str,
    since: pd.Timestamp,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Break the rows that arrive from ``since`` on, as a broken upstream pipeline would.

    Pure: returns new frames, the inputs are not changed. Events are selected by their true
    ``event_at`` (before any shift).

    Parameters
    ----------
    events: canonical events (one row per event).
    customers: canonical customers, or None (returned as given: every break is in the events).
    kind: one of :data:`PIPELINE_KINDS`.
    since: UTC time from which rows are broken.
    seed: seeds the choice of duplicated events.

    Returns
    -------
    (events, customers) as delivered.
    """
    if kind not in PIPELINE_KINDS:
        raise ValueError(f"{kind!r} is no pipeline break; expected one of {', '.join(PIPELINE_KINDS)}")
    since = _utc(since)
    events = events.copy()
    late = (events["event_at"] >= since).to_numpy()
    if kind in ("nulls", "units"):
        money = late & events["event_type"].isin(["purchase", "return"]).to_numpy()
        amount = events["amount"].to_numpy(dtype=float, copy=True)
        amount[money] = np.nan if kind == "nulls" else np.round(amount[money] * UNITS_FACTOR, 2)
        events["amount"] = amount
    elif kind == "renamed_category":
        app = late & (events["channel"] == "app").to_numpy()
        events.loc[app, "channel"] = "mobile_app"
    elif kind == "duplicate_events":
        rng = np.random.default_rng([seed, zlib.crc32(b"duplicate_events")])
        pick = np.flatnonzero(late & (rng.random(len(events)) < DUPLICATE_SHARE))
        copies = events.iloc[pick].copy()
        copies["event_id"] = copies["event_id"].astype(str) + "-resent"
        events = pd.concat([events, copies], ignore_index=True).sort_values("event_at", kind="stable")
        events = events.reset_index(drop=True)
    else:  # timezone_shift
        app = late & (events["channel"] == "app").to_numpy()
        events.loc[app, "event_at"] = events.loc[app, "event_at"] + pd.Timedelta(hours=TIMEZONE_SHIFT_HOURS)
    return events, customers


def write_truth(truth: DriftTruth, path: str | os.PathLike) -> Path:
    """Write the ground truth as JSON (atomically); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(truth.as_dict(), indent=2) + "\n")
    tmp.replace(path)
    return path


# ----------------------------------------------------------------- world changes (pure)
def _price_shock(shop: Shop, since: pd.Timestamp, rng: np.random.Generator) -> Shop:
    events = shop.events
    late = (events["event_at"] >= since).to_numpy()
    lost = late & (events["event_type"] == "purchase").to_numpy() & (rng.random(len(events)) < PRICE_SHOCK_LOST_PURCHASES)
    events = events.loc[~lost].copy()
    late = (events["event_at"] >= since).to_numpy()
    money = late & events["event_type"].isin(["purchase", "return"]).to_numpy()
    amount = events["amount"].to_numpy(dtype=float, copy=True)
    amount[money] = np.round(amount[money] * PRICE_SHOCK_FACTOR, 2)
    events["amount"] = amount
    items = shop.items.copy()
    items["price"] = np.round(items["price"] * PRICE_SHOCK_FACTOR, 2)
    return dataclasses.replace(shop, events=events.reset_index(drop=True), items=items)


def _engagement_decline(shop: Shop, since: pd.Timestamp, rng: np.random.Generator) -> Shop:
    events = shop.events
    late = (events["event_at"] >= since).to_numpy()
    activity = events["event_type"].isin(_ACTIVITY).to_numpy()
    dropped = late & activity & (rng.random(len(events)) < ENGAGEMENT_DROP)
    shop = dataclasses.replace(shop, events=events.loc[~dropped].reset_index(drop=True))
    alive = _alive_at(shop, since)
    leavers = alive[rng.random(len(alive)) < ENGAGEMENT_LEAVERS]
    return _leave(shop, leavers, since, rng)


def _seasonality(shop: Shop, since: pd.Timestamp, rng: np.random.Generator) -> Shop:
    events = shop.events
    day = (events["event_at"] - since) / _DAY
    keep_p = 1.0 - SEASON_AMPLITUDE * (1.0 - np.cos(2 * np.pi * day.to_numpy(dtype=float) / 365.0)) / 2.0
    activity = events["event_type"].isin(_ACTIVITY).to_numpy()
    dropped = activity & (rng.random(len(events)) >= keep_p)
    return dataclasses.replace(shop, events=events.loc[~dropped].reset_index(drop=True))


def _concept(shop: Shop, since: pd.Timestamp, rng: np.random.Generator) -> Shop:
    alive = _alive_at(shop, since)
    plan = shop.customers.set_index("customer_id")["plan"].reindex(alive).to_numpy()
    annual = alive[plan == "annual"]
    leavers = annual[rng.random(len(annual)) < CONCEPT_LEAVERS]
    return _leave(shop, leavers, since, rng)


def _alive_at(shop: Shop, since: pd.Timestamp) -> np.ndarray:
    """Customers signed up before ``since`` who have not left by then (ground truth), sorted."""
    truth = shop.truth.set_index("customer_id")
    signed = shop.customers.set_index("customer_id")["signup_at"] < since
    left = truth["left_at"].reindex(signed.index)
    alive = signed & (left.isna() | (left >= since))
    return np.sort(alive.index[alive.to_numpy()].to_numpy(dtype=object))


def _leave(shop: Shop, leavers: np.ndarray, since: pd.Timestamp, rng: np.random.Generator) -> Shop:
    """``leavers`` stop all activity on a day drawn uniformly in the next LEAVE_WITHIN_DAYS days."""
    if not len(leavers):
        return shop
    leave_at = pd.Series(since + pd.to_timedelta(rng.integers(1, LEAVE_WITHIN_DAYS + 1, len(leavers)), unit="D"),
                         index=pd.Index(leavers, name="customer_id"))
    events = shop.events
    when = events["customer_id"].map(leave_at)
    gone = when.notna().to_numpy() & (events["event_at"] >= when).to_numpy()
    truth = shop.truth.copy()
    new_left = truth["customer_id"].map(leave_at)
    earlier = new_left.notna() & (truth["left_at"].isna() | (new_left < truth["left_at"]))
    truth.loc[earlier, "left_at"] = new_left[earlier]
    truth.loc[earlier, "decided_at"] = new_left[earlier]
    return dataclasses.replace(shop, events=events.loc[~gone].reset_index(drop=True), truth=truth)


def _utc(value: object) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_day(value: object) -> pd.Timestamp:
    return _utc(value).normalize()
