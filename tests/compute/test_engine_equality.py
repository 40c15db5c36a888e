"""The dask engine against the local path on the same small shop: same feature tables (exactly), same
training frame as Feast's point-in-time join, a LightGBM of the same quality (ROC-AUC within 0.005).

Everything runs on a LocalCluster of 2 workers (``conftest.cluster_client``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tenure.settings import Settings

from .conftest import simulated_shop, workspace

pytestmark = pytest.mark.slow

CUSTOMER_KEYS = ["event_timestamp", "customer_id"]


def _sorted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame.drop(columns=["created"], errors="ignore").sort_values(keys, kind="stable").reset_index(drop=True)


def _twin(settings: Settings, root: Path, partitions: int) -> Settings:
    """Settings of a second workspace holding a copy of ``settings``' canonical tables (no features yet)."""
    twin = workspace(root, compute={"engine": "dask", "partitions": partitions})
    shutil.copytree(settings.paths.tables_dir, twin.paths.tables_dir)
    return twin


@pytest.fixture(scope="module")
def local_workspace(tmp_path_factory) -> Settings:
    """700 customers over 150 days, features built by the local path and applied to Feast."""
    settings = workspace(tmp_path_factory.mktemp("local"))
    simulated_shop(settings)
    return settings


def _snapshot_times(settings: Settings) -> list[pd.Timestamp]:
    frame = pd.read_parquet(settings.paths.features_dir / "customer_features.parquet", columns=["event_timestamp"])
    return sorted(pd.to_datetime(frame["event_timestamp"].unique(), utc=True))


def test_buckets_put_each_customer_in_one_partition(cluster_client):
    from tenure.compute.partitions import customer_bucket, from_pandas_bucketed

    ids = pd.Series([f"c{i}" for i in range(500)])
    frame = from_pandas_bucketed(pd.DataFrame({"customer_id": ids, "x": np.arange(500)}), 7)
    parts = [part for part in frame.to_delayed()]
    computed = [p.compute() for p in parts]
    assert sum(len(p) for p in computed) == 500
    for number, part in enumerate(computed):
        assert (customer_bucket(part["customer_id"], 7) == number).all()
    assert sorted(np.unique(customer_bucket(ids, 7))) == list(range(7))  # every bucket used


@pytest.mark.parametrize("partitions", [4, 9])
def test_feature_tables_are_the_local_ones_exactly(local_workspace, cluster_client, tmp_path, partitions):
    from tenure.compute.features import build_feature_tables_on_cluster

    twin = _twin(local_workspace, tmp_path, partitions)
    times = _snapshot_times(local_workspace)
    built = build_feature_tables_on_cluster(twin, times, cluster_client)
    for table, keys in (("customer_features.parquet", CUSTOMER_KEYS), ("item_features.parquet",
                                                                       ["event_timestamp", "item_id"])):
        want = _sorted(pd.read_parquet(local_workspace.paths.features_dir / table), keys)
        got = _sorted(pd.read_parquet(twin.paths.features_dir / table), keys)
        pd.testing.assert_frame_equal(got, want)  # values and dtypes
    assert built.customer_rows == len(pd.read_parquet(local_workspace.paths.features_dir / "customer_features.parquet"))
    assert built.as_of == tuple(times)


def test_a_partial_rebuild_keeps_the_other_snapshots(local_workspace, cluster_client, tmp_path):
    from tenure.compute.features import build_feature_tables_on_cluster

    twin = _twin(local_workspace, tmp_path, 4)
    times = _snapshot_times(local_workspace)
    build_feature_tables_on_cluster(twin, times[:-2], cluster_client)
    build_feature_tables_on_cluster(twin, times[-3:], cluster_client)  # one as-of time rebuilt, two new
    want = _sorted(pd.read_parquet(local_workspace.paths.features_dir / "customer_features.parquet"), CUSTOMER_KEYS)
    got = _sorted(pd.read_parquet(twin.paths.features_dir / "customer_features.parquet"), CUSTOMER_KEYS)
    pd.testing.assert_frame_equal(got, want)


def test_training_frame_is_feasts_point_in_time_join(local_workspace, cluster_client):
    from tenure.training.churn_dataset import build_churn_training_set
    from tenure.training.churn_distributed import build_training_frame_on_cluster

    settings = local_workspace.model_copy(update={"compute": local_workspace.compute.model_copy(
        update={"engine": "dask", "partitions": 5})})
    want = build_churn_training_set(settings, verify_sample=0)
    frame, cutoffs = build_training_frame_on_cluster(settings)
    assert frame.npartitions == 5
    got = frame.compute()
    assert sorted(cutoffs) == sorted(pd.to_datetime(want["event_timestamp"].unique(), utc=True))
    want, got = _sorted(want, CUSTOMER_KEYS), _sorted(got, CUSTOMER_KEYS)[list(want.columns)]
    # Feast returns the count columns of a view with missing rows as float; values are compared exactly
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)


def test_gate_test_window_on_the_cluster_is_the_local_one(local_workspace, cluster_client):
    """The promotion gate's churn test window under dask: the point-in-time frame of the test cut-offs only,
    built per partition, equals the local window (``load_training_data(...).split.test``) row for row."""
    from tenure.training.churn_pipeline import load_training_data
    from tenure.training.gate import (
        _comparator,
        churn_test_window_on_cluster,
        compare_churn_on_cluster,
    )

    settings = local_workspace.model_copy(update={"compute": local_workspace.compute.model_copy(
        update={"engine": "dask", "partitions": 4})})
    assert _comparator(settings, "churn") is compare_churn_on_cluster
    assert _comparator(local_workspace, "churn") is not compare_churn_on_cluster
    want = load_training_data(local_workspace).split.test
    got = churn_test_window_on_cluster(settings, cluster_client)
    assert len(want) > 300 and want["label"].nunique() == 2
    assert sorted(got["event_timestamp"].unique()) == sorted(want["event_timestamp"].unique())
    want, got = _sorted(want, CUSTOMER_KEYS), _sorted(got, CUSTOMER_KEYS)[list(want.drop(columns=["created"],
                                                                                          errors="ignore").columns)]
    pd.testing.assert_frame_equal(got, want, check_dtype=False, check_exact=True)


def test_lightgbm_dask_is_as_good_as_the_local_lightgbm(tmp_path_factory, cluster_client):
    """Same parameters, same split: test ROC-AUC within 0.005 (6,000 customers, 180 days, 28,770 training rows).

    The cluster fit is deterministic (fixed ranks), so this is one number, not a draw: -0.0004 here. On 3,000
    customers (14,650 rows) it was -0.0071: each of the 2 ranks bins its features from its own ~7k rows and a
    7-tree model feels that; the gap closes with data, which is where the cluster is for (docs/cluster.md)."""
    from sklearn.metrics import roc_auc_score

    from tenure.training.churn_distributed import (
        build_training_frame_on_cluster,
        select_on_cluster,
        split_on_cluster,
    )
    from tenure.training.churn_model import to_matrix
    from tenure.training.churn_pipeline import load_generated_split
    from tenure.training.churn_selection import select_churn_model

    churn = {"candidates": ["lightgbm"], "n_estimators": 100, "early_stopping_rounds": 30, "learning_rate": 0.1}
    settings = workspace(tmp_path_factory.mktemp("quality"), churn=churn,
                                  compute={"engine": "dask", "partitions": 4})
    simulated_shop(settings, n_customers=6000, days=180)
    local_split, numeric, categorical = load_generated_split(settings)
    features = numeric + categorical
    local = select_churn_model(local_split.train, local_split.train["label"].to_numpy(), local_split.valid,
                               local_split.valid["label"].to_numpy(), features, categorical, settings.churn)

    frame, cutoffs = build_training_frame_on_cluster(settings)
    split = split_on_cluster(settings, frame, cutoffs)
    assert split.train_rows == len(local_split.train) and len(split.test) == len(local_split.test)
    selection, _ = select_on_cluster(cluster_client, split, settings.churn)

    test = local_split.test
    y = test["label"].to_numpy()
    auc_local = roc_auc_score(y, local.candidates["lightgbm"].predict_proba(
        to_matrix(test, features, local.scorer.categories)))
    auc_dask = roc_auc_score(y, selection.candidates["lightgbm"].predict_proba(
        to_matrix(test, features, selection.scorer.categories)))
    assert auc_local > 0.7  # the comparison means something: both models learned churn
    assert abs(auc_dask - auc_local) <= 0.005, (auc_dask, auc_local)


@pytest.mark.parametrize(("weighting", "half_life"), [("none", None), ("bm25", 30.0)])
def test_interaction_matrix_is_the_local_one(local_workspace, cluster_client, weighting, half_life):
    """Partitioned aggregation of events into (customer, item, weight), stacked into one CSR: the local matrix,
    its purchase counts and its repurchase timing."""
    from tenure.features.tables import read_customers, read_events, read_items
    from tenure.pipelines.cluster_steps import interactions_on_cluster
    from tenure.training.interactions import build_interactions

    settings = local_workspace.model_copy(update={"compute": local_workspace.compute.model_copy(
        update={"engine": "dask", "partitions": 5})})
    weights = dict(settings.recommender.event_weights)
    want = build_interactions(read_events(settings), read_customers(settings), read_items(settings),
                              event_weights=weights, half_life_days=half_life, weighting=weighting)
    got = interactions_on_cluster(settings, event_weights=weights, half_life_days=half_life, weighting=weighting,
                                  client=cluster_client)
    assert want.nnz > 1000 and want.shape == got.shape
    np.testing.assert_array_equal(got.customer_ids, want.customer_ids)
    np.testing.assert_array_equal(got.item_ids, want.item_ids)
    for name in ("user_items", "purchases"):
        a, b = getattr(got, name), getattr(want, name)
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.data, b.data, rtol=1e-6)  # float32 sums of the same weights
    for name in ("last_bought", "pair_interval"):
        assert (getattr(got.timing, name) != getattr(want.timing, name)).nnz == 0
    np.testing.assert_array_equal(got.timing.item_interval, want.timing.item_interval)
    np.testing.assert_array_equal(got.timing.item_repeat_rate, want.timing.item_repeat_rate)
    assert (got.timing.recency_scale_days, got.timing.as_of_days) == (want.timing.recency_scale_days,
                                                                      want.timing.as_of_days)


def test_monitoring_samples_drawn_on_the_cluster(local_workspace, cluster_client):
    """Monitoring's current window from the newest snapshot, its population rule applied per partition: every
    row (as locally) below the cap; above it a seeded uniform sample, the same rows whatever the partitioning
    and as drawn in one process, and distributed like the local pandas sample."""
    from functools import partial

    from scipy.stats import ks_2samp

    from tenure.compute.samples import bottom_k, latest_rows_partitioned, sample_on_cluster
    from tenure.monitoring.runner import alive_population
    from tenure.monitoring.sources import latest_snapshot

    path = local_workspace.paths.features_dir / "customer_features.parquet"
    as_of, local = latest_snapshot(local_workspace.paths.features_dir)
    local = alive_population(local, local_workspace.churn.horizon_days)
    keys = ("customer_id", "event_timestamp")
    prepare = partial(alive_population, horizon_days=local_workspace.churn.horizon_days)
    at, rows = latest_rows_partitioned(path, 6)
    assert at == as_of
    everyone = sample_on_cluster(rows, 10**6, seed=7, key_columns=keys, prepare=prepare)
    pd.testing.assert_frame_equal(_sorted(everyone, ["customer_id"]), _sorted(local, ["customer_id"]))

    n = len(local) // 2
    drawn = sample_on_cluster(rows, n, seed=7, key_columns=keys, prepare=prepare)
    _, rows_3 = latest_rows_partitioned(path, 3)
    pd.testing.assert_frame_equal(drawn, sample_on_cluster(rows_3, n, seed=7, key_columns=keys, prepare=prepare))
    pd.testing.assert_frame_equal(drawn, bottom_k(local, n, seed=7, key_columns=keys), check_dtype=False)
    other = sample_on_cluster(rows, n, seed=8, key_columns=keys, prepare=prepare)
    assert len(drawn) == n and not drawn["customer_id"].equals(other["customer_id"])  # the seed matters
    pandas_sample = local.sample(n, random_state=7)
    numeric = [c for c in local.columns if pd.api.types.is_numeric_dtype(local[c]) and local[c].nunique() > 10]
    assert len(numeric) >= 5
    for column in numeric:  # equal in distribution to the local (pandas) sample
        assert ks_2samp(drawn[column].dropna(), pandas_sample[column].dropna()).pvalue > 0.01, column


def test_lightgbm_on_the_cluster_is_the_same_model_every_run(cluster_client):
    """Ranks and their data are fixed (worker order, partitions j, j + n, ...), so two fits are one model;
    DaskLGBMClassifier.fit let the scheduler place the parts and gave another model from run to run."""
    import dask.dataframe as dd

    from tenure.training.churn_distributed import fit_ranks

    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(4000, 6)), columns=[f"f{i}" for i in range(6)])
    y = pd.Series((X["f0"] + 0.5 * X["f1"] * X["f2"] + rng.normal(size=4000) > 0.8).astype(np.int64))
    params = {"objective": "binary", "n_estimators": 20, "num_leaves": 15, "bagging_fraction": 0.8, "bagging_freq": 1,
              "feature_fraction": 0.8, "seed": 5, "deterministic": True, "force_row_wise": True, "verbosity": -1}
    fits = [fit_ranks(cluster_client, dd.from_pandas(X, npartitions=5), dd.from_pandas(y, npartitions=5), params)
            for _ in range(3)]
    texts = {f.model_to_string().split("parameters:")[0] for f in fits}
    assert len(texts) == 1 and fits[0].num_trees() == 20
