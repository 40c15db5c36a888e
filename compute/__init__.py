"""The distributed engine (``compute.engine: dask``): the same pandas feature functions, mapped over
customer-hash partitions on a Dask cluster.

It sits beside ``features`` at the bottom of the one-way flow: it imports ``features`` (the pure
functions it maps) and nothing else of tenure, so ``training``, ``monitoring`` and ``pipelines`` can
hand work to the cluster through it. Nothing here imports dask at import time.

- :mod:`compute.cluster`: connect to a scheduler, or start a LocalCluster for one run;
- :mod:`compute.partitions`: the canonical tables read as partitioned Parquet, bucketed by a stable
  hash of ``customer_id``;
- :mod:`compute.features`: customer and item feature snapshots per partition, written as the same
  tables the local path writes;
- :mod:`compute.frames`: churn labels and the point-in-time training frame per partition;
- :mod:`compute.samples`: seeded uniform samples drawn on the cluster, the same rows whatever the
  partitioning (monitoring's current window, baselines).
"""
