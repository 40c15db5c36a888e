"""POST /consent on the running service: a withdrawal counts from the very next request (issue 17, item 1)."""

from __future__ import annotations


def _active_consenting(shop, skip: int = 20) -> str:
    """A customer with history and personalization consent, away from the ones other tests use first."""
    active = [str(c) for c in shop.events["customer_id"].value_counts().index]
    consenting = set(shop.customers.loc[shop.customers["consent_personalization"], "customer_id"])
    return [c for c in active if c in consenting][skip]


def _consent(client, api_key, cid, **scopes):
    return client.post("/consent", json={"customer_id": cid, "scopes": scopes, "channel": "app"},
                       headers={"X-API-Key": api_key})


def test_personalization_withdrawal_is_seen_by_the_next_recommend(client, workspace, api_key):
    _, shop, _ = workspace
    cid = _active_consenting(shop)
    before = client.post("/recommend", json={"customer_id": cid, "k": 4}).json()
    assert before["strategy"] != "no_consent_popular"
    answer = _consent(client, api_key, cid, personalization=False)
    assert answer.status_code == 200, answer.text
    assert answer.json()["consent"] == {"personalization": False, "profiling": None, "marketing": None}
    after = client.post("/recommend", json={"customer_id": cid, "k": 4}).json()
    assert after["strategy"] == "no_consent_popular" and all(it["because"] == [] for it in after["items"])
    assert _consent(client, api_key, cid, personalization=True).status_code == 200  # given again: personal again
    assert client.post("/recommend", json={"customer_id": cid, "k": 4}).json()["strategy"] == before["strategy"]


def test_profiling_withdrawal_answers_no_consent_without_a_score(client, workspace, api_key):
    _, shop, _ = workspace
    cid, other = _active_consenting(shop, 21), _active_consenting(shop, 22)
    assert _consent(client, api_key, cid, profiling=False, marketing=False).status_code == 200
    results = client.post("/churn-score", json={"customer_ids": [cid, other]}).json()["results"]
    assert results[0]["status"] == "no_consent" and results[0]["churn_probability"] is None
    assert results[0]["top_reasons"] == []
    assert results[1]["status"] == "ok" and results[1]["churn_probability"] is not None
    _consent(client, api_key, cid, profiling=True)
    assert client.post("/churn-score", json={"customer_ids": [cid]}).json()["results"][0]["status"] == "ok"


def test_consent_needs_a_key_and_a_known_scope(client, workspace, api_key):
    body = {"customer_id": "c1", "scopes": {"marketing": False}}
    assert client.post("/consent", json=body).status_code == 401
    bad = client.post("/consent", json={"customer_id": "c1", "scopes": {"newsletters": False}},
                      headers={"X-API-Key": api_key})
    assert bad.status_code == 400 and "scopes" in bad.text
    late = client.post("/consent", json={**body, "at": "yesterday"}, headers={"X-API-Key": api_key})
    assert late.status_code == 400 and "ISO 8601" in late.text


def test_delete_customer_erases_with_a_receipt_while_the_service_answers(client, workspace, api_key):
    import json
    import threading
    import time
    from pathlib import Path

    _, shop, _ = workspace
    active = [str(c) for c in shop.events["customer_id"].value_counts().index]
    consenting = set(shop.customers.loc[shop.customers["consent_personalization"], "customer_id"])
    cid = [c for c in active if c in consenting][-3]  # a quiet customer: no other test scores it
    assert client.post("/churn-score", json={"customer_ids": [cid]}).json()["results"][0]["status"] == "ok"
    assert client.delete(f"/customers/{cid}").status_code == 401
    other = [c for c in active if c in consenting][-4]
    statuses: list[int] = []
    done = threading.Event()

    def keep_asking() -> None:  # ~100 req/s of /churn-score while the erasure runs
        import httpx

        with httpx.Client(base_url=str(client.base_url), timeout=10) as c:
            while not done.is_set():
                statuses.append(c.post("/churn-score", json={"customer_ids": [other]}).status_code)
                time.sleep(0.01)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        answer = client.delete(f"/customers/{cid}", headers={"X-API-Key": api_key})
    finally:
        done.set()
        asker.join()
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests during the erasure: {set(statuses)}"
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert receipt["removed"]["tables"] > 0 and receipt["removed"]["feast_online"] > 0
    assert receipt["removed"]["serving.memory"] > 0 and receipt["remaining"] == {}
    assert cid not in json.dumps(receipt) and cid not in Path(receipt["receipt_path"]).read_text()
    # the next requests no longer know the person; their events are refused
    assert client.post("/churn-score", json={"customer_ids": [cid]}).json()["results"][0]["status"] == "unknown_customer"
    assert client.post("/recommend", json={"customer_id": cid, "k": 3}).json()["strategy"] == "popular"
    events = client.post("/events", headers={"X-API-Key": api_key}, json={"events": [
        {"event_id": f"after-erasure-{cid}", "customer_id": cid, "event_at": "2026-05-01T10:00:00Z", "event_type": "session"}]})
    assert events.json()["results"][0]["status"] == "rejected"


def test_forget_in_a_batch_keeps_ids_out_of_the_url(client, workspace, api_key):
    _, shop, _ = workspace
    active = [str(c) for c in shop.events["customer_id"].value_counts().index]
    ids = active[-8:-6]  # quiet customers no other test uses
    assert client.post("/customers/forget", json={"customer_ids": ids}).status_code == 401
    bad = client.post("/customers/forget", json={"customer_ids": []}, headers={"X-API-Key": api_key})
    assert bad.status_code == 400 and "customer_ids" in bad.text
    answer = client.post("/customers/forget", json={"customer_ids": ids}, headers={"X-API-Key": api_key})
    assert answer.status_code == 200, answer.text
    receipt = answer.json()
    assert len(receipt["subjects"]) == 2 and receipt["remaining"] == {} and receipt["removed"]["tables"] > 0
    results = client.post("/churn-score", json={"customer_ids": ids}).json()["results"]
    assert [r["status"] for r in results] == ["unknown_customer", "unknown_customer"]
