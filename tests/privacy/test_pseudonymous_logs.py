"""Pseudonymous logs (issue 17, item 4): a keyed hash with a required secret, and monitoring joins on it."""

from __future__ import annotations

import json

import pytest

from tenure.monitoring.runner import served_hit_rates
from tenure.pseudonym import customer_ref, log_key, logs_are_pseudonymous
from tenure.serving.prediction_log import PredictionLog
from tenure.settings import SettingsError

SECRET = "a-test-secret-of-32-characters!!"

# customer: (served items, purchases as (item, day of March 2026))
SERVED = {
    "c1": (["i1", "i2"], [("i2", 5)]),        # bought a served item within 14 days: hit
    "c2": (["i3"], [("i4", 3)]),              # bought something else: miss
    "c3": (["i5"], [("i5", 31)]),             # bought the served item after the horizon: miss
    "c4": (["i6", "i7"], [("i7", 14)]),       # hit
}


def _write_workspace(settings) -> None:
    """The service's two logs: purchases in the event log, served lists in the prediction log."""
    folder = settings.paths.event_log_dir
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"event_id": f"e-{cid}-{n}", "customer_id": cid, "event_at": f"2026-03-{day:02d}T12:00:00+00:00",
                         "event_type": "purchase", "item_id": item, "quantity": 1.0, "amount": 10.0})
             for cid, (_, bought) in SERVED.items() for n, (item, day) in enumerate(bought)]
    (folder / "events-20260301.jsonl").write_text("\n".join(lines) + "\n")
    log = PredictionLog(settings.paths.prediction_log_dir, flush_s=60, pseudonymize_key=log_key(settings))
    for cid, (items, _) in SERVED.items():
        log.add({"kind": "recommend", "request_id": f"r-{len(items)}-{items[0]}", "logged_at": "2026-03-01T10:00:00+00:00",
                 "customer_id": log.customer_ref(cid), "model_version": "1", "strategy": "als", "items": items})
    log.close()


@pytest.mark.parametrize("hashed", [False, True])
def test_served_hit_rate_is_the_same_with_hashed_logs(make_settings, hashed):
    privacy = {"pseudonymize_logs": hashed, "log_hmac_secret": SECRET} if hashed else {"pseudonymize_logs": False}
    settings = make_settings(privacy=privacy)
    _write_workspace(settings)
    logged = "".join(p.read_text() for p in settings.paths.prediction_log_dir.glob("recommend-*.jsonl"))
    assert ('"c1"' in logged) is not hashed  # no raw id in a pseudonymous log
    result = served_hit_rates(settings)["als"]
    assert result["matured_lists"] == 4
    assert result["hits"] == 2 and result["hit_rate"] == pytest.approx(0.5)


def test_the_production_profile_requires_the_secret(make_settings):
    local = make_settings()
    assert not logs_are_pseudonymous(local) and log_key(local) is None
    production = make_settings(feast={"profile": "production"})
    with pytest.raises(SettingsError, match="privacy.log_hmac_secret"):
        log_key(production)
    # the older switch no longer falls back to an API key or a constant
    with pytest.raises(SettingsError, match="TENURE_PRIVACY__LOG_HMAC_SECRET"):
        log_key(make_settings(serving={"pseudonymize_customer_ids": True, "api_keys": ["k" * 20]}))
    key = log_key(make_settings(feast={"profile": "production"}, privacy={"log_hmac_secret": SECRET}))
    assert key == SECRET.encode()
    assert customer_ref(key, "c1") != "c1" and len(customer_ref(key, "c1")) == 16
    assert customer_ref(key, "c1") == customer_ref(key, "c1") != customer_ref(b"another-key-000000", "c1")
    with pytest.raises(SettingsError):  # a short secret is a bad value, named with its variable
        make_settings(privacy={"log_hmac_secret": "short"})


def test_monitoring_leaves_out_profiling_withdrawals_in_hashed_logs(make_settings):
    from datetime import UTC, datetime

    import pandas as pd

    from tenure.monitoring.runner import without_withdrawn
    from tenure.privacy.consent import ConsentChange, ConsentStore

    settings = make_settings(privacy={"pseudonymize_logs": True, "log_hmac_secret": SECRET})
    key = log_key(settings)
    log = pd.DataFrame({"customer_id": [customer_ref(key, c) for c in ("c1", "c2", "c3")], "prediction": [0.1, 0.5, 0.9]})
    assert len(without_withdrawn(settings, log, logged=True)) == 3  # no history: nothing withdrawn
    store = ConsentStore.from_settings(settings)
    store.record([ConsentChange("c2", "profiling", False, datetime(2026, 3, 1, tzinfo=UTC))])
    store.close()
    kept = without_withdrawn(settings, log, logged=True)
    assert list(kept["prediction"]) == [0.1, 0.9]
    snapshot = pd.DataFrame({"customer_id": ["c1", "c2"], "tenure_days": [3, 4]})
    assert list(without_withdrawn(settings, snapshot)["customer_id"]) == ["c1"]
