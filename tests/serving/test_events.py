"""POST /events over real HTTP: validation, durable log, idempotency, fresher features and scores."""

from __future__ import annotations

import json

import pandas as pd
import pytest


def _event(event_id: str, customer_id: str, at: pd.Timestamp, event_type: str, **extra) -> dict:
    return {"event_id": event_id, "customer_id": customer_id, "event_at": at.isoformat(), "event_type": event_type, **extra}


def test_events_validated_per_event_and_logged_before_ack(client, workspace, api_key):
    settings, shop, _ = workspace
    cid = str(shop.customers["customer_id"].iloc[0])
    item = str(shop.items["item_id"].iloc[0])
    at = shop.events["event_at"].max()
    batch = {"events": [
        _event("ev-ok-1", cid, at, "view", item_id=item),
        _event("ev-bad-type", cid, at, "teleport"),
        _event("ev-bad-customer", "no-such-customer", at, "session"),
        _event("ev-bad-nps", cid, at, "survey", nps=42),
    ]}
    response = client.post("/events", json=batch, headers={"X-API-Key": api_key})
    assert response.status_code == 200
    body = response.json()
    status = {r["event_id"]: r for r in body["results"]}
    assert status["ev-ok-1"]["status"] == "accepted"
    assert "event_type" in status["ev-bad-type"]["reasons"][0]
    assert "customer_id" in status["ev-bad-customer"]["reasons"][0]
    assert "nps" in status["ev-bad-nps"]["reasons"][0]
    assert (body["accepted"], body["rejected"]) == (1, 3)
    # durable before the answer: the accepted event is in today's log file, the rejected ones are not
    lines = [json.loads(line) for f in sorted(settings.paths.event_log_dir.glob("events-*.jsonl"))
             for line in f.read_text().splitlines() if line.strip()]  # blank: a line erased in place
    ids = [e["event_id"] for e in lines]
    assert "ev-ok-1" in ids and "ev-bad-type" not in ids


def test_replayed_events_are_harmless(client, workspace, api_key):
    settings, shop, _ = workspace
    cid = str(shop.customers["customer_id"].iloc[1])
    at = shop.events["event_at"].max()
    batch = {"events": [_event("ev-replay-1", cid, at, "session"), _event("ev-replay-2", cid, at, "session")]}
    first = client.post("/events", json=batch, headers={"X-API-Key": api_key}).json()
    again = client.post("/events", json=batch, headers={"X-API-Key": api_key}).json()
    assert first["accepted"] == 2 and first["duplicates"] == 0
    assert again["accepted"] == 0 and again["duplicates"] == 2
    logged = [json.loads(line)["event_id"] for f in settings.paths.event_log_dir.glob("events-*.jsonl")
              for line in f.read_text().splitlines() if line.strip()]
    assert logged.count("ev-replay-1") == 1


def test_event_log_is_ingestible_by_the_contract(workspace):
    from tenure.features.contract import validate_frame

    settings, shop, _ = workspace
    files = sorted(settings.paths.event_log_dir.glob("events-*.jsonl"))
    assert files
    frame = pd.read_json(files[0], lines=True, dtype=False)
    result = validate_frame(frame, "events", source=str(files[0]), known_customers=shop.customers["customer_id"].to_numpy(),
                            known_items=shop.items["item_id"].to_numpy())
    assert not result.file_error and len(result.rejects) == 0


def test_an_event_changes_the_next_score_and_feeds_fresh_recommendations(client, workspace, api_key, trigger_webhook):
    settings, shop, _ = workspace
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import open_store

    ids = [str(c) for c in shop.customers["customer_id"].iloc[:100]]
    scores = client.post("/churn-score", json={"customer_ids": ids}).json()["results"]
    ok = [r for r in scores if r["status"] == "ok"]
    riskiest = max(ok, key=lambda r: r["churn_probability"])
    cid = riskiest["customer_id"]
    reader = OnlineFeatureReader(open_store(settings), "churn_v1")
    before_features = reader.read([cid])[0]
    reco_before = client.post("/recommend", json={"customer_id": cid, "k": 5}).json()

    at = shop.events["event_at"].max() + pd.Timedelta(hours=1)
    items = [str(i) for i in shop.items["item_id"].iloc[:3]]
    batch = {"events": [_event(f"ev-fresh-{n}", cid, at + pd.Timedelta(minutes=n), kind, **extra)
                        for n, (kind, extra) in enumerate([
                            ("session", {}),
                            ("view", {"item_id": items[0]}),
                            ("add_to_cart", {"item_id": items[0]}),
                            ("purchase", {"item_id": items[0], "quantity": 1, "amount": 25.0}),
                            ("view", {"item_id": items[1]}),
                        ])]}
    body = client.post("/events", json={**batch, "wait_for_features": True}, headers={"X-API-Key": api_key}).json()
    assert body["accepted"] == 5 and body["features_updated"] == [cid]

    after_features = reader.read([cid])[0]
    changed = {k for k in before_features if before_features[k] != after_features[k]
               and not (before_features[k] != before_features[k] and after_features[k] != after_features[k])}
    assert changed, "the online features did not change after the events"
    after = client.post("/churn-score", json={"customer_ids": [cid]}).json()["results"][0]
    assert after["churn_probability"] != riskiest["churn_probability"]
    # a band change is a trigger here (conftest: bands = all): exactly one message, with the score and reasons
    import time

    consenting = bool(shop.customers.set_index("customer_id").loc[cid, "consent_personalization"])
    crossed = after["risk_band"] != riskiest["risk_band"]

    def messages_for_cid() -> list[dict]:
        return [m for m in trigger_webhook.received if m["customer_id"] == cid]

    # delivery is asynchronous (a sender thread): wait for this customer's message, not for any message
    deadline = time.monotonic() + 20
    while crossed and consenting and not messages_for_cid() and time.monotonic() < deadline:
        time.sleep(0.05)
    messages = messages_for_cid()
    if not (crossed and consenting):  # no crossing, or no consent to contact: no message
        assert messages == []
    else:
        (message,) = messages
        assert (message["from_band"], message["to_band"]) == (riskiest["risk_band"], after["risk_band"])
        assert message["churn_probability"] == pytest.approx(after["churn_probability"])
        assert message["key"] == message["dedupe_key"] and message["top_reasons"]
    # the answer says how fresh its features are: as of the newest event time seen (the event-time clock)
    assert pd.Timestamp(after["features_as_of"]) >= at + pd.Timedelta(minutes=4)
    assert after["feature_age_s"] == pytest.approx(
        (pd.Timestamp(after["scored_at"]) - pd.Timestamp(after["features_as_of"])).total_seconds(), abs=0.01)

    reco = client.post("/recommend", json={"customer_id": cid, "k": 5}).json()
    if consenting:  # the live events feed the next recommendation, without retraining
        assert reco["strategy"] in ("als_fresh", "blend")
        assert [i["item_id"] for i in reco["items"]] != [i["item_id"] for i in reco_before["items"]]


def test_prediction_log_records_scores_and_recommendations(client, workspace):
    import time

    settings, shop, _ = workspace
    cid = str(shop.events["customer_id"].iloc[0])
    client.post("/churn-score", json={"customer_ids": [cid]})
    client.post("/recommend", json={"customer_id": cid, "k": 3})
    deadline = time.monotonic() + 10
    records: list[dict] = []
    while time.monotonic() < deadline:
        records = [json.loads(line) for f in settings.paths.prediction_log_dir.glob("*.jsonl")
                   for line in f.read_text().splitlines() if line.strip()]
        if any(r["kind"] == "recommend" and r["customer_id"] == cid for r in records) and \
                any(r["kind"] == "churn" and r["customer_id"] == cid for r in records):
            break
        time.sleep(0.2)
    churn = next(r for r in records if r["kind"] == "churn" and r["customer_id"] == cid)
    assert {"request_id", "logged_at", "model_version", "features", "churn_probability", "risk_band"} <= set(churn)
    reco = next(r for r in records if r["kind"] == "recommend" and r["customer_id"] == cid)
    assert {"request_id", "logged_at", "model_version", "strategy", "items"} <= set(reco)


def test_events_reach_online_features_without_waiting_and_readyz_shows_no_lag(client, workspace, api_key):
    import time

    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import open_store

    settings, shop, _ = workspace
    cid = str(shop.customers["customer_id"].iloc[7])
    reader = OnlineFeatureReader(open_store(settings), "churn_v1")
    before = reader.read([cid])[0]["tickets_30d"]
    at = shop.events["event_at"].max() + pd.Timedelta(hours=3)
    body = client.post("/events", json={"events": [_event("ev-async-1", cid, at, "support_ticket",
                                                          resolution_hours=5.0)]},
                       headers={"X-API-Key": api_key}).json()
    assert body["accepted"] == 1 and body["features_updated"] == []  # acknowledged once durable, not later
    deadline = time.monotonic() + 10
    while reader.read([cid])[0]["tickets_30d"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reader.read([cid])[0]["tickets_30d"] == before + 1
    ready = client.get("/readyz").json()
    assert not any("behind acknowledged events" in p for p in ready["problems"])
    metrics = client.get("/metrics").text
    assert "tenure_event_to_online_seconds_count" in metrics


def test_recommendation_id_comes_back_on_exposure_and_view_events(client, workspace, api_key):
    import time

    settings, shop, _ = workspace
    cid = str(shop.events["customer_id"].iloc[3])
    answer = client.post("/recommend", json={"customer_id": cid, "k": 3}).json()
    rid, shown = answer["recommendation_id"], [item["item_id"] for item in answer["items"]]
    at = shop.events["event_at"].max()
    batch = {"events": [_event("ev-exposure-1", cid, at, "exposure", recommendation_id=rid, impressions=shown),
                        _event("ev-click-1", cid, at, "view", item_id=shown[0], recommendation_id=rid),
                        _event("ev-exposure-bad", cid, at, "exposure", impressions=shown)]}
    body = client.post("/events", json=batch, headers={"X-API-Key": api_key}).json()
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "rejected"]
    assert body["results"][2]["reasons"][0].startswith("recommendation_id: missing value: an exposure")
    logged = {e["event_id"]: e for f in settings.paths.event_log_dir.glob("events-*.jsonl")
              for e in map(json.loads, filter(str.strip, f.read_text().splitlines()))}
    assert logged["ev-exposure-1"]["impressions"] == "|".join(shown)
    assert logged["ev-click-1"]["recommendation_id"] == rid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the prediction log is flushed every second
        records = [json.loads(line) for f in settings.paths.prediction_log_dir.glob("recommend-*.jsonl")
                   for line in f.read_text().splitlines() if line.strip()]
        mine = [r for r in records if r.get("recommendation_id") == rid]
        if mine:
            break
        time.sleep(0.2)
    assert mine and mine[0]["items"] == shown and mine[0]["strategy"] == answer["strategy"]
