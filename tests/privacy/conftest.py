"""A small workspace with tables, feature tables and a materialized online store, for the privacy tests."""

from __future__ import annotations

import pandas as pd
import pytest


def build_shop_workspace(settings):
    """Simulate a small shop, write its raw CSV files, ingest them, build weekly snapshots, apply and materialize."""
    from tenure.feature_repo.store import apply_definitions, materialize
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop, write_shop
    from tenure.features.snapshots import build_feature_tables, snapshot_times

    shop = simulate_shop(n_customers=80, n_items=20, days=45, seed=3, start="2026-01-01")
    write_shop(shop, settings.paths.raw_dir, file_format="csv")
    with IngestRun(settings) as run:
        run.ingest_dir(settings.paths.raw_dir)
    build_feature_tables(settings, snapshot_times(pd.Timestamp("2026-01-20", tz="UTC"), shop.events["event_at"].max(), 7))
    apply_definitions(settings)
    materialize(settings)
    return shop


@pytest.fixture
def shop_workspace():
    """``build(settings) -> Shop``: the small workspace builder."""
    return build_shop_workspace
