"""A LocalCluster of 2 workers (threads of the test process: starts in about a second) and small shops for
the engine tests, built by the root conftest's workspace helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenure.settings import Settings

from ..conftest import prepare_workspace, workspace_settings


@pytest.fixture(scope="module")
def cluster_client():
    """A ``distributed.Client`` on a LocalCluster of 2 single-thread workers, shared by a test module."""
    from tenure.compute.cluster import dask_client
    from tenure.settings import ComputeSettings

    with dask_client(ComputeSettings(engine="dask", local_workers=2, threads_per_worker=1)) as client:
        yield client


def workspace(root: Path, **overrides) -> Settings:
    """Settings with every store under ``root`` (the root conftest's ``workspace_settings``)."""
    return workspace_settings(root, **overrides)


def simulated_shop(settings: Settings, n_customers: int = 700, days: int = 150, seed: int = 11) -> None:
    """Simulate, ingest, build weekly snapshots locally and apply the Feast definitions (``prepare_workspace``)."""
    prepare_workspace(settings, n_customers=n_customers, days=days, seed=seed)
