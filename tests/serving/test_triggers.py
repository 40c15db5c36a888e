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
