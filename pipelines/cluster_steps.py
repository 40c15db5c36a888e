"""The pipeline steps' work on a Dask cluster (``compute.engine: dask``): one client per step.

:func:`pipelines.flows.features_step` and the churn part of :func:`pipelines.flows.train_step`
call these when the engine is ``dask``; the rest of each step (Feast apply and materialize, the
promotion gate, the recommender) is unchanged. With ``compute.scheduler_address`` the work goes to
that cluster, else to a LocalCluster started for the step (``compute.local_workers``).
"""

from __future__ import annotations

import logging
from typing import Any

from tenure.settings import Settings

logger = logging.getLogger(__name__)


def build_features_on_cluster(settings: Settings) -> Any:
    """The features step's tables on the cluster: the same snapshot grid and files as the local build.

    Returns
    -------
    features.snapshots.FeatureTables
    """
    from tenure.compute.cluster import dask_client
    from tenure.compute.features import build_feature_tables_on_cluster
    from tenure.compute.frames import event_time_range
    from tenure.compute.partitions import read_events_files
    from tenure.pipelines.flows import snapshot_grid

    with dask_client(settings.compute) as client:
        first, last = event_time_range(read_events_files(settings, []))  # event_at only, no shuffle
        times = snapshot_grid(settings, first, last)
        return build_feature_tables_on_cluster(settings, times, client)


def train_churn_on_cluster(settings: Settings) -> Any:
    """The churn model trained on the cluster (:func:`training.churn_distributed.train_churn_on_cluster`)."""
    from tenure.compute.cluster import dask_client
    from tenure.training.churn_distributed import train_churn_on_cluster as train

    with dask_client(settings.compute) as client:
        return train(settings, client)
