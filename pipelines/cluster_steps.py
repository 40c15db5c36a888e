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


def _consent_of(settings: Settings, customers) -> dict[str, bool]:
    """Personalisation consent of one partition's customers: their stored flag, then POST /consent changes."""
    consent = ({} if "consent_personalization" not in customers.columns else
               dict(zip(customers["customer_id"].astype(str), customers["consent_personalization"].astype(bool),
                        strict=True)))
    from tenure.privacy.consent import ConsentStore, consent_path

    if consent_path(settings).exists():
        store = ConsentStore.from_settings(settings)
        try:
            changes = store.current(list(consent))
            consent.update({cid: s["personalization"] for cid, s in changes.items() if "personalization" in s})
        finally:
            store.close()
    return consent


def _score_partition(customers, settings: Settings, churn_runtime, churn_version: str, recommender, k: int):
    """One partition's batch scores: :func:`pipelines.scoring.batch_score`'s steps for its customers only."""
    from tenure.pipelines.scoring import (
        _consenting,
        add_recommendations,
        read_feature_rows,
        score_rows,
    )

    ids = sorted(customers["customer_id"].astype(str))
    ids, rows, used = read_feature_rows(settings, ids, "auto")
    frame = score_rows(churn_runtime, churn_version, ids, rows, n_reasons=settings.serving.top_reasons,
                       feature_source=used)
    frame = _consenting(settings, frame, ("profiling",))
    if k and recommender is not None:
        frame = add_recommendations(frame, recommender[0], recommender[1], k, _consent_of(settings, customers))
    return frame


def score_on_cluster(settings: Settings, k: int) -> tuple[Any, dict[str, Any]]:
    """:func:`pipelines.scoring.batch_score` partitioned: each customer-hash partition reads its customers'
    features (online store, else the latest snapshot), scores them with the champion (sent once to each
    worker) and adds ``k`` recommendations; the partitions are sorted by churn probability on the cluster
    and streamed into the same ``exports_dir/scores/scores.{parquet,csv}`` the local step writes.

    Returns
    -------
    (summary, paths): ``summary`` has ``customers_scored``, the count per risk band and the model version.
    """
    from tenure.compute.cluster import dask_client
    from tenure.compute.partitions import read_customers_partitioned
    from tenure.registry.champion import load_champion

    churn = load_champion(settings, "churn")  # NoChampionError (a ValueError) says what to run
    recommender = load_champion(settings, "recommender") if k else None
    with dask_client(settings.compute) as client:
        customers = read_customers_partitioned(settings, settings.compute.partitions)
        models = client.scatter([churn.runtime, (recommender.runtime, recommender.version) if recommender else None],
                                broadcast=True)
        import dask
        import dask.dataframe as dd

        parts = [dask.delayed(_score_partition)(part, settings, models[0], churn.version, models[1], k)
                 for part in customers.to_delayed()]
        scored = dd.from_delayed(parts, verify_meta=False)
        ordered = scored.sort_values("churn_probability", ascending=False)
        return _write_partitions(settings, client, ordered)


def _write_partitions(settings: Settings, client, frame) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stream the partitions of ``frame`` (in order) into scores.parquet and scores.csv, one at a time."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = settings.paths.exports_dir / "scores"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"parquet": folder / "scores.parquet", "csv": folder / "scores.csv"}
    tmp = {kind: path.with_name(f".{path.name}.{os.getpid()}.tmp") for kind, path in paths.items()}
    writer, total, bands, version = None, 0, {}, None
    try:
        with open(tmp["csv"], "w", encoding="utf-8", newline="") as csv_file:
            for i, part in enumerate(frame.to_delayed()):
                chunk = client.compute(part).result().reset_index(drop=True)
                if writer is None and (len(chunk) or i == frame.npartitions - 1):
                    schema = pa.Table.from_pandas(chunk, preserve_index=False).schema
                    writer = pq.ParquetWriter(tmp["parquet"], schema)
                    chunk.to_csv(csv_file, index=False)
                elif len(chunk):
                    chunk.to_csv(csv_file, index=False, header=False)
                if len(chunk):
                    writer.write_table(pa.Table.from_pandas(chunk, preserve_index=False).cast(schema))
                    total += len(chunk)
                    for band, n in chunk["risk_band"].value_counts().items():
                        bands[band] = bands.get(band, 0) + int(n)
                    version = version or str(chunk["churn_model_version"].iloc[0])
    finally:
        if writer is not None:
            writer.close()
    for kind, path in paths.items():
        os.replace(tmp[kind], path)
    return ({"customers_scored": total, "bands": bands, "churn_model_version": version},
            {kind: str(path) for kind, path in paths.items()})
