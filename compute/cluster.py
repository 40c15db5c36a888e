"""A Dask client for one run: the configured scheduler, or a LocalCluster started for the run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

    from tenure.settings import ComputeSettings

logger = logging.getLogger(__name__)

DASK_CONFIG = {
    # keep object (str) columns as they are: the feature functions see the dtypes the local path sees
    "dataframe.convert-string": False,
    # tasks run where their data is: lightgbm.dask's split of the data over workers stays as pinned
    "distributed.scheduler.work-stealing": False,
}


@contextmanager
def dask_client(compute: ComputeSettings) -> Iterator[Client]:
    """A connected ``distributed.Client`` for the length of the ``with`` block.

    Parameters
    ----------
    compute:
        ``settings.compute``: with ``scheduler_address`` the client connects there (the cluster
        outlives the run); without it a LocalCluster of ``local_workers`` workers is started in
        this process and closed at the end.

    Raises
    ------
    ConnectionError
        When the scheduler does not answer; the message names the address and the setting.
    """
    import dask
    from distributed import Client, LocalCluster

    # distributed installs its own INFO handler on import (worker and scheduler start/stop lines, event
    # loop warnings on a busy machine): it follows the entry point's third-party level instead (the root
    # logger's: errors only unless -v), WARNING where nobody configured logging
    logging.getLogger("distributed").setLevel(max(logging.getLogger().getEffectiveLevel(), logging.WARNING))
    # the P2P shuffle logs a WARNING per shuffle it starts and stops (normal operation)
    logging.getLogger("distributed.shuffle._scheduler_plugin").setLevel(logging.ERROR)
    with dask.config.set(DASK_CONFIG):
        if compute.scheduler_address:
            try:
                client = Client(compute.scheduler_address, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(
                    f"no Dask scheduler answers at {compute.scheduler_address} (compute.scheduler_address, "
                    f"env TENURE_COMPUTE__SCHEDULER_ADDRESS): {exc}; start one (dask scheduler) or unset it "
                    "to run on a LocalCluster") from exc
            logger.info("connected to the Dask scheduler at %s (%d workers)", compute.scheduler_address,
                        len(client.scheduler_info().get("workers", {})))
            try:
                yield client
            finally:
                client.close()
            return
        with LocalCluster(n_workers=compute.local_workers, threads_per_worker=compute.threads_per_worker,
                          processes=compute.worker_processes, memory_limit=compute.memory_limit,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            logger.info("started a LocalCluster of %d workers (%s)", compute.local_workers,
                        "processes" if compute.worker_processes else "threads")
            yield client
