"""A seeded simulated shop (customers, items, events in the canonical shape) for demos, tests, benchmarks.

The world, in short: customers sign up across the period with a plan, region and acquisition
channel; each has latent tastes over categories, a preferred price tier, an engagement level
that may decay, and a satisfaction level that support tickets move. Sessions lead to views,
views to add-to-carts, carts to purchases (a funnel); some purchases are returned; consumable
categories are rebought on a personal rhythm. Every day each active customer may decide to
leave (a hazard that grows with low engagement, declining engagement, poor support, low
satisfaction, the plan and the channel); most leavers fade for a few weeks before their last
activity, some leave abruptly, and subscribers usually send ``subscription_cancel``.
``drift_at`` changes the world from that day on (see :func:`simulate_shop`).

Vectorised numpy: one loop over days (vector operations over customers), none over events.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tenure.features.schema import conform

logger = logging.getLogger(__name__)

_SECONDS_PER_DAY = 86_400

# name, consumable (rebought on a rhythm), typical price, return rate
_CATEGORIES: tuple[tuple[str, bool, float, float], ...] = (
    ("coffee", True, 12.0, 0.01),
    ("books", False, 18.0, 0.03),
    ("fashion", False, 45.0, 0.20),
    ("electronics", False, 160.0, 0.08),
    ("pet_food", True, 25.0, 0.01),
    ("home", False, 55.0, 0.05),
    ("toys", False, 30.0, 0.05),
    ("skincare", True, 22.0, 0.03),
    ("sports", False, 60.0, 0.07),
    ("kitchen", False, 40.0, 0.05),
    ("vitamins", True, 18.0, 0.01),
    ("garden", False, 35.0, 0.04),
    ("music", False, 15.0, 0.02),
    ("games", False, 50.0, 0.04),
    ("cleaning", True, 9.0, 0.01),
    ("outdoor", False, 70.0, 0.06),
    ("office", False, 25.0, 0.03),
    ("baby", False, 30.0, 0.05),
    ("beauty", False, 28.0, 0.04),
    ("tools", False, 65.0, 0.04),
)
_TIER_PRICE = np.array([0.6, 1.0, 1.8])
_PLANS = ("free", "monthly", "annual")
_PLAN_P = (0.5, 0.35, 0.15)
_PLAN_ENGAGEMENT = np.array([0.8, 1.1, 1.3])
_PLAN_HAZARD = np.array([0.3, 0.0, -0.8])
_REGIONS = ("north", "south", "east", "west")
_REGION_P = (0.3, 0.25, 0.25, 0.2)
_REGION_SLOW_SUPPORT = np.array([0.0, 0.2, 0.7, 0.0])  # log-hours added to resolution time
_CHANNELS = ("organic", "paid_search", "paid_social", "referral", "email", "social_video")
_CHANNEL_P = (0.35, 0.25, 0.2, 0.12, 0.08, 0.0)
_CHANNEL_ENGAGEMENT = np.array([1.0, 0.9, 0.75, 1.3, 1.1, 0.5])
_CHANNEL_HAZARD = np.array([0.0, 0.1, 0.3, -0.3, -0.1, 0.9])
_DRIFT_CHANNEL = 5  # social_video: appears only from drift_at on
_DRIFT_CHANNEL_SHARE = 0.4
_DRIFT_PRICE_FACTOR = 1.2
_DEVICES = ("web", "app")
_EVENT_TYPE_ORDER = ("session", "view", "add_to_cart", "purchase", "return", "support_ticket",
                     "survey", "subscription_cancel")
_EVENT_CHANNELS = ("web", "app", "email", "chat", "phone")

# base rates
_BASE_SESSIONS_PER_DAY = 0.12
_MONTHLY_CHURN = 0.05
_ABRUPT_SHARE = 0.3


@dataclass
class Shop:
    """A simulated shop in the canonical shape.

    Attributes
    ----------
    customers: DataFrame, one row per customer (canonical customer columns).
    items: DataFrame, one row per item (canonical item columns).
    events: DataFrame, one row per event, sorted by ``event_at`` (canonical event columns).
    truth: DataFrame, one row per customer: ``customer_id``, ``decided_at`` (when the customer
        decided to leave, NaT if never), ``left_at`` (day of leaving, NaT if still a customer at
        the end), ``cancelled`` (sent ``subscription_cancel``). Not part of the data contract;
        for tests and benchmarks only.
    campaign_truth: DataFrame, one row per customer in the simulated campaign (empty without one):
        arm, segment and true effect (``features/sim_campaigns.py``); for tests and benchmarks only.
    """

    customers: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame = field(default_factory=pd.DataFrame)
    campaign_truth: pd.DataFrame = field(default_factory=pd.DataFrame)


def _check_args(n_customers: int, n_items: int, days: int, drift_at: int | None) -> None:
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    if n_items < 4:
        raise ValueError(f"n_items must be at least 4 (one per category), got {n_items}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if drift_at is not None and not 0 <= drift_at < days:
        raise ValueError(f"drift_at must be a day in 0..{days - 1} (or None), got {drift_at}")


class _ItemSampler:
    """Draws items by (category, tier) with power-law popularity inside each group, vectorised.

    Groups are laid out one after the other in one sorted array whose key is
    ``group + cumulative share inside the group``; a draw ``group + u`` is one ``searchsorted``.
    """

    def __init__(self, category: np.ndarray, tier: np.ndarray, weight: np.ndarray, n_categories: int):
        n_tiers = len(_TIER_PRICE)
        # groups 0 .. C*T-1 are (category, tier); C*T + c is "any tier of category c"
        group_of_item = category * n_tiers + tier
        keys, members = [], []
        self.group_id = np.full((n_categories, n_tiers), -1, dtype=np.int64)
        gid = 0
        for c in range(n_categories):
            for t in range(n_tiers):
                idx = np.flatnonzero(group_of_item == c * n_tiers + t)
                if len(idx):
                    self.group_id[c, t] = gid
                    keys.append(self._keys(gid, weight[idx]))
                    members.append(idx)
                    gid += 1
        self.any_tier = np.empty(n_categories, dtype=np.int64)
        for c in range(n_categories):
            idx = np.flatnonzero(category == c)
            self.any_tier[c] = gid
            keys.append(self._keys(gid, weight[idx]))
            members.append(idx)
            gid += 1
        self.keys = np.concatenate(keys)
        self.members = np.concatenate(members)

    @staticmethod
    def _keys(gid: int, w: np.ndarray) -> np.ndarray:
        cum = np.cumsum(w) / w.sum()
        cum[-1] = 1.0
        return gid + cum

    def draw(self, category: np.ndarray, tier: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gid = self.group_id[category, tier]
        gid = np.where(gid >= 0, gid, self.any_tier[category])
        u = rng.random(len(category)) * (1 - 1e-12)
        pos = np.searchsorted(self.keys, gid + u, side="right")
        return self.members[np.minimum(pos, len(self.members) - 1)]


def _draw_vector(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn from the probability vector ``p`` for uniform numbers ``u``."""
    cum = np.cumsum(p)
    cum[-1] = 1.0
    return np.minimum(np.searchsorted(cum, u, side="right"), len(p) - 1)


def _draw_rows(cum: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per requested row of a row-wise cumulative matrix, vectorised."""
    n_cols = cum.shape[1]
    flat = (np.arange(cum.shape[0])[:, None] + cum).ravel()
    u = rng.random(len(rows)) * (1 - 1e-12)
    pos = np.searchsorted(flat, rows + u, side="right")
    return np.minimum(pos - rows * n_cols, n_cols - 1)


def simulate_shop(
    n_customers: int,
    n_items: int,
    days: int,
    seed: int,
    start: str = "2026-01-01",
    drift_at: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    campaign=None,
) -> Shop:
    """Simulate a shop and return its canonical tables.

    Parameters
    ----------
    n_customers: customers in total (about half exist before ``start``, the rest sign up
        evenly across the period).
    n_items: items in the catalogue (at least 4).
    days: length of the simulated period in days, from ``start`` (00:00 UTC).
    seed: the same seed gives identical frames.
    start: first simulated day (UTC), e.g. ``"2026-01-01"``.
    drift_at: day index (0-based) from which the world changes, or None for no drift:
        prices rise by 20% (``amount`` of purchases and returns, and the final list price);
        40% of customers signing up from then on come from a new acquisition channel
        ``social_video`` (half the engagement, much higher churn); the category mix shifts
        (exploration browsing moves to categories that were rare before); buying becomes a
        little less likely and subscribers on monthly plans churn more (price sensitivity).
    progress: optional callback ``(days_done, days)`` called once a simulated day.
    campaign: optional :class:`tenure.features.sim_campaigns.CampaignSpec`: a retention campaign
        with a known, uneven effect (treatment events in ``events``, its truth in ``campaign_truth``).

    Returns
    -------
    Shop with ``customers`` (one row per customer), ``items`` (one row per item), ``events``
    (one row per event, sorted by time) and ``truth`` (ground truth, not part of the contract).
    """
    _check_args(n_customers, n_items, days, drift_at)
    rng = np.random.default_rng(seed)

    def streams(name: str) -> np.random.Generator:
        """A generator of its own for each draw after the daily loop (stable under drift)."""
        return np.random.default_rng([seed, zlib.crc32(name.encode())])

    start_ts = pd.Timestamp(start)
    start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    start_ts = start_ts.normalize()
    end_sec = days * _SECONDS_PER_DAY
    drift_day = days if drift_at is None else int(drift_at)

    # ---------------------------------------------------------------- items
    n_cat = int(min(len(_CATEGORIES), max(4, n_items // 25)))
    cat_names = np.array([c[0] for c in _CATEGORIES[:n_cat]], dtype=object)
    consumable = np.array([c[1] for c in _CATEGORIES[:n_cat]])
    cat_price = np.array([c[2] for c in _CATEGORIES[:n_cat]])
    cat_return = np.array([c[3] for c in _CATEGORIES[:n_cat]])
    cat_pop = rng.dirichlet(np.full(n_cat, 2.0))  # global category popularity
    item_cat = np.concatenate([np.arange(n_cat), rng.choice(n_cat, n_items - n_cat, p=cat_pop)])
    item_cat = rng.permutation(item_cat)
    item_tier = rng.choice(3, n_items, p=[0.4, 0.4, 0.2])
    base_price = np.round(cat_price[item_cat] * _TIER_PRICE[item_tier] * rng.lognormal(0, 0.3, n_items), 2)
    base_price = np.maximum(base_price, 0.5)
    rank = rng.permutation(n_items) + 1
    item_weight = rank.astype(float) ** -1.1  # power-law popularity
    sampler = _ItemSampler(item_cat, item_tier, item_weight, n_cat)
    # after drift the browsing mix moves to the categories that were least popular
    post_pop = (1.0 / cat_pop) ** 1.5
    post_pop /= post_pop.sum()

    # ---------------------------------------------------------------- customers
    n = n_customers
    existing = rng.random(n) < 0.5
    signup_day = np.where(existing, -rng.uniform(1, 730, n), rng.uniform(0, days, n))
    first_day = np.where(signup_day < 0, 0, np.floor(signup_day).astype(np.int64) + 1)
    plan = rng.choice(3, n, p=_PLAN_P)
    region = rng.choice(4, n, p=_REGION_P)
    channel = rng.choice(len(_CHANNELS), n, p=_CHANNEL_P)
    if drift_at is not None:
        new_channel = (signup_day >= drift_day) & (rng.random(n) < _DRIFT_CHANNEL_SHARE)
        channel = np.where(new_channel, _DRIFT_CHANNEL, channel)
    else:
        rng.random(n)  # keep the random stream aligned with the drifting world
    engagement0 = np.minimum(
        rng.lognormal(np.log(_BASE_SESSIONS_PER_DAY), 0.9, n) * _PLAN_ENGAGEMENT[plan]
        * _CHANNEL_ENGAGEMENT[channel], 2.0)
    decay = np.where(rng.random(n) < 0.3, rng.uniform(0.003, 0.015, n), 0.0)
    buy_propensity = np.clip(rng.lognormal(0, 0.4, n), 0.2, 4.0)
    taste = rng.gamma(np.maximum(0.6 * cat_pop * n_cat, 0.05), size=(n, n_cat))
    taste /= taste.sum(axis=1, keepdims=True)
    taste_cum = np.cumsum(taste, axis=1)
    taste_cum[:, -1] = 1.0
    tier_pref = np.where(plan == 2, rng.choice(3, n, p=[0.2, 0.4, 0.4]),
                         np.where(plan == 0, rng.choice(3, n, p=[0.6, 0.3, 0.1]), rng.choice(3, n)))
    consent = rng.random(n) >= 0.03
    device = rng.choice(2, n, p=[0.55, 0.45])
    sat0 = rng.normal(0.0, 0.7, n) - 0.3 * (channel == _DRIFT_CHANNEL)
    sat = sat0.copy()
    # consumable staple: one item rebought every `period` days
    cons_cats = np.flatnonzero(consumable)
    if len(cons_cats):
        cons_taste = taste[:, cons_cats]
        staple_cat = cons_cats[np.argmax(cons_taste, axis=1)]
        has_staple = cons_taste.max(axis=1) > 0.1
        staple_item = sampler.draw(staple_cat, tier_pref, rng)
    else:  # pragma: no cover - every catalogue has coffee
        has_staple = np.zeros(n, dtype=bool)
        staple_item = np.zeros(n, dtype=np.int64)
    period = rng.integers(10, 41, n)
    phase = rng.integers(0, 41, n)

    # ---------------------------------------------------------------- daily loop
    run = None  # a retention campaign with a known effect (features/sim_campaigns.py)
    if campaign is not None:
        from tenure.features.sim_campaigns import CampaignRun

        campaign.check(days)
        run = CampaignRun(campaign, seed, engagement0, decay, first_day, has_staple, period, phase)
    status = np.zeros(n, dtype=np.int8)  # 0 active (once signed up), 1 fading, 2 gone
    decided = np.full(n, -1, dtype=np.int64)
    fade_len = np.zeros(n)
    left = np.full(n, -1, dtype=np.int64)
    cancelled = np.zeros(n, dtype=bool)
    daily_h0 = -np.log(1 - _MONTHLY_CHURN) / 30
    log_eng_rel = np.log(engagement0 / _BASE_SESSIONS_PER_DAY)

    rec_cust, rec_day, rec_sess, rec_views, rec_carts, rec_buys = [], [], [], [], [], []
    rebuy_cust, rebuy_day = [], []
    tix_cust, tix_day, tix_res = [], [], []
    nps_cust, nps_day, nps_val = [], [], []
    cancel_cust, cancel_day = [], []

    for t in range(days):
        drifted = t >= drift_day
        alive = (first_day <= t) & (status < 2)
        age = t - first_day
        eng = engagement0 * np.exp(-decay * np.maximum(age, 0))
        fading = status == 1
        fade_pos = np.where(fading, (t - decided) / np.maximum(fade_len, 1), 0.0)
        eng = eng * np.exp(-2.5 * fade_pos)
        eng = np.where(alive, eng, 0.0)

        sessions = rng.poisson(eng)
        views = sessions + rng.poisson(1.5 * sessions)
        p_cart = np.minimum(0.12 * buy_propensity, 0.6)
        carts = rng.binomial(views, p_cart)
        buys = rng.binomial(carts, 0.5 * (0.85 if drifted else 1.0))
        active_today = sessions > 0
        idx = np.flatnonzero(active_today)
        rec_cust.append(idx.astype(np.int32))
        rec_day.append(np.full(len(idx), t, dtype=np.int32))
        rec_sess.append(sessions[idx].astype(np.int32))
        rec_views.append(views[idx].astype(np.int32))
        rec_carts.append(carts[idx].astype(np.int32))
        rec_buys.append(buys[idx].astype(np.int32))

        due = alive & has_staple & ((t - phase) % period == 0)
        rebuy = due & (rng.random(n) < 0.85 * np.minimum(1.0, eng / engagement0))
        ridx = np.flatnonzero(rebuy)
        rebuy_cust.append(ridx.astype(np.int32))
        rebuy_day.append(np.full(len(ridx), t, dtype=np.int32))

        n_bought = buys + rebuy
        p_ticket = np.where(alive, np.minimum(0.002 + 0.04 * n_bought, 0.5), 0.0)
        ticket = rng.random(n) < p_ticket
        tidx = np.flatnonzero(ticket)
        res = rng.lognormal(np.log(10.0) + _REGION_SLOW_SUPPORT[region[tidx]] + (0.3 if drifted else 0.0), 1.0)
        tix_cust.append(tidx.astype(np.int32))
        tix_day.append(np.full(len(tidx), t, dtype=np.int32))
        tix_res.append(res)
        sat[tidx] += np.where(res > 48, -1.0, np.where(res < 8, 0.15, -0.1))
        sat = sat0 + (sat - sat0) * 0.985

        survey = alive & (rng.random(n) < 1 / 45)
        sidx = np.flatnonzero(survey)
        answer = np.clip(np.round(7.0 + 1.8 * sat[sidx] - 2.5 * fading[sidx] + rng.normal(0, 1.5, len(sidx))), 0, 10)
        nps_cust.append(sidx.astype(np.int32))
        nps_day.append(np.full(len(sidx), t, dtype=np.int32))
        nps_val.append(answer)

        # leaving: fading customers whose fade is over are gone today
        done = fading & (t - decided >= fade_len)
        # hazard for the still-engaged
        log_h = (np.log(daily_h0) + _PLAN_HAZARD[plan] + _CHANNEL_HAZARD[channel]
                 - 0.35 * log_eng_rel + 1.2 * decay * np.maximum(age, 0)
                 - 0.7 * sat + 0.5 * (age < 30))
        if drifted:
            log_h = log_h + 0.15 + 0.35 * (plan == 1)
        if run is not None:
            log_h = run.adjust_hazard(t, log_h, alive, status, plan, tier_pref, sessions, rebuy)
        p_leave = np.where(alive & (status == 0), -np.expm1(-np.exp(log_h)), 0.0)
        u_leave = rng.random(n)
        leave = u_leave < p_leave
        abrupt = rng.random(n) < _ABRUPT_SHARE
        if run is not None:
            abrupt = run.after_draw(t, u_leave, leave, abrupt)
        lengths = rng.uniform(7, 40, n)
        new_fade = leave & ~abrupt
        status[new_fade] = 1
        decided[leave] = t
        fade_len[new_fade] = lengths[new_fade]
        gone = done | (leave & abrupt)
        status[gone] = 2
        left[gone] = t
        p_cancel = np.where(plan == 0, 0.1, 0.75)
        cancel = gone & (rng.random(n) < p_cancel)
        if run is not None:
            cancel = run.force_cancel(t, gone, cancel)
        cancelled |= cancel
        cidx = np.flatnonzero(cancel)
        cancel_cust.append(cidx.astype(np.int32))
        cancel_day.append(np.full(len(cidx), t, dtype=np.int32))
        if progress is not None:
            progress(t + 1, days)

    # ---------------------------------------------------------------- events
    parts = _build_events(
        rng=streams,
        rec=tuple(np.concatenate(x) for x in (rec_cust, rec_day, rec_sess, rec_views, rec_carts, rec_buys)),
        rebuys=(np.concatenate(rebuy_cust), np.concatenate(rebuy_day)),
        tickets=(np.concatenate(tix_cust), np.concatenate(tix_day), np.concatenate(tix_res)),
        surveys=(np.concatenate(nps_cust), np.concatenate(nps_day), np.concatenate(nps_val)),
        cancels=(np.concatenate(cancel_cust), np.concatenate(cancel_day)),
        taste_cum=taste_cum, tier_pref=tier_pref, device=device, sampler=sampler,
        cat_pop=cat_pop, post_pop=post_pop, item_cat=item_cat, consumable=consumable,
        base_price=base_price, cat_return=cat_return, staple_item=staple_item,
        drift_day=drift_day, end_sec=end_sec,
    )
    width_c = len(str(max(n - 1, 1)))
    width_i = len(str(max(n_items - 1, 1)))
    customer_ids = _ids("c", n, width_c)
    item_ids = _ids("i", n_items, width_i)
    events = _events_frame(parts, start_ts, seed, customer_ids, item_ids)
    from tenure.features.simulator_voice import (
        add_voice,  # texts whose tone follows the will to leave, CES
    )

    events = add_voice(events, customer_ids, _PLAN_HAZARD[plan] + _CHANNEL_HAZARD[channel] - 0.35 * log_eng_rel
                       - 0.7 * sat0, decided, start_ts.value, seed)

    # ---------------------------------------------------------------- frames
    start_ns = start_ts.value
    signup_ns = start_ns + np.round(signup_day * _SECONDS_PER_DAY).astype(np.int64) * 10**9
    customers = pd.DataFrame({
        "customer_id": customer_ids,
        "signup_at": pd.to_datetime(signup_ns, unit="ns", utc=True),
        "consent_personalization": consent,
        "plan": np.array(_PLANS, dtype=object)[plan],
        "region": np.array(_REGIONS, dtype=object)[region],
        "acquisition_channel": np.array(_CHANNELS, dtype=object)[channel],
    })
    final_factor = _DRIFT_PRICE_FACTOR if drift_at is not None else 1.0
    items = pd.DataFrame({
        "item_id": item_ids,
        "category": cat_names[item_cat],
        "price": np.round(base_price * final_factor, 2),
        "available": streams("available").random(n_items) >= 0.03,
    })
    day_ns = np.int64(_SECONDS_PER_DAY) * 10**9
    truth = pd.DataFrame({
        "customer_id": customer_ids,
        "decided_at": pd.to_datetime(np.where(decided >= 0, start_ns + decided * day_ns, np.iinfo(np.int64).min),
                                     unit="ns", utc=True),
        "left_at": pd.to_datetime(np.where(left >= 0, start_ns + left * day_ns, np.iinfo(np.int64).min),
                                  unit="ns", utc=True),
        "cancelled": cancelled,
    })
    logger.info("simulated %d customers, %d items, %d events over %d days (seed %d, drift_at %s)",
                n, n_items, len(events), days, seed, drift_at)
    return Shop(
        customers=conform(customers, "customers"),
        items=conform(items, "items"),
        events=events if run is None else _with_treatments(events, run, customer_ids, start_ns, seed),
        truth=truth,
        campaign_truth=pd.DataFrame() if run is None else run.truth(customer_ids),
    )


def _with_treatments(events: pd.DataFrame, run, customer_ids: np.ndarray, start_ns: int, seed: int) -> pd.DataFrame:
    """The events with the campaign's treatment events merged in, by time."""
    treatments = run.treatment_events(customer_ids, start_ns, seed)
    merged = pd.concat([events, treatments[events.columns]], ignore_index=True)
    return merged.sort_values("event_at", kind="stable", ignore_index=True)


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers as an object array of str (numpy string ufuncs, no loop)."""
    digits = np.strings.zfill(np.arange(n).astype(f"U{width}"), width)
    return np.strings.add(prefix, digits).astype(object)


def _build_events(*, rng, rec, rebuys, tickets, surveys, cancels, taste_cum, tier_pref, device, sampler,
                  cat_pop, post_pop, item_cat, consumable, base_price, cat_return, staple_item,
                  drift_day, end_sec) -> dict[str, np.ndarray]:
    """Expand the per-customer-day counts into event arrays (times in seconds from start)."""
    r_cust, r_day, r_sess, r_views, r_carts, r_buys = rec
    types = {name: i for i, name in enumerate(_EVENT_TYPE_ORDER)}
    out: list[dict[str, np.ndarray]] = []

    def add(cust, sec, etype, item=None, qty=None, amount=None, chan=None, nps=None, csat=None, res=None):
        keep = sec < end_sec  # nothing after the period (returns, late CSAT surveys)
        part = {
            "cust": cust[keep].astype(np.int32),
            "sec": sec[keep].astype(np.int64),
            "type": np.int8(types[etype]),
            "item": None if item is None else item[keep].astype(np.int32),
            "chan": (device[cust[keep]] if chan is None else chan[keep]).astype(np.int8),
        }
        for name, values in (("quantity", qty), ("amount", amount), ("nps", nps), ("csat", csat), ("res", res)):
            part[name] = None if values is None else np.asarray(values, dtype=np.float64)[keep]
        out.append(part)

    # sessions: random start within the day
    s_rec = np.repeat(np.arange(len(r_cust)), r_sess)
    s_cust = r_cust[s_rec]
    s_sec = r_day[s_rec].astype(np.int64) * _SECONDS_PER_DAY + rng("session_time").integers(0, _SECONDS_PER_DAY - 3600, len(s_rec))
    add(s_cust, s_sec, "session")
    sess_start = np.concatenate([[0], np.cumsum(r_sess)[:-1]])

    # views: the first `sessions` views of a customer-day open one session each, the rest join a random one
    v_rec = np.repeat(np.arange(len(r_cust)), r_views)
    v_start = np.concatenate([[0], np.cumsum(r_views)[:-1]])
    k = np.arange(len(v_rec)) - v_start[v_rec]
    n_s = r_sess[v_rec]
    local = np.where(k < n_s, k, (rng("view_session").random(len(v_rec)) * n_s).astype(np.int64))
    v_sess = sess_start[v_rec] + local
    v_cust = r_cust[v_rec]
    v_day = r_day[v_rec]
    v_sec = s_sec[v_sess] + rng("view_offset").integers(10, 900, len(v_rec))
    drifted = v_day >= drift_day
    explore = rng("explore").random(len(v_rec)) < np.where(drifted, 0.35, 0.1)
    cat = _draw_rows(taste_cum, v_cust.astype(np.int64), rng("taste"))
    # exploration browses by the shop-wide category mix (another mix after the drift day);
    # every draw has a size independent of the drift, so days before it are identical
    g_pre = _draw_vector(cat_pop, rng("explore_pre").random(len(v_rec)))
    g_post = _draw_vector(post_pop, rng("explore_post").random(len(v_rec)))
    cat = np.where(explore, np.where(drifted, g_post, g_pre), cat)
    tier = np.where(rng("tier_mix").random(len(v_rec)) < 0.7, tier_pref[v_cust],
                    rng("tier").integers(0, 3, len(v_rec)))
    v_item = sampler.draw(cat, tier, rng("items"))
    add(v_cust, v_sec, "view", item=v_item)

    # funnel: the first `carts` views of a customer-day are carted, the first `buys` bought
    is_cart = k < r_carts[v_rec]
    c_sec = v_sec[is_cart] + rng("cart_offset").integers(10, 300, int(is_cart.sum()))
    c_item = v_item[is_cart]
    c_cust = v_cust[is_cart]
    qty_all = np.where(consumable[item_cat[v_item]], 1 + rng("quantity").poisson(0.5, len(v_rec)), 1)
    add(c_cust, c_sec, "add_to_cart", item=c_item, qty=qty_all[is_cart])
    is_buy_v = k < r_buys[v_rec]
    is_buy_c = is_buy_v[is_cart]
    b_sec = c_sec[is_buy_c] + rng("buy_offset").integers(30, 1200, int(is_buy_c.sum()))
    b_item = c_item[is_buy_c]
    b_cust = c_cust[is_buy_c]
    b_qty = qty_all[is_buy_v]
    del v_rec, k, n_s, local, v_sess, v_day, drifted, explore, cat, g_pre, g_post, tier, qty_all, is_buy_v

    # consumable rebuys: a session and a direct purchase of the staple item
    rb_cust, rb_day = rebuys
    rb_sec = rb_day.astype(np.int64) * _SECONDS_PER_DAY + rng("rebuy_time").integers(0, _SECONDS_PER_DAY - 3600, len(rb_cust))
    add(rb_cust, rb_sec, "session")
    rb_item = staple_item[rb_cust]
    rb_qty = 1 + rng("rebuy_quantity").poisson(0.5, len(rb_cust))

    p_cust = np.concatenate([b_cust, rb_cust])
    p_sec = np.concatenate([b_sec, rb_sec + rng("rebuy_offset").integers(60, 600, len(rb_cust))])
    p_item = np.concatenate([b_item, rb_item])
    p_qty = np.concatenate([b_qty, rb_qty]).astype(float)
    by_time = np.argsort(p_sec, kind="stable")  # day order keeps the days before a drift identical
    p_cust, p_sec, p_item, p_qty = p_cust[by_time], p_sec[by_time], p_item[by_time], p_qty[by_time]
    factor = np.where(p_sec // _SECONDS_PER_DAY >= drift_day, _DRIFT_PRICE_FACTOR, 1.0)
    p_amount = np.round(base_price[p_item] * factor * p_qty, 2)
    add(p_cust, p_sec, "purchase", item=p_item, qty=p_qty, amount=p_amount)

    # returns
    ret = rng("returns").random(len(p_cust)) < cat_return[item_cat[p_item]]
    ret_sec = p_sec[ret] + rng("return_offset").integers(2 * _SECONDS_PER_DAY, 20 * _SECONDS_PER_DAY, int(ret.sum()))
    add(p_cust[ret], ret_sec, "return", item=p_item[ret], qty=p_qty[ret], amount=p_amount[ret])

    # support tickets and the CSAT survey that follows some of them
    t_cust, t_day, t_res = tickets
    t_sec = t_day.astype(np.int64) * _SECONDS_PER_DAY + rng("ticket_time").integers(0, _SECONDS_PER_DAY, len(t_cust))
    t_chan = rng("ticket_channel").choice([2, 3, 4], len(t_cust), p=[0.4, 0.4, 0.2])
    add(t_cust, t_sec, "support_ticket", chan=t_chan, res=np.round(t_res, 2))
    asked = rng("csat_asked").random(len(t_cust)) < 0.6
    csat = np.clip(np.round(4.6 - 0.9 * np.log1p(t_res / 12) + rng("csat_noise").normal(0, 0.6, len(t_cust))), 1, 5)
    cs_sec = t_sec + (t_res * 3600).astype(np.int64) + rng("csat_time").integers(3600, _SECONDS_PER_DAY, len(t_cust))
    add(t_cust[asked], cs_sec[asked], "survey", chan=np.full(int(asked.sum()), 2), csat=csat[asked])

    # NPS surveys
    n_cust, n_day, n_val = surveys
    n_sec = n_day.astype(np.int64) * _SECONDS_PER_DAY + rng("nps_time").integers(0, _SECONDS_PER_DAY, len(n_cust))
    add(n_cust, n_sec, "survey", chan=np.full(len(n_cust), 2), nps=n_val)

    # cancellations
    x_cust, x_day = cancels
    x_sec = x_day.astype(np.int64) * _SECONDS_PER_DAY + rng("cancel_time").integers(0, _SECONDS_PER_DAY, len(x_cust))
    add(x_cust, x_sec, "subscription_cancel")

    merged = _merge_parts(out)
    out.clear()
    return merged


def _merge_parts(parts: list[dict]) -> dict[str, np.ndarray]:
    """One array per field over all parts; fields a part lacks are -1 (ids) or NaN (numbers)."""
    total = sum(len(p["cust"]) for p in parts)
    merged = {
        "cust": np.empty(total, dtype=np.int32),
        "sec": np.empty(total, dtype=np.int64),
        "type": np.empty(total, dtype=np.int8),
        "item": np.full(total, -1, dtype=np.int32),
        "chan": np.empty(total, dtype=np.int8),
    }
    for name in ("quantity", "amount", "nps", "csat", "res"):
        merged[name] = np.full(total, np.nan)
    pos = 0
    for part in parts:
        n = len(part["cust"])
        for name, values in part.items():
            if values is not None:
                merged[name][pos:pos + n] = values
        pos += n
    return merged


def _events_frame(parts: dict[str, np.ndarray], start_ts: pd.Timestamp, seed: int, customer_ids: np.ndarray,
                  item_ids: np.ndarray) -> pd.DataFrame:
    """Sort the event arrays by time, give them ids: the canonical events frame (columns in order).

    Built as an Arrow table and converted once: no block consolidation copies, and repeated
    strings (customer ids, event types) share one Python object each.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    order = np.lexsort((parts["item"], parts["type"], parts["cust"], parts["sec"]))
    m = len(order)
    for name in list(parts):  # reorder in place, one field at a time (bounded memory)
        parts[name] = parts[name][order]
    del order
    width = max(len(str(m)), 8)
    numbers = pc.utf8_lpad(pc.cast(pa.array(np.arange(m, dtype=np.int64)), pa.string()), width, padding="0")
    event_ids = pc.binary_join_element_wise(pa.scalar(f"e{seed}-"), numbers, "")
    del numbers
    item = parts.pop("item")
    columns = {
        "event_id": event_ids,
        "customer_id": pa.array(customer_ids, type=pa.string()).take(pa.array(parts.pop("cust"))),
        "event_at": pa.array(start_ts.value + parts.pop("sec") * 10**9, type=pa.timestamp("ns", tz="UTC")),
        "event_type": pa.array(np.array(_EVENT_TYPE_ORDER, dtype=object), type=pa.string()).take(
            pa.array(parts.pop("type"))),
        "item_id": pa.array(item_ids, type=pa.string()).take(pa.array(item, mask=item < 0)),
        "quantity": pa.array(parts.pop("quantity")),
        "amount": pa.array(parts.pop("amount")),
        "channel": pa.array(np.array(_EVENT_CHANNELS, dtype=object), type=pa.string()).take(
            pa.array(parts.pop("chan"))),
        "nps": pa.array(parts.pop("nps")),
        "csat": pa.array(parts.pop("csat")),
        "resolution_hours": pa.array(parts.pop("res")),
        "rating": pa.nulls(m, type=pa.float64()),
        "ces": pa.nulls(m, type=pa.float64()),  # filled by features.simulator_voice
        "text": pa.nulls(m, type=pa.string()),
        "recommendation_id": pa.nulls(m, type=pa.string()),
        "impressions": pa.nulls(m, type=pa.string()),
        **{name: pa.nulls(m, type=pa.string()) for name in ("campaign", "arm", "offer")},  # treatment events only
    }
    del item
    table = pa.table(columns)
    del columns, event_ids
    frame = table.to_pandas(split_blocks=True, self_destruct=True, deduplicate_objects=True)
    for name in ("quantity", "amount", "nps", "csat", "resolution_hours", "rating", "ces"):
        if frame[name].dtype != np.float64:
            frame[name] = frame[name].astype(np.float64)
    return frame


def write_shop(shop: Shop, out_dir: str | os.PathLike, file_format: str = "parquet") -> dict[str, Path]:
    """Write ``customers``, ``items`` and ``events`` files (the raw files ``tenure ingest`` reads).

    Parameters
    ----------
    shop: the simulated shop.
    out_dir: folder to write into (created when missing); existing files of the same name are
        replaced atomically (write to a temporary file, then rename).
    file_format: ``parquet`` (typed, compact) or ``csv`` (timestamps ISO 8601 with a UTC offset).

    Returns
    -------
    dict table name -> path written.
    """
    import pyarrow as pa

    if file_format not in ("parquet", "csv"):
        raise ValueError(f"file_format must be 'parquet' or 'csv', got {file_format!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in (("customers", shop.customers), ("items", shop.items), ("events", shop.events)):
        path = out / f"{name}.{file_format}"
        tmp = out / f".{path.name}.tmp"
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if file_format == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, tmp, compression="zstd")
        else:
            import pyarrow.compute as pc
            import pyarrow.csv as pcsv

            for i, field_ in enumerate(table.schema):
                if pa.types.is_timestamp(field_.type):
                    seconds = pc.cast(table.column(i), pa.timestamp("s", tz="UTC"))  # whole seconds
                    text = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
                    table = table.set_column(i, field_.name, text)
            pcsv.write_csv(table, tmp)
        tmp.replace(path)
        paths[name] = path
    return paths
