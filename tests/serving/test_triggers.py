"""Proactive triggers: one message per band crossing, consent, rate limit, retries, dead letters.

The churn scorer is a small stand-in with the scorer's interface (probability = the ``risk``
feature); the webhook is a real HTTP server on 127.0.0.1 that can be switched to failing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from webhook import Webhook

from tenure.serving.triggers import Triggers, WebhookSender


class RiskScorer:
    """Probability = row["risk"]; bands low < 0.3 <= medium < 0.6 <= high."""

    def vectorize(self, rows):
        return np.array([[row["risk"]] for row in rows], dtype=float)

    def predict_proba(self, X):
        return X[:, 0]

    def score(self, X, k: int = 3):
        return X[:, 0], [[{"feature": "risk", "value": float(x)}] for x in X[:, 0]]

    def risk_bands(self, p):
        return ["high" if x >= 0.6 else "medium" if x >= 0.3 else "low" for x in p]

    def percentiles(self, p):
        return np.asarray(p) * 100


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def _row(risk: float, consent: int = 1) -> dict:
    return {"risk": risk, "consent_personalization": consent}


def test_one_message_per_crossing_even_when_the_batch_is_replayed(tmp_path: Path, webhook) -> None:
    triggers = Triggers(tmp_path, ["high"], min_interval_s=0)
    before = {"c1": _row(0.2), "c2": _row(0.7), "c3": _row(0.1)}
    updates = {"c1": {"risk": 0.9}, "c2": {"risk": 0.95}, "c3": {"risk": 0.4}}
    queued = triggers.consider(RiskScorer(), "7", before, updates, "2026-03-01T00:00:00+00:00",
                               extras=lambda cid: {"recommendations": ["i1"]})
    assert [m["customer_id"] for m in queued] == ["c1"]  # c2 was high already, c3 entered medium (not watched)
    message = queued[0]
    assert (message["from_band"], message["to_band"], message["model_version"]) == ("low", "high", "7")
    assert message["percentile"] == pytest.approx(90.0) and message["recommendations"] == ["i1"]
    # a crash after the outbox commit replays the micro-batch: the stored band stops a second message
    again = Triggers(tmp_path, ["high"], min_interval_s=0)
    assert again.consider(RiskScorer(), "7", before, updates, "2026-03-01T00:00:00+00:00") == []
    sender = WebhookSender(again, webhook.url, tmp_path / "dead.jsonl")
    assert sender.deliver_due() == 1 and sender.deliver_due() == 0
    assert [m["key"] for m in webhook.received] == [message["dedupe_key"]]
    # down and up again: a new crossing counts anew, with a new key
    assert again.consider(RiskScorer(), "7", {"c1": _row(0.9)}, {"c1": {"risk": 0.1}}, "t") == []
    (back,) = again.consider(RiskScorer(), "7", {"c1": _row(0.1)}, {"c1": {"risk": 0.8}}, "t")
    assert back["dedupe_key"] != message["dedupe_key"]


def test_consent_and_rate_limit_are_respected(tmp_path: Path) -> None:
    triggers = Triggers(tmp_path, ["high"], min_interval_s=3600)
    scorer = RiskScorer()
    assert triggers.consider(scorer, "1", {"c1": _row(0.1, consent=0)}, {"c1": {"risk": 0.9}}, "t", now=0) == []
    assert len(triggers.consider(scorer, "1", {"c2": _row(0.1)}, {"c2": {"risk": 0.9}}, "t", now=0)) == 1
    triggers.consider(scorer, "1", {"c2": _row(0.9)}, {"c2": {"risk": 0.1}}, "t", now=10)
    assert triggers.consider(scorer, "1", {"c2": _row(0.1)}, {"c2": {"risk": 0.9}}, "t", now=20) == []  # too soon
    assert triggers.consider(scorer, "1", {"c2": _row(0.9)}, {"c2": {"risk": 0.1}}, "t", now=4000) == []  # low: unwatched
    assert len(triggers.consider(scorer, "1", {"c2": _row(0.1)}, {"c2": {"risk": 0.9}}, "t", now=5000)) == 1


def test_webhook_down_then_up_delivers_all_and_hopeless_ones_go_to_dead_letters(tmp_path: Path, webhook) -> None:
    triggers = Triggers(tmp_path, ["high"], min_interval_s=0)
    updates = {f"c{i}": {"risk": 0.9} for i in range(5)}
    triggers.consider(RiskScorer(), "1", {cid: _row(0.1) for cid in updates}, updates, "t")
    sender = WebhookSender(triggers, webhook.url, tmp_path / "dead.jsonl", max_attempts=3, backoff_s=0.01)
    webhook.failing = True
    assert sender.deliver_due() == 5 and not webhook.received
    assert triggers.counts() == {"pending": 5}
    webhook.failing = False
    sender.deliver_due(now=1e12)  # past the back-off
    assert sorted(m["customer_id"] for m in webhook.received) == sorted(updates)
    assert triggers.counts() == {"delivered": 5}

    dead_hook = WebhookSender(triggers, "http://127.0.0.1:9/nothing-listens", tmp_path / "dead.jsonl",
                              max_attempts=2, backoff_s=0.01, timeout_s=1)
    triggers.consider(RiskScorer(), "1", {"z": _row(0.1)}, {"z": {"risk": 0.9}}, "t")
    dead_hook.deliver_due(now=1e12)
    dead_hook.deliver_due(now=2e12)
    (dead,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert dead["message"]["customer_id"] == "z" and dead["attempts"] == 2
    assert triggers.counts()["dead"] == 1


@pytest.fixture
def redis_stream(production_servers):
    """A fresh stream key on the real Redis, removed afterwards (with its dedupe keys)."""
    import uuid

    from tenure.serving.redis_link import redis_client

    client = redis_client(production_servers["redis_connection_string"])
    stream = f"tenure-test:triggers:{uuid.uuid4().hex}"
    yield client, stream
    client.delete(stream, *client.keys(f"{stream}:sent:*"))


@pytest.mark.redis
def test_redis_stream_gets_each_crossing_once_even_when_delivered_again(tmp_path: Path, webhook, redis_stream) -> None:
    from tenure.serving.triggers import RedisStreamSender

    client, stream = redis_stream
    triggers = Triggers(tmp_path, ["high"], min_interval_s=0, sinks=("webhook", "redis_stream"))
    updates = {f"c{i}": {"risk": 0.9} for i in range(3)}
    queued = triggers.consider(RiskScorer(), "1", {cid: _row(0.1) for cid in updates}, updates, "t")
    assert triggers.counts("redis_stream") == {"pending": 3} and triggers.counts("webhook") == {"pending": 3}
    to_stream = RedisStreamSender(triggers, client, stream, tmp_path / "dead.jsonl", maxlen=1000)
    assert to_stream.deliver_due() == 3 and triggers.counts("redis_stream") == {"delivered": 3}
    assert triggers.counts("webhook") == {"pending": 3}  # each sink delivers on its own
    # a crash between XADD and the outbox update: the messages are sent again, the stream keeps one of each
    for message in queued:
        triggers.mark(message["dedupe_key"], "pending", 1, sink="redis_stream")
    assert to_stream.deliver_due() == 3
    entries = client.xrange(stream)
    assert sorted(fields[b"dedupe_key"].decode() for _, fields in entries) == sorted(m["dedupe_key"] for m in queued)
    assert json.loads(entries[0][1][b"message"])["to_band"] == "high"
    WebhookSender(triggers, webhook.url, tmp_path / "dead.jsonl").deliver_due()
    assert len(webhook.received) == 3 and triggers.counts() == {"delivered": 6}


@pytest.mark.redis
def test_redis_down_retries_then_dead_letters(tmp_path: Path, redis_stream) -> None:
    from tenure.serving.redis_link import redis_client
    from tenure.serving.triggers import RedisStreamSender

    triggers = Triggers(tmp_path, ["high"], min_interval_s=0, sinks=("redis_stream",))
    triggers.consider(RiskScorer(), "1", {"z": _row(0.1)}, {"z": {"risk": 0.9}}, "t")
    down = RedisStreamSender(triggers, redis_client("127.0.0.1:9", timeout_s=0.5), "s", tmp_path / "dead.jsonl",
                             max_attempts=2, backoff_s=0.01)
    down.deliver_due(now=1e12)
    assert triggers.counts() == {"pending": 1}
    down.deliver_due(now=2e12)
    (dead,) = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert (dead["sink"], dead["target"], dead["message"]["customer_id"]) == ("redis_stream", "s", "z")
    # the outbox of an earlier version (one sink, the webhook) is taken over, not lost
    import sqlite3

    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / "triggers.sqlite")
    db.execute("CREATE TABLE outbox (dedupe_key TEXT PRIMARY KEY, body TEXT, state TEXT, attempts INTEGER, next_at REAL)")
    db.execute("INSERT INTO outbox VALUES ('k1', '{}', 'pending', 2, 0)")
    db.commit()
    db.close()
    assert Triggers(old, ["high"], 0).due(now=1.0) == [("k1", "{}", 2)]


@pytest.mark.redis
def test_settings_choose_the_sinks(tmp_path: Path, make_settings, redis_stream, webhook) -> None:
    """triggers.webhook_url and triggers.redis_stream each add a sender; the service starts and stops them together."""
    from tenure.serving.triggers import RedisStreamSender, make_senders, sink_names

    client, stream = redis_stream
    settings = make_settings(triggers={"webhook_url": webhook.url, "redis_stream": stream})
    assert sink_names(settings.triggers) == ["webhook", "redis_stream"]
    assert sink_names(make_settings().triggers) == []  # no sink: no triggers at all
    triggers = Triggers(tmp_path, ["high"], min_interval_s=0, sinks=sink_names(settings.triggers))
    senders = make_senders(triggers, settings, tmp_path)
    assert [type(s) for s in senders.senders] == [WebhookSender, RedisStreamSender]
    senders.start()
    try:
        triggers.consider(RiskScorer(), "1", {"c1": _row(0.1)}, {"c1": {"risk": 0.9}}, "t")
        senders.wake()
        import time

        deadline = time.monotonic() + 10
        while triggers.counts() != {"delivered": 2} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        senders.stop()
    assert triggers.counts() == {"delivered": 2} and client.xlen(stream) == 1 and len(webhook.received) == 1


def test_replaying_several_batches_after_a_restart_sends_no_crossing_twice(tmp_path: Path) -> None:
    """Up then down, then both micro-batches replayed (the updater resumed from an older checkpoint)."""
    triggers = Triggers(tmp_path, ["high"], min_interval_s=0)
    scorer = RiskScorer()
    up = ({"c1": _row(0.1)}, {"c1": {"risk": 0.9}})
    down = ({"c1": _row(0.9)}, {"c1": {"risk": 0.4}})
    assert len(triggers.consider(scorer, "1", *up, "t", seq=1)) == 1
    assert triggers.consider(scorer, "1", *down, "t", seq=2) == []
    assert triggers.consider(scorer, "1", *up, "t", seq=1) == []  # older than the stored band: left alone
    assert triggers.consider(scorer, "1", *down, "t", seq=2) == []
    assert len(triggers.consider(scorer, "1", *up, "t", seq=3)) == 1  # a new crossing counts
    (tmp_path / "unordered").mkdir()
    unordered = Triggers(tmp_path / "unordered", ["high"], min_interval_s=0)
    unordered.consider(scorer, "1", *up, "t")
    unordered.consider(scorer, "1", *down, "t")
    assert len(unordered.consider(scorer, "1", *up, "t")) == 1  # without seq the replay looks like a new crossing


@pytest.mark.redis
def test_erasure_reaches_the_redis_stream_and_its_delivery_keys(tmp_path: Path, make_settings, redis_stream) -> None:
    """A forgotten customer's stream entries and ``<stream>:sent:<id>:...`` keys go; other customers' stay."""
    from tenure.serving.erasure import serving_stores, trigger_stream_store
    from tenure.serving.triggers import RedisStreamSender

    client, stream = redis_stream
    settings = make_settings(triggers={"redis_stream": stream})
    triggers = Triggers(tmp_path, ["high"], min_interval_s=0, sinks=("redis_stream",))
    ids = ["c0", "c1", "c*"]  # "c*" must not match c0's keys as a glob
    triggers.consider(RiskScorer(), "1", {cid: _row(0.1) for cid in ids}, {cid: {"risk": 0.9} for cid in ids}, "t")
    assert RedisStreamSender(triggers, client, stream, tmp_path / "dead.jsonl").deliver_due() == 3
    store = trigger_stream_store(settings, client)
    assert "serving.trigger_stream" in [s.name for s in serving_stores(settings, None)]
    assert store.count(ids) == {"c0": 2, "c1": 2, "c*": 2}  # one entry + one delivery key each
    assert [r["message"]["customer_id"] for r in store.export("c0")] == ["c0"]

    assert store.forget(["c*", "c0"]) == 4
    assert store.count(ids) == {"c1": 2}
    left = client.xrange(stream)
    assert [json.loads(fields[b"message"])["customer_id"] for _, fields in left] == ["c1"]
    assert [k.decode() for k in client.keys(f"{stream}:sent:*")] == [f"{stream}:sent:c1:low->high:1"]
