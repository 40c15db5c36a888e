"""Typed customer attributes (features/attributes.py) and column defaults, through the real ingestion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.features.attributes import (
    attribute_features,
    infer_attribute_type,
    infer_attribute_types,
    read_attribute_types,
)
from tenure.features.ingest import IngestRun
from tenure.features.tables import read_customers, read_items


def _kind(values, name="col", max_levels=50) -> str:
    return infer_attribute_type(pd.Series(values, dtype=object), name, max_levels)[0]


def test_numeric_strings_with_a_few_blanks_are_numbers() -> None:
    values = [f"{x:.2f}" for x in np.linspace(10, 900, 97)] + [" ", "", None]
    assert _kind(values, "TotalCharges") == "numeric"
    _, why = infer_attribute_type(pd.Series(values, dtype=object), "TotalCharges")
    assert "blank" in why


def test_yes_no_and_true_false_and_one_zero_are_booleans() -> None:
    assert _kind(["Yes", "No", "yes", " no "] * 10) == "boolean"
    assert _kind(["True.", "False."] * 10) == "boolean"
    assert _kind(["1", "0", "0", "1"] * 10) == "boolean"
    assert _kind(pd.Series([True, False] * 10)) == "boolean"


def test_low_cardinality_text_is_a_category_and_ids_and_free_text_are_ignored() -> None:
    assert _kind(["Month-to-month", "One year", "Two year"] * 30) == "category"
    assert _kind([f"{i:04d}-ABCD" for i in range(100)], "customer_ref") == "ignore"  # one value per row
    assert _kind([str(1000 + i) for i in range(100)], "account_id") == "ignore"      # unique whole numbers, id name
    assert _kind([str(1000 + i) for i in range(100)], "visits") == "numeric"        # same numbers, not an id name
    words = [f"note {i % 70} about the customer" for i in range(200)]
    assert _kind(words, "notes", max_levels=50) == "ignore"
    assert _kind([None, " ", ""]) == "ignore"


def test_overrides_win_then_stored_types_then_inference() -> None:
    frame = pd.DataFrame({"zip": [str(10000 + i % 30) for i in range(90)], "score": ["1.5"] * 90,
                          "plan_code": ["a", "b", "c"] * 30})
    types = infer_attribute_types(frame, ["zip", "score", "plan_code"], overrides={"zip": "category"},
                                  known={"score": "ignore"})
    assert {c: k for c, (k, _) in types.items()} == {"zip": "category", "score": "ignore", "plan_code": "category"}
    with pytest.raises(ValueError, match="data.attribute_types.zip must be one of"):
        infer_attribute_types(frame, ["zip"], overrides={"zip": "text"})


def test_attribute_features_turn_booleans_into_ones_and_zeros() -> None:
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"], "flag": pd.array([True, False, None], dtype="boolean"),
                              "charge": [1.5, np.nan, 3.0], "kind": ["x", None, "y"], "notes": ["p", "q", "r"]})
    frame = attribute_features(customers, {"flag": "boolean", "charge": "numeric", "kind": "category",
                                           "notes": "ignore"})
    assert list(frame.columns) == ["customer_id", "flag", "charge", "kind"]
    assert frame["flag"].tolist()[:2] == [1.0, 0.0] and np.isnan(frame["flag"].iloc[2])
    assert frame["kind"].tolist() == ["x", None, "y"]


def _snapshot_csv(path, n=120, seed=0, label=True):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "monthly_charges": [f"{x:.2f}" for x in rng.uniform(20, 120, n)],
        "total_charges": [f"{x:.2f}" if i % 40 else " " for i, x in enumerate(rng.uniform(20, 5000, n))],
        "paperless": rng.choice(["Yes", "No"], n),
        "contract": rng.choice(["monthly", "annual", "two_year"], n),
        "account_no": [str(50_000 + i) for i in range(n)],
        "comment": [f"called on day {i}" for i in range(n)],
    })
    if label:
        frame["Churn"] = rng.choice(["Yes", "No"], n)
    frame.to_csv(path, index=False)
    return path


def test_ingest_stores_typed_attributes_and_keeps_them_for_later_files(settings, tmp_path) -> None:
    with IngestRun(settings) as run:
        report = run.ingest_file("customers", _snapshot_csv(tmp_path / "snap.csv"), label_column="Churn")
    assert report.rejected == 0
    assert {c: k for c, (k, _) in report.attribute_types.items()} == {
        "monthly_charges": "numeric", "total_charges": "numeric", "paperless": "boolean",
        "contract": "category", "account_no": "ignore", "comment": "ignore"}
    stored = read_customers(settings)
    assert stored["monthly_charges"].dtype == np.float64
    assert stored["total_charges"].isna().sum() == 3  # the blanks, nothing else
    assert set(stored["paperless"].dropna().unique()) == {True, False}
    assert stored["churned"].dtype == bool
    assert stored["account_no"].iloc[0] == "50000"  # ignored columns are kept as text, not lost

    # a later file without a label: typed like the first, a misfit is a located reject
    later = pd.DataFrame({"customer_id": ["n1", "n2"], "monthly_charges": ["55.5", "lots"],
                          "total_charges": ["10", "20"], "paperless": ["No", "Yes"], "contract": ["annual", "monthly"],
                          "account_no": ["1", "2"], "comment": ["a", "b"]})
    later.to_csv(tmp_path / "new.csv", index=False)
    with IngestRun(settings) as run:
        report = run.ingest_file("customers", tmp_path / "new.csv")
    assert report.accepted == 1 and report.rejected == 1
    assert any("monthly_charges is not a number" in r for r in report.reasons)
    assert read_attribute_types(settings)["account_no"] == "ignore"
    stored = read_customers(settings).set_index("customer_id")
    assert stored.loc["n1", "monthly_charges"] == 55.5 and pd.isna(stored.loc["n1", "churned"])


def test_attribute_type_override_in_settings(make_settings, tmp_path) -> None:
    settings = make_settings(data={"attribute_types": {"account_no": "numeric", "contract": "ignore"}})
    with IngestRun(settings) as run:
        report = run.ingest_file("customers", _snapshot_csv(tmp_path / "snap.csv"), label_column="Churn")
    kinds = {c: k for c, (k, _) in report.attribute_types.items()}
    assert kinds["account_no"] == "numeric" and kinds["contract"] == "ignore"
    assert read_customers(settings)["account_no"].dtype == np.float64


def test_items_without_price_get_nan_with_a_warning(settings, tmp_path, caplog) -> None:
    pd.DataFrame({"item_id": ["i1", "i2"], "category": ["a", "b"]}).to_csv(tmp_path / "items.csv", index=False)
    with caplog.at_level("WARNING"), IngestRun(settings) as run:
        report = run.ingest_file("items", tmp_path / "items.csv")
    assert report.accepted == 2 and report.file_error is None
    assert read_items(settings)["price"].isna().all()
    assert any("has no price column" in r.getMessage() for r in caplog.records)


def test_column_defaults_fill_optional_columns_but_a_missing_required_one_names_file_and_column(
        make_settings, tmp_path) -> None:
    settings = make_settings(data={"column_defaults": {"items": {"price": 9.5}}})
    pd.DataFrame({"item_id": ["i1"], "category": ["a"]}).to_csv(tmp_path / "items.csv", index=False)
    with IngestRun(settings) as run:
        run.ingest_file("items", tmp_path / "items.csv")
    assert read_items(settings)["price"].tolist() == [9.5]
    pd.DataFrame({"item_id": ["i2"], "price": ["1"]}).to_csv(tmp_path / "nocat.csv", index=False)
    with IngestRun(settings) as run:
        report = run.ingest_file("items", tmp_path / "nocat.csv")
    assert "missing required column 'category'" in report.file_error
    assert report.source.endswith("nocat.csv")
