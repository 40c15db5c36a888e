"""Data quality at ingestion: a broken batch is named, quarantined, never read, until accepted."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tenure.features.quality import check_events_batch
from tenure.features.sim_drift import PIPELINE_KINDS, apply_break
from tenure.features.simulator import simulate_shop
from tenure.settings import Settings

DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(1500, 120, 70, seed=31)


def _window(events, start, days):
    return events[(events["event_at"] >= start) & (events["event_at"] < start + days * DAY)]


@pytest.mark.parametrize("kind,column,check", [
    ("nulls", "events.amount", "missing"), ("units", "events.amount", "range"),
    ("renamed_category", "events.channel", "category"), ("duplicate_events", "events.event_id", "duplicates"),
    ("timezone_shift", "events.event_at", "time_skew")])
def test_each_break_is_named(shop, kind, column, check):
    start = shop.events["event_at"].min().normalize() + 49 * DAY
    base = _window(shop.events, start - 28 * DAY, 28)
    batch, _ = apply_break(_window(shop.events, start, 7), None, kind, start)
    report = check_events_batch(batch, base, Settings().quality)
    assert report.columns() == [column]
    assert [f.check for f in report.findings] == [check]


def test_quiet_batches_pass(shop):
    first = shop.events["event_at"].min().normalize()
    for day in range(28, 63, 7):
        start = first + day * DAY
        report = check_events_batch(_window(shop.events, start, 7), _window(shop.events, start - 28 * DAY, 28),
                                    Settings().quality)
        assert not report.broken, (day, [f.message for f in report.findings])


def test_first_batch_becomes_the_baseline(shop):
    report = check_events_batch(shop.events, None, Settings().quality)
    assert not report.broken and "first" in report.notes[0]


@pytest.mark.parametrize("kind", PIPELINE_KINDS)
def test_broken_batch_is_quarantined_until_accepted(cli, tmp_path, shop, kind):
    from tenure.features.tables import read_events
    from tenure.settings import load_settings

    raw = tmp_path / "raw"
    raw.mkdir()
    cut = shop.events["event_at"].min().normalize() + 49 * DAY
    history = shop.events[shop.events["event_at"] < cut]
    batch, _ = apply_break(_window(shop.events, cut, 7), None, kind, cut)
    shop.customers.to_parquet(raw / "customers.parquet")
    shop.items.to_parquet(raw / "items.parquet")
    history.to_parquet(raw / "events.parquet")
    batch.to_parquet(tmp_path / "batch.parquet")
    assert cli("ingest", "--from-dir", str(raw)).exit_code == 0

    result = cli("ingest", "events", str(tmp_path / "batch.parquet"))
    assert result.exit_code == 1 and "quarantined" in result.output and "pipeline break" in result.output
    settings = load_settings(tmp_path / "tenure.yaml")
    assert len(read_events(settings)) == len(history)  # nothing of the batch reaches features or training
    listed = json.loads(cli("data", "quarantine", "--json").stdout)["batches"]
    assert len(listed) == 1 and listed[0]["status"] == "quarantined" and listed[0]["rows"] == len(batch)
    batch_id = listed[0]["batch"]

    accepted = cli("data", "accept", batch_id, "--json")
    assert accepted.exit_code == 0, accepted.output
    assert json.loads(accepted.stdout)["written"] == len(batch), accepted.output
    assert len(read_events(settings)) == len(history) + len(batch)
    again = cli("data", "accept", batch_id)
    assert again.exit_code == 1 and "accepted already" in again.output


def test_quiet_batch_is_stored_and_discard_drops(cli, tmp_path, shop):
    from tenure.features.tables import read_events
    from tenure.settings import load_settings

    raw = tmp_path / "raw"
    raw.mkdir()
    cut = shop.events["event_at"].min().normalize() + 49 * DAY
    shop.customers.to_parquet(raw / "customers.parquet")
    shop.items.to_parquet(raw / "items.parquet")
    shop.events[shop.events["event_at"] < cut].to_parquet(raw / "events.parquet")
    assert cli("ingest", "--from-dir", str(raw)).exit_code == 0
    _window(shop.events, cut, 7).to_parquet(tmp_path / "quiet.parquet")
    assert cli("ingest", "events", str(tmp_path / "quiet.parquet")).exit_code == 0
    settings = load_settings(tmp_path / "tenure.yaml")
    assert len(read_events(settings)) == int((shop.events["event_at"] < cut + 7 * DAY).sum())

    broken, _ = apply_break(_window(shop.events, cut + 7 * DAY, 7), None, "units", cut + 7 * DAY)
    broken.to_parquet(tmp_path / "broken.parquet")
    assert cli("ingest", "events", str(tmp_path / "broken.parquet")).exit_code == 1
    batch_id = json.loads(cli("data", "quarantine", "--json").stdout)["batches"][0]["batch"]
    shown = cli("data", "show", batch_id)
    assert "amount of purchase events" in shown.output and "units" in shown.output
    assert cli("data", "discard", batch_id).exit_code == 0
    assert json.loads(cli("data", "quarantine", "--status", "discarded", "--json").stdout)["batches"][0]["batch"] == batch_id
    assert len(read_events(settings)) == int((shop.events["event_at"] < cut + 7 * DAY).sum())
    assert cli("data", "accept", "nope").exit_code == 1


def test_ingest_raises_a_routed_pipeline_alert(cli, tmp_path, shop):
    raw = tmp_path / "raw"
    raw.mkdir()
    cut = shop.events["event_at"].min().normalize() + 49 * DAY
    shop.customers.to_parquet(raw / "customers.parquet")
    shop.items.to_parquet(raw / "items.parquet")
    shop.events[shop.events["event_at"] < cut].to_parquet(raw / "events.parquet")
    assert cli("ingest", "--from-dir", str(raw)).exit_code == 0
    broken, _ = apply_break(_window(shop.events, cut, 7), None, "nulls", cut)
    broken.to_parquet(tmp_path / "broken.parquet")
    assert cli("ingest", "events", str(tmp_path / "broken.parquet")).exit_code == 1
    alerts = [json.loads(line) for line in (tmp_path / "reports" / "alerts.jsonl").read_text().splitlines()]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["kind"] == "pipeline" and alert["route"] == "data_team" and alert["severity"] == "critical"
    assert "events.amount" in alert["title"] and "tenure data accept" in alert["next_action"]
    assert any("amount missing in 100% of purchase events" in f for f in alert["findings"])
