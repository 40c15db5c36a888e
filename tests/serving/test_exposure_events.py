"""Exposure events and recommendation ids in the data contract: POST /events' fast check and the file rules agree."""

from __future__ import annotations

import pandas as pd
import pytest

from tenure.features.contract import validate_frame
from tenure.serving.event_intake import EventValidator

AT = "2026-01-01T00:00:00Z"


def _e(eid: str, etype: str, **fields) -> dict:
    return {"event_id": eid, "customer_id": "c1", "event_at": AT, "event_type": etype, **fields}


GOOD = [
    _e("ok-exposure", "exposure", recommendation_id="r1", impressions=["i1", "i2"]),
    _e("ok-view", "view", item_id="i1", recommendation_id="r1"),
    _e("ok-purchase", "purchase", item_id="i2", amount=3.0, recommendation_id="r1"),
]
BAD = {  # event -> (column, start of the reason)
    "no-rec": (_e("no-rec", "exposure", impressions=["i1"]), "recommendation_id", "missing value: an exposure"),
    "no-shown": (_e("no-shown", "exposure", recommendation_id="r1"), "impressions", "missing value: an exposure"),
    "unknown": (_e("unknown", "exposure", recommendation_id="r1", impressions=["i9"]), "impressions",
                "unknown item_id in impressions: i9"),
    "separator": (_e("separator", "exposure", recommendation_id="r1", impressions=["a|b"]), "impressions",
                  "impressions must be a list of item ids"),
    "not-exposure": (_e("not-exposure", "view", item_id="i1", impressions=["i1"]), "impressions",
                     "impressions only belong to exposure events"),
    "too-many": (_e("too-many", "exposure", recommendation_id="r1", impressions=["i1"] * 101), "impressions",
                 "impressions holds 101 item ids"),
}


@pytest.fixture
def validator() -> EventValidator:
    return EventValidator(["c1"], ["i1", "i2"])


def test_fast_path_equals_the_contract_on_accepted_events(validator):
    accepted, reasons = validator.slow([dict(e) for e in GOOD])
    assert reasons == {} and len(accepted) == len(GOOD)
    for event, slow in zip(GOOD, accepted):
        slow = {k: v for k, v in slow.items() if k != "_position"}
        assert validator.fast(dict(event)) == slow
    assert accepted[0]["impressions"] == "i1|i2" and accepted[1]["recommendation_id"] == "r1"


def test_bad_exposures_are_rejected_with_the_reason(validator):
    events = [e for e, _, _ in BAD.values()]
    assert all(validator.fast(dict(e)) is None for e in events)  # the fast check leaves them to the contract
    accepted, reasons = validator.slow([dict(e) for e in events])
    assert accepted == []
    for position, (column, reason) in enumerate((c, r) for _, c, r in BAD.values()):
        assert any(text.startswith(f"{column}: {reason}") for text in reasons[position]), reasons[position]


def test_files_carry_impressions_as_joined_text():
    frame = pd.DataFrame([_e("f1", "exposure", recommendation_id="r1", impressions="i1|i2"),
                          _e("f2", "exposure", recommendation_id="r1", impressions="i1||i2")])
    result = validate_frame(frame, "events", known_customers=pd.Index(["c1"]), known_items=pd.Index(["i1", "i2"]))
    assert list(result.valid["event_id"]) == ["f1"] and result.valid["impressions"].iloc[0] == "i1|i2"
    assert result.rejects["reason"].tolist() == ["empty item id in impressions"]
