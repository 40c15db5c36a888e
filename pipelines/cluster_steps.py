"""The pipeline steps' work on a Dask cluster (``compute.engine: dask``): one client per step.

:func:`pipelines.flows.features_step` and the churn part of :func:`pipelines.flows.train_step`
call these when the engine is ``dask``; Feast apply and materialize are unchanged, and the recommender
step and the promotion gate go to the cluster on their own (``training.recommender_distributed``,
``training.gate``). With ``compute.scheduler_address`` the work goes to
that cluster, else to a LocalCluster started for the step (``compute.local_workers``).
"""

from __future__ import annotations

import functools
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


def _model_ref(settings: Settings, champion) -> tuple[str, tuple[tuple[str, str], ...], str, str, str] | None:
    """What a partition needs to load ``champion`` itself: registry, model names, cache folder, kind, version.

    Only these strings travel in the graph, never the loaded model: data scattered to the workers is lost for
    good when a worker is restarted (for memory, say), while a graph node can always be run again.
    """
    if champion is None:
        return None
    from tenure.registry.champion import ModelCache

    cache = ModelCache.from_settings(settings)
    return (cache.tracking_uri, tuple(sorted(cache.model_names.items())), str(cache.cache_dir), champion.kind,
            str(champion.version))


@functools.lru_cache(maxsize=4)
def _runtime_on_worker(ref: tuple[str, tuple[tuple[str, str], ...], str, str, str]) -> Any:
    """The runtime behind a :func:`_model_ref`, loaded once per worker process (downloaded on first use)."""
    from pathlib import Path

    from tenure.registry.champion import ModelCache, load_runtime

    tracking_uri, names, cache_dir, kind, version = ref
    cache = ModelCache(tracking_uri, dict(names), Path(cache_dir))
    return load_runtime(kind, cache.download(kind, version), version)


def _score_partition(customers, settings: Settings, churn_ref, recommender_ref, k: int, source: str = "auto"):
    """One partition's batch scores: :func:`pipelines.scoring.batch_score`'s steps for its customers only
    (``churn_ref``, ``recommender_ref``: :func:`_model_ref`; the recommender's may be None)."""
    from tenure.pipelines.scoring import (
        _consenting,
        add_recommendations,
        read_feature_rows,
        score_rows,
    )

    ids = sorted(customers["customer_id"].astype(str))
    ids, rows, used = read_feature_rows(settings, ids, source)
    frame = score_rows(_runtime_on_worker(churn_ref), churn_ref[-1], ids, rows, n_reasons=settings.serving.top_reasons,
                       feature_source=used)
    frame = _consenting(settings, frame, ("profiling",))
    if k and recommender_ref is not None:
        frame = add_recommendations(frame, _runtime_on_worker(recommender_ref), recommender_ref[-1], k,
                                    _consent_of(settings, customers))
    return frame


def score_on_cluster(settings: Settings, k: int) -> tuple[Any, dict[str, Any]]:
    """:func:`pipelines.scoring.batch_score` partitioned: each customer-hash partition reads its customers'
    features (online store, else the latest snapshot), scores them with the champion (each worker loads
    it once from the model cache; only its version travels in the graph) and adds ``k`` recommendations; the partitions are sorted by churn probability on the cluster
    and streamed into the same ``exports_dir/scores/scores.{parquet,csv}`` the local step writes.

    Returns
    -------
    (summary, paths): ``summary`` has ``customers_scored``, the count per risk band and the model version.
    """
    from tenure.compute.cluster import dask_client
    from tenure.compute.partitions import read_customers_partitioned
    from tenure.registry.champion import load_champion

    # downloaded here once (the workers of one machine share the cache); NoChampionError says what to run
    churn = load_champion(settings, "churn", runtime=False)
    recommender = load_champion(settings, "recommender", runtime=False) if k else None
    with dask_client(settings.compute) as client:
        customers = read_customers_partitioned(settings, settings.compute.partitions)
        import dask
        import dask.dataframe as dd

        refs = _model_ref(settings, churn), _model_ref(settings, recommender)
        parts = [dask.delayed(_score_partition)(part, settings, *refs, k) for part in customers.to_delayed()]
        scored = dd.from_delayed(parts, verify_meta=False)
        ordered = scored.sort_values("churn_probability", ascending=False)
        return _write_partitions(settings, client, ordered)


def _write_partitions(settings: Settings, client, frame, paths: dict[str, Any] | None = None
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stream the partitions of ``frame`` (in order) into scores.parquet and scores.csv (or ``paths``: format ->
    file), one at a time."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = settings.paths.exports_dir / "scores"
    if paths is None:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"parquet": folder / "scores.parquet", "csv": folder / "scores.csv"}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = {kind: path.with_name(f".{path.name}.{os.getpid()}.tmp") for kind, path in paths.items()}
    writer, total, bands, version, columns = None, 0, {}, None, []
    try:
        with open(tmp.get("csv", os.devnull), "w", encoding="utf-8", newline="") as csv_file:
            for i, part in enumerate(frame.to_delayed()):
                chunk = client.compute(part).result().reset_index(drop=True)
                if writer is None and (len(chunk) or i == frame.npartitions - 1):
                    schema = pa.Table.from_pandas(chunk, preserve_index=False).schema
                    writer = pq.ParquetWriter(tmp.get("parquet", os.devnull), schema)
                    chunk.to_csv(csv_file, index=False)
                    columns = list(chunk.columns)
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
    return ({"customers_scored": total, "bands": bands, "churn_model_version": version, "columns": columns},
            {kind: str(path) for kind, path in paths.items()})


def _audience_partition(customers, settings: Settings, churn_ref, recommender_ref, k: int, risk: tuple[str, ...],
                        source: str):
    """One partition's audience: :func:`pipelines.scoring.export_audience`'s steps for its customers only."""
    from tenure.pipelines.scoring import (
        _consenting,
        add_recommendations,
        item_columns,
        select_audience,
    )

    scored = _score_partition(customers, settings, churn_ref, None, 0, source)
    audience = _consenting(settings, select_audience(scored, risk), ("marketing",))
    if k and recommender_ref is not None and len(audience):
        audience = add_recommendations(audience, _runtime_on_worker(recommender_ref), recommender_ref[-1], k,
                                       _consent_of(settings, customers))
    elif k:
        import pandas as pd

        extra = item_columns(k) + ["recommendation_strategy", "recommender_model_version"]
        audience = pd.concat([audience, pd.DataFrame(columns=extra)], axis=1)
    return audience


def export_audience_on_cluster(settings: Settings, risk=("high",), k: int = 0, file_format: str = "csv",
                               out=None, source: str = "auto") -> tuple[Any, dict[str, Any]]:
    """:func:`pipelines.scoring.export_audience` partitioned: each customer-hash partition scores its customers,
    keeps the risk bands and the marketing consent and adds ``k`` recommendations; the partitions are sorted by
    churn probability on the cluster and streamed into the one file (only one partition is on the driver).

    Returns
    -------
    (path, summary): the file written and ``customers_scored`` (rows), ``bands`` (rows per risk band),
    ``churn_model_version`` and ``columns``.
    """
    from pathlib import Path

    from tenure.compute.cluster import dask_client
    from tenure.compute.partitions import read_customers_partitioned
    from tenure.pipelines.scoring import RISK_BANDS, default_audience_path
    from tenure.registry.champion import load_champion

    if file_format not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet', got {file_format!r}")
    bad = sorted(set(risk) - set(RISK_BANDS))
    if bad or not risk:
        raise ValueError(f"risk bands must be among {list(RISK_BANDS)}, got {list(risk)}")
    churn = load_champion(settings, "churn", runtime=False)
    recommender = load_champion(settings, "recommender", runtime=False) if k else None
    path = Path(out) if out is not None else default_audience_path(settings, tuple(risk), file_format)
    with dask_client(settings.compute) as client:
        import dask
        import dask.dataframe as dd

        customers = read_customers_partitioned(settings, settings.compute.partitions)
        refs = _model_ref(settings, churn), _model_ref(settings, recommender)
        parts = [dask.delayed(_audience_partition)(part, settings, *refs, k, tuple(risk), source)
                 for part in customers.to_delayed()]
        audience = dd.from_delayed(parts, verify_meta=False).sort_values("churn_probability", ascending=False)
        summary, _ = _write_partitions(settings, client, audience, {file_format: path})
    logger.info("wrote %d customers (%s risk) to %s, partition by partition", summary["customers_scored"],
                "/".join(risk), path)
    return path, summary


# --- the recommender's interaction matrix ------------------------------------------------------------

def interactions_on_cluster(settings: Settings, *, event_weights, half_life_days: float | None = None,
                            as_of=None, weighting: str = "none", purchase_event_types=("purchase",),
                            item_ids=None, consent: bool = True, client=None):
    """:func:`training.interactions.build_interactions` on the stored events, aggregated on the cluster
    (:func:`training.recommender_distributed.split_on_cluster` with every event as history).

    Each customer-hash partition turns its events into its customers' (customer, item, weight) rows
    with the local function; the driver stacks them into one CSR in the local row order, applies the
    BM25 / TF-IDF re-weighting and pools the rebuy gaps. Only the non-zeros reach the driver, never
    the events. ``consent``: keep only customers whose stored ``consent_personalization`` is True.
    The recommender training step (``compute.engine: dask``) uses the same functions for its splits.

    Returns
    -------
    training.interactions.InteractionMatrix, equal to the local one on the same events.
    """
    from tenure.features.tables import read_items
    from tenure.training.recommender_distributed import event_partitions, split_on_cluster

    def run(client):
        parts = event_partitions(settings, client)
        try:
            items = read_items(settings)
            catalogue = [] if items is None else items["item_id"].astype(str).tolist()
            return split_on_cluster(client, parts, event_weights=event_weights, half_life_days=half_life_days,
                                    as_of=as_of, weighting=weighting, purchase_event_types=purchase_event_types,
                                    item_ids=item_ids, catalogue=catalogue, consent=consent).train
        finally:
            parts.release()

    if client is not None:
        return run(client)
    from tenure.compute.cluster import dask_client

    with dask_client(settings.compute) as own:
        return run(own)
