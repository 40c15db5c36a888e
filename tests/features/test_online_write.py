"""write_feature_rows (the service's online update) stores exactly what Feast's own push stores, on real SQLite."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from tenure.features.customer_features import compute_customer_features

T1 = pd.Timestamp("2026-03-08", tz="UTC")
NOW = pd.Timestamp("2026-03-16 09:00:00.250", tz="UTC")


@pytest.fixture(scope="module")
def local_store(isolated_settings, feast_data):
    from tenure.feature_repo.store import apply_definitions, materialize, open_store
    from tenure.features.snapshots import build_feature_tables

    settings = isolated_settings("online_write")
    customers, items, events = feast_data
    build_feature_tables(settings, [T1], events=events, customers=customers, items=items)
    apply_definitions(settings)
    materialize(settings)
    return settings, open_store(settings)


def _stored(store, customer_key_fragment: bytes) -> list[tuple]:
    """Every stored value of the customer-feature tables (without the write time), sorted."""
    path = store.config.online_store.path
    path = path if path.startswith("/") else str(store.repo_path / path)
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if r[0].endswith(("customer_activity", "customer_profile"))]
        rows = []
        for table in tables:
            rows += [(table, *r) for r in conn.execute(
                f'SELECT entity_key, feature_name, value, value_text, event_ts FROM "{table}"')
                if customer_key_fragment in r[0]]
    return sorted(rows)


@pytest.mark.parametrize("fast", [True, False])
def test_write_feature_rows_stores_what_push_stores(local_store, feast_data, fast: bool) -> None:
    from tenure.feature_repo.online import (
        OnlineFeatureReader,
        push_customer_features,
        write_feature_rows,
    )

    _, store = local_store
    customers, items, events = feast_data
    frame = compute_customer_features(events, customers, items, NOW)
    ids = list(frame["customer_id"][:3])
    frame = frame[frame["customer_id"].isin(ids)]
    push_customer_features(store, frame, as_of=NOW)
    reader = OnlineFeatureReader(store, "churn_v1")
    pushed = {cid: _stored(store, cid.encode()) for cid in ids}
    assert all(len(v) > 20 for v in pushed.values())
    pushed_read = reader.read(ids)

    later = frame.assign(purchases_7d=frame["purchases_7d"] + 5)  # something else first, then the same values
    rows = [(r["customer_id"], r) for r in later.to_dict(orient="records")]
    views: dict = {}  # the updater keeps the resolved views between writes; the second write uses them
    write_feature_rows(store, rows, NOW.value, fast=fast, views=views)
    assert [r["purchases_7d"] for r in reader.read(ids)] == list(later["purchases_7d"])
    rows = [(r["customer_id"], r) for r in frame.to_dict(orient="records")]
    write_feature_rows(store, rows, NOW.value, fast=fast, views=views)
    assert {cid: _stored(store, cid.encode()) for cid in ids} == pushed
    assert repr(reader.read(ids)) == repr(pushed_read)  # NaN-aware equality
