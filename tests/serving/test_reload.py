"""Model lifecycle over real HTTP: hot reload under traffic, and a registry that stops answering."""

from __future__ import annotations

import sqlite3
import threading


def _traffic(url: str, ids: list[str], stop: threading.Event, statuses: list[int], versions: list[str]) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=30) as c:
        while not stop.is_set():
            r = c.post("/churn-score", json={"customer_ids": ids})
            statuses.append(r.status_code)
            if r.status_code == 200:
                versions.append(r.json()["model_version"])
            statuses.append(c.post("/recommend", json={"customer_id": ids[0], "k": 5}).status_code)


def test_hot_reload_during_traffic_fails_no_request(service, client, workspace, api_key):
    from mlflow.tracking import MlflowClient

    from tenure.registry.models import register_version
    from tenure.training.gate import promote

    settings, shop, _ = workspace
    mlflow_client = MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)
    champion = mlflow_client.get_model_version_by_alias(settings.mlflow.churn_model_name, "champion")
    ids = [str(c) for c in shop.events["customer_id"].unique()[:10]]

    stop, statuses, versions = threading.Event(), [], []
    worker = threading.Thread(target=_traffic, args=(service.url, ids, stop, statuses, versions))
    worker.start()
    try:
        new_version = register_version(settings, "churn", champion.run_id, model_uri=champion.source)
        promote(settings, "churn", force_reason="service test: hot reload")
        reload = client.post("/admin/reload", headers={"X-API-Key": api_key}).json()
        assert reload["churn_version"] == new_version and reload["registry_reachable"] is True
        seen_after = len(versions)
        while len(versions) < seen_after + 5 and worker.is_alive():
            stop.wait(0.05)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert statuses and set(statuses) == {200}, statuses
    assert versions[0] == str(champion.version) and versions[-1] == new_version
    assert client.get("/readyz").json()["churn_model_version"] == new_version


def test_registry_down_keeps_serving(client, workspace, api_key):
    settings, shop, _ = workspace
    db_path = settings.mlflow.tracking_uri.removeprefix("sqlite:///")
    cid = str(shop.events["customer_id"].iloc[0])
    before = client.get("/readyz").json()
    lock = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # the registry can neither be read nor written
        reload = client.post("/admin/reload", headers={"X-API-Key": api_key})
        # a reload that could not check the registry is not a success: 503 with the reason in plain words
        assert reload.status_code == 503, reload.text
        failed = reload.json()
        assert "reload failed" in failed["error"] and failed["detail"][0]["loc"] == ["registry"]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["registry_reachable"] is False
        problems = " ".join(ready.json()["problems"])
        assert "registry" in problems and "SELECT" not in problems and "sqlite3" not in problems.lower()
        assert "Error" not in problems  # no exception class names or text
        assert ready.json()["churn_model_version"] == before["churn_model_version"]
        score = client.post("/churn-score", json={"customer_ids": [cid]})
        assert score.status_code == 200 and score.json()["results"][0]["status"] == "ok"
        assert client.post("/recommend", json={"customer_id": cid, "k": 3}).status_code == 200
        assert "tenure_registry_reachable 0.0" in client.get("/metrics").text
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    reload = client.post("/admin/reload", headers={"X-API-Key": api_key}).json()
    assert reload["registry_reachable"] is True
