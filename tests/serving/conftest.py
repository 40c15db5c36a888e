"""Service tests: one small workspace (data, Feast online store, both champions) and one real
``tenure serve`` process for the session, spoken to over HTTP on a free port of 127.0.0.1.

The service starts before any model is registered (a first deployment): what it answered
then is kept in ``service.before_models`` and checked by a test; the models are then trained,
promoted and picked up with ``POST /admin/reload``. Training functions build the fixture only;
the service itself never imports ``training``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workspace import API_KEY, build_data, serving_settings, train_models, write_config

from tenure.pipelines.service_client import ServiceClient
from tenure.pipelines.service_process import ServiceProcess, tenure_service

SERVICE_EXPERIMENTS = {"holdout_share": 0.1, "definitions": [
    {"name": "winback", "arms": [{"name": "control", "share": 0.5}, {"name": "message", "share": 0.5, "offer": "note"}]},
    {"name": "later", "start": "2099-01-01T00:00:00Z",
     "arms": [{"name": "control", "share": 0.5}, {"name": "popular", "share": 0.5, "recommender": "popular"}]},
]}
"""Experiments of the service under test: one active (its arms only label answers), one not started yet."""


@pytest.fixture(scope="session")
def trigger_webhook():
    """A local webhook receiving the service's trigger messages."""
    from webhook import Webhook

    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory, trigger_webhook):
    """Settings, the simulated shop and the root folder of a workspace with features online."""
    root = tmp_path_factory.mktemp("serving")
    # the registry is polled only on POST /admin/reload here, so each test decides when models change
    # every band change is a trigger here (bands: all), sent to a local webhook (test_events.py)
    settings = serving_settings(root, serving={"reload_interval_s": 3600},
                                triggers={"webhook_url": trigger_webhook.url, "bands": ["low", "medium", "high"],
                                          "min_interval_s": 0},
                                experiments=SERVICE_EXPERIMENTS)  # arms on answers (test_experiment_arms.py)
    shop = build_data(settings, n_customers=400, n_items=50, days=150, seed=5)
    return settings, shop, root


@pytest.fixture(scope="session")
def service(workspace) -> Iterator[ServiceProcess]:
    """``tenure serve`` on the workspace, champions loaded; stopped at the end of the session."""
    import httpx

    settings, _, root = workspace
    config = write_config(settings, root / "tenure.yaml")
    proc = tenure_service(config, root / "service.log").start()
    try:
        proc.wait_alive(150)
        proc.before_models = {
            "readyz": httpx.get(f"{proc.url}/readyz", timeout=10),
            "churn": httpx.post(f"{proc.url}/churn-score", json={"customer_ids": ["c1"]}, timeout=10),
            "recommend": httpx.post(f"{proc.url}/recommend", json={"customer_id": "c1"}, timeout=10),
        }
        train_models(settings)
        with ServiceClient(proc.url, API_KEY, timeout_s=60) as admin:
            admin.reload()
        proc.wait_ready(150)
        wait_updater_models(proc.url, 150)  # the updater process scores triggers with the champions just loaded
        yield proc
    finally:
        proc.stop()


def wait_updater_models(url: str, timeout_s: float) -> dict:
    """Wait until ``/readyz`` says the updater process scores with the versions the service serves; its state."""
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        ready = httpx.get(f"{url}/readyz", timeout=10).json()
        served = f"{ready.get('churn_model_version')}/{ready.get('recommender_model_version')}"
        if (ready.get("event_updater") or {}).get("models") == served or time.monotonic() > deadline:
            return ready
        time.sleep(0.2)


@pytest.fixture(scope="session")
def client(service):
    """httpx client on the service (no API key)."""
    import httpx

    with httpx.Client(base_url=service.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY
