"""Small hand-built canonical tables for the recommender tests (seeded, clustered, with rebuys)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def make_shop(n_customers: int = 300, n_items: int = 120, days: int = 70, seed: int = 7,
              consent_share: float = 0.9) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers, items, events) in the canonical shape.

    Items fall into 6 categories; each customer prefers one or two of them (80% of their
    events) and rebuys a couple of consumables (the first 4 items of each category).
    """
    rng = np.random.default_rng(seed)
    n_cat = 6
    items = pd.DataFrame({
        "item_id": [f"i{j:03d}" for j in range(n_items)],
        "category": [f"c{j % n_cat}" for j in range(n_items)],
        "price": rng.uniform(1, 50, n_items).round(2),
        "available": rng.random(n_items) > 0.05,
    })
    start = pd.Timestamp("2026-01-01", tz="UTC")
    customers = pd.DataFrame({
        "customer_id": [f"u{u:04d}" for u in range(n_customers)],
        "signup_at": start,
        "consent_personalization": rng.random(n_customers) < consent_share,
    })
    by_cat = [np.arange(c, n_items, n_cat) for c in range(n_cat)]
    rows = []
    for u in range(n_customers):
        prefs = rng.choice(n_cat, size=rng.integers(1, 3), replace=False)
        liked = np.concatenate([by_cat[c] for c in prefs])
        staples = rng.choice(np.concatenate([by_cat[c][:4] for c in prefs]), size=2, replace=False)
        for _ in range(rng.integers(15, 40)):
            item = rng.choice(liked) if rng.random() < 0.8 else rng.integers(n_items)
            kind = rng.choice(["view", "add_to_cart", "purchase"], p=[0.6, 0.2, 0.2])
            rows.append((u, item, kind, rng.uniform(0, days)))
        for staple in staples:
            for t in np.arange(rng.uniform(0, 7), days, rng.uniform(6, 12)):
                rows.append((u, staple, "purchase", t))
        if rng.random() < 0.1:
            rows.append((u, liked[0], "return", days * 0.5))
    frame = pd.DataFrame(rows, columns=["u", "item", "event_type", "day"])
    events = pd.DataFrame({
        "event_id": [f"e{n}" for n in range(len(frame))],
        "customer_id": customers["customer_id"].to_numpy()[frame["u"]],
        "event_at": start + pd.to_timedelta(frame["day"], unit="D"),
        "event_type": frame["event_type"],
        "item_id": items["item_id"].to_numpy()[frame["item"]],
        "quantity": 1,
    }).sort_values("event_at", ignore_index=True)
    return customers, items, events


@pytest.fixture(scope="session")
def shop():
    return make_shop()
