"""Feast on the production profile: Redis online store, SQL registry on PostgreSQL, real servers.

Each run uses its own Feast project name and removes its keys and registry rows afterwards.
"""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from tenure.features.customer_features import compute_customer_features
from tenure.features.snapshots import build_feature_tables

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

T1 = pd.Timestamp("2026-03-08", tz="UTC")
T2 = pd.Timestamp("2026-03-15", tz="UTC")


@pytest.fixture(scope="module")
def production_store(isolated_settings, feast_data, production_servers):
    from tenure.feature_repo.store import apply_definitions, materialize, open_store, teardown

    project = f"tenure_test_{uuid.uuid4().hex[:10]}"
    settings = isolated_settings("feast_production", feast={**production_servers, "project": project})
    customers, items, events = feast_data
    build_feature_tables(settings, [T1, T2], events=events, customers=customers, items=items)
    try:
        apply_definitions(settings)
        materialize(settings)
        yield settings, open_store(settings)
    finally:
        teardown(settings)


def _redis_keys(project: str) -> list[bytes]:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    return list(client.scan_iter(match=f"*{project}"))


def test_apply_renders_redis_and_sql_registry(production_store):
    import yaml

    settings, store = production_store
    rendered = yaml.safe_load((settings.feast.repo_path / "feature_store.yaml").read_text())
    assert rendered["online_store"]["type"] == "redis"
    assert rendered["registry"]["registry_type"] == "sql"
    assert store.get_feature_service("churn_v1").name == "churn_v1"
    assert _redis_keys(settings.feast.project), "materialize wrote no keys to Redis"


def test_online_read_and_push_on_redis(production_store, feast_data):
    from tenure.feature_repo.online import OnlineFeatureReader, push_customer_features

    _, store = production_store
    customers, items, events = feast_data
    reader = OnlineFeatureReader(store, "churn_v1")
    a, nobody = reader.read(["a", "nobody"])
    assert nobody is None
    assert a["revenue_30d"] == 30.0 and a["plan"] == "pro"
    now = pd.Timestamp("2026-03-16 09:00", tz="UTC")
    new_event = events.iloc[[0]].assign(event_id="new", event_at=now, amount=5.0)
    fresh = compute_customer_features(
        pd.concat([events.loc[events["customer_id"] == "a"], new_event]),
        customers.loc[customers["customer_id"] == "a"], items, now)
    push_customer_features(store, fresh, as_of=now)
    assert reader.read(["a"])[0]["revenue_7d"] == 25.0  # 5 now + 20 on 03-10


def test_a_second_process_sees_the_registry_in_postgres(production_store):
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import open_store

    settings, _ = production_store
    fresh_store = open_store(settings)  # new registry client: reads PostgreSQL, not a local file
    assert {fv.name for fv in fresh_store.list_feature_views()} == {
        "customer_activity", "customer_profile", "item_features"}
    assert OnlineFeatureReader(fresh_store, "recommender_v1").read(["b"])[0]["consent_personalization"] == 0


def test_teardown_removes_only_this_project(isolated_settings, feast_data, production_servers):
    from tenure.feature_repo.store import apply_definitions, materialize, teardown

    project = f"tenure_test_{uuid.uuid4().hex[:10]}"
    settings = isolated_settings("feast_teardown", feast={**production_servers, "project": project})
    customers, items, events = feast_data
    build_feature_tables(settings, [T2], events=events, customers=customers, items=items)
    apply_definitions(settings)
    materialize(settings)
    assert _redis_keys(project)
    teardown(settings)
    assert _redis_keys(project) == []
    # ask PostgreSQL directly: opening a Feast store on the project would re-create its row
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test") as conn:
        for table in ("projects", "feature_views", "entities", "feature_services"):
            count = conn.execute(f"select count(*) from {table} where project_id = %s", (project,)).fetchone()[0]
            assert count == 0, f"{table} still holds rows of {project}"
