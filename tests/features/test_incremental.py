"""Incremental features (features/incremental.py) equal the batch feature code at the same as-of.

A property test over seeded random event streams: random customers (some signing up late,
missing attributes), items (some without price or category), events of every type in random
order with replays, survey answers on any event, ties in time, amounts missing; the state is
fed event by event (and through a JSON checkpoint half-way), then compared with
``compute_customer_features`` at several as-of times, every feature, float tolerance.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest

from tenure.features.customer_features import CUSTOMER_FEATURE_COLUMNS, compute_customer_features
from tenure.features.incremental import (
    CustomerState,
    ItemCatalog,
    fold,
    parse_time_ns,
    profiles_from_frame,
)

TYPES = ["view", "add_to_cart", "purchase", "return", "session", "support_ticket", "survey", "subscription_cancel"]
START = pd.Timestamp("2025-01-01", tz="UTC")
#: free text on any event (only tickets' and surveys' count): negative, positive, neutral, blank
TEXTS = ["Terrible service, my order arrived broken.", "Great help, thank you!", "Where is my parcel?", "   "]


def _random_shop(rng: random.Random, n_events: int):
    n_customers = rng.randint(1, 6)
    customers = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n_customers)],
        "signup_at": [START + pd.Timedelta(days=rng.uniform(-30, 300)) for _ in range(n_customers)],
        "consent_personalization": [rng.random() < 0.5 for _ in range(n_customers)],
        "plan": [rng.choice(["free", "pro", None]) for _ in range(n_customers)],
        "region": [rng.choice(["eu", None]) for _ in range(n_customers)],
    })
    n_items = rng.randint(1, 5)
    items = pd.DataFrame({
        "item_id": [f"i{i}" for i in range(n_items)],
        "category": [rng.choice(["a", "b", "c", None]) for _ in range(n_items)],
        "price": [rng.choice([5.0, 12.5, 99.99, np.nan]) for _ in range(n_items)],
    })
    rows = []
    span_days = rng.choice([20, 120, 500])  # short streams and ones longer than the look-back
    times = [START + pd.Timedelta(seconds=rng.randint(0, span_days * 86_400)) for _ in range(n_events)]
    for n in range(n_events):
        kind = rng.choice(TYPES)
        at = rng.choice(times[: n + 1]) if rng.random() < 0.15 else times[n]  # ties in time
        row = {"event_id": f"e{n}", "customer_id": rng.choice(list(customers["customer_id"]) + ["ghost"]),
               "event_at": at, "event_type": kind, "item_id": None, "quantity": np.nan, "amount": np.nan,
               "nps": np.nan, "csat": np.nan, "resolution_hours": np.nan, "text": None}
        if kind in ("view", "add_to_cart", "purchase", "return"):
            row["item_id"] = rng.choice(list(items["item_id"]) + [None])
        if kind == "purchase":
            if rng.random() < 0.6:
                row["amount"] = round(rng.uniform(0, 200), 2)
            if rng.random() < 0.5:
                row["quantity"] = float(rng.randint(1, 4))
        if kind == "support_ticket" and rng.random() < 0.7:
            row["resolution_hours"] = round(rng.uniform(0, 72), 1)
        if rng.random() < 0.1:
            row["nps"] = float(rng.randint(0, 10))
        if rng.random() < 0.1:
            row["csat"] = float(rng.randint(1, 5))
        if rng.random() < 0.4:
            row["text"] = rng.choice(TEXTS)
        rows.append(row)
    columns = ["event_id", "customer_id", "event_at", "event_type", "item_id", "quantity", "amount", "nps", "csat",
               "resolution_hours", "text"]
    events = pd.DataFrame(rows, columns=columns)
    events["event_at"] = pd.to_datetime(events["event_at"], utc=True)
    return customers, items, events


def _records(events: pd.DataFrame) -> list[dict]:
    out = []
    for record in events.to_dict(orient="records"):
        record = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        record["event_at"] = record["event_at"].isoformat()  # as the event log stores it
        out.append(record)
    return out


def _assert_same(batch_row: dict, online: dict, where: str) -> None:
    for name in CUSTOMER_FEATURE_COLUMNS:
        b, o = batch_row[name], online[name]
        if isinstance(b, str) or isinstance(o, str):
            assert b == o, f"{where}: {name} batch={b!r} incremental={o!r}"
        elif isinstance(b, float) and math.isnan(b):
            assert isinstance(o, float) and math.isnan(o), f"{where}: {name} batch=NaN incremental={o!r}"
        else:
            assert o == pytest.approx(float(b), rel=1e-9, abs=1e-9), f"{where}: {name} batch={b!r} incremental={o!r}"


@pytest.mark.parametrize("seed", range(40))
def test_incremental_features_equal_batch_features(seed: int) -> None:
    rng = random.Random(seed)
    customers, items, events = _random_shop(rng, n_events=rng.randint(0, 120))
    profiles = profiles_from_frame(customers)
    catalog = ItemCatalog.from_frame(items)
    records = _records(events)
    replays = [rng.choice(records) for _ in range(min(len(records), 10))]
    stream = records + replays
    rng.shuffle(stream)  # out of order, with replays
    states: dict[str, CustomerState] = {}
    half = len(stream) // 2
    fold(states, stream[:half], profiles, catalog, live=True)
    # a checkpoint half-way (the service's restart path) changes nothing
    states = {cid: CustomerState.from_json(json.loads(json.dumps(s.to_json()))) for cid, s in states.items()}
    fold(states, stream[half:], profiles, catalog, live=True)
    newest = max((parse_time_ns(r["event_at"]) for r in records), default=START.value)
    for offset_days in (0.0, 0.5, 31.0, 400.0):
        as_of = pd.Timestamp(newest + int(offset_days * 86_400 * 1e9), tz="UTC")
        for state in states.values():
            state.prune(as_of.value)
        batch = compute_customer_features(events, customers, items, as_of).set_index("customer_id")
        for cid in customers["customer_id"]:
            state = states.get(cid) or CustomerState(profile=profiles[cid])
            online = state.features(as_of.value)
            where = f"seed {seed}, {cid} at {as_of}"
            if cid not in batch.index:
                assert online is None, f"{where}: not known at as-of in batch, incremental gave a row"
                continue
            assert online is not None, f"{where}: batch has a row, incremental none"
            _assert_same(batch.loc[cid].to_dict(), online, where)


def test_replays_change_nothing_and_times_keep_nanoseconds() -> None:
    customers = pd.DataFrame({"customer_id": ["c1"], "signup_at": [START], "consent_personalization": [True]})
    items = pd.DataFrame({"item_id": ["i1"], "category": ["a"], "price": [10.0]})
    profiles, catalog = profiles_from_frame(customers), ItemCatalog.from_frame(items)
    event = {"event_id": "e1", "customer_id": "c1", "event_at": "2025-02-01T10:00:00.123456789Z",
             "event_type": "purchase", "item_id": "i1", "quantity": 2}
    states: dict[str, CustomerState] = {}
    assert fold(states, [event], profiles, catalog, live=True) == {"c1"}
    assert fold(states, [event], profiles, catalog, live=True) == set()
    state = states["c1"]
    assert state.events[0].t == pd.Timestamp("2025-02-01T10:00:00.123456789Z").value
    features = state.features(pd.Timestamp("2025-02-02", tz="UTC").value)
    assert features["purchases_7d"] == 1 and features["revenue_7d"] == 20.0  # price x quantity
    assert state.recent_items({"purchase": 5.0}) == [("i1", 5.0)]
