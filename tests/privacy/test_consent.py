"""The consent history: append-only, latest decision wins, per scope, read by the next request (issue 17, item 1)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from tenure.privacy.consent import ConsentChange, ConsentStore, ConsentView, changes_from_records


def _at(day: int) -> datetime:
    return datetime(2026, 3, day, 12, tzinfo=UTC)


def test_latest_decision_wins_and_history_is_kept(tmp_path):
    store = ConsentStore(tmp_path / "consent.sqlite")
    store.record([ConsentChange("c1", "marketing", False, _at(10), "email"),
                  ConsentChange("c1", "marketing", True, _at(5), "web"),       # older, arrives later: history only
                  ConsentChange("c2", "profiling", False, _at(1))])
    assert store.current() == {"c1": {"marketing": False}, "c2": {"profiling": False}}
    assert [h["granted"] for h in store.history("c1")] == [False, True]
    assert store.history("c1")[0]["channel"] == "email"
    store.record([ConsentChange("c1", "marketing", True, _at(11), "app")])
    assert store.current(["c1"]) == {"c1": {"marketing": True}}
    assert len(store.history("c1")) == 3


def test_history_is_append_only_and_erasure_removes_a_person(tmp_path):
    store = ConsentStore(tmp_path / "consent.sqlite")
    store.record([ConsentChange("c1", "marketing", False, _at(1)), ConsentChange("c2", "marketing", False, _at(1))])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"), store._db:
        store._db.execute("UPDATE consent_changes SET granted = 1")
    assert store.forget(["c1"]) == 1
    assert store.count(["c1", "c2"]) == {"c2": 1}
    store.close()
    assert b"c1" not in (tmp_path / "consent.sqlite").read_bytes()  # secure_delete: not left in a free page


def test_a_view_sees_another_process_write_on_the_next_call(tmp_path):
    view = ConsentView(ConsentStore(tmp_path / "consent.sqlite"), default=True)
    assert view.allows("c1", "profiling") and not view.allows("c9", "personalization", baseline=False)
    other = ConsentStore(tmp_path / "consent.sqlite")  # e.g. `tenure consent` in another process
    other.record([ConsentChange("c1", "profiling", False, _at(2)), ConsentChange("c9", "personalization", True, _at(2))])
    assert not view.allows("c1", "profiling")
    assert view.allows("c9", "personalization", baseline=False)  # an explicit grant beats the customers-table flag
    assert view.allows("c1", "marketing")                        # other scopes untouched


def test_file_records_are_checked_row_by_row():
    changes, problems = changes_from_records([
        {"customer_id": "c1", "scope": "all", "granted": "no", "event_at": "2026-03-01T00:00:00Z", "channel": "web"},
        {"customer_id": "c2", "scope": "profiling", "status": "withdrawn", "at": "2026-03-01T00:00:00+09:00",
         "event_type": "consent"},
        {"customer_id": "c3", "scope": "newsletter", "granted": True, "at": "2026-03-01T00:00:00Z"},
        {"customer_id": "c4", "scope": "marketing", "granted": "maybe", "at": "2026-03-01T00:00:00Z"},
        {"customer_id": "c5", "scope": "marketing", "granted": True, "at": "2026-03-01"},
    ], "file:consent.csv")
    assert [(c.customer_id, c.scope, c.granted) for c in changes] == [
        ("c1", "personalization", False), ("c1", "profiling", False), ("c1", "marketing", False),
        ("c2", "profiling", False)]
    assert changes[3].at == datetime(2026, 2, 28, 15, tzinfo=UTC)
    assert [p.split(":")[0] for p in problems] == ["row 3", "row 4", "row 5"]
    assert "newsletter" in problems[0] and "maybe" in problems[1] and "offset" in problems[2]


def test_a_consent_file_is_recorded_whole_or_not_at_all_and_skips_erased_customers(make_settings, tmp_path):
    from tenure.features.tombstones import Tombstones
    from tenure.privacy.consent import ingest_consent_file

    settings = make_settings()
    Tombstones.from_settings(settings).add(["gone"], "2026-03-01T00:00:00+00:00")
    good = tmp_path / "consent.jsonl"
    good.write_text('{"customer_id": "c1", "scope": "marketing", "granted": false, "at": "2026-03-01T00:00:00Z"}\n'
                    '{"customer_id": "gone", "scope": "all", "granted": true, "at": "2026-03-01T00:00:00Z"}\n')
    assert ingest_consent_file(settings, good) == {"file": str(good), "recorded": 1, "customers": 1, "skipped_erased": 3}
    bad = tmp_path / "consent.csv"
    bad.write_text("customer_id,scope,granted,at\nc2,marketing,no,2026-03-01T00:00:00Z\nc3,marketing,perhaps,2026-03-01T00:00:00Z\n")
    with pytest.raises(ValueError, match="row 2.*perhaps"):
        ingest_consent_file(settings, bad)
    store = ConsentStore.from_settings(settings)
    assert store.current() == {"c1": {"marketing": False}}  # nothing of the bad file, nothing of the erased customer
