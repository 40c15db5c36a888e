"""KPIs: known answers on a hand-built shop, the simulator's realised rates, churn as the label defines it, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tenure.features.labels import label_churn
from tenure.features.schema import conform
from tenure.features.simulator import simulate_shop
from tenure.features.simulator_truth import true_rates
from tenure.insight.kpis import compute_kpis

QUALIFYING = ("purchase", "session", "view", "add_to_cart")


def _customers(rows):
    return conform(pd.DataFrame(rows).assign(consent_personalization=True), "customers")


def _events(rows):
    frame = pd.DataFrame(rows)
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    return conform(frame, "events")


@pytest.fixture(scope="module")
def small():
    customers = _customers([
        {"customer_id": "a", "signup_at": "2026-01-03", "plan": "free"},
        {"customer_id": "b", "signup_at": "2026-01-20", "plan": "annual"},
        {"customer_id": "c", "signup_at": "2026-02-10", "plan": "free"},
    ])
    events = _events([
        # a: two session days, both converted (two orders, 10 days apart); the 2nd order has two lines
        {"customer_id": "a", "event_at": "2026-01-05T10:00Z", "event_type": "session", "channel": "web"},
        {"customer_id": "a", "event_at": "2026-01-05T10:05Z", "event_type": "purchase", "amount": 30.0, "channel": "web"},
        {"customer_id": "a", "event_at": "2026-01-15T09:00Z", "event_type": "session", "channel": "app"},
        {"customer_id": "a", "event_at": "2026-01-15T09:10Z", "event_type": "purchase", "amount": 20.0, "channel": "app"},
        {"customer_id": "a", "event_at": "2026-01-15T09:11Z", "event_type": "purchase", "amount": 10.0, "channel": "app"},
        # b: a session without an order, one order later without a session that day
        {"customer_id": "b", "event_at": "2026-01-21T12:00Z", "event_type": "session", "channel": "web"},
        {"customer_id": "b", "event_at": "2026-02-02T12:00Z", "event_type": "purchase", "amount": 60.0, "channel": "web"},
        # service: tickets and surveys
        {"customer_id": "b", "event_at": "2026-02-03T08:00Z", "event_type": "support_ticket", "channel": "chat",
         "resolution_hours": 4.0},
        {"customer_id": "c", "event_at": "2026-02-12T08:00Z", "event_type": "support_ticket", "channel": "phone",
         "resolution_hours": 30.0},
        {"customer_id": "c", "event_at": "2026-02-13T08:00Z", "event_type": "support_ticket", "channel": "chat",
         "resolution_hours": 10.0},
        {"customer_id": "a", "event_at": "2026-02-14T08:00Z", "event_type": "survey", "channel": "email", "nps": 10},
        {"customer_id": "b", "event_at": "2026-02-14T09:00Z", "event_type": "survey", "channel": "email", "nps": 8},
        {"customer_id": "c", "event_at": "2026-02-14T10:00Z", "event_type": "survey", "channel": "email", "nps": 3,
         "csat": 2, "ces": 2},
        {"customer_id": "b", "event_at": "2026-02-15T10:00Z", "event_type": "survey", "channel": "email", "csat": 5,
         "ces": 7},
        {"customer_id": "c", "event_at": "2026-02-16T10:00Z", "event_type": "session", "channel": "app"},
    ])
    return customers, events


def test_known_answers_of_a_hand_built_shop(small):
    customers, events = small
    report = compute_kpis(customers, events, by="plan")
    t = report["totals"]
    assert t["orders"] == 3 and t["revenue"] == 120.0 and t["average_order_value"] == pytest.approx(40.0)
    assert t["buyers"] == 2 and t["repurchase_rate"] == pytest.approx(0.5)
    assert t["days_between_orders_mean"] == 10.0 and t["days_between_orders_median"] == 10.0
    assert (t["session_days"], t["converted_session_days"]) == (4, 2) and t["conversion_rate"] == 0.5
    assert t["nps"] == pytest.approx(100 * (1 / 3 - 1 / 3)) and t["nps_answers"] == 3
    assert t["csat"] == 0.5 and t["csat_mean"] == 3.5 and t["ces"] == 4.5 and t["ces_easy_share"] == 0.5
    assert t["tickets"] == 3 and t["resolution_hours_median"] == 10.0 and t["resolution_hours_mean"] == pytest.approx(44 / 3)
    channels = {c["channel"]: c for c in report["channels"]}
    assert list(channels) == ["web", "app", "email", "chat", "phone"]  # the omnichannel order
    assert channels["app"]["orders"] == 1 and channels["app"]["revenue"] == 30.0
    assert channels["web"]["conversion_rate"] == 0.5  # a's day converted, b's did not
    assert channels["chat"]["tickets"] == 2 and channels["chat"]["resolution_hours_median"] == 7.0
    assert channels["email"]["nps_answers"] == 3 and channels["email"]["orders"] == 0
    segments = {r["segment"]: r for r in report["segments"]["rows"]}
    assert segments["free"]["customers"] == 2 and segments["annual"]["revenue"] == 60.0
    json.dumps(report, allow_nan=False)  # plain JSON types throughout


def test_cohort_retention_counts_activity_by_month_after_signup(small):
    customers, events = small
    cohorts = {c["cohort"]: c for c in compute_kpis(customers, events)["cohorts"]}
    assert cohorts["2026-01"]["size"] == 2
    assert cohorts["2026-01"]["retention"] == [1.0, 0.5]  # a and b active in January, only b in February
    assert cohorts["2026-02"] == {"cohort": "2026-02", "size": 1, "retention": [1.0]}


def test_window_limits_the_events_counted(small):
    customers, events = small
    report = compute_kpis(customers, events, start=pd.Timestamp("2026-02-01", tz="UTC"),
                          end=pd.Timestamp("2026-02-28T23:59:59", tz="UTC"))
    assert report["totals"]["orders"] == 1 and report["totals"]["revenue"] == 60.0
    assert [m["month"] for m in report["monthly"]] == ["2026-02"]


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(1500, 120, 150, seed=5)


def test_churn_is_the_churn_label_at_each_months_start(shop):
    report = compute_kpis(shop.customers, shop.events, horizon_days=30, qualifying_event_types=QUALIFYING)
    measured = [m for m in report["monthly"] if m["churn_rate"] is not None]
    assert len(measured) >= 3
    for month in measured:
        cutoff = pd.Timestamp(f"{month['month']}-01", tz="UTC")
        labels = label_churn(shop.events, shop.customers, [cutoff], 30, QUALIFYING)
        assert month["alive_at_start"] == len(labels)
        assert month["churn_rate"] == pytest.approx(labels["label"].mean())
    first = report["monthly"][0]
    assert first["churn_rate"] is None  # January: no 30 days of history to know who was alive
    n = sum(m["customer_months"] for m in measured)
    pooled = sum(m["churn_rate"] * m["customer_months"] for m in measured) / n
    assert report["totals"]["churn_rate"] == pytest.approx(pooled)


def test_event_rates_equal_an_independent_computation_of_the_simulated_shop(shop):
    truth = true_rates(shop)
    report = compute_kpis(shop.customers, shop.events)
    for name, value in truth["realised"].items():
        assert report["totals"][name] == pytest.approx(value, rel=1e-9), name
    by_channel = {c["channel"]: c for c in report["channels"]}
    for channel, rates in truth["channels"].items():
        for name, value in rates.items():
            if value is None:
                assert by_channel[channel][name] is None, (channel, name)
            else:
                assert by_channel[channel][name] == pytest.approx(value, rel=1e-9), (channel, name)
    assert 0 < truth["true_churn"]["churn_rate"] < 1


def test_segments_partition_the_customers(shop):
    for by in ("plan", "region", "channel", "cohort"):
        rows = compute_kpis(shop.customers, shop.events, by=by)["segments"]["rows"]
        assert sum(r["customers"] for r in rows) == len(shop.customers), by
        assert sum(r["orders"] for r in rows) == compute_kpis(shop.customers, shop.events)["totals"]["orders"]


def test_bad_arguments_say_what_is_wrong(small):
    customers, events = small
    with pytest.raises(ValueError, match="by must be one of"):
        compute_kpis(customers, events, by="colour")
    with pytest.raises(ValueError, match="before start"):
        compute_kpis(customers, events, start=pd.Timestamp("2026-03-01", tz="UTC"),
                     end=pd.Timestamp("2026-02-01", tz="UTC"))
    with pytest.raises(ValueError, match="acquisition_channel"):
        compute_kpis(customers.drop(columns="acquisition_channel"), events, by="channel")
    rows = compute_kpis(customers, events, by="channel")["segments"]["rows"]
    assert [(r["segment"], r["customers"]) for r in rows] == [("(missing)", 3)]  # the column is there but empty


# ------------------------------------------------------------------------------------------ CLI


def test_cli_reports_the_generated_shop_and_its_true_rates(cli, tmp_path: Path):
    assert cli("report", "kpis").exit_code == 1  # nothing ingested yet: a failure that says so
    assert cli("generate", "--customers", "400", "--items", "60", "--days", "120", "--seed", "3").exit_code == 0
    truth = json.loads((tmp_path / "data" / "raw" / "rates_truth.json").read_text())
    assert cli("ingest", "--from-dir", str(tmp_path / "data" / "raw")).exit_code == 0
    result = cli("report", "kpis", "--json", "--by", "plan", "--from", "2026-01-01", "--to", "2026-04-30")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["segments"]["by"] == "plan"
    for name, value in truth["realised"].items():
        assert report["totals"][name] == pytest.approx(value, rel=1e-9), name
    assert report["voice"]["texts"] > 0 and report["voice"]["negative_topics"]
    text = cli("report", "kpis", "--by", "cohort")
    assert text.exit_code == 0 and "signup cohorts" in text.stdout and "negative topic" in text.stdout
    assert "estimated lost customers" in text.stdout
    bad = cli("report", "kpis", "--by", "colour")
    assert bad.exit_code == 2 and "--by" in bad.output
    backwards = cli("report", "kpis", "--from", "2026-03-01", "--to", "2026-02-01")
    assert backwards.exit_code == 1 and "before start" in backwards.output
    assert np.isfinite(report["totals"]["churn_rate"])


def test_report_labels_are_the_feature_labels_row_for_row(shop):
    from tenure.insight import kpis

    cutoffs = [pd.Timestamp(m, tz="UTC") for m in ("2026-02-01", "2026-03-01", "2026-04-01")]
    frame = kpis._Frame(shop.customers, shop.events, shop.events["event_at"].max(), QUALIFYING)
    assert len(frame.cancels.codes) > 0  # explicit cancellations are part of the check
    ours = kpis._labels(frame, cutoffs, 30).drop(columns="code")
    theirs = label_churn(shop.events, shop.customers, cutoffs, 30, QUALIFYING)
    key = ["event_timestamp", "customer_id"]
    pd.testing.assert_frame_equal(ours.sort_values(key).reset_index(drop=True),
                                  theirs.sort_values(key).reset_index(drop=True), check_dtype=False)
