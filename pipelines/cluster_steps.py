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


def _score_partition(customers, settings: Settings, churn_runtime, churn_version: str, recommender, k: int,
                     source: str = "auto"):
    """One partition's batch scores: :func:`pipelines.scoring.batch_score`'s steps for its customers only."""
    from tenure.pipelines.scoring import (
        _consenting,
        add_recommendations,
        read_feature_rows,
        score_rows,
    )

    ids = sorted(customers["customer_id"].astype(str))
    ids, rows, used = read_feature_rows(settings, ids, source)
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


def _audience_partition(customers, settings: Settings, churn_runtime, churn_version: str, recommender, k: int,
                        risk: tuple[str, ...], source: str):
    """One partition's audience: :func:`pipelines.scoring.export_audience`'s steps for its customers only."""
    from tenure.pipelines.scoring import (
        _consenting,
        add_recommendations,
        item_columns,
        select_audience,
    )

    scored = _score_partition(customers, settings, churn_runtime, churn_version, None, 0, source)
    audience = _consenting(settings, select_audience(scored, risk), ("marketing",))
    if k and recommender is not None and len(audience):
        audience = add_recommendations(audience, recommender[0], recommender[1], k, _consent_of(settings, customers))
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
    churn = load_champion(settings, "churn")
    recommender = load_champion(settings, "recommender") if k else None
    path = Path(out) if out is not None else default_audience_path(settings, tuple(risk), file_format)
    with dask_client(settings.compute) as client:
        import dask
        import dask.dataframe as dd

        customers = read_customers_partitioned(settings, settings.compute.partitions)
        models = client.scatter([churn.runtime, (recommender.runtime, recommender.version) if recommender else None],
                                broadcast=True)
        parts = [dask.delayed(_audience_partition)(part, settings, models[0], churn.version, models[1], k, tuple(risk),
                                                   source) for part in customers.to_delayed()]
        audience = dd.from_delayed(parts, verify_meta=False).sort_values("churn_probability", ascending=False)
        summary, _ = _write_partitions(settings, client, audience, {file_format: path})
    logger.info("wrote %d customers (%s risk) to %s, partition by partition", summary["customers_scored"],
                "/".join(risk), path)
    return path, summary


# --- the recommender's interaction matrix ------------------------------------------------------------

def _kept_events(events, customers, event_weights, purchase_event_types, consent: bool):
    """A partition's item events of the counted types, of consenting customers (build_interactions' filter)."""
    import numpy as np

    from tenure.training.interactions import consenting_customers

    events = events.reset_index(drop=True)
    keep = events["item_id"].notna().to_numpy() & np.isin(
        events["event_type"].to_numpy(), list(set(event_weights) | set(purchase_event_types) | {"return"}))
    ev = events.loc[keep, ["customer_id", "item_id", "event_type", "event_at"]]
    allowed = consenting_customers(customers.reset_index(drop=True)) if consent else None
    if allowed is not None:
        ev = ev[ev["customer_id"].astype(str).isin(allowed)]
    return ev


def _interaction_scan(events, customers, event_weights, purchase_event_types, consent: bool):
    """Pass 1 of a partition: the items its kept events name, and their latest time."""
    ev = _kept_events(events, customers, event_weights, purchase_event_types, consent)
    return set(ev["item_id"].astype(str).unique().tolist()), (ev["event_at"].max() if len(ev) else None)


def _interaction_part(events, customers, event_weights, half_life_days, as_of, purchase_event_types, item_ids,
                      consent: bool):
    """Pass 2 of a partition: its customers' rows of the matrices (the local function on its events), and the
    rebuy gaps (item column, days) that the item-level timing pools over every customer."""
    import numpy as np
    import pandas as pd

    from tenure.training.interactions import build_interactions, day_numbers

    ev = _kept_events(events, customers, event_weights, purchase_event_types, consent)
    ev = ev.sort_values("event_at", kind="stable").reset_index(drop=True)
    matrix = build_interactions(ev, None, None, event_weights=event_weights, half_life_days=half_life_days, as_of=as_of,
                                weighting="none", purchase_event_types=purchase_event_types, item_ids=item_ids)
    # the gaps between one pair's distinct purchase times (training.interactions.repurchase_timing's rule)
    buys = ev[ev["event_type"].isin(list(purchase_event_types))]
    cols = pd.Index(item_ids).get_indexer(buys["item_id"].astype(str))
    frame = pd.DataFrame({"r": buys["customer_id"].astype(str).to_numpy(), "c": cols,
                          "d": day_numbers(pd.to_datetime(buys["event_at"], utc=True)) if len(buys) else []})
    frame = frame[frame["c"] >= 0].drop_duplicates().sort_values(["r", "c", "d"], kind="stable")
    same = (frame["r"].to_numpy()[1:] == frame["r"].to_numpy()[:-1]) & (frame["c"].to_numpy()[1:] == frame["c"].to_numpy()[:-1])
    gaps = pd.DataFrame({"c": frame["c"].to_numpy()[1:][same], "gap": np.diff(frame["d"].to_numpy())[same]})
    return matrix, gaps


def interactions_on_cluster(settings: Settings, *, event_weights, half_life_days: float | None = None,
                            as_of=None, weighting: str = "none", purchase_event_types=("purchase",),
                            item_ids=None, consent: bool = True, client=None):
    """:func:`training.interactions.build_interactions` on the stored events, aggregated on the cluster.

    Each customer-hash partition turns its events into its customers' (customer, item, weight) rows
    with the local function (a customer's events all live in one partition, so their sums are
    whole); the driver stacks the partitions' rows into one CSR in the local row order (customer
    ids sorted), applies the BM25 / TF-IDF re-weighting (a whole-matrix step) and pools the rebuy
    gaps for the item-level timing. Only the matrix (non-zeros) and the gaps reach the driver,
    never the events.

    Parameters are those of ``build_interactions``; ``consent``: keep only customers whose stored
    ``consent_personalization`` is True (the customers table is read on the workers).

    Returns
    -------
    training.interactions.InteractionMatrix, equal to the local one on the same events.
    """
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from tenure.compute.partitions import read_customers_partitioned, read_events_partitioned
    from tenure.registry.recommender_runtime import RepurchaseTiming
    from tenure.training.interactions import WEIGHTINGS, InteractionMatrix, _validate_weights

    _validate_weights(event_weights)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    weights, buys = dict(event_weights), tuple(purchase_event_types)

    def run(client) -> InteractionMatrix:
        import dask

        n = settings.compute.partitions
        events = read_events_partitioned(settings, n, ["event_type", "item_id"])
        customers = read_customers_partitioned(settings, n)
        pairs = list(zip(events.to_delayed(), customers.to_delayed(), strict=True))
        columns, ref = item_ids, as_of
        if columns is None or (half_life_days is not None and ref is None):
            scans = dask.compute(*[dask.delayed(_interaction_scan)(e, c, weights, buys, consent) for e, c in pairs])
            if columns is None:  # the items table + items named by kept events, sorted (the local rule)
                from tenure.features.tables import read_items

                known = set().union(*[s[0] for s in scans]) | set(read_items(settings)["item_id"].astype(str))
                columns = sorted(known)
            if ref is None:
                stamps = [s[1] for s in scans if s[1] is not None]
                ref = max(stamps) if stamps else None
        columns = list(np.asarray(columns, dtype=object).astype(str))
        futures = client.compute([dask.delayed(_interaction_part)(e, c, weights, half_life_days, ref, buys, columns,
                                                                  consent) for e, c in pairs])
        parts = [f.result() for f in futures]  # each: the non-zeros of its customers' rows
        ids = np.concatenate([np.asarray(m.customer_ids, dtype=str) for m, _ in parts]) if parts else np.array([], str)
        order = np.argsort(ids, kind="stable")

        def stack(get) -> sp.csr_matrix:
            blocks = [get(m) for m, _ in parts]
            return sp.vstack(blocks, format="csr")[order] if blocks else sp.csr_matrix((0, len(columns)))

        user_items = stack(lambda m: m.user_items).astype(np.float32)
        purchases = stack(lambda m: m.purchases).astype(np.float32)
        if weighting != "none" and user_items.nnz:  # as build_interactions: items as documents, over every customer
            from implicit.nearest_neighbours import bm25_weight, tfidf_weight

            item_users = user_items.T.tocsr()
            weighted = bm25_weight(item_users, K1=100, B=0.8) if weighting == "bm25" else tfidf_weight(item_users)
            user_items = sp.csr_matrix(weighted.T, dtype=np.float32)
            user_items.data = np.clip(user_items.data, 0, None)
            user_items.eliminate_zeros()
        last_bought = stack(lambda m: m.timing.last_bought)
        pair_interval = stack(lambda m: m.timing.pair_interval)
        gaps = pd.concat([g for _, g in parts], ignore_index=True) if parts else pd.DataFrame({"c": [], "gap": []})
        n_cols = len(columns)
        item_interval = np.full(n_cols, np.nan)
        by_item = gaps.groupby("c")["gap"].median()
        item_interval[by_item.index.to_numpy(dtype=np.int64)] = by_item.to_numpy()
        buyers = np.bincount(last_bought.indices, minlength=n_cols).astype(np.float64)
        repeaters = np.bincount(pair_interval.indices, minlength=n_cols).astype(np.float64)
        stamps = [m.timing.as_of_days for m, _ in parts if m.timing.last_bought.nnz]
        timing = RepurchaseTiming(
            last_bought=last_bought, pair_interval=pair_interval, item_interval=item_interval,
            item_repeat_rate=np.divide(repeaters, buyers, out=np.zeros(n_cols), where=buyers > 0),
            recency_scale_days=max(float(np.median(gaps["gap"])) if len(gaps) else 7.0, 1e-3),
            as_of_days=max(stamps) if stamps else 0.0)
        logger.info("interactions on the cluster: %d customers x %d items, %d non-zero from %d partitions",
                    user_items.shape[0], n_cols, user_items.nnz, len(parts))
        return InteractionMatrix(user_items=user_items.tocsr(), purchases=purchases.tocsr(), customer_ids=ids[order],
                                 item_ids=np.asarray(columns, dtype=str), timing=timing)

    if client is not None:
        return run(client)
    from tenure.compute.cluster import dask_client

    with dask_client(settings.compute) as own:
        return run(own)
