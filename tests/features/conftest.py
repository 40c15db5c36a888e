"""Fixtures of the features room: hand-built canonical frames and a small seeded shop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest


def utc(value: str) -> pd.Timestamp:
    return pd.Timestamp(value, tz="UTC")


def customers_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Canonical customers from partial rows (defaults: consent True, attributes missing)."""
    base = {"signup_at": utc("2026-01-01"), "consent_personalization": True, "plan": None, "region": None,
            "acquisition_channel": None}
    frame = pd.DataFrame([{**base, **r} for r in rows])
    frame["signup_at"] = pd.to_datetime(frame["signup_at"], utc=True)
    return frame


def events_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Canonical events from partial rows (ids generated, optional fields NaN)."""
    columns = ["event_id", "customer_id", "event_at", "event_type", "item_id", "quantity", "amount", "channel",
               "nps", "csat", "resolution_hours"]
    filled = []
    for i, r in enumerate(rows):
        row = dict.fromkeys(columns)
        row["event_id"] = f"e{i:05d}"
        row.update(r)
        filled.append(row)
    frame = pd.DataFrame(filled, columns=columns)
    frame["event_at"] = pd.to_datetime(frame["event_at"], utc=True)
    for c in ("quantity", "amount", "nps", "csat", "resolution_hours"):
        frame[c] = frame[c].astype(float)
    return frame


ITEMS = pd.DataFrame(
    {
        "item_id": ["i1", "i2", "i3"],
        "category": ["books", "games", None],
        "price": [10.0, 25.0, 4.0],
        "available": [True, True, False],
    }
)


@pytest.fixture
def items() -> pd.DataFrame:
    return ITEMS.copy()


def random_shop(n_customers: int = 60, n_items: int = 15, days: int = 120, seed: int = 7):
    """A small seeded shop in the canonical shape (independent of the data room's simulator)."""
    rng = np.random.default_rng(seed)
    start = utc("2026-01-01")
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n_customers)],
            "signup_at": start + pd.to_timedelta(rng.integers(0, days // 2, n_customers), unit="D"),
            "consent_personalization": rng.random(n_customers) < 0.8,
            "plan": rng.choice(["free", "monthly", "annual", None], n_customers),
            "region": rng.choice(["north", "south"], n_customers),
            "acquisition_channel": rng.choice(["ads", "organic", None], n_customers),
        }
    )
    items = pd.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in range(n_items)],
            "category": rng.choice(["a", "b", "c", "d"], n_items),
            "price": rng.uniform(1, 100, n_items).round(2),
            "available": rng.random(n_items) < 0.9,
        }
    )
    n_events = n_customers * 40
    types = rng.choice(
        ["view", "add_to_cart", "purchase", "return", "session", "support_ticket", "survey"],
        n_events, p=[0.35, 0.1, 0.15, 0.04, 0.26, 0.05, 0.05],
    )
    # whole-hour times so that many events share a timestamp (ties must not matter)
    event_at = start + pd.to_timedelta(rng.integers(0, days * 24, n_events), unit="h")
    item_ids = np.where(np.isin(types, ["view", "add_to_cart", "purchase", "return"]),
                        rng.choice(items["item_id"], n_events), None)
    amount = np.where(types == "purchase", rng.uniform(1, 200, n_events).round(2), np.nan)
    amount[(types == "purchase") & (rng.random(n_events) < 0.2)] = np.nan  # filled from price
    events = pd.DataFrame(
        {
            "event_id": [f"e{i:06d}" for i in range(n_events)],
            "customer_id": rng.choice(customers["customer_id"], n_events),
            "event_at": event_at,
            "event_type": types,
            "item_id": item_ids,
            "quantity": np.where(types == "purchase", rng.integers(1, 4, n_events), np.nan),
            "amount": amount,
            "channel": "web",
            "nps": np.where(types == "survey", rng.integers(0, 11, n_events), np.nan),
            "csat": np.where(types == "survey", rng.integers(1, 6, n_events), np.nan),
            "resolution_hours": np.where(types == "support_ticket", rng.uniform(0.5, 72, n_events), np.nan),
        }
    )
    return customers, items, events


@pytest.fixture(scope="session")
def small_shop() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers, items, events): the data room's simulator when present, else :func:`random_shop`."""
    try:
        from tenure.features.simulator import simulate_shop
    except ImportError:
        return random_shop()
    shop = simulate_shop(n_customers=80, n_items=30, days=120, seed=3, start="2026-01-01")
    return shop.customers, shop.items, shop.events


@pytest.fixture(scope="session")
def isolated_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    """Settings under a fresh temp folder, for session/module-scoped stores (env ignored)."""
    from tenure.settings import _deep_merge, load_settings

    def _make(name: str, **overrides: Any):
        root = tmp_path_factory.mktemp(name)
        base = {
            "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                      "exports_dir": str(root / "exports")},
            "feast": {"repo_path": str(root / "feature_repo")},
        }
        with pytest.MonkeyPatch.context() as mp:
            import os

            for env in list(os.environ):
                if env.startswith("TENURE_"):
                    mp.delenv(env, raising=False)
            return load_settings(None, **_deep_merge(base, overrides))

    return _make


@pytest.fixture
def make_events() -> Callable[[list[dict[str, Any]]], pd.DataFrame]:
    """Build canonical events from partial rows (see :func:`events_frame`)."""
    return events_frame


@pytest.fixture
def make_customers() -> Callable[[list[dict[str, Any]]], pd.DataFrame]:
    """Build canonical customers from partial rows (see :func:`customers_frame`)."""
    return customers_frame


FEAST_T1 = utc("2026-03-08")
FEAST_T2 = utc("2026-03-15")


@pytest.fixture(scope="session")
def feast_data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers, items, events) for the Feast tests: snapshots at FEAST_T1 and FEAST_T2.

    Customer ``a`` buys for 10 before T1, for 20 between T1 and T2 and for 40 after T2, so a
    training row sees exactly what happened up to its snapshot and nothing later.
    """
    customers = customers_frame([
        {"customer_id": "a", "plan": "pro", "region": "north"},
        {"customer_id": "b", "signup_at": "2026-02-01", "consent_personalization": False, "plan": "free"},
        {"customer_id": "p", "plan": "free", "region": "south"},
    ])
    events = events_frame([
        {"customer_id": "a", "event_at": "2026-03-05", "event_type": "purchase", "item_id": "i1", "amount": 10.0},
        {"customer_id": "a", "event_at": "2026-03-10", "event_type": "purchase", "item_id": "i2", "amount": 20.0},
        {"customer_id": "a", "event_at": "2026-03-20", "event_type": "purchase", "item_id": "i1", "amount": 40.0},
        {"customer_id": "b", "event_at": "2026-03-14", "event_type": "session"},
        {"customer_id": "b", "event_at": FEAST_T2, "event_type": "view", "item_id": "i1"},
        {"customer_id": "p", "event_at": "2026-03-01", "event_type": "session"},
    ])
    return customers, ITEMS.copy(), events
