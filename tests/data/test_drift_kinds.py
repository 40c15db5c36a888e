"""The simulator's library of changes (features/sim_drift.py): each kind changes what it says, from when it says."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tenure.features.sim_drift import DRIFT_KINDS, apply_break, drift_truth, simulate_drifted_shop
from tenure.features.simulator import simulate_shop

N, ITEMS, DAYS, SEED, AT = 600, 80, 90, 21, 45


@pytest.fixture(scope="module")
def quiet():
    return simulate_shop(N, ITEMS, DAYS, SEED)


@pytest.fixture(scope="module")
def drifted():
    return {kind: simulate_drifted_shop(N, ITEMS, DAYS, SEED, kind, AT) for kind in DRIFT_KINDS}


def _split(events: pd.DataFrame, at: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    t = pd.Timestamp(at)
    return events[events["event_at"] < t], events[events["event_at"] >= t]


@pytest.mark.parametrize("kind", [k for k in DRIFT_KINDS if k != "seasonality"])
def test_days_before_the_change_are_the_quiet_world(kind, quiet, drifted):
    shop, truth = drifted[kind]
    before, _ = _split(shop.events, truth.starts_at)
    quiet_before, _ = _split(quiet.events, truth.starts_at)
    # free-text survey answers are drawn after the daily loop and are not stable under channel_mix
    cols = [c for c in before.columns if c != "text"]
    pd.testing.assert_frame_equal(before[cols].reset_index(drop=True), quiet_before[cols].reset_index(drop=True))


def test_truth_says_what_changed_and_when():
    truth = drift_truth("units", AT, "2026-01-01")
    assert truth.starts_at == "2026-02-15T00:00:00+00:00" and truth.family == "pipeline"
    assert truth.columns == ("events.amount",) and truth.harmful
    assert not drift_truth("seasonality", AT, "2026-01-01").harmful
    assert drift_truth("concept", AT, "2026-01-01").family == "world"
    with pytest.raises(ValueError, match="unknown drift kind 'typo'"):
        drift_truth("typo", AT, "2026-01-01")


def _amount_median(events: pd.DataFrame) -> float:
    return float(events.loc[events["event_type"] == "purchase", "amount"].median())


def test_each_kind_changes_what_it_says(quiet, drifted):
    _, q_after = _split(quiet.events, drifted["units"][1].starts_at)

    def after(kind):
        return _split(drifted[kind][0].events, drifted[kind][1].starts_at)[1]

    assert _amount_median(after("price_shock")) == pytest.approx(1.5 * _amount_median(q_after), rel=0.1)
    assert (after("price_shock")["event_type"] == "purchase").sum() < 0.85 * (q_after["event_type"] == "purchase").sum()
    assert (after("engagement_decline")["event_type"] == "session").sum() < 0.65 * (q_after["event_type"] == "session").sum()
    assert after("nulls").loc[lambda e: e["event_type"] == "purchase", "amount"].isna().all()
    assert _amount_median(after("units")) == pytest.approx(100 * _amount_median(q_after), rel=0.01)
    renamed = after("renamed_category")["channel"]
    assert "app" not in set(renamed) and (renamed == "mobile_app").sum() == (q_after["channel"] == "app").sum()
    dup = after("duplicate_events")
    assert dup["event_id"].is_unique and 1.2 < len(dup) / len(q_after) < 1.4
    assert dup.duplicated(["customer_id", "event_at", "event_type", "item_id"]).mean() > 0.2
    shifted = after("timezone_shift")
    app = shifted["channel"] == "app"
    assert shifted.loc[app, "event_at"].min() >= pd.Timestamp(drifted["units"][1].starts_at) + pd.Timedelta(hours=6)
    # concept: annual-plan customers leave; the channel mix is the simulator's own change
    shop, _ = drifted["concept"]
    annual = set(shop.customers.loc[shop.customers["plan"] == "annual", "customer_id"])
    left_q = quiet.truth["left_at"].notna()
    left_c = shop.truth["left_at"].notna()
    assert shop.truth.loc[left_c & ~left_q, "customer_id"].isin(annual).all()
    assert (left_c & ~left_q).sum() > 10
    new = drifted["channel_mix"][0].customers
    assert (new["acquisition_channel"] == "social_video").any()


def test_seasonality_is_yearly_and_peaks_at_drift_at():
    shop, _ = simulate_drifted_shop(600, 80, 365, SEED, "seasonality", 0)
    quiet = simulate_shop(600, 80, 365, SEED)
    day = lambda e: ((e["event_at"] - e["event_at"].min().normalize()) / pd.Timedelta(days=1)).astype(int)
    ratio = (shop.events.groupby(day(shop.events) // 30).size() / quiet.events.groupby(day(quiet.events) // 30).size())
    assert ratio.iloc[0] > 0.93 and ratio.iloc[6] < 0.85 and ratio.iloc[11] > ratio.iloc[6] + 0.08


def test_break_is_pure_and_checks_kind(quiet):
    events = quiet.events.head(500)
    before = events.copy()
    out, _ = apply_break(events, None, "units", pd.Timestamp("2026-01-01", tz="UTC"))
    pd.testing.assert_frame_equal(events, before)
    assert not out["amount"].equals(events["amount"])
    with pytest.raises(ValueError, match="no pipeline break"):
        apply_break(events, None, "concept", pd.Timestamp("2026-01-01", tz="UTC"))


def test_cli_writes_the_truth(cli, tmp_path):
    result = cli("generate", "--customers", "80", "--items", "20", "--days", "20", "--drift-kind", "units",
                 "--drift-at", "10", "--out", str(tmp_path / "g"))
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "g" / "drift_truth.json").read_text())
    assert truth["kind"] == "units" and truth["drift_at"] == 10 and truth["columns"] == ["events.amount"]
    assert cli("generate", "--drift-kind", "units", "--days", "10").exit_code == 2  # no --drift-at
    assert cli("generate", "--drift-kind", "wobble", "--drift-at", "3", "--days", "10").exit_code == 2
    assert np.isfinite(pd.read_parquet(tmp_path / "g" / "events.parquet")["amount"]).any()
