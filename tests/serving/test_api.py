"""Reads over real HTTP: health, scores, recommendations, similar items, errors and auth."""

from __future__ import annotations

import json

import pytest


def _known(shop, n: int) -> list[str]:
    active = shop.events["customer_id"].value_counts()
    return [str(c) for c in active.index[:n]]


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["feature_store"] is True and body["registry_reachable"] is True
    assert body["churn_model_version"] == "1" and body["recommender_model_version"] == "1"
    spec = client.get("/docs.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for route in ("/churn-score", "/recommend", "/events", "/similar-items"):
        assert route in paths, route


def test_churn_score_batch_in_order_with_reasons(client, workspace):
    _, shop, _ = workspace
    ids = _known(shop, 5)
    response = client.post("/churn-score", json={"customer_ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert [r["customer_id"] for r in body["results"]] == ids
    for result in body["results"]:
        assert result["status"] == "ok"
        assert 0.0 <= result["churn_probability"] <= 1.0
        assert result["risk_band"] in ("low", "medium", "high")
        assert len(result["top_reasons"]) == 3
        assert all(set(r) == {"feature", "value", "contribution", "text", "direction"} for r in result["top_reasons"])
        for reason in result["top_reasons"]:  # plain language agrees with the sign of the push
            assert reason["text"] and reason["direction"] == (
                "raises risk" if reason["contribution"] > 0 else "lowers risk")
        assert result["model_version"] == "1" and result["scored_at"].endswith("+00:00")
    # one customer alone gets the same probability as inside the batch
    single = client.post("/churn-score", json={"customer_ids": [ids[2]]}).json()["results"][0]
    assert single["churn_probability"] == pytest.approx(body["results"][2]["churn_probability"])


def test_fast_path_answers_as_the_bentoml_endpoint(client, workspace):
    """Up to INLINE_MAX_CUSTOMERS ids are answered by the guard's fast path, more by the BentoML
    endpoint (in a thread): the same customer gets the same answer from both."""
    from tenure.serving.service import INLINE_MAX_CUSTOMERS

    _, shop, _ = workspace
    ids = _known(shop, INLINE_MAX_CUSTOMERS + 1)
    small = client.post("/churn-score", json={"customer_ids": [ids[0], "nobody"]})
    large = client.post("/churn-score", json={"customer_ids": [*ids, "nobody"]})
    assert small.status_code == large.status_code == 200
    assert small.headers["content-type"] == large.headers["content-type"] == "application/json"
    drop = ("scored_at", "feature_age_s")  # times of the answer
    a = [{k: v for k, v in r.items() if k not in drop} for r in small.json()["results"]]
    b = [{k: v for k, v in r.items() if k not in drop} for r in large.json()["results"]]
    assert a == [b[0], b[-1]]
    assert set(small.json()) == set(large.json()) == {"request_id", "model_version", "results"}
    # a bad body on a fast route still gets BentoML's field-level 400
    bad = client.post("/churn-score", json={"customer_ids": ["c1"], "bogus": 1})
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["bogus"]


def test_unknown_customer_gets_a_status_not_a_score(client, workspace):
    _, shop, _ = workspace
    known = _known(shop, 1)[0]
    body = client.post("/churn-score", json={"customer_ids": ["no-such-customer", known]}).json()
    first, second = body["results"]
    assert first["status"] == "unknown_customer" and first["churn_probability"] is None
    assert second["status"] == "ok"


def test_churn_batch_over_the_limit_is_413(client):
    response = client.post("/churn-score", json={"customer_ids": [f"c{i}" for i in range(101)]})
    assert response.status_code == 413
    assert "max_batch_size" in response.json()["error"]


def test_recommend_known_customer_uses_als_and_explains(client, workspace):
    _, shop, _ = workspace
    consenting = set(shop.customers.loc[shop.customers["consent_personalization"], "customer_id"])
    cid = next(c for c in _known(shop, 50) if c in consenting)
    body = client.post("/recommend", json={"customer_id": cid, "k": 5}).json()
    assert body["strategy"] in ("als", "blend", "buy_again")
    assert len(body["items"]) == 5
    assert body["model_version"] == "1"
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert any(it["because"] for it in body["items"])


def test_recommend_cold_start_and_no_consent(client, workspace):
    _, shop, _ = workspace
    cold = client.post("/recommend", json={"customer_id": "brand-new-customer", "k": 4}).json()
    assert cold["strategy"] == "popular" and len(cold["items"]) == 4
    no_consent = shop.customers.loc[~shop.customers["consent_personalization"], "customer_id"]
    assert len(no_consent), "the simulator should produce some customers without consent"
    body = client.post("/recommend", json={"customer_id": str(no_consent.iloc[0]), "k": 4}).json()
    assert body["strategy"] == "no_consent_popular"
    assert all(it["because"] == [] for it in body["items"])


def test_recommend_filters(client, workspace):
    _, shop, _ = workspace
    items = shop.items.set_index("item_id")
    category = str(items["category"].value_counts().index[0])
    consenting = set(shop.customers.loc[shop.customers["consent_personalization"], "customer_id"])
    cid = next(c for c in _known(shop, 50) if c in consenting)  # without consent nothing personal is read
    body = client.post("/recommend", json={"customer_id": cid, "k": 5, "categories": [category]}).json()
    assert body["items"] and all(items.loc[it["item_id"], "category"] == category for it in body["items"])
    ev = shop.events
    own = ev[ev["customer_id"] == cid]
    bought, returned = (own.loc[own["event_type"] == t, "item_id"].value_counts() for t in ("purchase", "return"))
    purchased = set(bought[bought > returned.reindex(bought.index, fill_value=0)].index)  # kept, not returned
    assert purchased
    body = client.post("/recommend", json={"customer_id": cid, "k": 10, "exclude_purchased": True}).json()
    assert not purchased & {it["item_id"] for it in body["items"]}, (cid, body["strategy"], purchased & {it["item_id"] for it in body["items"]})
    if "available" in items.columns and (~items["available"]).any():
        body = client.post("/recommend", json={"customer_id": cid, "k": 40, "available_only": True}).json()
        assert all(bool(items.loc[it["item_id"], "available"]) for it in body["items"])


def test_similar_items(client, workspace):
    _, shop, _ = workspace
    item = str(shop.events["item_id"].dropna().value_counts().index[0])
    body = client.post("/similar-items", json={"item_id": item, "k": 3}).json()
    assert len(body["items"]) == 3 and item not in [it["item_id"] for it in body["items"]]
    missing = client.post("/similar-items", json={"item_id": "no-such-item"})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("route", "content", "field"),
    [
        ("/churn-score", b'{"customer_ids": [', None),                      # malformed JSON
        ("/churn-score", b'["c1"]', None),                                   # not an object
        ("/churn-score", b'{"customer_ids": "c1"}', "customer_ids"),         # wrong type
        ("/churn-score", b'{"customer_ids": []}', "customer_ids"),           # empty batch
        ("/churn-score", b'{"customer_ids": ["c1"], "extra": 1}', "extra"),  # unknown field
        ("/recommend", b'{"k": 3}', "customer_id"),                          # missing field
        ("/recommend", b'{"customer_id": "c1", "k": "many"}', "k"),         # wrong type
        ("/recommend", b'{"customer_id": "c1", "k": 0}', "k"),              # out of range
    ],
)
def test_bad_bodies_are_4xx_with_field_messages(client, route, content, field):
    response = client.post(route, content=content, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    text = response.text
    assert "Traceback" not in text and "File \"" not in text
    body = response.json()
    assert body["error"]
    if field is not None:
        assert any(field in d.get("loc", []) for d in body["detail"]), body


def test_body_without_json_content_type_is_415(client, workspace):
    # curl -d without -H and a cross-origin HTML form both send form encoding: refused, not parsed
    _, shop, _ = workspace
    cid = _known(shop, 1)[0]
    response = client.post("/churn-score", content=json.dumps({"customer_ids": [cid]}),
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415 and "application/json" in response.json()["error"]


def test_oversize_body_is_413(client):
    huge = b'{"customer_ids": ["' + b"x" * 1_100_000 + b'"]}'
    response = client.post("/churn-score", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_write_routes_need_a_valid_key(client, api_key):
    event = {"events": [{"event_id": "auth-1", "customer_id": "c1", "event_at": "2026-05-01T00:00:00Z",
                         "event_type": "session"}]}
    assert client.post("/events", json=event).status_code == 401
    assert client.post("/events", json=event, headers={"X-API-Key": "wrong"}).status_code == 403
    assert client.post("/admin/reload").status_code == 401
    reload = client.post("/admin/reload", headers={"X-API-Key": api_key})
    assert reload.status_code == 200 and reload.json()["churn_version"] == "1"


def test_metrics_expose_requests_models_and_registry(client):
    client.post("/churn-score", json={"customer_ids": ["no-such-customer"]})
    text = client.get("/metrics").text
    assert 'bentoml_service_request_duration_seconds_bucket{endpoint="/churn-score"' in text
    assert 'tenure_model_version{model="churn",version="1"} 1.0' in text
    assert "tenure_registry_reachable 1.0" in text
    assert "tenure_unknown_customers_total" in text
    assert "tenure_missing_feature_values_total" in text


def test_keys_are_never_logged(service, api_key):
    assert api_key not in service.log_path.read_text(errors="replace")


def test_before_any_model_readyz_and_scoring_say_why(service):
    before = service.before_models
    assert before["readyz"].status_code == 503
    state = before["readyz"].json()
    assert state["ready"] is False and state["feature_store"] is True
    assert any("no champion" in p for p in state["problems"])
    for name in ("churn", "recommend"):
        assert before[name].status_code == 503
        assert "promote" in before[name].json()["error"]
