"""Feast on the local profile (DuckDB offline store by default, SQLite online store), for real."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from tenure.features.customer_features import CUSTOMER_FEATURE_COLUMNS, compute_customer_features
from tenure.features.snapshots import build_feature_tables, snapshot_times

T1 = pd.Timestamp("2026-03-08", tz="UTC")
T2 = pd.Timestamp("2026-03-15", tz="UTC")


@pytest.fixture(scope="module")
def local_store(isolated_settings, feast_data):
    """Settings, tables at T1 and T2, definitions applied, everything materialized."""
    from tenure.feature_repo.store import apply_definitions, materialize, open_store

    settings = isolated_settings("feast_local")
    customers, items, events = feast_data
    build_feature_tables(settings, [T1, T2], events=events, customers=customers, items=items)
    apply_definitions(settings)
    materialize(settings)
    return settings, open_store(settings)


def test_apply_registers_the_catalogue_and_writes_feature_store_yaml(local_store):
    settings, store = local_store
    rendered = yaml.safe_load((settings.feast.repo_path / "feature_store.yaml").read_text())
    assert rendered["online_store"] == {"type": "sqlite", "path": str((settings.paths.feast_dir / "online.db").resolve())}
    assert rendered["registry"]["path"] == str((settings.paths.feast_dir / "registry.db").resolve())
    views = {fv.name: fv for fv in store.list_feature_views()}
    assert set(views) == {"customer_activity", "customer_profile", "item_features"}
    for fv in views.values():
        assert fv.ttl.days > 0 and fv.owner and fv.description and fv.tags
    source_path = views["customer_activity"].batch_source.path
    assert source_path == str((settings.paths.features_dir / "customer_features.parquet").resolve())
    churn = store.get_feature_service("churn_v1")
    names = [f.name for p in churn.feature_view_projections for f in p.features]
    assert sorted(names) == sorted(CUSTOMER_FEATURE_COLUMNS)
    assert {s.name for s in store.list_feature_services()} == {"churn_v1", "recommender_v1"}


def test_online_reader_returns_the_latest_snapshot_and_none_for_unknown(local_store, feast_data):
    from tenure.feature_repo.online import OnlineFeatureReader

    _, store = local_store
    reader = OnlineFeatureReader(store, "churn_v1")
    assert sorted(reader.feature_names) == sorted(CUSTOMER_FEATURE_COLUMNS)
    a, nobody, b = reader.read(["a", "nobody", "b"])
    assert nobody is None
    expected = compute_customer_features(feast_data[2], feast_data[0], feast_data[1], T2).set_index("customer_id")
    for name in CUSTOMER_FEATURE_COLUMNS:
        want = expected.loc["a", name]
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(a[name]), name
        else:
            assert a[name] == want, name
    assert a["revenue_30d"] == 30.0 and a["plan"] == "pro"
    assert b["consent_personalization"] == 0 and b["views_30d"] == 1  # the view exactly at T2 counts
    assert reader.read([]) == []


def test_unknown_feature_service_says_what_to_do(local_store):
    from tenure.feature_repo.online import OnlineFeatureReader

    with pytest.raises(ValueError, match="tenure features apply"):
        OnlineFeatureReader(local_store[1], "churn_v9")


def test_training_rows_never_see_events_after_their_time_and_ttl_drops_stale_values(local_store):
    from tenure.feature_repo.store import get_training_frame

    settings, store = local_store
    rows = pd.DataFrame({
        "customer_id": ["a", "a", "a", "a", "a", "zz"],
        "event_timestamp": pd.to_datetime(
            ["2026-03-07", "2026-03-12", "2026-03-15", "2026-03-30", "2026-04-10", "2026-03-15"], utc=True),
        "label": [0, 1, 0, 1, 0, 1],
    })
    frame = get_training_frame(settings, rows, "churn_v1", store=store)
    assert list(frame["label"]) == [0, 1, 0, 1, 0, 1]  # every row back, in order
    revenue = list(frame["revenue_30d"])
    assert math.isnan(revenue[0])  # before the first snapshot: nothing known yet
    assert revenue[1] == 10.0  # snapshot T1: the purchase of 03-10 is not visible on 03-12
    assert revenue[2] == 30.0  # snapshot T2 exactly at the row time
    assert revenue[3] == 30.0  # still T2 (within the 21-day TTL); the purchase of 03-20 never shows
    assert math.isnan(revenue[4])  # 26 days after T2: activity TTL (21 days) drops it
    assert frame["plan"].iloc[4] == "pro"  # profile TTL is 90 days: still there
    assert math.isnan(revenue[5]) and pd.isna(frame["plan"].iloc[5])
    assert list(frame.columns[:3]) == ["customer_id", "event_timestamp", "label"]


def test_training_frame_matches_the_batch_snapshot_for_a_simulated_shop(isolated_settings, small_shop):
    from tenure.feature_repo.store import apply_definitions, get_training_frame

    settings = isolated_settings("feast_pit")
    customers, items, events = small_shop
    times = snapshot_times("2026-02-01", "2026-04-26", 7)
    build_feature_tables(settings, times, events=events, customers=customers, items=items)
    apply_definitions(settings)
    rows = pd.DataFrame({
        "customer_id": list(customers["customer_id"].iloc[:20]) * 2,
        "event_timestamp": [pd.Timestamp("2026-03-04 10:00", tz="UTC")] * 20
        + [pd.Timestamp("2026-04-20", tz="UTC")] * 20,
    })
    frame = get_training_frame(settings, rows, "churn_v1")
    for t_row, t_snap in ((pd.Timestamp("2026-03-04 10:00", tz="UTC"), pd.Timestamp("2026-03-01", tz="UTC")),
                          (pd.Timestamp("2026-04-20", tz="UTC"), pd.Timestamp("2026-04-19", tz="UTC"))):
        visible = events.loc[events["event_at"] <= t_snap]
        expected = compute_customer_features(visible, customers, items, t_snap).set_index("customer_id")
        got = frame.loc[frame["event_timestamp"] == t_row].set_index("customer_id")
        got = got.loc[got.index.isin(expected.index)]
        assert len(got) > 5
        for name in CUSTOMER_FEATURE_COLUMNS:
            pd.testing.assert_series_equal(
                got[name], expected.loc[got.index, name], check_dtype=False, check_names=False, obj=name)


def test_pandas_engine_gives_the_feast_frame(isolated_settings, small_shop, local_store):
    from tenure.feature_repo.store import apply_definitions, get_training_frame

    # the hand-built store: before the first snapshot, exact hits, stale rows, unknown customers
    settings, store = local_store
    rows = pd.DataFrame({
        "customer_id": ["a", "a", "b", "a", "a", "zz", "b"],
        "event_timestamp": pd.to_datetime(["2026-03-07", "2026-03-08", "2026-03-12", "2026-03-15",
                                           "2026-04-10", "2026-03-15", "2026-06-30"], utc=True),
    })
    _assert_same(get_training_frame(settings, rows, store=store),
                 get_training_frame(settings, rows, store=store, engine="pandas"))
    # a simulated shop with weekly snapshots and rows at arbitrary times
    settings = isolated_settings("feast_engines")
    customers, items, events = small_shop
    build_feature_tables(settings, snapshot_times("2026-02-01", "2026-04-26", 7),
                         events=events, customers=customers, items=items)
    apply_definitions(settings)
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({
        "customer_id": rng.choice(customers["customer_id"], 300),
        "event_timestamp": pd.Timestamp("2026-01-25", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 130 * 24, 300), unit="h"),
        "label": rng.integers(0, 2, 300),
    })
    for service in ("churn_v1", "recommender_v1"):
        _assert_same(get_training_frame(settings, rows, service),
                     get_training_frame(settings, rows, service, engine="pandas"))


def _assert_same(feast_frame: pd.DataFrame, pandas_frame: pd.DataFrame) -> None:
    assert list(feast_frame.columns) == list(pandas_frame.columns)
    for name in feast_frame.columns:
        a, b = feast_frame[name], pandas_frame[name]
        assert (a.isna() == b.isna()).all(), name
        pd.testing.assert_series_equal(a[a.notna()], b[b.notna()], check_dtype=False, obj=name)


def test_push_updates_the_online_value(local_store, feast_data):
    from tenure.feature_repo.online import OnlineFeatureReader, push_customer_features

    _, store = local_store
    customers, items, events = feast_data
    reader = OnlineFeatureReader(store, "churn_v1")
    assert reader.read(["p"])[0]["sessions_30d"] == 1
    now = pd.Timestamp("2026-03-16 09:00", tz="UTC")
    new_event = events.iloc[[-1]].assign(event_id="new", event_at=now, event_type="purchase", amount=77.0)
    fresh = compute_customer_features(
        pd.concat([events.loc[events["customer_id"] == "p"], new_event]),
        customers.loc[customers["customer_id"] == "p"], items, now)
    assert push_customer_features(store, fresh, as_of=now) == 1
    after = reader.read(["p"])[0]
    assert after["revenue_7d"] == 77.0 and after["days_since_last_purchase"] == 0.0
    assert after["plan"] == "free"


def test_push_makes_a_new_customer_known_online(local_store, items):
    from tenure.feature_repo.online import OnlineFeatureReader, push_customer_features

    _, store = local_store
    now = pd.Timestamp("2026-03-16 10:00", tz="UTC")
    newcomer = pd.DataFrame({"customer_id": ["n1"], "signup_at": [now], "consent_personalization": [True],
                             "plan": ["trial"], "region": [None], "acquisition_channel": ["ads"]})
    empty = pd.DataFrame({c: [] for c in ("event_id", "customer_id", "event_at", "event_type")})
    empty["event_at"] = pd.to_datetime(empty["event_at"], utc=True)
    reader = OnlineFeatureReader(store, "recommender_v1")
    assert reader.read(["n1"]) == [None]
    push_customer_features(store, compute_customer_features(empty, newcomer, items, now), as_of=now)
    row = reader.read(["n1"])[0]
    assert row["plan"] == "trial" and row["consent_personalization"] == 1 and row["purchases_30d"] == 0


def test_push_rejects_frames_without_the_feature_columns(local_store):
    from tenure.feature_repo.online import push_customer_features

    with pytest.raises(ValueError, match="compute_customer_features"):
        push_customer_features(local_store[1], pd.DataFrame({"customer_id": ["x"]}))


def test_incremental_materialize_loads_history_the_first_time(isolated_settings, feast_data):
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import apply_definitions, materialize, open_store

    settings = isolated_settings("feast_incremental")
    customers, items, events = feast_data
    build_feature_tables(settings, [T1], events=events, customers=customers, items=items)
    apply_definitions(settings)
    materialize(settings, incremental=True)
    reader = OnlineFeatureReader(open_store(settings), "churn_v1")
    assert reader.read(["a"])[0]["revenue_30d"] == 10.0
    build_feature_tables(settings, [T2], events=events, customers=customers, items=items)
    materialize(settings, incremental=True)
    assert reader.read(["a"])[0]["revenue_30d"] == 30.0


def test_materialize_without_tables_says_what_to_run(isolated_settings):
    from tenure.feature_repo.store import materialize

    with pytest.raises(ValueError, match="tenure features build"):
        materialize(isolated_settings("feast_empty"))
