"""The recommender's training step with ``compute.engine: dask`` against the local step on one small shop: the
same time-holdout and serving matrices, the same evaluation tables (holdout and next basket), the same learned
blend and the same recommendations, while the events stay on a LocalCluster of 2 workers."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tenure.settings import Settings

from .conftest import workspace

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Settings, str]:
    """700 customers over 150 days, ingested (no features needed); one customer withdrew personalisation."""
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.privacy.consent import ConsentChange, ConsentStore

    settings = workspace(tmp_path_factory.mktemp("rec"), compute={"engine": "dask", "partitions": 5})
    sim = simulate_shop(n_customers=700, n_items=60, days=150, seed=11, start="2026-01-01")
    with IngestRun(settings) as run:
        run.ingest_frame("customers", sim.customers, source="sim customers")
        run.ingest_frame("items", sim.items, source="sim items")
        run.ingest_frame("events", sim.events, source="sim events")
    withdrawn = sorted(set(sim.events["customer_id"]))[7]
    store = ConsentStore.from_settings(settings)
    try:
        store.record([ConsentChange(withdrawn, "personalization", False, datetime(2026, 5, 1, tzinfo=UTC),
                                    None, "cli")])
    finally:
        store.close()
    return settings, withdrawn


def _same_matrix(got, want) -> None:
    np.testing.assert_array_equal(got.customer_ids, want.customer_ids)
    np.testing.assert_array_equal(got.item_ids, want.item_ids)
    for name in ("user_items", "purchases"):
        a, b = getattr(got, name), getattr(want, name)
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.data, b.data)
    for name in ("last_bought", "pair_interval"):
        assert (getattr(got.timing, name) != getattr(want.timing, name)).nnz == 0
    np.testing.assert_array_equal(got.timing.item_interval, want.timing.item_interval)
    assert (got.timing.recency_scale_days, got.timing.as_of_days) == (want.timing.recency_scale_days,
                                                                      want.timing.as_of_days)


@pytest.mark.parametrize("overrides", [{}, {"mode": "als", "weighting": "bm25", "time_decay_half_life_days": 30.0}],
                         ids=["blend", "als-bm25-decay"])
def test_training_inputs_on_the_cluster_are_the_local_ones(shop, cluster_client, overrides) -> None:
    from tenure.training.recommender_pipeline import (
        _fit,
        _prepare_locally,
        _prepare_on_cluster,
        cluster_data,
        config_from_settings,
        load_data,
    )

    base, withdrawn = shop
    settings = base.model_copy(update={"recommender": base.recommender.model_copy(update=overrides)})
    said_local, said_cluster = [], []
    data = load_data(settings)
    assert withdrawn not in set(data.events["customer_id"])
    config = config_from_settings(settings, data)
    want = _prepare_locally(settings, data, config, 1, said_local.append)
    on_cluster = cluster_data(settings)
    assert config_from_settings(settings, on_cluster) == config and on_cluster.events.empty
    got = _prepare_on_cluster(settings, on_cluster, config, 1, said_cluster.append, client=cluster_client)

    assert got.engine == "dask" and want.engine == "local"
    assert (got.repeat_share, got.exclude_default, got.cutoff, got.end) == (want.repeat_share, want.exclude_default,
                                                                            want.cutoff, want.end)
    _same_matrix(got.train, want.train)
    _same_matrix(got.full, want.full)
    assert withdrawn not in set(got.full.customer_ids) and got.full.nnz > 5000
    # the same matrices fit the same ALS: the metrics are equal, not close
    pd.testing.assert_frame_equal(got.table, want.table)
    assert want.next_basket is not None and int(want.next_basket["n_customers"].iloc[0]) > 100
    pd.testing.assert_frame_equal(got.next_basket, want.next_basket)
    if config["mode"] == "blend":
        assert want.blend is not None
    assert got.blend == want.blend
    model_got = _fit(config, got.full, 1).set_blend(got.blend)
    model_want = _fit(config, want.full, 1).set_blend(want.blend)
    rows = np.arange(0, got.full.shape[0], 7)
    np.testing.assert_array_equal(model_got.scores(rows), model_want.scores(rows))
    for items_got, items_want in zip(model_got.recommend(rows, settings.recommender.k),
                                     model_want.recommend(rows, settings.recommender.k), strict=True):
        np.testing.assert_array_equal(items_got, items_want)
    assert [m for m in said_cluster if "ndcg" in m or "P@" in m] == [m for m in said_local if "ndcg" in m or "P@" in m]


def test_training_step_on_the_cluster_is_tagged_dask(shop, cluster_client, monkeypatch) -> None:
    """``train_recommender`` under ``compute.engine: dask`` never reads the events on the driver."""
    from tenure.features import tables
    from tenure.registry.models import configure_mlflow
    from tenure.training import recommender_pipeline

    def no_events(*args, **kwargs):
        raise AssertionError("the dask path read the events on the driver")

    monkeypatch.setattr(tables, "read_events", no_events)
    monkeypatch.setattr(recommender_pipeline, "_prepare_on_cluster",
                        lambda *a, _real=recommender_pipeline._prepare_on_cluster, **k: _real(*a, client=cluster_client))
    settings, _ = shop
    result = recommender_pipeline.train_recommender(settings, register=False, num_threads=1)
    run = configure_mlflow(settings).get_run(result.run_id)
    assert run.data.tags["tenure.engine"] == "dask"
    assert run.data.metrics["ndcg_at_k"] == pytest.approx(float(result.metrics.loc["model", "ndcg_at_k"]))


def test_gate_holdout_on_the_cluster_is_the_local_one(shop, cluster_client) -> None:
    """The recommender gate refits both versions' configurations on the time holdout; under dask the splits are
    built on the cluster (the events read once for both) and give the local tables."""
    from tenure.training.recommender_pipeline import (
        _holdout_tables_on_cluster,
        cluster_data,
        config_from_settings,
        holdout_evaluation,
        load_data,
    )

    settings, _ = shop
    data = load_data(settings)
    blend = config_from_settings(settings, data)
    als = {**blend, "mode": "als", "weighting": "bm25", "factors": 16}
    got, cutoff = _holdout_tables_on_cluster(settings, cluster_data(settings), {"challenger": blend, "champion": als},
                                             cluster_client)
    r = settings.recommender
    for name, config in (("challenger", blend), ("champion", als)):
        want, want_cutoff, _ = holdout_evaluation(data, config, r.holdout_days, r.k, baselines=())
        assert cutoff == want_cutoff
        pd.testing.assert_frame_equal(got[name], want)
    assert not got["challenger"].equals(got["champion"])
