"""Batch scoring and audience logic with tiny fakes of the model runtimes (unit tests of our own code)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from tenure.pipelines.scoring import (
    BASE_COLUMNS,
    add_recommendations,
    item_columns,
    reason_columns,
    score_rows,
    select_audience,
    write_frame,
)


class FakeScorer:
    """p = activity_gap / 100, clipped; reasons: the one feature, signed."""

    feature_names: ClassVar[list[str]] = ["gap"]

    def vectorize(self, rows: list[dict]) -> np.ndarray:
        return np.array([[row["gap"]] for row in rows], dtype=float)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.clip(X[:, 0] / 100.0, 0, 1)

    def risk_bands(self, p: np.ndarray) -> list[str]:
        return ["high" if v >= 0.6 else "medium" if v >= 0.3 else "low" for v in p]

    def top_reasons(self, X: np.ndarray, k: int) -> list[list[dict]]:
        return [[{"feature": "gap", "value": float(x[0]), "contribution": float(x[0]) / 100 - 0.5}][:k] for x in X]


@dataclass
class FakeRecs:
    items: list[dict]
    strategy: str


class FakeRecommender:
    def recommend(self, customer_id: str, k: int = 10, exclude_purchased: bool = True, consent: bool = True):
        if not consent:
            return FakeRecs([{"item_id": "popular-1", "score": 1.0}], "no_consent_popular")
        return FakeRecs([{"item_id": f"{customer_id}-i{j}", "score": 1.0 / (j + 1)} for j in range(k)], "als")


def test_score_rows_flattens_reasons_and_skips_unknown_customers() -> None:
    frame = score_rows(FakeScorer(), "7", ["a", "b", "c"], [{"gap": 90}, None, {"gap": 10}], n_reasons=2,
                       feature_source="snapshot")
    assert list(frame.columns) == list(BASE_COLUMNS) + reason_columns(2)
    assert frame["customer_id"].tolist() == ["a", "c"], "unknown customers get no invented score"
    assert frame["risk_band"].tolist() == ["high", "low"]
    assert frame.loc[0, "reason_1_feature"] == "gap"
    assert frame.loc[0, "reason_1_contribution"] == pytest.approx(0.4)
    assert frame.loc[0, "reason_2_feature"] is None, "missing reasons stay empty"
    assert set(frame["churn_model_version"]) == {"7"}


def test_score_rows_checks_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        score_rows(FakeScorer(), "1", ["a"], [])


def test_recommendations_respect_consent() -> None:
    frame = score_rows(FakeScorer(), "1", ["a", "b"], [{"gap": 70}, {"gap": 80}])
    out = add_recommendations(frame, FakeRecommender(), "3", k=3, consent={"a": True, "b": False})
    by_id = out.set_index("customer_id")
    assert [by_id.loc["a", c] for c in item_columns(3)] == ["a-i0", "a-i1", "a-i2"]
    assert by_id.loc["b", "item_1"] == "popular-1" and pd.isna(by_id.loc["b", "item_2"])
    assert by_id.loc["b", "recommendation_strategy"] == "no_consent_popular"
    assert set(out["recommender_model_version"]) == {"3"}
    with pytest.raises(ValueError, match="k must be at least 1"):
        add_recommendations(frame, FakeRecommender(), "3", k=0)


def test_select_audience_keeps_only_requested_bands() -> None:
    frame = score_rows(FakeScorer(), "1", list("abcd"), [{"gap": g} for g in (95, 45, 5, 61)])
    assert select_audience(frame, ["high"])["customer_id"].tolist() == ["a", "d"]
    assert sorted(select_audience(frame, ["high", "medium"])["customer_id"]) == ["a", "b", "d"]
    with pytest.raises(ValueError, match="risk bands"):
        select_audience(frame, ["extreme"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_frame_round_trips_atomically(tmp_path: Path, fmt: str) -> None:
    frame = score_rows(FakeScorer(), "1", ["a", "b"], [{"gap": 90}, {"gap": 20}])
    path = write_frame(frame, tmp_path / "out" / f"audience.{fmt}")
    back = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert back["customer_id"].astype(str).tolist() == ["a", "b"]
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left behind"
    with pytest.raises(ValueError, match="format must be"):
        write_frame(frame, tmp_path / "audience.xlsx")


def test_event_batches_keep_customers_together() -> None:
    from tenure.pipelines.service_client import customer_batches

    records = [{"customer_id": f"c{i % 7}", "event_at": f"2026-01-01T00:{i:02d}:00Z", "event_id": str(i)}
               for i in range(50)]
    batches = list(customer_batches(records, max_events=20, max_customers=3))
    assert sum(len(b) for b in batches) == 50
    assert sorted(r["event_id"] for b in batches for r in b) == sorted(r["event_id"] for r in records)
    seen: dict[str, int] = {}
    for i, batch in enumerate(batches):
        assert len(batch) <= 20 and len({r["customer_id"] for r in batch}) <= 3
        for r in batch:
            assert seen.setdefault(r["customer_id"], i) == i, "a customer's events stay in one request"
        for cid in {r["customer_id"] for r in batch}:
            times = [r["event_at"] for r in batch if r["customer_id"] == cid]
            assert times == sorted(times)


def _snapshot_table(path: Path) -> pd.DataFrame:
    """Three weekly snapshots of 40 customers; c7 is missing from the newest (its older row is its latest)."""
    rng = np.random.default_rng(3)
    frames = []
    for week, at in enumerate(pd.date_range("2026-01-04", periods=3, freq="7D", tz="UTC")):
        ids = [f"c{i}" for i in range(40) if not (week == 2 and i == 7)]
        frames.append(pd.DataFrame({"customer_id": ids, "event_timestamp": at,
                                    "gap": rng.integers(0, 100, len(ids)).astype(float)}))
    table = pd.concat(frames, ignore_index=True)
    table.to_parquet(path, row_group_size=25)
    return table


def test_snapshot_rows_of_some_customers_are_read_while_scanning(tmp_path: Path) -> None:
    """Scoring some customers from the snapshot holds their rows only, and their latest row is the one of
    a whole read (c7's comes from the week before the newest)."""
    from tenure.pipelines.scoring import _read_snapshot_rows, snapshot_rows_of

    path = tmp_path / "features" / "customer_features.parquet"
    path.parent.mkdir()
    table = _snapshot_table(path)
    some = ["c3", "c7", "c39", "nobody"]
    rows = snapshot_rows_of(path, some)
    assert len(rows) == 3 + 2 + 3 and set(rows["customer_id"]) == {"c3", "c7", "c39"}
    assert len(snapshot_rows_of(path, None)) == len(table)

    class Paths:
        features_dir = path.parent

    class Settings:
        paths = Paths

    ids, got = _read_snapshot_rows(Settings, some)
    latest = table.sort_values("event_timestamp", kind="stable").drop_duplicates("customer_id", keep="last")
    want = latest.set_index("customer_id")["gap"]
    assert ids == some and got[-1] is None
    assert [r["gap"] for r in got[:3]] == [want["c3"], want["c7"], want["c39"]]
    assert got[1]["gap"] == table[(table["customer_id"] == "c7")].iloc[-1]["gap"]
