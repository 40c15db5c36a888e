"""Monitoring reads only the snapshots and events it uses (monitoring/snapshots.py), with the same results as a full read."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tenure.monitoring.reference import recent_reference, seasonal_reference
from tenure.monitoring.snapshots import FrameSnapshots, SnapshotTable

WEEKLY = [pd.Timestamp("2025-01-05", tz="UTC") + pd.Timedelta(days=7 * i) for i in range(60)]
TABLE = "customer_features.parquet"


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A weekly batch feature table: ``n`` customers x 60 as-of times, numeric and categorical features."""
    rng = np.random.default_rng(seed)
    rows = len(WEEKLY) * n
    return pd.DataFrame({"customer_id": np.tile([f"c{i}" for i in range(n)], len(WEEKLY)),
                         "event_timestamp": np.repeat(pd.DatetimeIndex(WEEKLY), n),
                         "sessions_30d": rng.poisson(4, rows).astype(float),
                         "plan": rng.choice(["free", "pro"], rows),
                         "created": pd.Timestamp("2026-03-01", tz="UTC")})


def _prepare(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(prediction=rows["sessions_30d"] / 10.0, risk_band="low")


@pytest.mark.parametrize("naive", [False, True])
def test_the_table_reader_gives_the_full_reads_times_and_rows(tmp_path, naive):
    frame = _table()
    if naive:  # a table written without the time zone: the same instants, read as UTC
        frame["event_timestamp"] = frame["event_timestamp"].dt.tz_localize(None)
    path = tmp_path / TABLE
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)  # many row groups
    table, whole = SnapshotTable(path), FrameSnapshots(pd.read_parquet(path))
    assert table.as_of_times() == whole.as_of_times() == WEEKLY
    chosen = [WEEKLY[3], WEEKLY[40], WEEKLY[41]]
    pd.testing.assert_frame_equal(table.rows(chosen), whole.rows(chosen).reset_index(drop=True))
    assert len(table.rows([pd.Timestamp("2024-01-01", tz="UTC")])) == 0


def test_references_from_the_table_equal_those_from_the_whole_frame(tmp_path):
    frame = _table(n=6000)  # more rows per cut-off than the reference keeps: the seeded sample must match too
    frame.to_parquet(tmp_path / TABLE, index=False)
    whole, table = pd.read_parquet(tmp_path / TABLE), SnapshotTable(tmp_path / TABLE)
    now = WEEKLY[-1]
    want = seasonal_reference(whole, now, "auto", 280, 14, _prepare, ["sessions_30d", "plan"])
    got = seasonal_reference(table, now, "auto", 280, 14, _prepare, ["sessions_30d", "plan"])
    assert want[0] is not None and got[1] == want[1]
    pd.testing.assert_frame_equal(got[0], want[0])
    want = recent_reference(whole, now, 28, _prepare, ["sessions_30d"], frozen=WEEKLY[50])
    got = recent_reference(table, now, 28, _prepare, ["sessions_30d"], frozen=WEEKLY[50])
    assert got[1:] == want[1:] and got[2] == WEEKLY[50]
    pd.testing.assert_frame_equal(got[0], want[0])


# --- on the shared simulated workspace, with the trained champion --------------------------------


def _old_early_outcome(settings, score, categorical):
    """The early-outcome check as it was before (the whole table and every event read): the oracle."""
    from tenure.features.labels import label_churn
    from tenure.features.tables import read_customers, read_events
    from tenure.monitoring.early_outcome import early_outcome_check
    from tenure.monitoring.runner import alive_population

    m, k = settings.monitoring, settings.monitoring.early_outcome_days
    snapshots = pd.read_parquet(settings.paths.features_dir / TABLE)
    events = read_events(settings, columns=["customer_id", "event_at", "event_type"])
    stamps = pd.to_datetime(snapshots["event_timestamp"], utc=True)
    cuts = sorted(pd.Timestamp(c) for c in stamps.unique())
    days = pd.Timedelta(days=k)
    cohort = [c for c in cuts if c + days <= events["event_at"].max()][-1]
    refs = [c for c in cuts if cohort - pd.Timedelta(days=m.early_outcome_baseline_days) <= c and c + days <= cohort]
    labels = label_churn(events, read_customers(settings), [cohort, *refs], k, settings.churn.qualifying_event_types)
    labels = labels.rename(columns={"label": "outcome"})
    labels["event_timestamp"] = pd.to_datetime(labels["event_timestamp"], utc=True)
    rows = snapshots[stamps.isin([cohort, *refs])].assign(event_timestamp=stamps[stamps.isin([cohort, *refs])])
    rows = alive_population(rows.reset_index(drop=True), settings.churn.horizon_days)
    rows = rows.merge(labels[["customer_id", "event_timestamp", "outcome"]], on=["customer_id", "event_timestamp"])
    rows = score(rows).assign(cohort=lambda x: x["event_timestamp"])
    result = early_outcome_check(rows[rows["event_timestamp"] == cohort], rows[rows["event_timestamp"] != cohort],
                                 categorical, days=k, max_p_value=m.early_outcome_max_p_value,
                                 min_auc_drop=m.early_outcome_min_auc_drop,
                                 min_rate_increase=m.early_outcome_min_rate_increase)
    result["cohort"] = cohort.isoformat()
    result["reference_cohorts"] = [c.isoformat() for c in refs]
    return result


@pytest.fixture
def champion_runtime(churn_workspace, trained_churn):
    from tenure.monitoring.sources import load_champion, load_champion_runtime

    champion = load_champion(churn_workspace, "churn")
    return champion, load_champion_runtime(churn_workspace, champion)


@pytest.mark.slow
def test_label_events_give_the_labels_of_every_event(churn_workspace):
    from tenure.features.labels import label_churn
    from tenure.features.tables import read_customers, read_events
    from tenure.monitoring.snapshots import label_events

    settings, customers = churn_workspace, read_customers(churn_workspace)
    every = read_events(settings, columns=["customer_id", "event_at", "event_type"])
    cuts = SnapshotTable(settings.paths.features_dir / TABLE).as_of_times()
    for chosen, horizon in (([cuts[5]], 30), (cuts[-8:-3], 14), ([cuts[0]], 60)):
        some = label_events(settings, chosen, horizon)
        assert len(some) < len(every)
        want = label_churn(every, customers, chosen, horizon, settings.churn.qualifying_event_types)
        got = label_churn(some, customers, chosen, horizon, settings.churn.qualifying_event_types)
        pd.testing.assert_frame_equal(got, want)


@pytest.mark.slow
def test_realised_performance_early_outcome_and_latest_snapshot_are_those_of_a_full_read(churn_workspace,
                                                                                      champion_runtime):
    from tenure.features.tables import read_customers, read_events
    from tenure.monitoring.performance import matured_snapshot_performance
    from tenure.monitoring.runner import _feature_columns, _realised
    from tenure.monitoring.sources import latest_snapshot, score_with_champion
    from tenure.monitoring.watch import early_outcome_current

    settings, (champion, runtime) = churn_workspace, champion_runtime
    whole = pd.read_parquet(settings.paths.features_dir / TABLE)

    as_of, rows = latest_snapshot(settings.paths.features_dir)
    newest = whole["event_timestamp"].max()
    assert as_of == newest
    pd.testing.assert_frame_equal(rows, whole[whole["event_timestamp"] == newest].reset_index(drop=True))

    events = read_events(settings, columns=["customer_id", "event_at", "event_type"])
    want = matured_snapshot_performance(whole, events, read_customers(settings), settings.churn.horizon_days,
                                        settings.churn.qualifying_event_types,
                                        lambda r: score_with_champion(runtime, r)["prediction"].to_numpy())
    got = _realised(settings, champion, lambda: runtime)
    assert want is not None and {k: got[k] for k in want} == want

    def score(r):
        return score_with_champion(runtime, r)

    categorical = _feature_columns(champion.reference)[1]
    want = _old_early_outcome(settings, score, categorical)
    assert early_outcome_current(settings, score, categorical) == want


@pytest.mark.slow
def test_a_pass_never_reads_the_whole_feature_table(churn_workspace, trained_churn, monkeypatch):
    from tenure.features import tables
    from tenure.monitoring import run_monitoring_pass

    settings = churn_workspace
    path = settings.paths.features_dir / TABLE
    every = SnapshotTable(path).as_of_times()
    full_reads, requests, event_reads = [], [], []
    read_parquet, rows, read_events = pd.read_parquet, SnapshotTable.rows, tables.read_events

    def recording_read_parquet(source, *args, **kwargs):
        if str(source) == str(path):
            full_reads.append(kwargs)
        return read_parquet(source, *args, **kwargs)

    def recording_rows(self, as_of):
        requests.append(list(as_of))
        return rows(self, as_of)

    def recording_read_events(*args, **kwargs):
        event_reads.append(inspect.signature(read_events).bind(*args, **kwargs).arguments)
        return read_events(*args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", recording_read_parquet)
    monkeypatch.setattr(SnapshotTable, "rows", recording_rows)
    monkeypatch.setattr(tables, "read_events", recording_read_events)
    result = run_monitoring_pass(settings, mode="snapshot", dry_run=True)
    assert result.early_outcome and result.performance  # the checks that read snapshots and labels ran
    assert full_reads == []
    # the newest, the recent, the matured and the early-outcome cohorts: a few as-of times each, never all
    read = {t for request in requests for t in request}
    assert requests and all(len(r) <= 5 for r in requests) and len(read) < len(every) / 2
    # every events read is bounded in time or to cancellations (no read of every stored event)
    assert event_reads and all(k.get("start") is not None or k.get("event_types") for k in event_reads)
