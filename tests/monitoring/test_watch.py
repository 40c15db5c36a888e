"""Performance before labels (CBPE), event-level shifts, alert routing and the recommender's triggers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tenure.monitoring.alerts import Alert, dispatch, routed, sinks_from_settings
from tenure.monitoring.estimation import estimate_performance, estimate_roc_auc
from tenure.monitoring.event_drift import event_drift
from tenure.monitoring.policy import decide_retrain
from tenure.monitoring.watch import recommender_check, wilson_interval
from tenure.settings import Settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("a,b", [(1, 5), (0.5, 3), (2, 2)])
def test_cbpe_matches_roc_auc_of_labels_drawn_from_calibrated_probabilities(a, b):
    rng = np.random.default_rng(7)
    p = rng.beta(a, b, 40_000)
    y = rng.random(len(p)) < p
    assert estimate_roc_auc(p) == pytest.approx(roc_auc_score(y, p), abs=0.01)


def test_cbpe_recalibrates_on_the_reference():
    rng = np.random.default_rng(3)
    true = rng.beta(1, 4, 20_000)
    overconfident = true ** 0.5  # ranks kept, probabilities too high
    y = rng.random(len(true)) < true
    naive = estimate_roc_auc(overconfident)
    est = estimate_performance(overconfident[:10_000], overconfident[10_000:], y[10_000:], promised_roc_auc=0.8)
    realised = roc_auc_score(y[:10_000], overconfident[:10_000])
    assert abs(est["estimated_roc_auc"] - realised) < 0.01 < abs(naive - realised)
    assert est["recalibrated"] and est["estimated_auc_drop"] == pytest.approx(0.8 - est["estimated_roc_auc"])
    assert est["reference_ece"] > 0.05


def test_cbpe_rejects_bad_probabilities():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        estimate_roc_auc(np.array([0.2, 1.3]))
    assert np.isnan(estimate_roc_auc(np.zeros(5)))


def _events(days: int, seed: int, amount_factor: float = 1.0, session_keep: float = 1.0, change_day: int = 10**6):
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-01-01", tz="UTC")
    for d in range(days):
        keep = session_keep if d >= change_day else 1.0
        factor = amount_factor if d >= change_day else 1.0
        for c in rng.choice(400, size=rng.poisson(120), replace=False):
            if rng.random() < keep:
                rows.append((f"c{c}", start + pd.Timedelta(days=d, seconds=int(rng.integers(0, 86_000))), "session", np.nan))
            if rng.random() < 0.3 * keep:
                rows.append((f"c{c}", start + pd.Timedelta(days=d, seconds=int(rng.integers(0, 86_000))), "purchase",
                             round(float(rng.lognormal(3, 0.6)) * factor, 2)))
    return pd.DataFrame(rows, columns=["customer_id", "event_at", "event_type", "amount"]).sort_values("event_at")


def test_event_drift_quiet_and_changed():
    m = Settings().monitoring
    end = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=70)
    quiet = event_drift(_events(70, 1), end, 7, 28, m)
    assert {x.signal for x in quiet} == {"amount", "activity:session", "activity:purchase"}
    assert not any(x.alarm for x in quiet)
    prices = event_drift(_events(70, 1, amount_factor=1.5, change_day=63), end, 7, 28, m)
    assert [x.signal for x in prices if x.alarm] == ["amount"]
    fewer = event_drift(_events(70, 1, session_keep=0.6, change_day=63), end, 7, 28, m)
    assert {x.signal for x in fewer if x.alarm} == {"activity:session", "activity:purchase"}
    assert "-4" in next(x.message for x in fewer if x.signal == "activity:session")  # about -40%
    decision = decide_retrain(drift_share=0.0, drifted=[], auc_drop=None, model_age_days=None, settings=m,
                              last_retrain_at=None, now=NOW, dry_run=True, event_shifts=prices)
    assert decision.triggered and decision.kinds == ["event:amount"]


def test_estimated_auc_drop_triggers_before_labels():
    m = Settings().monitoring
    fired = decide_retrain(drift_share=0.0, drifted=[], auc_drop=None, model_age_days=None, settings=m,
                           last_retrain_at=None, now=NOW, dry_run=False, estimated_auc_drop=0.08)
    assert fired.fire and fired.kinds == ["estimated_auc_drop"] and "CBPE" in fired.reasons[0]
    quiet = decide_retrain(drift_share=0.0, drifted=[], auc_drop=None, model_age_days=None, settings=m,
                           last_retrain_at=None, now=NOW, dry_run=False, estimated_auc_drop=0.01,
                           prediction_drifted=True)
    assert not quiet.triggered  # prediction drift alone is reported, not a trigger, by default


def test_alerts_are_routed_to_the_sinks_that_take_them(tmp_path):
    settings = Settings(paths={"data_dir": tmp_path / "data", "reports_dir": tmp_path / "reports"},
                        monitoring={"alert_sinks": [{"kind": "jsonl", "path": str(tmp_path / "data_team.jsonl"),
                                                     "routes": ["data_team"]},
                                                    {"kind": "jsonl", "path": str(tmp_path / "ops.jsonl"),
                                                     "routes": ["ops"]},
                                                    {"kind": "jsonl", "path": str(tmp_path / "all.jsonl")}],
                                    "alert_routes": {"recommender": {"severity": "critical", "route": "ops"}}})
    sinks = sinks_from_settings(settings.monitoring.alert_sinks, settings.paths.reports_dir)
    routes = settings.monitoring.alert_routes
    for kind in ("pipeline", "drift", "performance", "recommender"):
        alert = routed(Alert(model="churn", model_version="1", title=kind, findings=[], report_path=None,
                             next_action="-", kind=kind), routes)
        dispatch(alert, sinks)

    def titles(name):
        return [json.loads(x)["title"] for x in (tmp_path / name).read_text().splitlines()]

    assert titles("data_team.jsonl") == ["pipeline", "drift"]
    assert titles("ops.jsonl") == ["performance", "recommender"]
    assert titles("all.jsonl") == ["pipeline", "drift", "performance", "recommender"]
    record = json.loads((tmp_path / "ops.jsonl").read_text().splitlines()[1])
    assert record["severity"] == "critical" and record["route"] == "ops" and record["kind"] == "recommender"
    assert routes["pipeline"].severity == "critical"  # defaults kept for kinds not configured


def test_wilson_interval():
    low, high = wilson_interval(20, 200)
    assert low < 0.1 < high and high - low == pytest.approx(0.085, abs=0.005)


def test_recommender_triggers_with_interval_and_cooldown():
    m = Settings().monitoring
    summary = {"by_strategy": {"als": {"matured_lists": 400, "hits": 20, "hit_rate": 0.05, "offline_hit_rate": 0.20},
                               "blend": {"matured_lists": 400, "hits": 70, "hit_rate": 0.175, "offline_hit_rate": 0.20},
                               "popular": {"matured_lists": 400, "hits": 4, "hit_rate": 0.01, "offline_hit_rate": None}}}
    coverage = {"coverage": 0.05, "lists": 900}
    d = recommender_check(summary, coverage, 0.4, m, None, NOW, dry_run=False, can_retrain=True)
    assert d.fire and d.kinds == ["recommender:hit_rate:als", "recommender:coverage"]
    assert summary["by_strategy"]["als"]["hit_rate_interval_95"][1] < 0.2
    few = {"by_strategy": {"als": {"matured_lists": 30, "hits": 1, "hit_rate": 0.03, "offline_hit_rate": 0.2}}}
    assert not recommender_check(few, None, None, m, None, NOW, False, True).triggered
    few_lists = recommender_check({"by_strategy": {}}, {"coverage": 0.02, "lists": 12}, 0.4, m, None, NOW, False, True)
    assert not few_lists.triggered  # a dozen lists cannot cover what the offline evaluation covers
    held = recommender_check(summary, coverage, 0.4, m, NOW - timedelta(hours=2), NOW, False, True)
    assert held.triggered and not held.fire and "cool-down" in held.blocked_by
