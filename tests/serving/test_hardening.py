"""Issue 16's reproducers that need no server: the guard's body checks, the model store's registry
faults, the OpenAPI document, the read-key default. The HTTP side is in test_hardening_http.py."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest
from test_units import FakeRegistryStore, _call, _Model

from tenure.serving.model_store import ModelStore, check_registry_reachable
from tenure.serving.openapi import REQUEST_MODELS, build_openapi
from tenure.serving.security import ApiGuard


def _guard(**kw) -> ApiGuard:
    args = {"api_keys": ["k-123"], "require_key_for_reads": False, "max_bytes": 1 << 20,
            "models": REQUEST_MODELS} | kw
    return ApiGuard(None, **args)


def _post(guard, path: str, body: bytes, **headers):
    return asyncio.run(_call(guard, path, body, {"X-API-Key": "k-123", **headers}))


@pytest.mark.parametrize("body", [
    b"[" * 1000 + b"]" * 1000,                                    # 2 KB of nested lists
    b'{"customer_ids": [' + b"[" * 40 + b"]" * 40 + b"]}",        # deeper than the bound
    b'{"customer_id": "c1", "k": ' + b"9" * 5000 + b"}",          # a 5,000-digit integer
    (b'{"events": [{"event_id": "e", "customer_id": "c", "event_at": "2026-01-01T00:00:00Z", '
    b'"event_type": "purchase", "amount": NaN}]}'),
    (b'{"events": [{"event_id": "e", "customer_id": "c", "event_at": "2026-01-01T00:00:00Z", '
    b'"event_type": "purchase", "amount": Infinity}]}'),
    (b'{"events": [{"event_id": "e", "customer_id": "c", "event_at": "2026-01-01T00:00:00Z", '
    b'"event_type": "purchase", "amount": 1e309}]}'),
    b'{"customer_id": "\\ud800"}',                                # not text
])
def test_hostile_json_is_a_400_in_milliseconds(body):
    path = "/events" if b"events" in body else "/recommend" if b"customer_id\"" in body else "/churn-score"
    started = time.perf_counter()
    status, payload, seen = _post(_guard(), path, body)
    elapsed = time.perf_counter() - started
    assert status == 400 and not seen, payload
    answer = json.loads(payload)
    assert isinstance(answer["error"], str) and isinstance(answer["detail"], list) and answer["detail"]
    assert elapsed < 0.5  # milliseconds when idle; the margin is for a busy CI machine, a blow-up takes seconds


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/json; charset=latin-1", None])
def test_post_bodies_need_the_json_media_type(content_type):
    headers = {"content-type": content_type} if content_type else {"content-type": ""}
    status, payload, seen = _post(_guard(), "/churn-score", b'{"customer_ids": ["c1"]}', **headers)
    assert status == 415 and not seen and "application/json" in json.loads(payload)["error"]
    assert _post(_guard(), "/churn-score", b'{"customer_ids": ["c1"]}',
                 **{"content-type": "application/json; charset=UTF-8"})[0] == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"customer_id": "c1", "k": "10"}, "k"),
    ({"customer_id": "c1", "k": True}, "k"),
    ({"customer_id": "c1", "k": 10.5}, "k"),
    ({"customer_id": "c1", "exclude_purchased": "yes"}, "exclude_purchased"),
    ({"customer_id": "c1", "context": {"blob": "x" * 5000}}, "context"),
    ({"customer_id": "c" * 201}, "customer_id"),
])
def test_request_types_are_strict_and_free_form_fields_bounded(body, field):
    guard = _guard()
    guard.validate = lambda model, parsed: model.model_validate(parsed, context={"max_context_bytes": 4096})
    status, payload, seen = _post(guard, "/recommend", json.dumps(body).encode())
    assert status == 400 and not seen
    assert {d["loc"][0] for d in json.loads(payload)["detail"]} == {field}  # a union field has one entry per member
    assert "x" * 100 not in payload.decode()  # the input is not echoed back


def test_empty_body_is_a_400_except_on_reload():
    status, payload, _ = _post(_guard(), "/churn-score", b"")
    assert status == 400 and json.loads(payload)["detail"][0]["loc"] == ["body"]
    status, _, seen = _post(_guard(), "/admin/reload", b"", **{"content-type": ""})
    assert status == 200 and seen[0][0] == b"{}"
    assert _post(_guard(), "/admin/reload", b'{"x": 1}')[0] == 400


def test_client_errors_are_one_rate_limited_line_without_traceback(caplog):
    guard = _guard(error_log_per_minute=5)
    with caplog.at_level(logging.INFO, logger="tenure.serving.security"):
        for _ in range(100):
            assert _post(guard, "/churn-score", b'{"customer_ids": [')[0] == 400
    records = [r for r in caplog.records if r.name == "tenure.serving.security"]
    assert len(records) == 5
    assert all(r.levelno == logging.WARNING and r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert "k-123" not in caplog.text


def test_reads_need_a_key_under_the_production_profile(make_settings):
    assert make_settings().reads_need_key is False
    assert make_settings(feast={"profile": "production"}).reads_need_key is True
    assert make_settings(feast={"profile": "production"}, serving={"require_key_for_reads": False}).reads_need_key is False
    assert make_settings(serving={"require_key_for_reads": True}).reads_need_key is True


# --- registry faults ---------------------------------------------------------------------------


def test_missing_registry_database_is_not_created_and_the_cache_serves(tmp_path: Path):
    FakeRegistryStore(tmp_path / "cache").refresh()  # an earlier run cached version 1 of both
    db = tmp_path / "mlruns" / "mlflow.db"
    store = ModelStore(f"sqlite:///{db}", {"churn": "tenure-churn", "recommender": "tenure-recommender"},
                       {"churn": _Model, "recommender": _Model}, tmp_path / "cache")
    assert store.refresh() is True
    assert not db.exists()  # MLflow did not create an empty registry in its place
    assert store.from_cache and not store.registry_reachable
    assert (store.current.churn_version, store.current.recommender_version) == ("1", "1")
    assert "does not exist" in store.problem and "sqlite" not in store.problem.lower()


def test_empty_registry_leaves_the_cached_champion_in_service(tmp_path: Path):
    FakeRegistryStore(tmp_path).refresh()
    restarted = FakeRegistryStore(tmp_path)
    restarted.registry = {"churn": None, "recommender": None}  # reachable, but nothing promoted
    assert restarted.refresh() is True
    assert restarted.registry_reachable and restarted.from_cache
    assert restarted.current.churn_version == "1" and restarted.current.recommender_version == "1"
    restarted.registry = {"churn": "2", "recommender": None}  # a champion appears: it replaces the cached one
    restarted.refresh()
    assert restarted.current.churn_version == "2"


def test_dead_registry_server_costs_seconds_not_minutes(tmp_path: Path):
    FakeRegistryStore(tmp_path).refresh()
    uri = "postgresql+psycopg://mlflow@10.255.255.1:5432/mlflow"  # a host that never answers
    store = ModelStore(uri, {"churn": "tenure-churn", "recommender": "tenure-recommender"},
                       {"churn": _Model, "recommender": _Model}, tmp_path, timeout_s=0.5)
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401 - import cost is not what is measured
    import psycopg  # noqa: F401

    started = time.perf_counter()
    assert store.refresh() is True
    # seconds, not the minutes of an unbounded TCP connect (bound loose enough for a loaded CI machine)
    assert time.perf_counter() - started < 10
    assert store.from_cache and store.current.churn_version == "1"
    assert "10.255" not in store.problem and "psycopg" not in store.problem
    with pytest.raises(Exception, match="does not accept connections"):
        check_registry_reachable("http://127.0.0.1:1", 0.5)


# --- the OpenAPI document ----------------------------------------------------------------------


def test_openapi_document_says_what_the_guard_answers():
    doc = build_openapi(reads_need_key=False, max_batch_size=100, max_events=1000)
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorResponse"]["properties"]["detail"]["type"] == "array"
    assert schemas["ErrorResponse"]["properties"]["error"]["type"] == "string"
    assert doc["components"]["securitySchemes"]["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemas["RecommendRequest"]["properties"]["k"]["type"] == "integer"
    assert schemas["ChurnScoreRequest"]["properties"]["customer_ids"]["maxItems"] == 100
    events = doc["paths"]["/events"]["post"]
    assert {"200", "400", "401", "403", "413", "415"} <= set(events["responses"])
    assert events["security"] == [{"ApiKey": []}] and events["requestBody"]["required"] is True
    churn = doc["paths"]["/churn-score"]["post"]
    assert {"400", "413", "415", "503"} <= set(churn["responses"]) and {} in churn["security"]
    assert doc["paths"]["/admin/reload"]["post"]["requestBody"]["required"] is False
    assert "503" in doc["paths"]["/admin/reload"]["post"]["responses"]
    strict = build_openapi(reads_need_key=True, max_batch_size=100, max_events=1000)
    assert strict["paths"]["/churn-score"]["post"]["security"] == [{"ApiKey": []}]
    assert "401" in strict["paths"]["/churn-score"]["post"]["responses"]
