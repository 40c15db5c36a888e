"""Erasure everywhere with a receipt, verification, tombstones and subject access (issue 17, items 2, 3, 5).

One small workspace with every store filled: raw files, canonical tables, feature tables, the
Feast online store (SQLite; Redis in test_erasure_redis), consent history, a saved recommender,
the service's event log, prediction log (pseudonymous) and dead letters. Two customers are
erased; every store must be clean for them, untouched for the others, and re-ingesting the old
files must not bring them back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SECRET = "erasure-test-secret-0123456789"


def _service_files(settings, ids, others):
    """What a running service leaves: event log + id index, pseudonymous prediction log, a dead letter."""
    from tenure.pseudonym import log_key
    from tenure.serving.event_intake import DurableEventLog
    from tenure.serving.prediction_log import PredictionLog

    log = DurableEventLog(settings.paths.event_log_dir)
    log.append([{"event_id": f"live-{cid}", "customer_id": cid, "event_at": "2026-02-20T10:00:00+00:00",
                 "event_type": "view", "item_id": "i1"} for cid in [*ids, *others]])
    log.close()
    predictions = PredictionLog(settings.paths.prediction_log_dir, flush_s=60, pseudonymize_key=log_key(settings))
    for cid in [*ids, *others]:
        predictions.add({"kind": "recommend", "request_id": "r", "logged_at": "2026-02-20T10:00:00+00:00",
                         "customer_id": predictions.customer_ref(cid), "strategy": "als", "items": ["i1"]})
    predictions.close()
    (settings.paths.event_log_dir / "triggers-dead-letter.jsonl").write_text(
        json.dumps({"dedupe_key": "k", "message": {"customer_id": ids[0], "to_band": "high"}}) + "\n")


def _saved_recommender(settings, customer_ids):
    """A saved recommender folder in the model cache (the files RecommenderRuntime.save writes)."""
    import scipy.sparse as sp

    folder = settings.serving.model_cache_dir / "recommender" / "1" / "artifacts" / "recommender"
    folder.mkdir(parents=True)
    n = len(customer_ids)
    (folder / "mappings.json").write_text(json.dumps({"customer_ids": customer_ids, "item_ids": ["i1", "i2"]}))
    np.savez(folder / "factors.npz", user_factors=np.ones((n, 4)), item_factors=np.ones((2, 4)))
    for name in ("user_items.npz", "purchases.npz"):
        sp.save_npz(folder / name, sp.csr_matrix(np.ones((n, 2))))
    return folder


@pytest.fixture
def workspace(make_settings, shop_workspace):
    from datetime import UTC, datetime

    from tenure.privacy.consent import ConsentChange, ConsentStore

    settings = make_settings(privacy={"pseudonymize_logs": True, "log_hmac_secret": SECRET})
    shop = shop_workspace(settings)
    active = [str(c) for c in shop.events["customer_id"].value_counts().index]
    ids, others = active[:2], active[2:6]
    _service_files(settings, ids, others)
    folder = _saved_recommender(settings, active[:10])
    store = ConsentStore.from_settings(settings)
    store.record([ConsentChange(c, "marketing", False, datetime(2026, 2, 1, tzinfo=UTC), "web") for c in [*ids, others[0]]])
    store.close()
    audience = settings.paths.exports_dir / "audience-high.csv"
    audience.parent.mkdir(parents=True)
    pd.DataFrame({"customer_id": active[:8], "churn_probability": 0.7}).to_csv(audience, index=False)
    report = settings.paths.reports_dir / "kpis" / "summary.json"  # a report listing customers
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"top_customers": [{"customer_id": c, "value": 1.0} for c in active[:5]],
                                  "example": ids[1]}))
    return settings, shop, ids, others, folder


def _stores(settings):
    from tenure.privacy.erasure import workspace_stores
    from tenure.pseudonym import log_key
    from tenure.serving.erasure import serving_stores

    return [*workspace_stores(settings), *serving_stores(settings, log_key(settings))]


def test_forget_removes_a_person_everywhere_and_writes_a_receipt(workspace):
    from tenure.features.tables import read_customers, read_events
    from tenure.privacy.erasure import export_customer, forget_customers, verify_customers

    settings, shop, ids, others, folder = workspace
    events_before = read_events(settings)
    kept_before = events_before["customer_id"].isin(others).sum()
    held = export_customer(settings, ids[0], _stores(settings))["stores"]
    assert {"tables", "inputs", "feature_tables", "feast_online", "consent", "recommender_models", "exports",
            "serving.event_log", "serving.prediction_log", "serving.dead_letters"} <= set(held)
    assert all(r["customer_id"] == ids[0] for r in held["serving.event_log"])

    before = verify_customers(settings, ids, _stores(settings))
    assert not before["clean"] and before["files"]  # the byte search does see raw ids where they are

    receipt = forget_customers(settings, ids, _stores(settings))
    removed = {name: r["removed"] for name, r in receipt["stores"].items()}
    for name in ("tables", "inputs", "feature_tables", "feast_online", "consent", "recommender_models", "exports",
                 "reports", "serving.event_log", "serving.prediction_log", "serving.dead_letters"):
        assert removed[name] > 0, name
    assert receipt["verification"]["clean"] and receipt["customers"] == 2
    text = Path(receipt["path"]).read_text()
    assert not any(f'"{cid}"' in text for cid in ids)  # the receipt names the person by a salted hash only
    assert len(receipt["subjects"]) == 2 and all(len(s) == 32 for s in receipt["subjects"])
    assert "next training" in receipt["models"] and receipt["tool_version"]

    check = verify_customers(settings, ids, _stores(settings))
    assert check["clean"], check  # every store and every workspace file's bytes: 0 hits
    assert check["checked_files"] > 20
    # the others are untouched
    events_after = read_events(settings)
    assert not events_after["customer_id"].isin(ids).any()
    assert events_after["customer_id"].isin(others).sum() == kept_before
    assert len(read_customers(settings)) == len(shop.customers) - 2
    mappings = json.loads((folder / "mappings.json").read_text())["customer_ids"]
    assert mappings[:2] == ["", ""] and mappings[2:6] == others
    with np.load(folder / "factors.npz") as f:
        assert not f["user_factors"][:2].any() and f["user_factors"][2:].all()
    assert verify_customers(settings, others[:1], _stores(settings), byte_search=False)["stores"]["consent"] == 1
    listed = json.loads((settings.paths.reports_dir / "kpis" / "summary.json").read_text())
    assert [r["customer_id"] for r in listed["top_customers"]] == others[:3] and listed["example"] == "(erased)"


def test_tombstones_keep_old_files_from_bringing_the_person_back(workspace):
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import write_shop
    from tenure.features.tables import read_customers, read_events
    from tenure.privacy.erasure import forget_customers

    settings, shop, ids, _, _ = workspace
    forget_customers(settings, ids, _stores(settings))
    old = settings.paths.data_dir / "old_files"
    write_shop(shop, old, file_format="csv")  # the original files, as a backup restore would bring them
    with IngestRun(settings) as run:
        reports = run.ingest_dir(old)
    assert sum(r.skipped_erased for r in reports) == (shop.customers["customer_id"].isin(ids).sum()
                                                      + shop.events["customer_id"].isin(ids).sum())
    assert not read_customers(settings)["customer_id"].isin(ids).any()
    assert not read_events(settings)["customer_id"].isin(ids).any()
    assert not list(settings.paths.rejects_dir.glob("*")) or all(
        cid not in p.read_text() for p in settings.paths.rejects_dir.glob("*.csv") for cid in ids)


def test_bad_input_is_refused_before_anything_changes(workspace):
    from tenure.features.tombstones import Tombstones
    from tenure.privacy.erasure import forget_customers

    settings, *_ = workspace
    with pytest.raises(ValueError, match="non-empty customer id"):
        forget_customers(settings, ["c1", " "], _stores(settings))
    assert len(Tombstones.from_settings(settings)) == 0
