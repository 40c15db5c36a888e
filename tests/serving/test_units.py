"""Unit tests of the service's own parts, without a server: guard, logs, model swaps."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

from tenure.serving.event_intake import DurableEventLog
from tenure.serving.model_store import LoadedModels, ModelStore
from tenure.serving.prediction_log import PredictionLog
from tenure.serving.security import ApiGuard

# --- ApiGuard (ASGI) --------------------------------------------------------------------------


async def _call(guard: ApiGuard, path: str, body: bytes = b"", headers: dict | None = None, method: str = "POST",
                chunk: int | None = None):
    sent, seen_body = [], []
    chunks = [body] if chunk is None else [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        message = await receive()
        seen_body.append((message["body"], dict(scope["headers"])))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    headers = dict(headers or {})
    if method == "POST" and not any(k.lower() == "content-type" for k in headers):
        headers["content-type"] = "application/json"  # what every JSON client sends
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    guard.app = app
    await guard({"type": "http", "path": path, "method": method, "headers": raw_headers}, receive, send)
    status = sent[0]["status"]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return status, payload, seen_body


def _guard(**kw) -> ApiGuard:
    args = {"api_keys": ["k-123"], "require_key_for_reads": False, "max_bytes": 2048} | kw
    return ApiGuard(None, **args)


def run(coro):
    return asyncio.run(coro)


def test_guard_keys_on_writes_optional_on_reads():
    guard = _guard()
    assert run(_call(guard, "/events", b"{}"))[0] == 401
    assert run(_call(guard, "/events", b"{}", {"X-API-Key": "nope"}))[0] == 403
    assert run(_call(guard, "/events", b"{}", {"X-API-Key": "k-123"}))[0] == 200
    assert run(_call(guard, "/admin/reload", b"", {"X-API-Key": "nope"}))[0] == 403
    assert run(_call(guard, "/churn-score", b"{}"))[0] == 200
    strict = _guard(require_key_for_reads=True)
    assert run(_call(strict, "/churn-score", b"{}"))[0] == 401
    assert run(_call(strict, "/churn-score", b"{}", {"X-API-Key": "k-123"}))[0] == 200
    no_keys = _guard(api_keys=[])
    status, payload, _ = run(_call(no_keys, "/events", b"{}", {"X-API-Key": ""}))
    assert status == 403 and b"serving.api_keys" in payload


def test_guard_size_limit_declared_and_streamed():
    guard = _guard()
    big = b'{"customer_ids": ["' + b"x" * 3000 + b'"]}'
    assert run(_call(guard, "/churn-score", big, {"content-length": str(len(big))}))[0] == 413
    assert run(_call(guard, "/churn-score", big, chunk=500))[0] == 413  # no content-length: counted while read


def test_guard_json_errors_and_forwarding():
    guard = _guard()
    status, payload, _ = run(_call(guard, "/churn-score", b'{"customer_ids": ['))
    assert status == 400 and json.loads(payload)["error"] == "malformed JSON"
    assert run(_call(guard, "/churn-score", b"[1, 2]"))[0] == 400
    status, _, seen = run(_call(guard, "/admin/reload", b"", {"X-API-Key": "k-123"}))
    assert status == 200 and seen[0][0] == b"{}"
    # a cross-origin form post (text/plain) never reaches the app
    status, _, seen = run(_call(guard, "/churn-score", b'{"customer_ids": ["a"]}', {"content-type": "text/plain"}))
    assert status == 415 and not seen


# --- prediction log ---------------------------------------------------------------------------


def test_prediction_log_buffers_and_pseudonymises(tmp_path: Path):
    log = PredictionLog(tmp_path, flush_s=60, pseudonymize_key=b"secret")
    ref = log.customer_ref("c42")
    assert ref != "c42" and ref == log.customer_ref("c42") and len(ref) == 16
    log.add({"kind": "churn", "request_id": "r1", "customer_id": ref, "churn_probability": 0.25})
    log.add({"kind": "recommend", "request_id": "r2", "customer_id": ref, "items": ["i1"]})
    assert not list(tmp_path.glob("*.jsonl"))  # nothing written on the request path
    log.close()
    churn = list(tmp_path.glob(f"churn-*-{os.getpid()}.jsonl"))
    assert len(churn) == 1
    record = json.loads(churn[0].read_text())
    assert record["churn_probability"] == 0.25 and record["customer_id"] == ref
    assert "c42" not in churn[0].read_text()
    assert PredictionLog(tmp_path / "p", pseudonymize_key=None).customer_ref("c42") == "c42"


def test_prediction_log_writes_missing_features_as_null(tmp_path: Path):
    log = PredictionLog(tmp_path, flush_s=60)
    log.add({"kind": "churn", "request_id": "r1", "customer_id": "c1", "features": {"a": float("nan"), "b": 2.0, "p": None}})
    log.close()
    record = json.loads(next(tmp_path.glob("churn-*.jsonl")).read_text())
    assert record["features"] == {"a": None, "b": 2.0, "p": None}


def test_single_row_contributions_equal_the_booster(tmp_path: Path):
    import lightgbm as lgb
    import numpy as np

    from tenure.registry.churn_scorer import ChurnScorer

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 5))
    X[:, 4] = rng.integers(0, 3, 400)
    y = (X[:, 0] + (X[:, 4] == 1) + rng.normal(scale=0.5, size=400) > 0.5).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 7, "num_threads": 1},
                        lgb.Dataset(X, y, categorical_feature=[4]), num_boost_round=20)
    scorer = ChurnScorer(booster, ["a", "b", "c", "d", "k"], {"k": ["x", "y", "z"]}, {"method": "none"}, (0.3, 0.6))
    reference = booster.predict(X[:30], pred_contrib=True, num_threads=1)
    single = np.vstack([scorer.contributions(X[i:i + 1]) for i in range(30)])
    assert scorer._single_row not in (None, False)  # the single-row C API was used
    np.testing.assert_array_equal(single, reference)
    np.testing.assert_array_equal(scorer.contributions(X[:30]), reference)
    p_one, reasons_one = scorer.score(X[:1])
    p_all, reasons_all = scorer.score(X[:30])
    assert p_one[0] == p_all[0] and reasons_one[0] == reasons_all[0]
    import pickle

    clone = pickle.loads(pickle.dumps(scorer))
    np.testing.assert_array_equal(clone.contributions(X[:1]), reference[:1])


def test_prediction_log_background_flush(tmp_path: Path):
    log = PredictionLog(tmp_path, flush_s=0.05)
    log.add({"kind": "churn", "request_id": "r1", "customer_id": "c1"})
    done = threading.Event()
    for _ in range(100):
        if list(tmp_path.glob("churn-*.jsonl")):
            done.set()
            break
        done.wait(0.05)
    log.close()
    assert done.is_set()


# --- durable event log ------------------------------------------------------------------------


def test_event_log_dedup_index_survives_restart(tmp_path: Path):
    log = DurableEventLog(tmp_path)
    log.append([{"event_id": "e1", "customer_id": "c1"}, {"event_id": "e2", "customer_id": "c1"}])
    log.close()
    reopened = DurableEventLog(tmp_path)
    assert reopened.seen(["e1", "e2", "e3"]) == {"e1", "e2"}
    files = list(tmp_path.glob("events-*.jsonl"))
    assert len(files) == 1 and len(files[0].name) == len("events-YYYYMMDD.jsonl")
    assert [json.loads(line)["event_id"] for line in files[0].read_text().splitlines()] == ["e1", "e2"]
    reopened.close()


# --- model store (fake registry and loaders; the HTTP tests use the real MLflow) -------------


class _Model:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.model_version = None


class FakeRegistryStore(ModelStore):
    """A ModelStore whose registry is a dict (``None`` = unreachable)."""

    def __init__(self, cache_dir: Path, loaders=None) -> None:
        super().__init__("fake://", {"churn": "tenure-churn", "recommender": "tenure-recommender"},
                         loaders or {"churn": _Model, "recommender": _Model}, cache_dir)
        self.registry: dict[str, str | None] | None = {"churn": "1", "recommender": "1"}

    def _champion_versions(self):
        if self.registry is None:
            raise ConnectionError("registry down")
        return dict(self.registry)

    def _download(self, kind: str, version: str) -> Path:
        target = self.cache_dir / kind / version
        target.mkdir(parents=True, exist_ok=True)
        (self.cache_dir / kind / "current.json").write_text(json.dumps({"version": version}))
        return target


def test_model_store_swaps_atomically_and_keeps_in_flight_objects(tmp_path: Path):
    store = FakeRegistryStore(tmp_path)
    assert store.refresh() is True
    in_flight = store.current
    assert (in_flight.churn_version, in_flight.recommender_version) == ("1", "1")
    assert store.refresh() is False  # nothing new
    store.registry["churn"] = "2"
    assert store.refresh() is True
    assert store.current.churn_version == "2" and store.current.recommender is in_flight.recommender
    assert in_flight.churn.model_version == "1"  # the request that started earlier still holds version 1
    assert isinstance(store.current, LoadedModels)


def test_model_store_keeps_serving_when_loading_fails_or_registry_is_down(tmp_path: Path):
    def broken(folder: Path):
        if folder.name == "2":
            raise ValueError("corrupt model")
        return _Model(folder)

    store = FakeRegistryStore(tmp_path, loaders={"churn": broken, "recommender": _Model})
    store.refresh()
    store.registry["churn"] = "2"
    assert store.refresh() is False and store.current.churn_version == "1"
    assert "corrupt model" in store.last_error
    store.registry = None
    assert store.refresh() is False
    assert store.registry_reachable is False and store.current.churn_version == "1"


def test_model_store_starts_from_the_local_cache_when_registry_is_down(tmp_path: Path):
    FakeRegistryStore(tmp_path).refresh()  # an earlier run filled the cache
    restarted = FakeRegistryStore(tmp_path)
    restarted.registry = None
    assert restarted.refresh() is True
    assert restarted.from_cache and not restarted.registry_reachable
    assert restarted.current.churn_version == "1" and restarted.current.recommender_version == "1"


def test_model_store_polls(tmp_path: Path):
    store = FakeRegistryStore(tmp_path)
    store.refresh()
    store.registry["recommender"] = "7"
    store.start_polling(0.02)
    try:
        for _ in range(200):
            if store.current.recommender_version == "7":
                break
            threading.Event().wait(0.02)
    finally:
        store.stop()
    assert store.current.recommender_version == "7"


def test_model_store_real_mlflow_unreachable_is_reported(tmp_path: Path):
    (tmp_path / "not-a-folder").write_text("x")  # the registry database cannot be created below a file
    uri = f"sqlite:///{tmp_path / 'not-a-folder' / 'mlflow.db'}"
    store = ModelStore(uri, {"churn": "tenure-churn"}, {"churn": _Model}, tmp_path)
    assert store.refresh() is False
    assert store.registry_reachable is False and store.last_error.startswith("registry unreachable")
