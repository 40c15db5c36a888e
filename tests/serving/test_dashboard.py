"""The dashboard's panels and routes without a running service: the prediction log read incrementally,
the risk-band mix, value at risk, monitoring's files, the cache, and the read key (X-API-Key or HTTP Basic).

Real parts only: the service's own ``PredictionLog`` writes the log, monitoring's own ``write_report``
and ``JsonlSink`` write the reports and alerts, and the Starlette app is the one mounted at /dashboard.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tenure.serving.dashboard_panels import (
    PANELS,
    ChurnLogTail,
    DashboardData,
    drift_status,
    last_alerts,
    parse_churn_line,
    risk_mix,
    value_at_risk,
)
from tenure.serving.prediction_log import PredictionLog

KEY = "dash-key-0123456789"


def _score(log: PredictionLog, cid: str, p: float, band: str, at: datetime) -> None:
    log.add({"kind": "churn", "request_id": "r", "logged_at": at.isoformat(timespec="milliseconds"),
             "customer_id": log.customer_ref(cid), "model_version": "1",
             "features": {"sessions_30d": 1.0, "last_nps": float("nan")}, "churn_probability": p, "risk_band": band})


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "prediction_log"


def test_log_lines_are_read_without_decoding_the_features(log_dir):
    log = PredictionLog(log_dir, flush_s=3600)
    now = datetime.now(UTC)
    _score(log, 'c"1\\x', 0.7, "high", now)  # an id JSON must escape
    log.add({"kind": "recommend", "request_id": "r", "logged_at": now.isoformat(), "customer_id": "c2", "items": []})
    log.close()
    lines = [line for path in sorted(log_dir.glob("*.jsonl")) for line in path.read_bytes().splitlines()]
    parsed = [parse_churn_line(line) for line in lines]
    churn = [p for p in parsed if p is not None]
    assert churn == [(now.isoformat(timespec="milliseconds"), 'c"1\\x', 0.7, "high")]
    assert parse_churn_line(b"not json") is None


def test_the_tail_reads_only_what_was_appended_and_starts_over_when_a_file_shrinks(log_dir):
    log = PredictionLog(log_dir, flush_s=3600)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for i in range(6):
        _score(log, f"c{i}", 0.1 + 0.15 * i, ["low", "medium", "high"][i // 2], now)
    log.flush()
    tail = ChurnLogTail(log_dir)
    assert tail.update() == 6
    assert tail.update() == 0  # nothing new
    _score(log, "c0", 0.9, "high", now + timedelta(minutes=1))  # c0 moves to high
    log.flush()
    assert tail.update() == 1
    assert tail.latest["c0"][1:] == (0.9, "high")
    assert sum(sum(c.values()) for c in tail.minutes.values()) == 7
    # erasure rewrites the log: nothing of the old lines may survive in the counts
    path = next(log_dir.glob("churn-*.jsonl"))
    path.write_text(path.read_text().splitlines()[-1] + "\n")
    assert tail.update() == 1
    assert list(tail.latest) == ["c0"]
    log.close()


def test_risk_mix_shares_per_period_sum_to_one_and_the_period_follows_the_span(log_dir):
    log = PredictionLog(log_dir, flush_s=3600)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    bands = ["low"] * 3 + ["medium"] * 2 + ["high"]
    for i, band in enumerate(bands):
        _score(log, f"c{i}", 0.5, band, now - timedelta(minutes=30))
    _score(log, "c9", 0.9, "high", now)
    log.flush()
    tail = ChurnLogTail(log_dir)
    tail.update()
    answer = risk_mix(tail, days=90)
    data = answer["data"]
    assert answer["status"] == "ok" and data["period"] == "minute" and data["bands"] == ["low", "medium", "high"]
    assert data["share"]["low"][0] == pytest.approx(0.5) and data["share"]["high"][-1] == 1.0
    for i in range(len(data["periods"])):
        assert sum(data["share"][b][i] for b in data["bands"]) == pytest.approx(1.0)
    assert data["scores"] == 7 and data["customers_scored"] == 7
    # hourly counts over three days: drawn per hour; older than the window: left out
    tail.minutes = {}
    tail.hours = {(now - timedelta(days=d)).isoformat()[:13]: {"low": 1} for d in (1, 3, 200)}
    data = risk_mix(tail, days=90)["data"]
    assert data["period"] == "hour" and len(data["periods"]) == 2
    tail.hours[(now - timedelta(days=20)).isoformat()[:13]] = {"high": 1}  # twenty days: per day
    data = risk_mix(tail, days=90)["data"]
    assert data["period"] == "day" and len(data["periods"]) == 3 and data["share"]["high"] == [1.0, 0.0, 0.0]
    log.close()
    assert risk_mix(ChurnLogTail(log_dir.parent / "none"), days=90)["status"] == "empty"


def test_value_at_risk_is_probability_times_value_of_the_latest_score():
    values = pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "expected_value": [100.0, 50.0, 10.0, 80.0],
                           "p_alive": [0.9, 0.5, 0.2, 0.7]})
    latest = {"A": ("t", 0.8, "high"), "B": ("t", 0.2, "low"), "C": ("t", 0.5, "medium")}  # d was never scored
    answer = value_at_risk(values, latest, str.upper, top=2)
    data = answer["data"]
    assert answer["status"] == "ok"
    assert data["value_at_risk"] == pytest.approx(0.8 * 100 + 0.2 * 50 + 0.5 * 10)
    assert data["customers_scored"] == 3 and data["customers_valued"] == 4
    assert data["by_band"]["high"] == {"customers": 1, "expected_value": 100.0, "value_at_risk": pytest.approx(80.0)}
    assert [c["customer_id"] for c in data["top_customers"]] == ["a", "b"]
    assert value_at_risk(values, {}, str.upper, top=2)["status"] == "empty"


def test_drift_and_alerts_come_from_monitorings_own_files(tmp_path):
    from tenure.monitoring.alerts import Alert, JsonlSink
    from tenure.monitoring.reports import write_report

    reports = tmp_path / "reports"
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    for i, share in enumerate([0.1, 0.4]):
        write_report(reports, "churn", {"kind": "churn", "checked_at": (t0 + timedelta(days=i)).isoformat(),
                                        "model_version": "3", "mode": "log", "verdict": "ok" if i == 0 else "drift",
                                        "drift": {"drift_share": share, "drifted": ["price"] * i}},
                     now=t0 + timedelta(days=i))
    answer = drift_status(reports, shown=10)
    assert answer["status"] == "ok"
    assert [p["drift_share"] for p in answer["data"]["passes"]] == [0.1, 0.4]
    assert answer["data"]["latest"][0]["verdict"] == "drift" and answer["data"]["latest"][0]["drifted"] == ["price"]
    sink = JsonlSink(reports / "alerts.jsonl")
    for n in range(3):
        sink.send(Alert("churn", "3", f"alert {n}", ["price drifted"], None, "retrain",
                        raised_at=(t0 + timedelta(hours=n)).isoformat()))
    alerts = last_alerts([reports / "alerts.jsonl"], shown=2)
    assert [a["title"] for a in alerts["data"]["alerts"]] == ["alert 2", "alert 1"]
    assert last_alerts([reports / "missing.jsonl"], shown=2)["status"] == "empty"
    assert drift_status(tmp_path / "nothing", shown=10)["status"] == "empty"


def test_panels_are_recomputed_only_when_their_sources_change(make_settings):
    settings = make_settings()
    data = DashboardData(settings)
    first = data.refresh(slow=False)
    assert set(first) == {"risk_mix", "drift", "alerts"}
    assert data.refresh(slow=False) == []  # nothing changed
    log = PredictionLog(settings.paths.prediction_log_dir, flush_s=3600)
    _score(log, "c1", 0.7, "high", datetime.now(UTC))
    log.close()
    assert data.refresh(slow=False) == ["risk_mix"]
    answer = json.loads(data.panel_bytes("risk_mix"))
    assert answer["status"] == "ok" and answer["data"]["customers_by_band_now"] == {"high": 1}
    assert json.loads(data.panel_bytes("kpis"))["status"] == "computing"  # slow panels not computed yet
    everything = json.loads(data.all_bytes())
    assert list(everything) == list(PANELS)


def test_a_failing_panel_answers_error_and_the_others_still_draw(make_settings, monkeypatch):
    settings = make_settings()
    data = DashboardData(settings)
    monkeypatch.setattr(data, "_risk_mix", lambda: 1 / 0)
    data.refresh(slow=False)
    broken = json.loads(data.panel_bytes("risk_mix"))
    assert broken["status"] == "error" and "ZeroDivisionError" in broken["message"]
    assert json.loads(data.panel_bytes("drift"))["status"] == "empty"


# --- the routes --------------------------------------------------------------------------------------


@pytest.fixture
def app_client(make_settings, monkeypatch, tmp_path):
    """The mounted app with the read key required, its settings given as the service would read them."""
    import warnings

    from tenure.serving.dashboard import dashboard_app

    with warnings.catch_warnings():  # starlette asks for httpx2 here; the client works the same
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    def start(**overrides):
        dashboard = {"first_answer_wait_s": 0, **overrides.pop("dashboard", {})}  # answer "computing" at once
        settings = make_settings(serving={"api_keys": [KEY], "require_key_for_reads": True}, dashboard=dashboard,
                                 **overrides)
        config = tmp_path / "tenure.yaml"
        values = settings.model_dump(mode="json")
        values["serving"]["api_keys"] = [KEY]
        import yaml

        config.write_text(yaml.safe_dump(values))
        monkeypatch.setenv("TENURE_CONFIG", str(config))
        app = dashboard_app()
        apps.append(app)
        return TestClient(app)

    apps: list = []
    yield start
    for app in apps:  # the panels' thread may still be opening MLflow's store: let it end before other tests
        data = getattr(app.state, "dashboard_data", None)
        if data is not None:
            data.stop(timeout_s=120)


def test_reads_need_the_key_as_header_or_basic_password(app_client):
    with app_client() as client:
        missing = client.get("/data/risk_mix")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Basic")
        assert missing.json()["error"].startswith("missing API key")
        assert client.get("/data/risk_mix", headers={"X-API-Key": "wrong"}).status_code == 403
        assert client.get("/", auth=("anyone", "wrong")).status_code == 403
        bad_basic = {"Authorization": "Basic !!!"}
        assert client.get("/", headers=bad_basic).status_code == 403
        assert client.get("/data/risk_mix", headers={"X-API-Key": KEY}).json()["panel"] == "risk_mix"
        page = client.get("/", auth=("ops", KEY))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert b"{{refresh_ms}}" not in page.content and b"plotly.min.js" in page.content
        token = base64.b64encode(f"x:{KEY}".encode()).decode()
        assert client.get("/data", headers={"Authorization": f"Basic {token}"}).status_code == 200


def test_unknown_panel_plotly_from_the_package_and_the_off_switch(app_client):
    with app_client() as client:
        unknown = client.get("/data/nope", headers={"X-API-Key": KEY})
        assert unknown.status_code == 404 and "kpis" in unknown.json()["detail"][0]["msg"]
        js = client.get("/plotly.min.js", headers={"X-API-Key": KEY, "Accept-Encoding": "gzip"})
        assert js.status_code == 200 and js.headers["content-encoding"] == "gzip"
        assert js.content.startswith(b"/**") and b"plotly" in js.content[:2000].lower()  # decoded by the client
        again = client.get("/plotly.min.js", headers={"X-API-Key": KEY, "If-None-Match": js.headers["etag"]})
        assert again.status_code == 304
    with app_client(dashboard={"enabled": False}) as client:
        off = client.get("/data", headers={"X-API-Key": KEY})
        assert off.status_code == 404 and "dashboard.enabled" in off.json()["error"]


def test_experiment_rows_come_from_the_experiments_rooms_own_report(make_settings):
    pytest.importorskip("tenure.experiments.report")
    import numpy as np

    from tenure.experiments.outcomes import experiment_outcomes
    from tenure.experiments.report import build_report
    from tenure.serving.dashboard_panels import experiment_row

    rng = np.random.default_rng(7)
    t0 = pd.Timestamp("2026-03-01", tz="UTC")
    rows = []
    for i in range(600):
        arm = "control" if i % 2 == 0 else "offer"
        cid = f"c{i}"
        rows.append({"customer_id": cid, "event_at": t0, "event_type": "treatment", "campaign": "winback", "arm": arm})
        if rng.random() < (0.5 if arm == "control" else 0.7):  # the offer keeps 20 points more customers
            rows.append({"customer_id": cid, "event_at": t0 + pd.Timedelta(days=10), "event_type": "purchase",
                         "campaign": None, "arm": None, "amount": 20.0})
    rows.append({"customer_id": "c0", "event_at": t0 + pd.Timedelta(days=90), "event_type": "session",
                 "campaign": None, "arm": None})  # the data runs past every outcome window
    events = pd.DataFrame(rows)
    settings = make_settings()
    data = experiment_outcomes(events, "winback", 30, settings.churn.qualifying_event_types)
    row = experiment_row(build_report(data, control="control", shares={"control": 0.5, "offer": 0.5}))
    arms = {a["arm"]: a for a in row["arms"]}
    assert row["name"] == "winback" and row["control"] == "control" and not row["srm_flagged"]
    assert arms["control"]["control"] and arms["control"]["difference"] is None
    offer = arms["offer"]
    assert offer["difference"] == pytest.approx(offer["rate"] - arms["control"]["rate"])
    assert offer["difference_low"] < 0.2 < offer["difference_high"] and offer["significant"]


def test_the_champions_panel_never_creates_a_registry(make_settings):
    from tenure.serving.dashboard_panels import champions

    settings = make_settings()
    database = Path(settings.mlflow.tracking_uri.removeprefix("sqlite:///"))
    answer = champions(settings, {})
    assert answer["status"] == "empty" and "does not exist yet" in answer["message"]
    assert not database.exists()  # a training starting now may create and migrate it undisturbed
