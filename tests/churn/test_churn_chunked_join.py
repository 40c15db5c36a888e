"""The training set joined through Feast in chunks of whole cut-offs equals the one-call join."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.feature_repo.store import _chunks_by_time, _concat_chunks
from tenure.settings import load_settings


def _with_chunks(settings, per_call: int):
    churn = settings.churn.model_copy(update={"join_rows_per_call": per_call})
    return settings.model_copy(update={"churn": churn})


@pytest.mark.slow
def test_chunked_join_equals_the_single_call(churn_workspace):
    from tenure.training.churn_dataset import build_churn_training_set

    whole = build_churn_training_set(_with_chunks(churn_workspace, 10**9), verify_sample=0)
    per_cutoff = whole["event_timestamp"].value_counts()
    assert len(per_cutoff) > 5
    # about four cut-offs per call: several chunks, the last one shorter
    rows = max(1_000, int(per_cutoff.max() * 4))
    assert len(whole) > 2 * rows
    chunked = build_churn_training_set(_with_chunks(churn_workspace, rows), verify_sample=0)
    pd.testing.assert_frame_equal(chunked, whole, check_exact=True)
    assert whole.drop(columns=["customer_id", "event_timestamp", "label"]).notna().any().all()


def test_chunks_keep_each_timestamp_together_and_cover_every_row():
    times = pd.to_datetime(["2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22", "2026-01-29"], utc=True)
    rng = np.random.default_rng(0)
    keys = pd.DataFrame({"customer_id": [f"c{i}" for i in range(40)], "event_timestamp": rng.choice(times, 40)})
    keys["__tenure_row"] = np.arange(40)
    counts = keys["event_timestamp"].value_counts().sort_index().tolist()
    for limit in (1, max(counts), 2 * max(counts), 25, 39):
        chunks = _chunks_by_time(keys, limit)
        assert sorted(np.concatenate([c["__tenure_row"].to_numpy() for c in chunks]).tolist()) == list(range(40))
        seen = [set(c["event_timestamp"]) for c in chunks]
        assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])  # a timestamp is never split
        assert all(len(c) <= limit or c["event_timestamp"].nunique() == 1 for c in chunks)
        assert [min(c["event_timestamp"]) for c in chunks] == sorted(min(c["event_timestamp"]) for c in chunks)
    assert len(_chunks_by_time(keys, 1)) == 5
    assert len(_chunks_by_time(keys, None)) == 1 and len(_chunks_by_time(keys, 40)) == 1


def test_chunk_dtypes_follow_the_whole_column():
    a = pd.DataFrame({"n": np.array([1, 2], dtype=np.int64), "s": ["x", None], "f": [0.5, 1.5]}, index=[0, 1])
    b = pd.DataFrame({"n": [None, None], "s": [None, None], "f": [None, None]}, index=[2, 3], dtype=object)
    c = pd.DataFrame({"n": [3.0, np.nan], "s": ["y", "z"], "f": [2.5, 3.5]}, index=[4, 5])
    got = _concat_chunks([a, b, c])
    assert got["n"].dtype == np.float64 and got["f"].dtype == np.float64 and got["s"].dtype == object
    assert got["n"].tolist()[:2] == [1.0, 2.0] and got["n"].isna().sum() == 3
    assert got.index.tolist() == [0, 1, 2, 3, 4, 5]


def test_rows_per_call_must_be_positive(churn_workspace):
    from tenure.feature_repo.store import get_training_frame

    keys = pd.DataFrame({"customer_id": ["c1"], "event_timestamp": [pd.Timestamp("2026-03-01", tz="UTC")]})
    with pytest.raises(ValueError, match="rows_per_call"):
        get_training_frame(churn_workspace, keys, rows_per_call=0)
    with pytest.raises(ValueError, match="join_rows_per_call"):
        load_settings(None, churn={"join_rows_per_call": 10})


def test_leakage_guard_reads_only_the_sampled_customers_events(churn_workspace):
    from tenure.features.tables import read_events

    everything = read_events(churn_workspace)
    ids = set(everything["customer_id"].drop_duplicates().sample(25, random_state=1))
    start, end = everything["event_at"].min() + pd.Timedelta(days=3), everything["event_at"].max() - pd.Timedelta(days=2)
    want = everything[everything["customer_id"].isin(ids) & everything["event_at"].between(start, end)]
    got = read_events(churn_workspace, start=start, end=end, customer_ids=ids)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    # an event at one instant comes back once, however the range is cut
    boundary = want["event_at"].iloc[len(want) // 2]
    once = read_events(churn_workspace, start=boundary - pd.Timedelta(days=10), end=boundary + pd.Timedelta(days=10),
                       customer_ids=ids)
    assert (once["event_at"] == boundary).sum() == (want["event_at"] == boundary).sum() >= 1
