"""Voice of the customer: the scorer, the text features, negative topics, the contract and the simulator's tone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tenure.features.contract import validate_frame
from tenure.features.customer_features import compute_customer_features
from tenure.features.schema import conform
from tenure.features.sentiment import NEGATIVE_AT, score_texts, text_sentiment
from tenure.features.simulator import simulate_shop
from tenure.insight.voice import negative_topics, voice_summary

T = pd.Timestamp("2026-04-01", tz="UTC")
ANGRY = "Terrible service, my order arrived broken and nobody helped."
HAPPY = "Thanks, the agent was helpful and friendly."


def test_scores_have_the_sign_of_the_text_and_nan_without_text():
    assert text_sentiment(ANGRY) <= NEGATIVE_AT < 0 < text_sentiment(HAPPY)
    assert text_sentiment("Where is my parcel?") == 0.0
    for missing in (None, float("nan"), "", "   "):
        assert math.isnan(text_sentiment(missing))
    scores = score_texts([ANGRY, None, HAPPY, ANGRY])
    assert scores[0] == scores[3] == text_sentiment(ANGRY) and math.isnan(scores[1])
    assert text_sentiment("anything", scorer=lambda text: -0.5) == -0.5  # a pluggable scorer


def _features(events: list[dict]) -> dict:
    customers = conform(pd.DataFrame([{"customer_id": "c", "signup_at": "2026-01-01", "consent_personalization": True}]),
                        "customers")
    items = pd.DataFrame({"item_id": ["i"], "category": ["x"], "price": [1.0]})
    frame = pd.DataFrame(events)
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    frame["customer_id"] = "c"
    return compute_customer_features(conform(frame, "events"), customers, items, T).iloc[0].to_dict()


def test_text_features_count_tickets_and_surveys_of_the_last_30_days_only():
    row = _features([
        {"event_at": "2026-03-20", "event_type": "support_ticket", "text": ANGRY},
        {"event_at": "2026-03-25", "event_type": "survey", "text": HAPPY},
        {"event_at": "2026-03-26", "event_type": "support_ticket", "text": "Where is my parcel?"},
        {"event_at": "2026-03-27", "event_type": "view", "text": ANGRY},  # not a ticket or survey: ignored
        {"event_at": "2026-02-01", "event_type": "support_ticket", "text": ANGRY},  # older than 30 days
    ])
    assert row["negative_tickets_30d"] == 1
    expected = (text_sentiment(ANGRY) + text_sentiment(HAPPY) + 0.0) / 3
    assert row["sentiment_30d"] == pytest.approx(expected)
    quiet = _features([{"event_at": "2026-03-20", "event_type": "support_ticket"}])
    assert quiet["negative_tickets_30d"] == 0 and math.isnan(quiet["sentiment_30d"])


def test_negative_topics_are_the_nouns_the_complaints_share():
    texts = ["My delivery is late again, terrible.", "Late delivery, awful.", "Late delivery and a refund never came.",
             "Still waiting for my refund, horrible.", "The app keeps crashing, useless."]
    topics = {t["topic"]: t for t in negative_topics(texts)}
    assert topics["late delivery"]["texts"] == 2  # a pair of neighbouring words
    assert topics["refund"]["texts"] == 2
    assert "delivery" in topics and topics["delivery"]["texts"] == 3
    assert not {"terrible", "awful", "horrible", "useless", "again", "never"} & set(topics)  # sentiment, not topics
    assert "app" not in topics  # one text only (min_texts=2)
    assert topics["refund"]["share"] == pytest.approx(2 / 5)
    assert negative_topics([]) == []


def test_voice_summary_reads_ticket_and_survey_texts():
    events = conform(pd.DataFrame({
        "event_id": ["1", "2", "3", "4"], "customer_id": "c",
        "event_at": pd.to_datetime(["2026-03-01", "2026-03-02", "2026-04-03", "2026-04-04"], utc=True),
        "event_type": ["support_ticket", "survey", "view", "support_ticket"],
        "text": [ANGRY, HAPPY, ANGRY, ANGRY],
    }), "events")
    voice = voice_summary(events)
    assert voice["texts"] == 3 and voice["negative_share"] == pytest.approx(2 / 3)
    assert [m["month"] for m in voice["monthly"]] == ["2026-03", "2026-04"]
    assert {t["event_type"]: t["texts"] for t in voice["by_type"]} == {"support_ticket": 2, "survey": 1}


def test_contract_takes_text_and_bounds_ces():
    raw = pd.DataFrame({
        "event_id": ["1", "2", "3"], "customer_id": "c", "event_at": "2026-03-01T10:00:00Z",
        "event_type": ["survey", "survey", "support_ticket"], "ces": [7, 8, None],
        "text": [" easy ", None, ANGRY],
    })
    result = validate_frame(raw, "events", known_customers=["c"], known_items=[])
    assert result.rejected_rows == 1
    assert "ces" in set(result.rejects["column"])
    assert list(result.valid["text"]) == ["easy", ANGRY]  # trimmed like every string


def test_the_service_intake_fast_path_gives_what_the_contract_gives():
    from tenure.jsonable import to_jsonable
    from tenure.serving.event_intake import EventValidator

    validator = EventValidator(known_customers=["c"], known_items=[])
    event = {"event_id": "e1", "customer_id": "c", "event_at": "2026-03-01T10:00:00Z", "event_type": "survey",
             "channel": "email", "csat": 4.0, "ces": 6.0, "text": HAPPY}
    fast = validator.fast(event)
    assert fast is not None and fast["text"] == HAPPY and fast["ces"] == 6.0
    slow = validate_frame(pd.DataFrame([event]), "events", known_customers=["c"], known_items=[]).valid
    assert to_jsonable(slow.iloc[0].to_dict())["text"] == fast["text"]
    assert validator.fast({**event, "text": " padded "}) is None  # the contract decides (it trims)
    assert validator.fast({**event, "ces": 9.0}) is None


def test_simulated_texts_turn_negative_when_customers_are_about_to_leave():
    shop = simulate_shop(2000, 100, 150, seed=9)
    events = shop.events
    written = events[events["text"].notna()]
    assert set(written["event_type"]) == {"support_ticket", "survey"}
    scores = score_texts(written["text"].to_numpy(dtype=object))
    decided = written["customer_id"].map(shop.truth.set_index("customer_id")["decided_at"])
    leaving = (decided.notna() & (written["event_at"] >= decided)).to_numpy()
    assert leaving.sum() > 30
    assert (scores[leaving] <= NEGATIVE_AT).mean() > 2 * (scores[~leaving] <= NEGATIVE_AT).mean()
    ces = events["ces"].dropna()
    assert ces.between(1, 7).all() and len(ces) == events["csat"].notna().sum()
    # seeded: the same shop, the same words
    same = simulate_shop(2000, 100, 150, seed=9)
    pd.testing.assert_frame_equal(same.events.drop(columns=["text"]), events.drop(columns=["text"]))
    assert np.array_equal(same.events["text"].fillna("").to_numpy(), events["text"].fillna("").to_numpy())
