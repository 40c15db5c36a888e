"""Churn training on a Dask cluster (``compute.engine: dask``): the frame stays partitioned, LightGBM is
``lightgbm.dask``.

The stages are those of :func:`training.churn_pipeline.train_churn`; what differs is where the
training window lives:

1. frame: labels and the point-in-time join run per customer-hash partition on the cluster
   (:mod:`compute.frames`); the training cut-offs stay there (persisted on the workers), the
   validation and test cut-offs (3 of about 22 by default) are collected: calibration, choice
   and evaluation need them whole;
2. fit: data-parallel LightGBM over the workers (:func:`fit_ranks`: ``lightgbm.dask``'s training task
   with fixed ranks, so the same data gives the same model every run; the parameters of the local
   ``lightgbm`` candidate), then the number of trees early stopping would keep (the first iteration
   with no lower validation log loss in ``early_stopping_rounds``) is read off the validation window,
   and calibration is fitted there as locally;
3. the logistic candidate (also the baseline the gate judges every model against) is fitted on a
   uniform sample of the training window drawn on the cluster (:data:`BASELINE_SAMPLE_ROWS` rows at
   most);
4. evaluate, log, register: the local functions, on the collected test window.

Candidates (:func:`select_on_cluster`): ``lightgbm`` and ``lightgbm_shallow`` (on the whole training
window; the shallow one fits all of its 2,000 trees, since there is no early stopping on the cluster,
and keeps what validation says), ``logistic`` (on the sample) and ``blend`` (the better tree model
mixed with it), chosen on validation as locally. With ``refit_on_validation`` the chosen number of
trees is refitted on the cluster on training + validation rows, and the logistic part on its sample
+ validation, as locally. The equality test holds the ``lightgbm`` candidate's test ROC-AUC within
0.005 of the local one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tenure.registry.churn_scorer import ChurnScorer
from tenure.settings import Settings
from tenure.training.churn_dataset import LABEL_COLUMN, TimeSplit, matured_cutoffs, split_cutoffs
from tenure.training.churn_model import ChurnModel, choose_calibration, encode_categories, to_matrix

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from tenure.compute.frames import ViewTable

logger = logging.getLogger(__name__)

BASELINE_SAMPLE_ROWS = 200_000
"""Most training rows the logistic baseline is fitted on (a uniform sample drawn on the cluster)."""


@dataclasses.dataclass
class ClusterSplit:
    """The time split of a frame that lives on the cluster.

    ``train`` is a persisted Dask frame (the training cut-offs); ``valid`` and ``test`` are
    pandas frames; ``train_rows`` and ``cutoffs`` describe the whole training window.
    """

    train: dd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    train_rows: int
    cutoffs: dict[str, list[pd.Timestamp]]
    numeric: list[str]
    categorical: list[str]

    @property
    def features(self) -> list[str]:
        """Every feature column, numeric first."""
        return self.numeric + self.categorical


def service_views(settings: Settings, store=None, feature_service: str = "churn_v1") -> list[ViewTable]:
    """The registered feature service's views as the cluster's join needs them (table, features, TTL)."""
    from tenure.compute.frames import ViewTable
    from tenure.feature_repo.store import open_store

    store = store or open_store(settings)
    views = []
    for projection in store.get_feature_service(feature_service).feature_view_projections:
        view = store.get_feature_view(projection.name)
        source = view.batch_source
        views.append(ViewTable(path=Path(source.path), names=tuple(f.name for f in projection.features),
                               timestamp_field=source.timestamp_field,
                               created_field=source.created_timestamp_column or None, ttl=view.ttl))
    return views


def build_training_frame_on_cluster(settings: Settings, store=None, select=None
                                    ) -> tuple[dd.DataFrame, list[pd.Timestamp]]:
    """The churn training frame as a partitioned Dask frame (nothing collected), and its cut-offs.

    The same rows as :func:`training.churn_dataset.build_churn_training_set` (labels at every matured
    snapshot time within ``churn.history_days``, the ``churn_v1`` features joined point-in-time),
    in partition order. Needs an active Dask client (:func:`compute.cluster.dask_client`).
    ``select``: keeps some of those cut-offs (a function of the sorted list, e.g. the test window's);
    only they are labelled and joined.
    """
    from tenure.compute.frames import data_end, labels_on_cluster, point_in_time_join
    from tenure.compute.partitions import read_customers_partitioned, read_events_partitioned
    from tenure.features.snapshots import CUSTOMER_TABLE

    table = settings.paths.features_dir / CUSTOMER_TABLE
    if not table.exists():
        raise ValueError(f"no feature table at {table}; run `tenure features build` first")
    n = settings.compute.partitions
    snapshot_times = pd.read_parquet(table, columns=["event_timestamp"])["event_timestamp"].unique()
    events = read_events_partitioned(settings, n, ["event_type"])
    customers = read_customers_partitioned(settings, n)
    end = data_end(events)
    cutoffs = matured_cutoffs(pd.to_datetime(snapshot_times, utc=True), end, settings.churn.horizon_days)
    earliest = end - pd.Timedelta(days=settings.churn.history_days)
    cutoffs = [t for t in cutoffs if t >= earliest]
    if not cutoffs:
        raise ValueError(f"no feature snapshot is at least {settings.churn.horizon_days} days before the last event "
                         f"({end}); the training window is empty: build snapshots earlier in the history")
    if select is not None:
        cutoffs = list(select(sorted(cutoffs)))
    labels = labels_on_cluster(events, customers, cutoffs, settings.churn.horizon_days,
                               settings.churn.qualifying_event_types)
    return point_in_time_join(labels, service_views(settings, store), n), cutoffs


def split_on_cluster(settings: Settings, frame: dd.DataFrame, cutoffs: list[pd.Timestamp]) -> ClusterSplit:
    """Split by cut-off like :func:`training.churn_dataset.split_by_time`; the training part stays on the cluster."""
    from tenure.features.customer_features import CUSTOMER_CATEGORICAL_FEATURES
    from tenure.training.churn_pipeline import NON_FEATURES

    c = settings.churn
    train_times, valid_times, test_times = split_cutoffs(sorted(cutoffs), c.validation_cutoffs, c.test_cutoffs,
                                                         c.horizon_days)
    held_out = frame[frame["event_timestamp"].isin(valid_times + test_times)].compute().reset_index(drop=True)
    ts = pd.to_datetime(held_out["event_timestamp"], utc=True)
    valid = held_out[ts.isin(valid_times)].reset_index(drop=True)
    test = held_out[ts.isin(test_times)].reset_index(drop=True)
    train = frame[frame["event_timestamp"].isin(train_times)].map_partitions(_in_key_order).persist()
    counts = train[LABEL_COLUMN].value_counts().compute()
    for name, part_counts in (("train", counts), ("valid", valid[LABEL_COLUMN].value_counts()),
                              ("test", test[LABEL_COLUMN].value_counts())):
        if len(part_counts) < 2:
            raise ValueError(f"the {name} window has a single class ({dict(part_counts)}); churn cannot be learned "
                             "or judged there; use more data or a different horizon")
    features = [col for col in frame.columns if col not in NON_FEATURES]
    categorical = [col for col in features if col in CUSTOMER_CATEGORICAL_FEATURES]
    numeric = [col for col in features if col not in categorical]
    return ClusterSplit(train=train, valid=valid, test=test, train_rows=int(counts.sum()),
                        cutoffs={"train": train_times, "valid": valid_times, "test": test_times},
                        numeric=numeric, categorical=categorical)


def _as_part(data: pd.DataFrame, label: pd.Series) -> dict[str, Any]:
    return {"data": data, "label": label}


def fit_ranks(client: Client, X: dd.DataFrame, y: dd.Series, params: dict[str, Any], **fit_kwargs: Any):
    """Data-parallel LightGBM over the workers, with every rank's data fixed: ``lightgbm.dask``'s own training
    task (``_train_part``, LightGBM 4.7) on each worker, but the ranks are the workers in address order and
    rank ``j`` trains on partitions ``j, j + n, j + 2n, ...`` concatenated in that order.

    ``DaskLGBMClassifier.fit`` lets the scheduler place its (data, label) parts and orders ranks and parts by
    where they landed; the same data then reached the ranks in another split or order from run to run, and
    bagging and the per-rank bin boundaries followed (test ROC-AUC 0.766-0.782 over four fits of one split).
    Here the split and order depend only on the partitions and the worker count, so with ``deterministic``
    and a seed the fit is the same every run (tested: identical model text).

    Returns
    -------
    lightgbm.Booster
    """
    from urllib.parse import urlparse

    import lightgbm as lgb
    from lightgbm.dask import _assign_open_ports_to_workers

    workers = sorted(client.scheduler_info()["workers"])
    n = min(len(workers), X.npartitions)
    used = workers[:n]
    X_parts, y_parts = X.to_delayed(), y.to_delayed()
    parts: dict[str, list] = {w: [] for w in used}
    for i, (xp, yp) in enumerate(zip(X_parts, y_parts, strict=True)):
        worker = used[i % n]
        parts[worker].append(client.compute(_delayed_part(xp, yp), workers=[worker],
                                            allow_other_workers=False))
    sockets, ports = _assign_open_ports_to_workers(client=client, workers=used)
    machines = ",".join(f"{urlparse(w).hostname}:{ports[w]}" for w in used)
    nthreads = client.nthreads()
    params = {k: v for k, v in params.items() if k not in ("num_threads", "n_jobs", "num_machines")}
    futures = [client.submit(_train_rank, model_factory=lgb.LGBMClassifier,
                             params={**params, "tree_learner": "data", "num_threads": nthreads[w]},
                             list_of_parts=parts[w], machines=machines, local_listen_port=ports[w], num_machines=n,
                             return_model=(j == 0), time_out=params.get("time_out", 120),
                             remote_socket=sockets.get(w), workers=[w], allow_other_workers=False, pure=False,
                             **fit_kwargs)
               for j, w in enumerate(used)]
    model = client.gather(futures)[0]
    return model.booster_


def _train_rank(**kwargs: Any):
    """``lightgbm.dask``'s training task, with LightGBM's native messages sent to the ``lightgbm`` logger.

    The network set-up prints ``[LightGBM] [Info]`` lines whatever ``verbosity`` says, and LightGBM's log
    callback is per thread (registered on import, in the importing thread only), so the worker thread that
    trains registers it again before it starts.
    """
    import lightgbm as lgb
    import lightgbm.basic
    from lightgbm.dask import _train_part

    lgb.register_logger(logging.getLogger("lightgbm"))
    lightgbm.basic._LIB.LGBM_RegisterLogCallback(lightgbm.basic._LIB.callback)
    return _train_part(**kwargs)


def _delayed_part(xp, yp):
    import dask

    return dask.delayed(_as_part)(xp, yp)


def _in_key_order(part: pd.DataFrame) -> pd.DataFrame:
    """A partition's rows by (cut-off, customer): the order the shuffle delivered them in varies."""
    return part.sort_values(["event_timestamp", "customer_id"], kind="stable")


def _matrix_frame(part: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """One partition's feature matrix (:func:`training.churn_model.to_matrix`) as a float64 frame."""
    return pd.DataFrame(to_matrix(part, features, categories), columns=features, index=part.index)


def cluster_categories(train: dd.DataFrame, categorical: list[str]) -> dict[str, list[str]]:
    """The categories of each categorical column over the training window (distinct values on the cluster)."""
    import dask

    uniques = dask.compute(*[train[col].dropna().unique() for col in categorical])
    return encode_categories(pd.DataFrame({col: pd.Series(list(u), dtype=object) for col, u in
                                           zip(categorical, uniques, strict=True)}), categorical)


def early_stopping_iteration(raw_per_tree: np.ndarray, y: np.ndarray, rounds: int) -> tuple[int, float]:
    """The iteration LightGBM's early stopping keeps, from each tree's raw validation contributions.

    The local fit (:meth:`training.churn_model.ChurnModel.fit`) stops on LightGBM's default metric of
    the binary objective, the validation log loss: the first iteration with no lower loss in
    ``rounds`` rounds ends it, and the best one is kept. The same rule is applied here.

    Parameters
    ----------
    raw_per_tree:
        Array of shape (n_trees, n_rows), or an iterable of (n_rows,) arrays: tree ``i``'s raw-score
        contribution per validation row (a generator is read only up to the stopping tree).
    y:
        Validation labels, shape (n_rows,).
    rounds:
        Patience, in trees.

    Returns
    -------
    (trees, roc_auc): the number of trees to keep (1-based) and the validation ROC-AUC with them.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=np.float64)
    best_i, best_loss = 0, np.inf
    total = best_total = np.zeros(len(y))
    for i, contribution in enumerate(raw_per_tree):  # an array or a generator (read only as far as needed)
        total = total + contribution
        p = np.clip(1.0 / (1.0 + np.exp(-total)), 1e-15, 1 - 1e-15)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if loss < best_loss:
            best_i, best_loss, best_total = i, loss, total
        elif i - best_i >= rounds:
            break
    return best_i + 1, float(roc_auc_score(y, best_total))


def fit_lightgbm_on_cluster(client: Client, split: ClusterSplit, churn, overrides: dict[str, Any] | None = None):
    """``lightgbm.dask`` on the training partitions; the number of trees chosen on validation; with
    ``churn.refit_on_validation`` that many trees refitted on training + validation rows.

    Returns
    -------
    (booster, categories, raw_valid, valid_auc, params):
        The final ``lightgbm.Booster``, the category lists, the validation log-odds of the booster
        fitted on the training rows (what calibration and selection use, as locally), their
        ROC-AUC and the LightGBM parameters used (``trees``: how many were kept).
    """
    import lightgbm as lgb

    from tenure.training.churn_selection import _booster_settings

    features, categorical = split.features, split.categorical
    categories = cluster_categories(split.train, categorical)
    settings_params = {**_booster_settings(churn), **(overrides or {})}
    model = ChurnModel(features, categorical, random_state=churn.random_state, **settings_params)
    cat_idx = [features.index(c) for c in categories]

    def fit(frame: dd.DataFrame, rows: int, trees: int):
        meta = pd.DataFrame({f: pd.Series(dtype=np.float64) for f in features})
        X = frame.map_partitions(_matrix_frame, features, categories, meta=meta)
        y = frame[LABEL_COLUMN].astype(np.int64)
        pos = max(int(y.sum().compute()), 1)
        params = model._params(float(np.sqrt((rows - pos) / pos)))  # the local candidate's parameters
        # row-wise histograms: with `deterministic` and fixed ranks (below) each worker's histograms are the same
        # from run to run (LightGBM's advice for reproducible fits)
        params.update(force_row_wise=True)
        return fit_ranks(client, X, y, {**params, "n_estimators": trees}, categorical_feature=cat_idx,
                         feature_name=features)

    booster = fit(split.train, split.train_rows, model.n_estimators)
    X_valid = to_matrix(split.valid, features, categories)
    y_valid = split.valid[LABEL_COLUMN].to_numpy(dtype=np.int64)
    trees = booster.num_trees()
    # each tree's contribution (the starting score is folded into the first tree): cumulative sums are the
    # raw scores after 1, 2, ... trees
    per_tree = (booster.predict(X_valid, raw_score=True, start_iteration=i, num_iteration=1) for i in range(trees))
    best, valid_auc = early_stopping_iteration(per_tree, y_valid, model.early_stopping_rounds)
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    raw_valid = booster.predict(X_valid, raw_score=True)
    logger.info("lightgbm.dask: %d of %d trees kept (validation ROC-AUC %.4f) on %d training rows", best, trees,
                valid_auc, split.train_rows)
    if churn.refit_on_validation:  # as locally: the chosen number of trees, on training + validation rows
        import dask.dataframe as dd

        valid_part = dd.from_pandas(_in_key_order(split.valid), npartitions=1)
        full = dd.concat([split.train.reset_index(drop=True), valid_part], ignore_index=True)
        booster = fit(full, split.train_rows + len(split.valid), best)
        logger.info("lightgbm.dask: refitted %d trees on training + validation rows", best)
    return booster, categories, raw_valid, valid_auc, {**settings_params, "trees": best}


def baseline_sample(split: ClusterSplit, rows: int, random_state: int) -> pd.DataFrame:
    """A uniform sample of at most ``rows`` training rows, drawn on the cluster (each partition samples itself)."""
    frac = min(1.0, rows / max(split.train_rows, 1))
    sample = split.train.sample(frac=frac, random_state=random_state) if frac < 1.0 else split.train
    return sample.compute().reset_index(drop=True)


CLUSTER_CANDIDATES = ("lightgbm", "lightgbm_shallow", "logistic", "blend")
"""The candidates the dask path fits: all of the local ones."""


def select_on_cluster(client: Client, split: ClusterSplit, churn, overrides: dict[str, Any] | None = None):
    """The candidates of ``churn.candidates`` (:data:`CLUSTER_CANDIDATES`), chosen on validation as locally
    (:func:`training.churn_selection.select_churn_model`): ``lightgbm`` and ``lightgbm_shallow`` on the whole
    training window on the cluster, ``logistic`` (always: it is the baseline) on a sample drawn on the
    cluster, ``blend`` the better tree model mixed with it, with the weight that validation prefers.

    Returns
    -------
    (selection, sample): a :class:`training.churn_selection.Selection` and the baseline's training sample.
    """
    from sklearn.metrics import roc_auc_score

    from tenure.training.churn_model import fit_linear
    from tenure.training.churn_selection import (
        BLEND_GRID,
        SHALLOW_PARAMS,
        Selection,
        _bands,
        _booster_settings,
        _choose_c,
    )

    names = [n for n in churn.candidates if n in CLUSTER_CANDIDATES] or ["lightgbm"]
    left_out = [n for n in churn.candidates if n not in CLUSTER_CANDIDATES]
    if left_out:
        logger.info("the dask engine fits %s; not %s", names, left_out)
    booster, categories, raw_lgb, lgb_auc, params = fit_lightgbm_on_cluster(client, split, churn, overrides)
    trees = {"lightgbm": (booster, raw_lgb, lgb_auc, params)}
    if "lightgbm_shallow" in names:  # small trees, slow learning rate (training.churn_selection.SHALLOW_PARAMS)
        shallow = fit_lightgbm_on_cluster(client, split, churn, SHALLOW_PARAMS)
        trees["lightgbm_shallow"] = (shallow[0], shallow[2], shallow[3], shallow[4])
    features = split.features
    sample = baseline_sample(split, BASELINE_SAMPLE_ROWS, churn.random_state)
    X_sample = to_matrix(sample, features, categories)
    y_sample = sample[LABEL_COLUMN].to_numpy(dtype=np.int64)
    X_valid = to_matrix(split.valid, features, categories)
    y_valid = split.valid[LABEL_COLUMN].to_numpy(dtype=np.int64)
    c, spec = _choose_c(X_sample, y_sample, X_valid, y_valid, features, categories, churn)
    none = {"method": "none", "eps": 0.0}
    raw = {name: fitted[1] for name, fitted in trees.items()}
    raw["logistic"] = ChurnScorer(booster, features, categories, none, (0.3, 0.6), linear=spec,
                                  blend_weight=0.0).raw_scores(X_valid)
    valid = {name: {"roc_auc": fitted[2], "trees": fitted[3]["trees"]} for name, fitted in trees.items()}
    valid["logistic"] = {"roc_auc": float(roc_auc_score(y_valid, raw["logistic"])), "C": c}
    weight, best_tree = 1.0, max(trees, key=lambda n: valid[n]["roc_auc"])
    if "blend" in names:
        weight = max(BLEND_GRID, key=lambda w: roc_auc_score(y_valid, w * raw[best_tree] + (1 - w) * raw["logistic"]))
        raw["blend"] = weight * raw[best_tree] + (1 - weight) * raw["logistic"]
        valid["blend"] = {"roc_auc": float(roc_auc_score(y_valid, raw["blend"])), "trees_from": best_tree,
                          "weight": float(weight), "C": c}
    chosen = max(names, key=lambda n: (valid[n]["roc_auc"], -names.index(n)))
    calibration, why = choose_calibration(raw[chosen], y_valid, churn.calibration, churn.isotonic_min_rows,
                                          churn.calibration_max_auc_drop)
    bands = _bands(churn, calibration, raw[chosen])
    if churn.refit_on_validation:  # the linear part too, on its sample + the validation rows
        spec = fit_linear(np.vstack([X_sample, X_valid]), np.concatenate([y_sample, y_valid]), features, categories,
                          c, churn.random_state)

    def build(name: str, calib: dict[str, Any]) -> ChurnScorer:
        if name in trees:
            return ChurnScorer(trees[name][0], features, categories, calib, bands)
        return ChurnScorer(trees[best_tree][0], features, categories, calib, bands, linear=spec,
                           blend_weight=weight if name == "blend" else 0.0)

    reported = list(dict.fromkeys([*names, "logistic"]))
    logger.info("validation ROC-AUC: %s; chosen %s", ", ".join(f"{n} {valid[n]['roc_auc']:.4f}" for n in reported),
                chosen)
    selection = Selection(
        chosen=chosen,
        scorer=build(chosen, calibration),
        candidates={n: build(n, none) for n in reported},
        valid={n: valid[n] for n in reported},
        calibration_choice=why,
        refit=churn.refit_on_validation,
        booster_params={"lightgbm": {**_booster_settings(churn), **(overrides or {})},
                        **({"lightgbm_shallow": {**_booster_settings(churn), **SHALLOW_PARAMS}} if
                           "lightgbm_shallow" in trees else {})},
        valid_raw=raw[chosen],
    )
    return selection, sample


def _row_hash_sum(part: pd.DataFrame) -> pd.Series:
    return pd.Series([int(pd.util.hash_pandas_object(part, index=False).to_numpy().sum(dtype=np.uint64))],
                     dtype=np.uint64)


def cluster_data_hash(train: dd.DataFrame, columns: list[str]) -> str:
    """16 hex characters identifying the training rows' values (whatever their order or partitioning)."""
    sums = train[columns].map_partitions(_row_hash_sum, meta=pd.Series(dtype=np.uint64)).compute()
    total = int(sums.to_numpy().sum(dtype=np.uint64))
    return hashlib.sha256(total.to_bytes(8, "little")).hexdigest()[:16]


def train_churn_on_cluster(settings: Settings, client: Client, progress: Callable[[str], None] | None = None):
    """:func:`training.churn_pipeline.train_churn` on the cluster: frame and fit distributed; log and register
    as locally (a ``challenger``; the gate decides).

    Returns
    -------
    training.churn_pipeline.ChurnTrainingResult
        ``split_rows['train']`` is the whole training window; the run's ``rows_train`` metric too,
        and its ``tenure.engine`` tag says ``dask``.
    """
    from tenure.training.churn_logging import log_churn_run
    from tenure.training.churn_pipeline import (
        ChurnData,
        ChurnTrainingResult,
        calibration_report,
        evaluate_churn_model,
        package_scorer,
        register_challenger,
    )
    from tenure.training.tracking import configure_mlflow

    say = progress or (lambda message: logger.info("%s", message))
    say("building the training frame on the cluster")
    frame, cutoffs = build_training_frame_on_cluster(settings)
    split = split_on_cluster(settings, frame, cutoffs)
    say(f"fitting lightgbm.dask on {split.train_rows:,} training rows over {split.train.npartitions} partitions")
    selection, sample = select_on_cluster(client, split, settings.churn)
    # the local stages read the test window; the training part they see is the baseline's sample
    data = ChurnData(settings, "generated", TimeSplit(sample, split.valid, split.test), split.numeric,
                     split.categorical)
    scorer = package_scorer(selection, data)
    scorer.metadata.update({"engine": "dask", "trained_through": str(max(
        split.cutoffs["valid" if selection.refit else "train"]))})
    say("evaluating against the baselines")
    evaluation = evaluate_churn_model(selection, scorer, data)
    say("logging to MLflow")
    run_id, model_uri = log_churn_run(settings, data, selection, scorer, evaluation)
    client_ml = configure_mlflow(settings)
    client_ml.log_metric(run_id, "rows_train", float(split.train_rows))
    client_ml.log_metric(run_id, "rows_train_baseline_sample", float(len(sample)))
    client_ml.set_tag(run_id, "tenure.engine", "dask")
    client_ml.set_tag(run_id, "tenure.data_window", f"{min(split.cutoffs['train'])} .. {max(split.cutoffs['test'])}")
    client_ml.set_tag(run_id, "tenure.training_data_hash",
                      cluster_data_hash(split.train, [*split.features, LABEL_COLUMN]))
    say("registering the challenger")
    version = register_challenger(settings, "generated", run_id, model_uri)
    return ChurnTrainingResult(
        run_id=run_id, version=version, metrics=evaluation.metrics, segments=evaluation.segments,
        importance=evaluation.importance,
        split_rows={"train": split.train_rows, "valid": len(split.valid), "test": len(split.test)},
        chosen=selection.chosen, valid=evaluation.valid, calibration=calibration_report(selection, evaluation),
        segment_summary=evaluation.segment_summary,
    )
