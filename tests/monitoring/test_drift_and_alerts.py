"""Drift detection, alerts and sinks, episode suppression and the retrain policy (fast, seeded)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from tenure.monitoring.alerts import Alert, EpisodeTracker, JsonlSink, WebhookSink, dispatch
from tenure.monitoring.drift import drift_report
from tenure.monitoring.performance import (
    churn_metrics,
    matured_snapshot_performance,
    read_purchases,
    recommendation_hit_rate,
)
from tenure.monitoring.policy import RetrainState, decide_retrain
from tenure.monitoring.runner import _outcome_summary, parse_window
from tenure.monitoring.sources import read_prediction_log, with_risk_bands
from tenure.settings import MonitoringSettings

NUMERICAL = ["recency", "spend", "sessions"]
CATEGORICAL = ["channel"]


def frame(n: int, seed: int, shift: float = 0.0, new_channel: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    channel = rng.choice(["organic", "paid", "referral"], n, p=[0.5, 0.3, 0.2]).astype(object)
    channel[rng.random(n) < new_channel] = "social_video"
    return pd.DataFrame({
        "recency": rng.exponential(10 * (1 + shift), n),
        "spend": rng.gamma(2.0, 30 * (1 + shift), n),
        "sessions": rng.poisson(5 * (1 - shift / 2), n).astype(float),
        "channel": channel,
        "prediction": rng.beta(2, 8 + 0 * shift, n) * (1 + shift),
    })


def test_shifted_copy_drifts_and_resampled_copy_does_not():
    settings = MonitoringSettings()
    reference = frame(3000, 0)
    same, _ = drift_report(reference, frame(2000, 1), NUMERICAL, CATEGORICAL, settings)
    assert same.drifted == []
    assert same.drift_share == 0.0
    shifted, snapshot = drift_report(reference, frame(2000, 2, shift=0.6, new_channel=0.4), NUMERICAL, CATEGORICAL, settings)
    assert set(shifted.drifted) == {"recency", "spend", "sessions", "channel"}
    assert shifted.prediction.drifted
    assert shifted.new_categories == {"channel": ["social_video"]}
    assert all(f.method == settings.numerical_stattest for f in shifted.features if f.kind == "numerical")
    assert "metrics" in snapshot.dict()


def test_a_feature_without_values_is_left_out_of_the_drift_tests():
    """CDNOW has no sessions: an all-empty column has no distribution, so it is not tested (Evidently refused
    the whole report); its missing share is still reported, and the other columns are judged as before."""
    settings = MonitoringSettings()
    reference, current = frame(3000, 0), frame(2000, 2, shift=0.6)
    reference["sessions"] = current["sessions"] = np.nan
    summary, _ = drift_report(reference, current, NUMERICAL, CATEGORICAL, settings)
    assert [f.column for f in summary.features] == ["recency", "spend", "channel"]
    assert {"recency", "spend"} <= set(summary.drifted)
    assert summary.missing_share["sessions"]["current"] == 1.0


def test_per_feature_overrides_from_settings_and_argument():
    reference, current = frame(3000, 0), frame(2000, 3, shift=0.15)
    settings = MonitoringSettings(feature_overrides={"recency": {"method": "psi", "threshold": 5.0},
                                                     "channel": {"method": "chisquare", "threshold": 0.05}})
    summary, _ = drift_report(reference, current, NUMERICAL, CATEGORICAL, settings,
                              overrides={"spend": ("ks", 0.05)})
    by = {f.column: f for f in summary.features}
    assert (by["recency"].method, by["recency"].threshold) == ("psi", 5.0)
    assert not by["recency"].drifted  # a PSI of 5 is never reached
    assert (by["spend"].method, by["channel"].method) == ("ks", "chisquare")
    assert by["sessions"].method == settings.numerical_stattest
    with pytest.raises(ValueError, match="cannot test the categorical column 'channel'"):
        drift_report(reference, current, NUMERICAL, CATEGORICAL, settings, overrides={"channel": ("wasserstein", 0.1)})
    with pytest.raises(ValueError, match="unknown drift method"):
        MonitoringSettings(feature_overrides={"recency": {"method": "eyeball", "threshold": 0.1}})


def test_risk_band_mix_is_tested_when_both_sides_have_bands():
    params = {"band_medium": "0.3", "band_high": "0.6"}
    reference = with_risk_bands(frame(3000, 0), params)
    assert set(reference["risk_band"]) <= {"low", "medium", "high"}
    assert (reference.loc[reference["prediction"] >= 0.6, "risk_band"] == "high").all()
    assert "risk_band" not in with_risk_bands(frame(50, 0), {}).columns  # no thresholds logged: no bands
    calm = with_risk_bands(frame(2000, 1), params)
    riskier = calm.assign(risk_band=np.where(np.arange(len(calm)) % 2 == 0, "high", calm["risk_band"]))
    quiet, _ = drift_report(reference, calm, NUMERICAL, CATEGORICAL, MonitoringSettings())
    loud, _ = drift_report(reference, riskier, NUMERICAL, CATEGORICAL, MonitoringSettings())
    assert quiet.bands is not None and not quiet.bands.drifted
    assert loud.bands.drifted and loud.band_mix["current"]["high"] > 0.45
    assert "risk_band" not in [f.column for f in loud.features]  # bands are prediction drift, not a feature


def test_drift_needs_enough_rows_and_shared_columns():
    with pytest.raises(ValueError, match="at least 30 rows"):
        drift_report(frame(3000, 0), frame(10, 1), NUMERICAL, CATEGORICAL, MonitoringSettings())
    with pytest.raises(ValueError, match="share no feature"):
        drift_report(frame(100, 0), frame(100, 1), ["other"], [], MonitoringSettings())


def _alert() -> Alert:
    return Alert(model="churn", model_version="3", title="Churn model v3: 40% of features drifted",
                 findings=["recency: wasserstein 0.412 vs threshold 0.2"], report_path="/r/report.html",
                 next_action="retraining started")


def test_alert_says_what_by_how_much_which_version_where_and_what_next():
    alert = _alert()
    text = alert.text()
    for part in ("v3", "recency", "0.412", "threshold 0.2", "/r/report.html", "retraining started"):
        assert part in text
    payload = alert.slack_payload()
    assert payload["text"] == text
    assert payload["blocks"][0]["type"] == "header"
    assert "retraining started" in json.dumps(payload["blocks"])


class _FlakyHook(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict]] = []
    fail_first = 2

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).calls.append(body)
        status = 500 if len(type(self).calls) <= type(self).fail_first else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_retries_with_backoff_until_it_succeeds():
    _FlakyHook.calls = []
    server = HTTPServer(("127.0.0.1", 0), _FlakyHook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_port}/hook", timeout_s=2, retries=3, backoff_s=0.01)
        assert dispatch(_alert(), [sink]) == {"webhook": "ok"}
        assert len(_FlakyHook.calls) == 3
        assert _FlakyHook.calls[-1]["text"].startswith("[tenure]")
        gives_up = WebhookSink(f"http://127.0.0.1:{server.server_port}/hook", timeout_s=2, retries=0, backoff_s=0.01)
        _FlakyHook.calls, _FlakyHook.fail_first = [], 5
        assert dispatch(_alert(), [gives_up])["webhook"].startswith("failed")
    finally:
        _FlakyHook.fail_first = 2
        server.shutdown()


def test_a_failing_sink_does_not_stop_the_others(tmp_path):
    class Broken:
        name = "broken"

        def send(self, alert):
            raise OSError("disk full")

    path = tmp_path / "alerts.jsonl"
    outcome = dispatch(_alert(), [Broken(), JsonlSink(path)])
    assert outcome["broken"] == "failed: disk full"
    assert outcome[f"jsonl:{path}"] == "ok"
    assert json.loads(path.read_text())["model_version"] == "3"


def test_episode_alerts_once_then_again_only_when_worse_or_new(tmp_path):
    tracker = EpisodeTracker(tmp_path / "episodes.json", worsening=0.2)
    assert tracker.should_alert("churn:drift", 0.4)
    assert not tracker.should_alert("churn:drift", 0.45)
    assert tracker.should_alert("churn:drift", 0.65)  # materially worse
    assert tracker.close("churn:drift")
    assert tracker.should_alert("churn:drift", 0.4, ["key:acquisition_channel"])  # a new episode
    assert not tracker.should_alert("churn:drift", 0.3, ["key:acquisition_channel"])
    assert tracker.should_alert("churn:drift", 0.3, ["key:acquisition_channel", "auc_drop"])  # a new trigger
    assert not tracker.should_alert("churn:drift", 0.3, ["auc_drop"])


def test_policy_triggers_cooldown_and_dry_run():
    s = MonitoringSettings(drift_share_threshold=0.3, key_features=["recency"], retrain_cooldown_hours=24)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    quiet = decide_retrain(drift_share=0.1, drifted=["spend"], auc_drop=0.01, model_age_days=3, settings=s,
                           last_retrain_at=None, now=now, dry_run=False)
    assert not quiet.triggered and not quiet.fire
    key = decide_retrain(drift_share=0.1, drifted=["recency"], auc_drop=None, model_age_days=3, settings=s,
                         last_retrain_at=None, now=now, dry_run=False)
    assert key.fire and "key features drifted: recency" in key.reasons
    cooling = decide_retrain(drift_share=0.5, drifted=[], auc_drop=None, model_age_days=3, settings=s,
                             last_retrain_at=now - timedelta(hours=2), now=now, dry_run=False)
    assert cooling.triggered and not cooling.fire and cooling.blocked_by.startswith("cool-down")
    dry = decide_retrain(drift_share=0.5, drifted=[], auc_drop=0.2, model_age_days=90, settings=s,
                         last_retrain_at=None, now=now, dry_run=True)
    assert dry.blocked_by == "dry run" and len(dry.reasons) == 3
    assert "held back (dry run)" in dry.describe()


def test_retrain_outcome_summaries():
    flat = {"model": "churn", "run_id": "abc", "version": "4", "promoted": False, "reason": "ROC-AUC 0.70 < 0.74"}
    assert _outcome_summary(flat) == "churn v4 not promoted: ROC-AUC 0.70 < 0.74"
    nested = {"models": {"churn": {"gate": {"promoted": True, "challenger_version": "5", "reason": "better"}}}}
    assert _outcome_summary(nested) == "churn v5 promoted: better"
    assert _outcome_summary(None) == "retraining finished"


def test_retrain_state_round_trip(tmp_path):
    state = RetrainState(tmp_path / "retrain.json")
    assert state.last_retrain_at("churn") is None
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    state.record("churn", {"promoted": False}, at)
    assert state.last_retrain_at("churn") == at


def test_realised_performance_on_a_small_labelled_window():
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0] * 10)
    p = np.where(y == 1, 0.8, 0.1)
    metrics = churn_metrics(y, p)
    assert metrics["roc_auc"] == 1.0
    assert metrics["lift_top10"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="single class"):
        churn_metrics(np.zeros(10), np.zeros(10))

    utc = lambda s: pd.Timestamp(s, tz="UTC")
    ids = [f"c{i}" for i in range(40)]
    customers = pd.DataFrame({"customer_id": ids, "signup_at": utc("2026-01-01")})
    stays = ids[:30]
    events = pd.DataFrame(
        [(c, utc("2026-02-25"), "purchase") for c in ids] + [(c, utc("2026-03-10"), "purchase") for c in stays]
        + [("c0", utc("2026-05-01"), "session")],
        columns=["customer_id", "event_at", "event_type"],
    )
    snapshots = pd.DataFrame({"customer_id": ids, "event_timestamp": utc("2026-03-01"),
                              "score": [0.1] * 30 + [0.9] * 10})
    result = matured_snapshot_performance(snapshots, events, customers, 30, ["purchase", "session"],
                                          lambda rows: rows["score"].to_numpy())
    assert result["roc_auc"] == 1.0 and result["rows"] == 40.0
    assert result["window"] == str(utc("2026-03-01"))


def test_prediction_log_reader_and_hit_rate(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    (log / "churn-20260601-1.jsonl").write_text(
        json.dumps({"kind": "churn", "request_id": "r1", "logged_at": "2026-06-01T10:00:00+00:00", "customer_id": "c1",
                    "model_version": "2", "features": {"recency": 3.0, "plan": "free"}, "churn_probability": 0.2,
                    "risk_band": "low"}) + "\n{not json\n"
        + json.dumps({"kind": "churn", "request_id": "r0", "logged_at": "2026-05-01T10:00:00+00:00", "customer_id": "c0",
                      "model_version": "1", "features": {"recency": 9.0, "plan": "paid"}, "churn_probability": 0.7,
                      "risk_band": "high"}) + "\n")
    frame = read_prediction_log(log, "churn", since=datetime(2026, 5, 15, tzinfo=UTC))
    assert frame["customer_id"].tolist() == ["c1"]
    assert frame.loc[0, "recency"] == 3.0 and frame.loc[0, "prediction"] == 0.2


def test_served_population_counts_each_customer_once_with_its_newest_vector_and_only_alive_ones():
    from tenure.monitoring.runner import served_population

    log = pd.DataFrame({
        "customer_id": ["c1", "c1", "c1", "c2", "c3"],
        "logged_at": pd.to_datetime(["2026-06-01T10:00Z", "2026-06-01T12:00Z", "2026-06-01T11:00Z",
                                     "2026-06-01T09:00Z", "2026-06-01T09:30Z"], utc=True),
        "days_since_last_activity": [5.0, 2.0, 4.0, 90.0, 80.0],  # c2, c3 quiet for longer than the horizon
        "tenure_days": [400.0, 400.0, 400.0, 500.0, 10.0],        # ... but c3 only just signed up
        "prediction": [0.3, 0.2, 0.25, 0.9, 0.5],
    })
    current = served_population(log, horizon_days=30)
    assert sorted(current["customer_id"]) == ["c1", "c3"]
    assert current.set_index("customer_id").loc["c1", "days_since_last_activity"] == 2.0  # the newest, not the last line
    assert served_population(pd.DataFrame(), 30).empty


def test_served_hit_rate_counts_purchases_after_serving_within_the_horizon(tmp_path):
    events = tmp_path / "events"
    events.mkdir()
    buy = lambda c, i, at: json.dumps({"customer_id": c, "event_type": "purchase", "item_id": i, "event_at": at})
    (events / "events-1.jsonl").write_text("\n".join([
        buy("c1", "i2", "2026-06-03T10:00:00+00:00"),   # 2 days after serving: a hit
        buy("c2", "i3", "2026-05-31T10:00:00+00:00"),   # before serving: not a hit
        buy("c3", "i4", "2026-06-30T10:00:00+00:00"),   # 29 days later: outside the 14-day horizon
        json.dumps({"customer_id": "c9", "event_type": "view", "item_id": "i1", "event_at": "2026-07-01T00:00:00+00:00"}),
        buy("c4", "i5", "2026-07-01T00:00:00+00:00"),   # bought, but its list has not matured
    ]) + "\n")
    purchases = read_purchases(events)
    assert len(purchases) == 4
    served = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3", "c4"],
        "logged_at": pd.to_datetime(["2026-06-01T10:00:00Z"] * 3 + ["2026-06-25T00:00:00Z"], utc=True),
        "items": [["i1", "i2"], ["i3"], ["i4"], ["i5"]],
    })
    result = recommendation_hit_rate(served, purchases, horizon_days=14)
    assert result["served_lists"] == 4 and result["matured_lists"] == 3
    assert result["hits"] == 1 and result["hit_rate"] == pytest.approx(1 / 3)
    young = recommendation_hit_rate(served.iloc[3:], purchases, horizon_days=14)
    assert young["hit_rate"] is None and "not measured" in young["note"]
    with pytest.raises(ValueError, match="horizon must be positive"):
        recommendation_hit_rate(served, purchases, horizon_days=0)


def test_window_parsing():
    assert parse_window("36h", 7) == timedelta(hours=36)
    assert parse_window(None, 7) == timedelta(days=7)
    with pytest.raises(ValueError, match="7d, 36h"):
        parse_window("soon", 7)
