"""Ingestion: formats, rejects files, idempotency, upserts, atomicity, the event log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tenure.features import ingest as ingest_mod
from tenure.features import tables
from tenure.features.ingest import IngestRun, ingest, ingest_files
from tenure.features.schema import EVENTS

from .conftest import iso_text, write_csv


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under the tables folder with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_from_dir_stores_all_three_tables(settings, small_raw):
    report = ingest(settings, small_raw["events"].parent)
    assert report.ok and report.rejects_path is None
    assert [f.table for f in report.files] == ["customers", "items", "events"]
    events = pd.read_csv(small_raw["events"])
    stored = tables.read_events(settings)
    assert len(stored) == len(events) == report.files[2].accepted
    assert set(stored["event_id"]) == set(events["event_id"])
    assert str(stored["event_at"].dtype) == "datetime64[ns, UTC]"
    assert len(tables.read_customers(settings)) == len(pd.read_csv(small_raw["customers"]))
    parts = sorted(p.name for p in (settings.paths.tables_dir / "events").iterdir())
    assert parts[0].startswith("event_date=2026-01-01")


def test_latest_event_time_reads_the_newest_day_only(settings, small_raw, monkeypatch):
    assert tables.latest_event_time(settings) is None  # nothing stored yet
    ingest(settings, small_raw["events"].parent)
    want = tables.read_events(settings)["event_at"].max()
    starts = []
    read = tables.read_events

    def spy(s, start=None, **kwargs):
        starts.append(start)
        return read(s, start=start, **kwargs)

    monkeypatch.setattr(tables, "read_events", spy)
    assert tables.latest_event_time(settings) == want
    assert starts == [want.normalize()], "one read, from the newest event_date partition on"


def test_reingest_is_idempotent(settings, small_raw):
    first = ingest(settings, small_raw["events"].parent)
    before = tables.read_events(settings)
    second = ingest(settings, small_raw["events"].parent)
    ev = second.files[2]
    assert ev.accepted == 0 and ev.skipped_duplicates == first.files[2].accepted
    assert second.files[0].updated == first.files[0].inserted and second.files[0].inserted == 0
    pd.testing.assert_frame_equal(tables.read_events(settings), before)


def test_customers_upsert_replaces_by_id(settings, tmp_path, small_raw):
    ingest_files(settings, [("customers", small_raw["customers"])])
    customers = pd.read_csv(small_raw["customers"])
    changed = customers.head(3).assign(plan="vip")
    new = customers.head(1).assign(customer_id="new-1")
    path = tmp_path / "upd.csv"
    pd.concat([changed, new]).to_csv(path, index=False)
    report = ingest_files(settings, [("customers", path)])
    assert (report.files[0].inserted, report.files[0].updated) == (1, 3)
    stored = tables.read_customers(settings).set_index("customer_id")
    assert len(stored) == len(customers) + 1
    assert (stored.loc[changed["customer_id"], "plan"] == "vip").all()


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_parquet_and_json_lines(settings, tmp_path, tiny_shop, fmt):
    ingest_files(settings, [("customers", write_csv(tiny_shop.customers, tmp_path / "customers.csv")),
                            ("items", write_csv(tiny_shop.items, tmp_path / "items.csv"))])
    events = tiny_shop.events.head(500)
    path = tmp_path / f"events.{fmt}"
    if fmt == "parquet":
        events.to_parquet(path)
    else:
        iso_text(events).to_json(path, orient="records", lines=True)
    report = ingest_files(settings, [("events", path)])
    assert report.ok and report.files[0].accepted == 500
    stored = tables.read_events(settings)
    pd.testing.assert_frame_equal(stored.sort_values("event_id").reset_index(drop=True),
                                  events.sort_values("event_id").reset_index(drop=True))


def test_rejects_file_and_good_rows_still_stored(settings, small_raw, tmp_path):
    ingest_files(settings, [("customers", small_raw["customers"]), ("items", small_raw["items"])])
    lines = small_raw["events"].read_text().splitlines()
    lines[2] = lines[2].replace("Z,", ",", 1)  # data row 2: naive timestamp
    lines.insert(5, "only,three,fields")  # file line 6 = data row 5: malformed
    lines[9] = lines[9].replace(",view,", ",teleport,") if ",view," in lines[9] else lines[9]
    bad = tmp_path / "events_bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    report = ingest_files(settings, [("events", bad)])
    assert not report.ok and report.rejects_path is not None
    rejects = pd.read_csv(report.rejects_path)
    assert list(rejects.columns) == ["file", "row", "column", "value", "reason"]
    by_row = dict(zip(rejects["row"], rejects["reason"]))
    assert by_row[2].startswith("naive timestamp")
    assert by_row[5].startswith(f"malformed CSV row: expected {len(EVENTS.names)} fields, got 3")
    f = report.files[0]
    assert f.rows_read == len(lines) - 1
    assert f.accepted == f.rows_read - f.rejected
    assert len(tables.read_events(settings)) == f.accepted
    assert set(report.reasons()) >= {"naive timestamp", "malformed CSV row"}


def test_events_of_unknown_customers_are_rejected_until_customers_exist(settings, small_raw):
    report = ingest_files(settings, [("events", small_raw["events"])])
    assert report.files[0].accepted == 0
    assert report.reasons().get("unknown customer_id") == report.files[0].rows_read


def test_missing_column_stores_nothing(settings, small_raw, tmp_path):
    ingest_files(settings, [("customers", small_raw["customers"]), ("items", small_raw["items"])])
    path = tmp_path / "no_type.csv"
    pd.read_csv(small_raw["events"]).drop(columns=["event_type"]).to_csv(path, index=False)
    report = ingest_files(settings, [("events", path)])
    assert report.files[0].file_error and report.files[0].accepted == 0
    assert tables.read_events(settings).empty


def test_duplicates_across_chunks_are_rejected(settings, small_raw, tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_mod, "CHUNK_ROWS", 50)
    ingest_files(settings, [("customers", small_raw["customers"]), ("items", small_raw["items"])])
    events = pd.read_csv(small_raw["events"], dtype=str)
    doubled = pd.concat([events.head(120), events.head(1)], ignore_index=True)
    path = tmp_path / "events.parquet"
    doubled.to_parquet(path)
    report = ingest_files(settings, [("events", path)])
    f = report.files[0]
    assert (f.accepted, f.rejected) == (120, 1)
    rejects = pd.read_csv(report.rejects_path)
    assert rejects.loc[0, "row"] == 121 and rejects.loc[0, "reason"] == "duplicate event_id in file (first at row 1)"


def test_failure_while_writing_leaves_tables_unchanged(settings, small_raw, tiny_shop, monkeypatch):
    ingest(settings, small_raw["events"].parent)
    root = settings.paths.tables_dir
    before = snapshot(root)
    calls = {"n": 0}
    real = tables._write_parquet

    def flaky(frame, path, table):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (injected)")
        real(frame, path, table)

    monkeypatch.setattr(tables, "_write_parquet", flaky)
    extra = tiny_shop.events.head(300).assign(customer_id=tables.read_customers(settings)["customer_id"].iloc[0],
                                             item_id=None)
    with pytest.raises(OSError, match="injected"):
        tables.append_events(settings, extra)
    assert snapshot(root) == before
    with pytest.raises(OSError, match="injected"):
        calls["n"] = 2
        tables.upsert_customers(settings, tiny_shop.customers)
    assert snapshot(root) == before


def test_failure_while_committing_rolls_back(settings, small_raw, tiny_shop, monkeypatch):
    ingest(settings, small_raw["events"].parent)
    root = settings.paths.tables_dir
    before = snapshot(root)
    real = tables.os.replace
    calls = {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("rename failed (injected)")
        real(src, dst)

    monkeypatch.setattr(tables.os, "replace", flaky)
    extra = tiny_shop.events.head(400).assign(customer_id="c00", item_id=None)
    with pytest.raises(OSError, match="injected"):
        tables.append_events(settings, extra)
    monkeypatch.setattr(tables.os, "replace", real)
    assert snapshot(root) == before
    assert not any(p.name.startswith(".staging") for p in (root / "events").iterdir())


def test_event_log_is_ingested_with_the_same_code(make_settings, small_raw):
    settings = make_settings()
    ingest_files(settings, [("customers", small_raw["customers"]), ("items", small_raw["items"])])
    log = settings.paths.event_log_dir
    log.mkdir(parents=True)
    events = iso_text(pd.read_csv(small_raw["events"]).head(30))
    events.head(20).to_json(log / "events-20260101.jsonl", orient="records", lines=True)
    with open(log / "events-20260102.jsonl", "w") as fh:
        records = events.iloc[15:30].to_dict("records")  # 5 replays of the first file
        fh.writelines(json.dumps({k: v for k, v in rec.items() if pd.notna(v)}) + "\n" for rec in records)
        fh.write('{"event_id": "torn')  # a torn last line
    with IngestRun(settings) as run:
        reports = run.ingest_event_log()
    assert [r.accepted for r in reports] == [20, 10]
    assert reports[1].skipped_duplicates == 5 and reports[1].rejected == 1
    rejects = pd.read_csv(run.report.rejects_path)
    assert rejects.loc[0, "row"] == 16 and rejects.loc[0, "reason"].startswith("invalid JSON")
    assert len(tables.read_events(settings)) == 30


def test_column_mapping_from_settings(make_settings, tmp_path, small_raw):
    settings = make_settings(columns={"customers": {"id": "customer_id", "joined": "signup_at"}})
    frame = pd.read_csv(small_raw["customers"]).rename(columns={"customer_id": "id", "signup_at": "joined"})
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    report = ingest_files(settings, [("customers", path)])
    assert report.ok and report.files[0].accepted == len(frame)


def test_read_events_window_is_inclusive_and_pruned(settings, small_raw):
    ingest(settings, small_raw["events"].parent)
    all_events = tables.read_events(settings)
    t0 = all_events["event_at"].iloc[10]
    t1 = all_events["event_at"].iloc[200]
    window = tables.read_events(settings, start=t0, end=t1)
    expected = all_events[(all_events["event_at"] >= t0) & (all_events["event_at"] <= t1)]
    assert set(window["event_id"]) == set(expected["event_id"])
    assert window["event_at"].is_monotonic_increasing
    few = tables.read_events(settings, start="2026-01-03", end="2026-01-03T23:59:59Z", columns=["customer_id"])
    assert list(few.columns) == ["event_at", "customer_id"]
    with pytest.raises(ValueError, match="end .* is before start"):
        tables.read_events(settings, start="2026-02-01", end="2026-01-01")


def test_missing_tables_say_what_to_do(settings):
    with pytest.raises(FileNotFoundError, match="tenure ingest customers"):
        tables.read_customers(settings)
    assert tables.read_items(settings, missing_ok=True).empty
    assert tables.read_events(settings).empty


def test_compaction_keeps_every_event(settings, small_raw, tiny_shop):
    ingest(settings, small_raw["events"].parent)
    extra = tiny_shop.events.head(50).assign(customer_id="c00", item_id=None,
                                             event_id=lambda d: "x" + d["event_id"])
    tables.append_events(settings, extra)
    before = tables.read_events(settings)
    assert tables.compact_events(settings) >= 1
    after = tables.read_events(settings)
    assert set(after["event_id"]) == set(before["event_id"]) and len(after) == len(before)
    assert np.all([len(list(p.glob("*.parquet"))) == 1 for p in (settings.paths.tables_dir / "events").iterdir()])


def test_label_stays_unknown_for_customers_without_one(settings, tiny_shop):
    snapshot = pd.DataFrame({"customer_id": ["s1", "s2"], "Churn": ["Yes", "No"]})
    with IngestRun(settings) as run:
        run.ingest_frame("customers", snapshot, "snapshot.csv", label_column="Churn")
        run.ingest_frame("customers", tiny_shop.customers.head(3), "shop")
    stored = tables.read_customers(settings).set_index("customer_id")["churned"]
    assert bool(stored["s1"]) is True
    assert bool(stored["s2"]) is False
    assert stored.drop(["s1", "s2"]).isna().all()  # never guessed as True
