"""Feast's DuckDB offline store (``feast.offline_store: duckdb``) gives the file store's frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.features.customer_features import CUSTOMER_FEATURE_COLUMNS
from tenure.features.snapshots import build_feature_tables, snapshot_times

T1 = pd.Timestamp("2026-03-08", tz="UTC")
T2 = pd.Timestamp("2026-03-15", tz="UTC")


def _with_offline_store(settings, kind: str):
    return settings.model_copy(update={"feast": settings.feast.model_copy(update={"offline_store": kind})})


def _both(settings, rows: pd.DataFrame, service: str = "churn_v1", rows_per_call: int | None = None):
    from tenure.feature_repo.store import get_training_frame, open_store

    frames = {}
    for kind in ("file", "duckdb"):
        kind_settings = _with_offline_store(settings, kind)
        store = open_store(kind_settings)
        assert type(store._get_provider().offline_store).__name__ == (
            "DaskOfflineStore" if kind == "file" else "DuckDBOfflineStore")
        frames[kind] = get_training_frame(kind_settings, rows, service, store=store, rows_per_call=rows_per_call)
    return frames["file"], frames["duckdb"]


def _assert_same(file_frame: pd.DataFrame, duckdb_frame: pd.DataFrame) -> None:
    """Same rows, same values and dtypes, whatever the row order."""
    assert list(file_frame.columns) == list(duckdb_frame.columns)
    assert len(file_frame) == len(duckdb_frame)
    order = ["customer_id", "event_timestamp", "__row"]
    a = file_frame.assign(__row=np.arange(len(file_frame))).sort_values(order).reset_index(drop=True)
    b = duckdb_frame.assign(__row=np.arange(len(duckdb_frame))).sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.fixture(scope="module")
def hand_built(isolated_settings, feast_data):
    from tenure.feature_repo.store import apply_definitions

    settings = isolated_settings("feast_duckdb_hand")
    customers, items, events = feast_data
    build_feature_tables(settings, [T1, T2], events=events, customers=customers, items=items)
    apply_definitions(settings)
    return settings


@pytest.fixture(scope="module")
def simulated(isolated_settings, small_shop):
    from tenure.feature_repo.store import apply_definitions

    settings = isolated_settings("feast_duckdb_sim")
    customers, items, events = small_shop
    build_feature_tables(settings, snapshot_times("2026-02-01", "2026-04-26", 7),
                         events=events, customers=customers, items=items)
    apply_definitions(settings)
    return settings


def test_render_config_uses_the_setting_on_both_profiles(make_settings):
    from tenure.feature_repo.store import render_config

    assert render_config(make_settings())["offline_store"] == {"type": "duckdb"}  # the default
    assert render_config(make_settings(feast={"offline_store": "file"}))["offline_store"] == {"type": "file"}
    production = make_settings(feast={"profile": "production"})
    assert render_config(production)["offline_store"] == {"type": "duckdb"}
    assert render_config(make_settings(feast={"profile": "production", "offline_store": "file"}))[
        "offline_store"] == {"type": "file"}
    with pytest.raises(ValueError, match="offline_store"):
        make_settings(feast={"offline_store": "spark"})


def test_duckdb_gives_the_file_frame_on_edge_cases(hand_built):
    # before the first snapshot, exactly at a snapshot, between snapshots, stale (past the 21-day
    # activity TTL but within the 90-day profile TTL), unknown customer
    rows = pd.DataFrame({
        "customer_id": ["a", "a", "b", "a", "a", "zz", "b", "p"],
        "event_timestamp": pd.to_datetime(["2026-03-07", "2026-03-08", "2026-03-12", "2026-03-15", "2026-04-10",
                                           "2026-03-15", "2026-06-30", "2026-03-09T12:00"],
                                          utc=True, format="ISO8601"),
        "label": [0, 1, 0, 1, 0, 1, 1, 1],
    })
    file_frame, duckdb_frame = _both(hand_built, rows)
    _assert_same(file_frame, duckdb_frame)
    assert list(duckdb_frame["label"]) == list(rows["label"])  # every row back, in the input order
    assert duckdb_frame["revenue_30d"].isna().tolist()[:5] == [True, False, False, False, True]
    assert duckdb_frame["plan"].iloc[4] == "pro"


def test_duckdb_joins_every_copy_of_a_repeated_entity_row(hand_built):
    # The file store joins only one of two equal (customer_id, event_timestamp) rows (the other
    # keeps missing features); DuckDB joins both. Training sets hold one row per customer and
    # cut-off, so the stores agree there (tested above and below).
    rows = pd.DataFrame({"customer_id": ["a", "b", "a"],
                         "event_timestamp": pd.to_datetime(["2026-03-15"] * 3, utc=True), "label": [1, 0, 0]})
    _, duckdb_frame = _both(hand_built, rows)
    assert duckdb_frame["revenue_30d"].tolist() == [30.0, 0.0, 30.0]
    assert duckdb_frame["label"].tolist() == [1, 0, 0]


@pytest.mark.parametrize("rows_per_call", [None, 90])
def test_duckdb_gives_the_file_frame_for_a_simulated_shop(simulated, small_shop, rows_per_call):
    customers = small_shop[0]
    rng = np.random.default_rng(0)
    # whole-day times (many rows share a time, so chunks hold several) before, during and after the snapshots
    rows = pd.DataFrame({
        "customer_id": rng.choice(customers["customer_id"], 400),
        "event_timestamp": pd.Timestamp("2026-01-25", tz="UTC")
        + pd.to_timedelta(rng.integers(0, 130, 400), unit="D"),
        "label": rng.integers(0, 2, 400),
    }).drop_duplicates(["customer_id", "event_timestamp"])  # one row per customer and time, as in training
    assert len(rows) > 300
    for service in ("churn_v1", "recommender_v1"):
        file_frame, duckdb_frame = _both(simulated, rows, service, rows_per_call=rows_per_call)
        _assert_same(file_frame, duckdb_frame)
    _, churn_duckdb = _both(simulated, rows, rows_per_call=rows_per_call)
    assert churn_duckdb[list(CUSTOMER_FEATURE_COLUMNS)].notna().any().all()  # not trivially equal
    assert churn_duckdb["revenue_30d"].isna().any()


def test_materialize_through_duckdb_loads_the_latest_snapshot(isolated_settings, feast_data):
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import apply_definitions, materialize, open_store

    settings = _with_offline_store(isolated_settings("feast_duckdb_online"), "duckdb")
    customers, items, events = feast_data
    build_feature_tables(settings, [T1, T2], events=events, customers=customers, items=items)
    apply_definitions(settings)
    materialize(settings)
    a, nobody = OnlineFeatureReader(open_store(settings), "churn_v1").read(["a", "nobody"])
    assert nobody is None and a["revenue_30d"] == 30.0 and a["plan"] == "pro"
