"""The online path (one customer, own events) gives exactly the batch row, for every customer."""

from __future__ import annotations

import pandas as pd
import pytest

from tenure.features.customer_features import LOOKBACK_DAYS, compute_customer_features


@pytest.mark.parametrize("as_of", ["2026-02-10", "2026-03-31T17:30:00Z", "2026-05-01"])
def test_single_customer_equals_batch_for_every_customer(small_shop, as_of):
    customers, items, events = small_shop
    t = pd.Timestamp(as_of).tz_localize("UTC") if pd.Timestamp(as_of).tzinfo is None else pd.Timestamp(as_of)
    batch = compute_customer_features(events, customers, items, t).set_index("customer_id")
    assert len(batch) > 10
    recent = events.loc[events["event_at"] > t - pd.Timedelta(days=LOOKBACK_DAYS)]
    by_customer = dict(tuple(recent.groupby("customer_id", sort=False)))
    for customer_id, expected in batch.iterrows():
        own_events = by_customer.get(customer_id, events.iloc[0:0])
        own = customers.loc[customers["customer_id"] == customer_id]
        single = compute_customer_features(own_events, own, items, t)
        assert len(single) == 1
        got = single.set_index("customer_id").iloc[0]
        pd.testing.assert_series_equal(got, expected, check_names=False, obj=f"customer {customer_id}")


def test_customers_unknown_at_the_cutoff_get_no_single_row(small_shop):
    customers, items, events = small_shop
    latest = customers.sort_values("signup_at").iloc[[-1]]
    before = latest["signup_at"].iloc[0] - pd.Timedelta(seconds=1)
    assert compute_customer_features(events, latest, items, before).empty
