"""The service's online read path (``OnlineFeatureReader.read``, the online store's ``online_read``)
returns exactly what Feast's ``get_online_features`` returns (``read_reference``): for known,
unknown and partly-missing customers, on the embedded SQLite store and on Redis.
"""

from __future__ import annotations

import math
import uuid

import pandas as pd
import pytest
from workspace import build_data, serving_settings


def _same(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if list(a) != list(b):
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) and math.isnan(x):
            if not (isinstance(y, float) and math.isnan(y)):
                return False
        elif x != y or type(x) is not type(y):
            return False
    return True


def _write_partial(store, shop, customer_id: str) -> None:
    """``customer_id`` gets activity features only (no profile row), some of them missing (NaN)."""
    from feast.data_source import PushMode

    from tenure.feature_repo.definitions import CUSTOMER_ACTIVITY_PUSH
    from tenure.features.customer_features import (
        CUSTOMER_ACTIVITY_FEATURES,
        compute_customer_features,
    )

    source = str(shop.customers["customer_id"].iloc[1])
    at = shop.events["event_at"].max()
    frame = compute_customer_features(shop.events[shop.events["customer_id"] == source],
                                      shop.customers[shop.customers["customer_id"] == source], shop.items, at)
    frame = frame[frame["customer_id"] == source].copy()
    frame["customer_id"] = customer_id
    frame["days_since_last_purchase"] = float("nan")
    frame["event_timestamp"] = at
    frame["created"] = pd.Timestamp.now(tz="UTC")
    store.push(CUSTOMER_ACTIVITY_PUSH, frame[["customer_id", "event_timestamp", "created", *CUSTOMER_ACTIVITY_FEATURES]],
               to=PushMode.ONLINE)


def _check_equal(store, shop) -> None:
    from tenure.feature_repo.online import OnlineFeatureReader

    partial = f"partial-{uuid.uuid4().hex[:6]}"
    _write_partial(store, shop, partial)
    known = [str(c) for c in shop.customers["customer_id"].iloc[:25]]
    ids = [*known[:3], "nobody", partial, known[3], "nobody", *known[4:]]
    for service in ("churn_v1", "recommender_v1"):
        reader = OnlineFeatureReader(store, service)
        fast, reference = reader.read(ids), reader.read_reference(ids)
        assert len(fast) == len(ids)
        for cid, a, b in zip(ids, fast, reference):
            assert _same(a, b), (service, cid, a, b)
        by_id = dict(zip(ids, fast))
        assert by_id["nobody"] is None
        assert all(by_id[c] is not None for c in known)
        if service == "churn_v1":  # activity present, profile absent: a row, with the profile values missing
            row = by_id[partial]
            assert row is not None and math.isnan(row["days_since_last_purchase"]) and row["plan"] is None
            assert not math.isnan(row["sessions_30d"])
        assert reader.read([]) == []
        assert _same(reader.read([known[0]])[0], reader.read_reference([known[0]])[0])


def test_online_read_matches_get_online_features_on_sqlite(workspace):
    from tenure.feature_repo.store import open_store

    settings, shop, _ = workspace
    _check_equal(open_store(settings), shop)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_online_read_matches_get_online_features_on_redis(tmp_path, production_servers):
    from tenure.feature_repo.store import open_store, teardown

    project = f"tenure_read_{uuid.uuid4().hex[:10]}"
    settings = serving_settings(tmp_path, feast={**production_servers, "project": project})
    try:
        shop = build_data(settings, n_customers=40, n_items=20, days=60, seed=3)
        _check_equal(open_store(settings), shop)
    finally:
        teardown(settings)
