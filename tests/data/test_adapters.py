"""Public dataset adapters on the real files (skipped when ../shared/datasets is absent)."""

from __future__ import annotations

import pandas as pd
import pytest

from tenure.features import adapters, tables
from tenure.features.ingest import ingest_shop_frames

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def telco(shared_datasets):
    return adapters.read_telco(shared_datasets)


def test_telco_snapshot(telco, settings):
    assert len(telco) == 7043 and telco["customer_id"].is_unique
    assert telco["churned"].dtype == bool and abs(telco["churned"].mean() - 0.265) < 0.01
    assert set(telco["plan"]) == {"month-to-month", "one_year", "two_year"}
    assert telco["total_charges"].notna().all()
    assert (telco.loc[telco["tenure_months"] == 0, "total_charges"] == 0).all()
    assert (telco["signup_at"] <= adapters.TELCO_SNAPSHOT_AT).all()
    assert {"monthly_charges", "internet_service", "payment_method", "senior_citizen"} <= set(telco.columns)
    report = ingest_shop_frames(settings, "telco", customers=telco)
    assert report.ok
    stored = tables.read_customers(settings)
    assert len(stored) == 7043 and stored["churned"].sum() == telco["churned"].sum()


def test_movielens(shared_datasets, settings):
    customers, items, events = adapters.read_movielens(shared_datasets / "movielens_small")
    assert (len(customers), len(events)) == (610, 100836)
    assert len(items) >= 9742 and items["item_id"].is_unique
    assert ((events["event_type"] == "purchase") == (events["rating"] >= 4)).all()
    assert events["item_id"].isin(items["item_id"]).all()
    assert (items["price"] == 0).all()
    first = events.groupby("customer_id")["event_at"].min()
    assert (customers.set_index("customer_id")["signup_at"] == first).all()
    from tenure.features.contract import validate_frame

    checked = validate_frame(events, "events", "ratings.csv", known_customers=customers["customer_id"].to_numpy(),
                             known_items=items["item_id"].to_numpy())
    assert checked.rejects.empty and len(checked.valid) == 100836
    recent = events[events["event_at"] >= "2018-01-01"]  # storing all 22 years writes ~4,000 partitions
    report = ingest_shop_frames(settings, "movielens", customers, items, recent)
    assert report.ok and report.files[2].accepted == len(recent)


def test_cdnow(shared_datasets, settings):
    customers, items, events = adapters.read_cdnow(shared_datasets)
    assert (len(customers), len(events)) == (23570, 69659)
    assert list(items["item_id"]) == [adapters.CDNOW_ITEM_ID]
    assert (events["event_at"].dt.hour == adapters.CDNOW_PURCHASE_HOUR).all()
    assert events["event_at"].min() == pd.Timestamp("1997-01-01T12:00:00Z")
    assert (events["amount"] >= 0).all() and (events["quantity"] >= 0).all()
    report = ingest_shop_frames(settings, "cdnow", customers, items, events)
    assert report.ok and len(tables.read_events(settings)) == 69659


def test_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="telco_customer_churn.csv not found"):
        adapters.read_telco(tmp_path)
