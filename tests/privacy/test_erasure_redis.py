"""Erasure in the production profile's online store: Redis (with the PostgreSQL registry), real servers."""

from __future__ import annotations

import uuid


def test_forget_removes_the_customers_redis_hash_only(make_settings, production_servers, shop_workspace):
    from tenure.feature_repo.erasure import count_online, forget_online
    from tenure.feature_repo.store import open_store, teardown

    settings = make_settings(feast={**production_servers, "project": f"privacy_{uuid.uuid4().hex[:8]}"})
    shop = shop_workspace(settings)
    try:
        store = open_store(settings)
        held = sorted(count_online(store, [str(c) for c in shop.customers["customer_id"]]))
        assert len(held) > 40  # materialized: one hash per customer with features
        ids, others = held[:3], held[3:8]
        assert forget_online(store, ids) == 3
        assert count_online(store, ids + others) == {c: 1 for c in others}
        client = store._get_provider().online_store._get_client(store.config.online_store)
        keys = list(client.scan_iter(count=1000))
        assert not any(cid.encode() in key for key in keys for cid in ids)  # no key names them any more
        rows = store.get_online_features(features=["customer_activity:days_since_last_session"],
                                         entity_rows=[{"customer_id": c} for c in ids + others[:1]]).to_dict()
        assert rows["days_since_last_session"][:3] == [None, None, None]
    finally:
        teardown(settings)
