"""Validation: every rejection reason is found, located (file, 1-based row, column) and explained."""

from __future__ import annotations

import pandas as pd
import pytest

from tenure.features.contract import REJECT_COLUMNS, validate_frame

CUSTOMERS = pd.Index(["c1", "c2"])
ITEMS = pd.Index(["i1"])


def good_event(**overrides) -> dict:
    row = {"event_id": "e1", "customer_id": "c1", "event_at": "2026-01-01T10:00:00Z", "event_type": "view",
           "item_id": "i1", "quantity": None, "amount": None, "nps": None, "csat": None}
    row.update(overrides)
    return row


def check_events(rows: list[dict]):
    frame = pd.DataFrame(rows)
    return validate_frame(frame, "events", "events.csv", known_customers=CUSTOMERS, known_items=ITEMS)


def only_reject(result) -> pd.Series:
    assert len(result.rejects) == 1, result.rejects.to_dict("records")
    return result.rejects.iloc[0]


def test_good_rows_pass_and_become_canonical():
    result = check_events([good_event(), good_event(event_id="e2", event_at="2026-01-01T12:00:00+02:00",
                                                    event_type="purchase", quantity="2", amount="9.5")])
    assert result.rejects.empty and result.rejected_rows == 0
    valid = result.valid
    assert str(valid["event_at"].dtype) == "datetime64[ns, UTC]"
    assert valid.loc[1, "event_at"] == pd.Timestamp("2026-01-01T10:00:00Z")  # +02:00 stored as UTC
    assert valid.loc[1, "amount"] == 9.5 and valid.loc[1, "quantity"] == 2.0
    assert list(result.valid_rows) == [1, 2]


@pytest.mark.parametrize(
    ("override", "column", "reason"),
    [
        ({"event_at": "2026-01-01 10:00:00"}, "event_at", "naive timestamp"),
        ({"event_at": "2026-01-01"}, "event_at", "naive timestamp"),
        ({"event_at": "yesterday"}, "event_at", "unparseable timestamp"),
        ({"event_type": "teleport"}, "event_type", "unknown event_type"),
        ({"customer_id": "c9"}, "customer_id", "unknown customer_id"),
        ({"item_id": "i9"}, "item_id", "unknown item_id"),
        ({"amount": "-1"}, "amount", "negative amount"),
        ({"quantity": "-2"}, "quantity", "negative quantity"),
        ({"amount": "ten"}, "amount", "amount is not a number"),
        ({"nps": "11"}, "nps", "nps outside 0..10"),
        ({"nps": "-1"}, "nps", "nps outside 0..10"),
        ({"csat": "0"}, "csat", "csat outside 1..5"),
        ({"csat": "6"}, "csat", "csat outside 1..5"),
        ({"customer_id": None}, "customer_id", "missing value"),
        ({"event_at": None}, "event_at", "missing value"),
    ],
)
def test_each_rejection_reason_is_located(override, column, reason):
    result = check_events([good_event(event_id="e0"), good_event(**override)])
    bad = only_reject(result)
    assert bad["file"] == "events.csv"
    assert bad["row"] == 2  # 1-based data row
    assert bad["column"] == column
    assert bad["reason"].startswith(reason)
    assert list(result.valid["event_id"]) == ["e0"]
    assert result.rejected_rows == 1


def test_boundaries_are_allowed():
    result = check_events([good_event(nps="0", event_type="survey", item_id=None),
                           good_event(event_id="e2", nps="10", csat="1", event_type="survey", item_id=None),
                           good_event(event_id="e3", csat="5", amount="0", quantity="0")])
    assert result.rejects.empty


def test_duplicate_event_id_names_the_first_row():
    result = check_events([good_event(), good_event(event_id="e2"), good_event()])
    bad = only_reject(result)
    assert bad["row"] == 3 and bad["column"] == "event_id"
    assert bad["reason"] == "duplicate event_id in file (first at row 1)"
    assert list(result.valid["event_id"]) == ["e1", "e2"]


def test_missing_required_column_refuses_the_file():
    frame = pd.DataFrame([good_event()]).drop(columns=["event_at"])
    result = validate_frame(frame, "events", "e.csv", known_customers=CUSTOMERS, known_items=ITEMS)
    assert result.file_error and "missing required column 'event_at'" in result.file_error
    assert result.valid.empty and result.rejected_rows == 1
    bad = only_reject(result)
    assert pd.isna(bad["row"]) and bad["column"] == "event_at"
    assert list(result.rejects.columns) == list(REJECT_COLUMNS)


def test_unknown_event_column_refuses_the_file_and_says_how_to_map():
    frame = pd.DataFrame([good_event(colour="red")])
    result = validate_frame(frame, "events", "e.csv", known_customers=CUSTOMERS, known_items=ITEMS)
    assert result.file_error
    assert "settings.columns.events" in only_reject(result)["reason"]


def test_column_mapping_renames_first():
    frame = pd.DataFrame([good_event()]).rename(columns={"event_at": "ts", "customer_id": "user"})
    result = validate_frame(frame, "events", "e.csv", known_customers=CUSTOMERS, known_items=ITEMS,
                            mapping={"ts": "event_at", "user": "customer_id"})
    assert result.rejects.empty and len(result.valid) == 1


def test_numbers_as_ids_become_strings_and_rows_can_be_numbered():
    frame = pd.DataFrame({"customer_id": [1, 2], "signup_at": ["2026-01-01T00:00:00Z"] * 2,
                          "consent_personalization": ["yes", "No"]})
    result = validate_frame(frame, "customers", "c.parquet", rows=[10, 11])
    assert list(result.valid["customer_id"]) == ["1", "2"]
    assert list(result.valid["consent_personalization"]) == [True, False]
    bad = validate_frame(frame.assign(consent_personalization=["maybe", "y"]), "customers", "c.csv", rows=[10, 11])
    assert only_reject(bad)["row"] == 10 and "not a boolean" in only_reject(bad)["reason"]


def test_naive_datetime_column_is_rejected():
    frame = pd.DataFrame({"customer_id": ["a"], "signup_at": [pd.Timestamp("2026-01-01")],
                          "consent_personalization": [True]})
    result = validate_frame(frame, "customers", "c.parquet")
    assert only_reject(result)["reason"].startswith("naive timestamp")


def test_items_rules():
    frame = pd.DataFrame({"item_id": ["a", "b", "a", "d"], "category": ["x", None, "x", "y"],
                          "price": ["1.5", "2", "3", "-1"], "colour": ["red"] * 4})
    result = validate_frame(frame, "items", "items.csv")
    reasons = dict(zip(result.rejects["row"], result.rejects["reason"]))
    assert reasons[2].startswith("missing value: category")
    assert reasons[3].startswith("duplicate item_id in file")
    assert reasons[4] == "negative price"
    assert list(result.valid["item_id"]) == ["a"]
    assert bool(result.valid.loc[0, "available"]) is True  # default
    assert result.valid.loc[0, "colour"] == "red"  # attributes are kept


def test_snapshot_label_column():
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "Churn": ["Yes", "no", ""], "tenure": [1, 2, 3]})
    result = validate_frame(frame, "customers", "s.csv", label_column="Churn")
    assert list(result.valid["churned"]) == [True, False]
    assert only_reject(result)["row"] == 3 and only_reject(result)["column"] == "churned"
    assert result.valid["signup_at"].isna().all() and result.valid["consent_personalization"].all()
    missing = validate_frame(frame, "customers", "s.csv", label_column="Label")
    assert missing.file_error and "missing label column 'Label'" in missing.file_error
