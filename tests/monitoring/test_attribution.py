"""Attribution of views, add-to-carts and purchases to recommendations (monitoring/attribution.py, tenure report)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tenure.monitoring.attribution import (
    attribution_from_frames,
    attribution_report,
    read_recommendations,
)

T0 = pd.Timestamp("2026-06-01T10:00:00Z")
START, END = pd.Timestamp("2026-06-01T00:00:00Z"), pd.Timestamp("2026-06-02T00:00:00Z")


def _at(minutes: float) -> str:
    return (T0 + pd.Timedelta(minutes=minutes)).isoformat()


def _write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


RECS = [  # r1: blend to c1 (arm A of exp), r2: popular to c2 (arm B), r3: blend to c1 later, r4: outside the period
    {"kind": "recommend", "request_id": "r1", "recommendation_id": "r1", "logged_at": _at(0), "customer_id": "c1",
     "model_version": "1", "strategy": "blend", "items": ["i1", "i2", "i3"], "arms": {"exp": "A"}},
    {"kind": "recommend", "request_id": "r2", "recommendation_id": "r2", "logged_at": _at(5), "customer_id": "c2",
     "model_version": "1", "strategy": "popular", "items": ["i1", "i4"], "arms": {"exp": {"arm": "B"}}},
    {"kind": "recommend", "request_id": "r3", "recommendation_id": "r3", "logged_at": _at(60), "customer_id": "c1",
     "model_version": "1", "strategy": "blend", "items": ["i2", "i5"]},
    {"kind": "recommend", "request_id": "r4", "recommendation_id": "r4", "logged_at": "2026-05-30T10:00:00+00:00",
     "customer_id": "c1", "model_version": "1", "strategy": "blend", "items": ["i1"]},
]


def _event(eid: str, cid: str, minutes: float, etype: str, item: str | None = None, **extra) -> dict:
    return {"event_id": eid, "customer_id": cid, "event_at": _at(minutes), "event_type": etype, "item_id": item,
            "amount": extra.pop("amount", None), "recommendation_id": extra.pop("rec", None),
            "impressions": extra.pop("shown", None), **extra}


EVENTS = [
    _event("x1", "c1", 1, "exposure", rec="r1", shown="i1|i2"),       # only 2 of r1's 3 items shown
    _event("x2", "c2", 6, "exposure", rec="r2", shown="i1|i4"),
    _event("v1", "c1", 2, "view", "i1", rec="r1"),                     # click by id
    _event("v1b", "c1", 3, "view", "i1", rec="r1"),                    # a second view of the same pair: one click
    _event("v2", "c1", 70, "view", "i2"),                              # no id: r3 holds i2 too but was never shown
    _event("a1", "c2", 8, "add_to_cart", "i4"),                        # no id: r2
    _event("p1", "c2", 9, "purchase", "i4", amount=20.0),              # conversion of r2
    _event("p2", "c2", 10, "purchase", "i4", amount=5.0),              # same pair again: revenue adds, conversions not
    _event("p3", "c1", 2 * 24 * 60, "purchase", "i1", amount=99.0),    # after the 24 h window: not attributed
    _event("v3", "c1", 4, "view", "i9", rec="r1"),                     # not in r1's list
    _event("s1", "c1", 5, "session"),                                  # not an interaction
]


def _frames(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    _write_lines(tmp_path / "recommend-20260601-1.jsonl", RECS)
    recs = read_recommendations(tmp_path, START, END)
    events = pd.DataFrame(EVENTS)
    events["event_at"] = pd.to_datetime(events["event_at"], utc=True)
    return recs, events


def test_rules_per_strategy_and_arm(tmp_path):
    recs, events = _frames(tmp_path)
    assert sorted(recs["recommendation_id"]) == ["r1", "r2", "r3"]  # r4 was served before the period
    report = attribution_from_frames(recs, events, START, END, timedelta(hours=24), now=END + pd.Timedelta(days=2))
    assert report.basis == "exposures" and report.complete
    t = report.totals
    assert (t.recommendations, t.exposed, t.impressions) == (3, 2, 4)  # r3 was never shown
    assert (t.clicks, t.add_to_carts, t.conversions, t.purchases, t.revenue) == (2, 1, 1, 2, 25.0)  # r1-i1, r1-i2
    assert (t.by_id, t.by_item) == (2, 4)  # v1, v1b by id; v2, a1, p1, p2 by item
    assert t.click_rate == pytest.approx(2 / 4) and t.conversion_rate == pytest.approx(1 / 4)
    assert t.revenue_per_list == pytest.approx(25.0 / 2)
    blend, popular = report.by_strategy
    assert (blend.group, blend.clicks, blend.impressions, blend.revenue) == ("blend", 2, 2, 0.0)
    assert (popular.group, popular.add_to_carts, popular.conversions, popular.revenue) == ("popular", 1, 1, 25.0)
    arms = {g.group: g for g in report.by_arm}
    assert set(arms) == {"exp=A", "exp=B"}  # r3 has no arms: in no arm, still in the totals
    assert (arms["exp=A"].clicks, arms["exp=B"].revenue) == (2, 25.0)


def test_without_exposures_the_served_lists_are_the_basis_and_ids_only(tmp_path):
    recs, events = _frames(tmp_path)
    events = events[events["event_type"] != "exposure"]
    report = attribution_from_frames(recs, events, START, END, timedelta(hours=24), match_without_id=False,
                                     now=END + pd.Timedelta(days=2))
    t = report.totals
    assert report.basis == "served" and t.impressions == 3 + 2 + 2 and t.exposed == 0
    assert (t.clicks, t.add_to_carts, t.conversions, t.by_item) == (1, 0, 0, 0)  # only v1/v1b name their list


def test_window_and_clock_skew(tmp_path):
    recs, events = _frames(tmp_path)
    early = pd.DataFrame([_event("e1", "c1", -3, "view", "i1", rec="r1")])  # 3 min before serving
    early["event_at"] = pd.to_datetime(early["event_at"], utc=True)
    for skew, clicks in ((timedelta(0), 0), (timedelta(minutes=5), 1)):
        report = attribution_from_frames(recs, early, START, END, timedelta(hours=1), skew,
                                         now=END + pd.Timedelta(days=2))
        assert report.totals.clicks == clicks
    report = attribution_from_frames(recs, events, START, END, timedelta(hours=1), now=END)
    assert not report.complete and "still open" in report.notes[0]
    assert report.totals.clicks == 1  # v2 is 70 min after r1, and r3 was never shown
    served = events[events["event_type"] != "exposure"]  # no exposures: every list served counts as shown
    report = attribution_from_frames(recs, served, START, END, timedelta(hours=1), now=END)
    assert report.totals.clicks == 2  # v2 counts for r3, the latest list holding i2 (10 min before)


def _workspace(make_settings, tmp_path):
    settings = make_settings()
    _write_lines(settings.paths.prediction_log_dir / "recommend-20260601-1.jsonl", RECS)
    _write_lines(settings.paths.event_log_dir / "events-20260601.jsonl", EVENTS[:6])
    _write_lines(settings.paths.event_log_dir / "events-20260602.jsonl", EVENTS[4:])  # overlaps: de-duplicated
    return settings


def test_report_reads_the_service_logs(make_settings, tmp_path):
    settings = _workspace(make_settings, tmp_path)
    report = attribution_report(settings, "2026-06-01", "2026-06-02", now=END + pd.Timedelta(days=2))
    assert (report.totals.clicks, report.totals.conversions, report.totals.revenue) == (2, 1, 25.0)


def test_cli_json_and_errors(make_settings, tmp_path, monkeypatch):
    from tenure.pipelines.cli import app

    settings = _workspace(make_settings, tmp_path)
    config = tmp_path / "tenure.yaml"
    config.write_text(f"paths:\n  data_dir: {settings.paths.data_dir}\n")
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "report", "attribution", "--from", "2026-06-01",
                                 "--to", "2026-06-02", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["basis"] == "exposures" and document["totals"]["clicks"] == 2
    assert [g["group"] for g in document["by_arm"]] == ["exp=A", "exp=B"]
    table = runner.invoke(app, ["--config", str(config), "report", "attribution", "--from", "2026-06-01",
                                "--to", "2026-06-02"])
    assert table.exit_code == 0 and "popular" in table.stdout
    bad = runner.invoke(app, ["--config", str(config), "report", "attribution", "--from", "2026-06-02",
                              "--to", "2026-06-01"])
    assert bad.exit_code == 1 and "must be after --from" in bad.output


def test_pseudonymous_logs_match_by_the_same_key(make_settings, tmp_path):
    from tenure.pseudonym import customer_ref

    secret = "attribution-test-secret-0123456789"
    settings = make_settings(privacy={"pseudonymize_logs": True, "log_hmac_secret": secret})
    hashed = [r | {"customer_id": customer_ref(secret.encode(), r["customer_id"])} for r in RECS]
    _write_lines(settings.paths.prediction_log_dir / "recommend-20260601-1.jsonl", hashed)
    _write_lines(settings.paths.event_log_dir / "events-20260601.jsonl", EVENTS)  # raw ids, as the service logs them
    report = attribution_report(settings, "2026-06-01", "2026-06-02", now=END + pd.Timedelta(days=2))
    assert (report.totals.by_item, report.totals.revenue) == (4, 25.0)  # view-through matches need the hash
