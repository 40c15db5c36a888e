"""Recommender training step: load canonical tables, hold out by time, (tune,) fit, evaluate against
baselines, log to MLflow, register the challenger; and the promotion gate's comparison.

What is registered is a model fitted on *all* events (so it knows the latest behaviour); its
figures come from a twin fitted on the events before the holdout cut-off and judged on the
holdout. The gate therefore refits both versions' recorded configurations on the current
holdout split rather than scoring the registered artefacts (which have seen that holdout).

Beside the time holdout, every run evaluates next-basket style (each customer's last order
held out, against "own most-bought" and "own most-recent"), learns the blend's weights where
the mode is ``blend`` (:mod:`training.recommender_blend`), and decides what
``exclude_purchased: auto`` means for the model from the share of purchases that are repeats.

With ``compute.engine: dask`` every split and matrix is built on the cluster
(:mod:`training.recommender_distributed`, :func:`_prepare_on_cluster`): the events never reach
this machine; ALS, the blend and the evaluation run here on the matrices.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tenure.settings import Settings
from tenure.training.interactions import (
    build_interactions,
    day_numbers,
    decide_exclude_purchased,
    holdout_targets,
    last_order_split,
    repeat_purchase_share,
    time_split,
)
from tenure.training.recommender_blend import learn_blend
from tenure.training.recommender_evaluate import BASELINES, NEXT_BASKET_BASELINES, evaluate
from tenure.training.recommender_model import ALSRecommender
from tenure.training.sources import RECOMMENDER_SOURCES, source_settings

logger = logging.getLogger(__name__)

GATE_METRICS = ("ndcg_at_k", "recall_at_k")
Progress = Callable[[str], None]


@dataclasses.dataclass
class RecommenderData:
    """Canonical tables for one training run, and how to read events as confidence."""

    events: pd.DataFrame
    customers: pd.DataFrame | None
    items: pd.DataFrame | None
    source: str
    path: str | None  # the prepared workspace of a public dataset (None: this workspace)
    event_weights: dict[str, float]
    target_event_types: tuple[str, ...] = ("purchase",)
    mode: str | None = None  # forced mode (None = settings.recommender.mode)
    purchase_event_types: tuple[str, ...] = ("purchase",)  # what "already bought" means


class NothingToRecommend(ValueError):
    """The data name fewer than two items (a churn-only history, say): a recommender has no choice to make."""


def require_items(data: RecommenderData) -> int:
    """The number of items a recommender can choose among (the catalogue, else the events' items).

    Raises
    ------
    NothingToRecommend
        When there are fewer than two: ALS cannot factorise one column (it fails with NaN factors).
    """
    if data.items is not None and len(data.items):
        n = int(data.items["item_id"].nunique())
    else:
        n = int(data.events["item_id"].dropna().nunique()) if "item_id" in data.events.columns else 0
    if n < 2:
        raise NothingToRecommend(f"the data name {n} item(s); a recommender needs at least 2 to choose among "
                                 "(a history without products trains the churn model only)")
    return n


@dataclasses.dataclass
class TrainResult:
    """What ``train_recommender`` did: run, version, the metrics table and the configuration used."""

    run_id: str | None
    model_version: str | None
    metrics: pd.DataFrame
    config: dict[str, Any]
    cutoff: pd.Timestamp
    n_train_customers: int
    n_items: int
    next_basket: pd.DataFrame | None = None  # each customer's last order held out
    repeat_share: float | None = None  # share of purchases that are repeats
    exclude_purchased_default: bool = True  # what exclude_purchased "auto" means for this model


# ---- data ----------------------------------------------------------------------------------


def read_movielens_events(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """MovieLens as canonical (customers, items, events), through ``features.adapters.read_movielens``.

    For benchmarks that evaluate on the files directly; training reads the prepared MovieLens
    workspace instead (:func:`load_data`). Ratings become implicit feedback there: rating >= 4
    is a ``purchase`` event (a positive, confidence 1 before ``alpha`` with
    :data:`MOVIELENS_EVENT_WEIGHTS`), lower ratings are ``view`` events (not positives, but
    "already seen"). All users count as consenting.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: pass --path to a MovieLens folder (ml-latest-small)")
    from tenure.features.adapters import read_movielens

    return read_movielens(path)


MOVIELENS_EVENT_WEIGHTS = {"purchase": 1.0}


def load_data(settings: Settings, source: str = "generated") -> RecommenderData:
    """Read the prepared tables of ``source``'s workspace (:func:`training.sources.source_settings`).

    ``generated`` = this workspace (``tenure generate`` + ingestion); ``movielens`` = the
    MovieLens workspace that ``pipelines.flows.prepare_source`` ingested.
    """
    from tenure.features.tables import read_customers, read_events, read_items

    if source not in RECOMMENDER_SOURCES:
        raise ValueError(f"source must be one of {RECOMMENDER_SOURCES}, got {source!r}")
    ws = source_settings(settings, source)
    events = read_events(ws, columns=["event_id", "customer_id", "event_at", "event_type", "item_id"])
    if events is None or len(events) == 0:
        hint = ("run 'tenure generate' and ingest first" if source == "generated" else
                f"prepare it first (`tenure train recommender --source {source} --path DIR` ingests the dataset)")
        raise ValueError(f"no events under {ws.paths.tables_dir}: {hint}")
    customers, items = read_customers(ws), read_items(ws)
    if source == "generated":  # a customer who withdrew personalization is not learned from (privacy/consent.py)
        from tenure.privacy.consent import withdrawn_customers

        withdrawn = withdrawn_customers(settings, "personalization")
        if withdrawn:
            events = events[~events["customer_id"].isin(withdrawn)].reset_index(drop=True)
    if source == "movielens":
        # A film is not "bought again": rebuy modes make no sense, so MovieLens always runs as plain ALS.
        # Every rated film counts as "already seen" (excluded), whatever the rating.
        return RecommenderData(events, customers, items, source, str(ws.paths.data_dir),
                               dict(MOVIELENS_EVENT_WEIGHTS), mode="als", purchase_event_types=("purchase", "view"))
    return RecommenderData(events, customers, items, source, None, dict(settings.recommender.event_weights))


# ---- configuration -------------------------------------------------------------------------


def config_from_settings(settings: Settings, data: RecommenderData | None = None) -> dict[str, Any]:
    """The recommender configuration of a run (what the manifest records and the gate refits)."""
    r = settings.recommender
    return {
        "factors": r.factors, "regularization": r.regularization, "alpha": r.alpha,
        "iterations": r.iterations, "weighting": r.weighting,
        "mode": data.mode if data is not None and data.mode else r.mode,
        "blend_weight": r.blend_weight, "half_life_days": r.time_decay_half_life_days,
        "learn_blend": r.learn_blend, "order_window_hours": r.order_window_hours,
        "event_weights": dict(data.event_weights if data is not None else r.event_weights),
        "use_gpu": r.use_gpu, "random_state": r.random_state,
    }


def _matrix(data: RecommenderData, events: pd.DataFrame, config: Mapping[str, Any],
            as_of: pd.Timestamp | None = None, item_ids=None):
    return build_interactions(
        events, data.customers, data.items, event_weights=config["event_weights"],
        half_life_days=config["half_life_days"], as_of=as_of, weighting=config["weighting"],
        purchase_event_types=data.purchase_event_types, item_ids=item_ids,
    )


def _model(config: Mapping[str, Any], num_threads: int) -> ALSRecommender:
    return ALSRecommender(
        factors=int(config["factors"]), regularization=float(config["regularization"]),
        alpha=float(config["alpha"]), iterations=int(config["iterations"]), use_gpu=config["use_gpu"],
        mode=config["mode"], blend_weight=float(config["blend_weight"]), num_threads=num_threads,
        random_state=config["random_state"],
    )


def _fit(config: Mapping[str, Any], matrix, num_threads: int) -> ALSRecommender:
    return _model(config, num_threads).fit(matrix.user_items, matrix.purchases, timing=matrix.timing)


def learn_blend_weights(data: RecommenderData, config: Mapping[str, Any], events: pd.DataFrame,
                        num_threads: int = 0, holdout_days: int | None = None) -> dict[str, float] | None:
    """The learned blend's weights from ``events`` (None outside blend mode, with ``learn_blend``
    off, or with too little data: the fixed blend is used then). ``holdout_days``: learn for a
    time holdout of that length instead of for the next basket (see :mod:`training.recommender_blend`)."""
    if config["mode"] != "blend" or not config.get("learn_blend", True):
        return None
    return learn_blend(
        events, lambda ev: _matrix(data, ev, config),
        lambda matrix: _fit(config, matrix, num_threads).als_scores,
        data.purchase_event_types, data.target_event_types, float(config.get("order_window_hours", 1.0)),
        config["random_state"], holdout_days=holdout_days,
    )


def _categories(data: RecommenderData, item_ids: np.ndarray) -> np.ndarray | None:
    if data.items is None or "category" not in data.items.columns:
        return None
    cats = data.items.assign(item_id=data.items["item_id"].astype(str)).drop_duplicates("item_id")
    return cats.set_index("item_id")["category"].reindex(item_ids).fillna("unknown").astype(str).to_numpy()


def holdout_evaluation(
    data: RecommenderData,
    config: Mapping[str, Any],
    holdout_days: int,
    k: int,
    baselines: tuple[str, ...] = BASELINES,
    num_threads: int = 0,
    events: pd.DataFrame | None = None,
    bpr_params: Mapping[str, float] | None = None,
    cosine_k: int = 100,
) -> tuple[pd.DataFrame, pd.Timestamp, Any]:
    """Fit ``config`` on events before the cut-off and evaluate on the holdout.

    Returns
    -------
    (metrics table, cut-off, training InteractionMatrix)
    """
    events = data.events if events is None else events
    train_ev, test_ev, cutoff = time_split(events, holdout_days)
    train = _matrix(data, train_ev, config, as_of=cutoff)
    targets = holdout_targets(test_ev, train, data.target_event_types)
    if not targets:
        raise ValueError(
            f"no training customer acted on an item in the last {holdout_days} days: nothing to "
            "evaluate on; lengthen recommender.holdout_days or add data"
        )
    # the blend learns for the question asked here: purchases in the next holdout_days from the cut-off
    blend = learn_blend_weights(data, config, train_ev, num_threads, holdout_days=holdout_days)
    table = _judge(data, config, train, targets, blend, k, baselines, num_threads,
                   float(day_numbers(pd.DatetimeIndex([cutoff]))[0]), bpr_params, cosine_k)
    return table, cutoff, train


def _judge(data: RecommenderData, config: Mapping[str, Any], train, targets, blend, k: int,
           baselines: tuple[str, ...], num_threads: int, now, bpr_params: Mapping[str, float] | None = None,
           cosine_k: int = 100) -> pd.DataFrame:
    """Fit ``config`` on ``train`` (with the blend's weights) and evaluate it and the baselines on ``targets``."""
    model = _fit(config, train, num_threads).set_blend(blend)
    return evaluate(model, train, targets, k, _categories(data, train.item_ids), baselines,
                    num_threads=num_threads, random_state=config["random_state"],
                    bpr_params=bpr_params, cosine_k=cosine_k, now=now)


def next_basket_evaluation(
    data: RecommenderData,
    config: Mapping[str, Any],
    k: int,
    baselines: tuple[str, ...] = NEXT_BASKET_BASELINES,
    num_threads: int = 0,
) -> pd.DataFrame:
    """Each customer's last order held out (:func:`training.interactions.last_order_split`).

    The model (and its learned blend) is fitted on everything before each customer's last
    order and asked at the moment of that order; customers with a single order are not
    evaluated. Baselines by default: popular, "own most-bought" (``buy_again``) and "own
    most-recent" (``own_recent``).
    """
    history, last_orders, order_at = last_order_split(data.events, data.purchase_event_types,
                                                      float(config.get("order_window_hours", 1.0)))
    if history.empty or last_orders.empty:
        raise ValueError("no customer has an order after earlier purchases: nothing to evaluate next-basket style")
    train = _matrix(data, history, config)
    targets = holdout_targets(last_orders, train, data.target_event_types)
    if not targets:
        raise ValueError("no customer's last order has an item the model knows: nothing to evaluate")
    blend = learn_blend_weights(data, config, history, num_threads)
    return _judge(data, config, train, targets, blend, k, baselines, num_threads, _order_days(order_at, train, targets))


def _order_days(order_at: pd.Series, train, targets) -> dict[int, float]:
    """Each target row's request moment (day number): the time of that customer's last order."""
    days = pd.Series(day_numbers(order_at), index=order_at.index.astype(str))
    return {row: float(days[train.customer_ids[row]]) for row in targets}


def tune(
    data: RecommenderData,
    config: Mapping[str, Any],
    n_trials: int,
    holdout_days: int,
    k: int,
    num_threads: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Optuna search on a validation split inside the training period (never the test holdout).

    The validation cut-off lies ``holdout_days`` before the test cut-off; the objective is
    nDCG@k of the model there. Searched: factors, regularization, alpha, weighting (none/bm25)
    and, in blend mode, blend_weight. Returns the best configuration.
    """
    import optuna

    if n_trials < 1:
        raise ValueError(f"--tune needs at least 1 trial, got {n_trials}")
    train_ev, _, _ = time_split(data.events, holdout_days)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    factor_choices = sorted({16, 32, 64, 128, int(config["factors"])})
    reg_range, alpha_range = (1e-3, 10.0), (0.5, 50.0)

    def objective(trial: optuna.Trial) -> float:
        trial_config = dict(config)
        trial_config.update(
            factors=trial.suggest_categorical("factors", factor_choices),
            regularization=trial.suggest_float("regularization", *reg_range, log=True),
            alpha=trial.suggest_float("alpha", *alpha_range, log=True),
            weighting=trial.suggest_categorical("weighting", ["none", "bm25"]),
        )
        if config["mode"] == "blend":
            trial_config["blend_weight"] = trial.suggest_float("blend_weight", 0.0, 1.0)
        table, _, _ = holdout_evaluation(data, trial_config, holdout_days, k, baselines=(),
                                         num_threads=num_threads, events=train_ev)
        if progress:
            progress(f"trial {trial.number + 1}/{n_trials}: validation ndcg@{k} {table.loc['model', 'ndcg_at_k']:.4f}")
        return float(table.loc["model", "ndcg_at_k"])

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=config["random_state"]))
    # The configured values are the first trial (clipped into the search ranges).
    first = {"factors": int(config["factors"]),
             "regularization": float(np.clip(config["regularization"], *reg_range)),
             "alpha": float(np.clip(config["alpha"], *alpha_range)),
             "weighting": config["weighting"] if config["weighting"] in ("none", "bm25") else "none"}
    if config["mode"] == "blend":
        first["blend_weight"] = float(config["blend_weight"])
    study.enqueue_trial(first)
    study.optimize(objective, n_trials=n_trials)
    best = dict(config)
    best.update(study.best_params)
    best["tuned_validation_ndcg_at_k"] = float(study.best_value)
    logger.info("tuning: best validation ndcg@%d %.4f with %s", k, study.best_value, study.best_params)
    return best


# ---- the evaluations and the serving matrix, locally or on the cluster --------------------------


@dataclasses.dataclass
class Prepared:
    """What a training run evaluated and the serving model's matrix, however they were built.

    ``table``, ``cutoff``, ``train``: the time holdout (:func:`holdout_evaluation`); ``next_basket``: the
    next-basket table (None when there was nothing to evaluate); ``end``: the latest event; ``full``: the
    matrix of every event (decayed to ``end``); ``blend``: the serving model's learned blend (None: fixed);
    ``engine``: ``local`` or ``dask``.
    """

    repeat_share: float
    exclude_default: bool
    table: pd.DataFrame
    cutoff: pd.Timestamp
    train: Any
    next_basket: pd.DataFrame | None
    end: pd.Timestamp
    full: Any
    blend: dict[str, float] | None
    engine: str = "local"


def _say_repeats(settings: Settings, say: Progress, repeat_share: float) -> bool:
    """``exclude_purchased: auto`` for this model, from the share of repeat purchases (said as progress)."""
    r = settings.recommender
    exclude_default = decide_exclude_purchased(repeat_share, r.exclude_purchased_repeat_share)
    say(f"{repeat_share:.0%} of purchases are repeats: exclude_purchased 'auto' "
        f"{'leaves bought items out' if exclude_default else 'keeps bought items in'} "
        f"(threshold {r.exclude_purchased_repeat_share:.0%})")
    return exclude_default


def _say_next_basket(settings: Settings, say: Progress, next_basket: pd.DataFrame) -> None:
    k = settings.recommender.k
    say(f"next basket (last order held out, {int(next_basket['n_customers'].iloc[0]):,} customers): "
        + ", ".join(f"{name} P@{k} {next_basket.loc[name, 'precision_at_k']:.3f}"
                    for name in next_basket.index if name in ("model", "buy_again", "own_recent")))


def _prepare_locally(settings: Settings, data: RecommenderData, config: Mapping[str, Any], num_threads: int,
                     say: Progress) -> Prepared:
    """The evaluations and the serving matrix from the events in memory (``data.events``)."""
    r = settings.recommender
    repeat_share = repeat_purchase_share(data.events, data.purchase_event_types)
    exclude_default = _say_repeats(settings, say, repeat_share)
    table, cutoff, train = holdout_evaluation(data, config, r.holdout_days, r.k, num_threads=num_threads)
    say(f"evaluated on the holdout after {cutoff:%Y-%m-%d}: ndcg@{r.k} {table.loc['model', 'ndcg_at_k']:.4f}")
    next_basket = None
    try:
        next_basket = next_basket_evaluation(data, config, r.k, num_threads=num_threads)
        _say_next_basket(settings, say, next_basket)
    except ValueError as exc:
        say(f"no next-basket evaluation: {exc}")
    end = pd.to_datetime(data.events["event_at"], utc=True).max()
    full = _matrix(data, data.events, config, as_of=end)
    blend = learn_blend_weights(data, config, data.events, num_threads)
    return Prepared(repeat_share, exclude_default, table, cutoff, train, next_basket, end, full, blend)


def _on_cluster(settings: Settings, data: RecommenderData | None, source: str, tune_trials: int) -> bool:
    """Build the matrices on the cluster? With ``compute.engine: dask`` for this workspace's events; tuning
    (many nested splits) and in-memory or public-dataset sources stay local."""
    if settings.compute.engine != "dask" or data is not None or source != "generated":
        return False
    if tune_trials:
        logger.warning("recommender tuning reads the events on this machine (compute.engine: dask builds the "
                       "matrices on the cluster only without --tune)")
        return False
    return True


def cluster_data(settings: Settings) -> RecommenderData:
    """This workspace's recommender data without its events (they stay on the cluster): the items table and how
    events count."""
    from tenure.features.tables import read_items

    return RecommenderData(pd.DataFrame(columns=["event_id", "customer_id", "event_at", "event_type", "item_id"]),
                           None, read_items(settings), "generated", None, dict(settings.recommender.event_weights))


class _ClusterSplits:
    """The splits of one run on the cluster (:func:`training.recommender_distributed.split_on_cluster`) with
    ``config``'s interaction settings; the events stay on the workers for every split."""

    def __init__(self, settings: Settings, client, data: RecommenderData, config: Mapping[str, Any]):
        from tenure.privacy.consent import withdrawn_customers
        from tenure.training import recommender_distributed as rd

        self.rd, self.client, self.data, self.config = rd, client, data, config
        # a customer who withdrew personalization is not learned from (as load_data does)
        self.parts = rd.event_partitions(settings, client, withdrawn_customers(settings, "personalization"))
        self.stats = rd.event_stats(client, self.parts, data.purchase_event_types)
        self.catalogue = [] if data.items is None else data.items["item_id"].astype(str).tolist()
        if not self.stats.n_events:
            raise ValueError(f"no events under {settings.paths.tables_dir}: run 'tenure generate' and ingest first")

    def using(self, config: Mapping[str, Any]) -> _ClusterSplits:
        """The same events on the workers, split with another configuration's interaction settings."""
        twin = copy.copy(self)
        twin.config = config
        return twin

    def split(self, rule, as_of=None):
        c, d = self.config, self.data
        return self.rd.split_on_cluster(
            self.client, self.parts, rule, event_weights=c["event_weights"], half_life_days=c["half_life_days"],
            as_of=as_of, weighting=c["weighting"], purchase_event_types=d.purchase_event_types,
            target_event_types=d.target_event_types, catalogue=self.catalogue)

    def holdout(self, holdout_days: int):
        """:func:`training.interactions.time_split`'s split at ``holdout_days`` before the last event:
        (ClusterSplit, cut-off, targets)."""
        first, end = self.stats.first, self.stats.last
        cutoff = end - pd.Timedelta(days=holdout_days)
        if cutoff <= first:
            raise ValueError(
                f"holdout of {holdout_days} days starts at {cutoff}, before the first event {first}: "
                "use a shorter recommender.holdout_days or more history")
        split = self.split(("time", cutoff, end), as_of=cutoff)
        targets = holdout_targets(split.held_out, split.train, self.data.target_event_types)
        if not targets:
            raise ValueError(
                f"no training customer acted on an item in the last {holdout_days} days: nothing to "
                "evaluate on; lengthen recommender.holdout_days or add data")
        return split, cutoff, targets

    def holdout_blend(self, cutoff: pd.Timestamp, holdout_days: int, num_threads: int) -> dict[str, float] | None:
        """:func:`learn_blend_weights` for the time holdout: learned on a second cut-off ``holdout_days`` before
        the end of the training part."""
        if not _learns_blend(self.config):
            return None
        end = self.rd.latest_before(self.client, self.parts, cutoff)
        inner = end - pd.Timedelta(days=holdout_days) if end is not None else None
        if inner is None or inner <= self.stats.first:
            logger.info("blend: the training part is too short for a %d-day holdout; the fixed blend is used",
                        holdout_days)
            return None
        split = self.split(("time", inner, end))
        targets = holdout_targets(split.held_out, split.train, self.data.target_event_types)
        now = dict.fromkeys(targets, float(day_numbers(pd.DatetimeIndex([inner]))[0]))
        return _blend_on(self.config, split.train, targets, now, num_threads)

    def last_order(self, depth: int = 1):
        """:func:`training.interactions.last_order_split` applied ``depth`` times: (ClusterSplit, targets)."""
        split = self.split(("last_order", float(self.config.get("order_window_hours", 1.0)), depth))
        return split, holdout_targets(split.held_out, split.train, self.data.target_event_types)

    def release(self) -> None:
        self.parts.release()


def _learns_blend(config: Mapping[str, Any]) -> bool:
    return config["mode"] == "blend" and bool(config.get("learn_blend", True))


def _blend_on(config: Mapping[str, Any], train, targets: Mapping[int, np.ndarray], now: Mapping[int, float],
              num_threads: int) -> dict[str, float] | None:
    """:func:`training.recommender_blend.learn_blend`'s learning step on a split built elsewhere (the cluster):
    None outside blend mode or with fewer than ``MIN_CUSTOMERS`` held-out customers."""
    from tenure.training.recommender_blend import (
        MIN_CUSTOMERS,
        candidate_features,
        fit_coefficients,
    )

    if not _learns_blend(config):
        return None
    if len(targets) < MIN_CUSTOMERS:
        logger.info("blend: only %d customers with held-out purchases (< %d); the fixed blend is used",
                    len(targets), MIN_CUSTOMERS)
        return None
    X, y = candidate_features(_fit(config, train, num_threads).als_scores, train, targets, now)
    return fit_coefficients(X, y, config["random_state"])


def _prepare_on_cluster(settings: Settings, data: RecommenderData, config: Mapping[str, Any], num_threads: int,
                        say: Progress, client=None) -> Prepared:
    """:func:`_prepare_locally` with the events on the cluster: every split (time holdout, the blend's inner
    split, last orders, all events) is built per customer-hash partition with the local split functions and
    ``build_interactions``; only matrices, held-out pairs and last-order times reach this machine.

    ``client``: a connected ``distributed.Client`` (default: :func:`compute.cluster.dask_client` for the step).
    """
    if client is None:
        from tenure.compute.cluster import dask_client

        with dask_client(settings.compute) as own:
            return _prepare_on_cluster(settings, data, config, num_threads, say, own)
    r = settings.recommender
    splits = _ClusterSplits(settings, client, data, config)
    try:
        say(f"{splits.stats.n_events:,} events on the cluster ({settings.compute.partitions} partitions)")
        repeat_share = splits.stats.repeat_share
        exclude_default = _say_repeats(settings, say, repeat_share)
        held, cutoff, targets = splits.holdout(r.holdout_days)
        blend = splits.holdout_blend(cutoff, r.holdout_days, num_threads)
        table = _judge(data, config, held.train, targets, blend, r.k, BASELINES, num_threads,
                       float(day_numbers(pd.DatetimeIndex([cutoff]))[0]))
        say(f"evaluated on the holdout after {cutoff:%Y-%m-%d}: ndcg@{r.k} {table.loc['model', 'ndcg_at_k']:.4f}")
        last, last_targets = splits.last_order(1)
        next_basket = None
        try:
            if not last.n_history or not last.n_held_out:
                raise ValueError("no customer has an order after earlier purchases: nothing to evaluate "
                                 "next-basket style")
            if not last_targets:
                raise ValueError("no customer's last order has an item the model knows: nothing to evaluate")
            inner_blend = None
            if _learns_blend(config):
                inner, inner_targets = splits.last_order(2)
                inner_blend = _blend_on(config, inner.train, inner_targets,
                                        _order_days(inner.order_at, inner.train, inner_targets), num_threads)
            next_basket = _judge(data, config, last.train, last_targets, inner_blend, r.k, NEXT_BASKET_BASELINES,
                                 num_threads, _order_days(last.order_at, last.train, last_targets))
            _say_next_basket(settings, say, next_basket)
        except ValueError as exc:
            say(f"no next-basket evaluation: {exc}")
        end = splits.stats.last
        full = splits.split(("all",), as_of=end).train
        blend = None  # the serving model's blend learns from everyone's last order (the split above)
        if last.n_history and last.n_held_out:
            blend = _blend_on(config, last.train, last_targets,
                              _order_days(last.order_at, last.train, last_targets), num_threads)
    finally:
        splits.release()
    return Prepared(repeat_share, exclude_default, table, cutoff, held.train, next_basket, end, full, blend, "dask")


# ---- train + log + register ----------------------------------------------------------------


def train_recommender(
    settings: Settings,
    *,
    tune_trials: int = 0,
    source: str = "generated",
    data: RecommenderData | None = None,
    register: bool = True,
    num_threads: int = 0,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, evaluate against baselines, log to MLflow and register as ``challenger``.

    Parameters
    ----------
    settings:
        Settings (``recommender`` and ``mlflow`` sections are used).
    tune_trials:
        Optuna trials on the validation split (0 = use the settings as they are).
    source:
        Whose prepared tables to read (see :func:`load_data`); ``data`` wins when given.
    register:
        Register the logged model as a new version aliased ``challenger``.
    num_threads:
        Threads for implicit (0 = all cores).
    progress:
        Called with a short message after each step.
    """
    say = progress or (lambda message: logger.info("%s", message))
    r = settings.recommender
    if _on_cluster(settings, data, source, tune_trials):
        data = cluster_data(settings)
        require_items(data)
        config = config_from_settings(settings, data)
        prepared = _prepare_on_cluster(settings, data, config, num_threads, say)
    else:
        if data is None:
            data = load_data(settings, source)
        say(f"loaded {len(data.events):,} events ({data.source})")
        require_items(data)
        config = config_from_settings(settings, data)
        if tune_trials:
            config = tune(data, config, tune_trials, r.holdout_days, r.k, num_threads, progress=say)
        prepared = _prepare_locally(settings, data, config, num_threads, say)
    table, cutoff, train, next_basket = prepared.table, prepared.cutoff, prepared.train, prepared.next_basket
    repeat_share, exclude_default, end, full = (prepared.repeat_share, prepared.exclude_default, prepared.end,
                                                prepared.full)
    model = _fit(config, full, num_threads).set_blend(prepared.blend)
    say(f"fitted the serving model on {full.shape[0]:,} customers x {full.shape[1]:,} items")
    runtime = model.to_runtime(full, data.items, params={
        "event_weights": config["event_weights"], "weighting": config["weighting"],
        "half_life_days": config["half_life_days"], "use_gpu": config["use_gpu"],
        "exclude_purchased_default": exclude_default, "repeat_share": repeat_share,
    })
    run_id, version = None, None
    with tempfile.TemporaryDirectory(prefix="tenure-recommender-") as tmp:
        model_dir = runtime.save(Path(tmp) / "recommender", extra_manifest={
            "source": data.source, "source_path": data.path, "trained_until": str(end),
            "holdout_cutoff": str(cutoff), "config": config, "used_gpu": bool(model.used_gpu_),
            "target_event_types": list(data.target_event_types),
            "metrics": {key: float(v) for key, v in table.loc["model"].items()},
            "next_basket_metrics": None if next_basket is None else {
                key: float(v) for key, v in next_basket.loc["model"].items()},
            "repeat_share": repeat_share, "exclude_purchased_default": exclude_default,
        })
        run_id = _log_run(settings, config, table, model_dir, data, cutoff, full, train, tune_trials,
                          bool(model.used_gpu_), next_basket, repeat_share, exclude_default, prepared.engine)
        say(f"logged MLflow run {run_id}")
        if register:
            from tenure.registry.models import register_version

            version = register_version(settings, "recommender", run_id, artifact_path="model",
                                       tags={"mode": config["mode"], "source": data.source})
            say(f"registered {settings.mlflow.recommender_model_name} version {version} as challenger")
    return TrainResult(run_id, version, table, config, cutoff, train.shape[0], train.shape[1], next_basket,
                       repeat_share, exclude_default)


def _log_run(settings, config, table, model_dir, data, cutoff, full, train, tune_trials, used_gpu,
             next_basket=None, repeat_share=None, exclude_default=True, engine: str = "local") -> str:
    import mlflow

    from tenure.registry.recommender_pyfunc import RecommenderPyfunc
    from tenure.training.tracking import ensure_experiment

    experiment_id = ensure_experiment(settings, settings.mlflow.recommender_experiment)
    r = settings.recommender
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.set_tag("tenure.engine", engine)  # where the matrices were built (dask: on the cluster)
        params = {key: value for key, value in config.items() if key != "event_weights"}
        params.update({
            "event_weights": json.dumps(config["event_weights"], sort_keys=True), "k": r.k,
            "holdout_days": r.holdout_days, "holdout_cutoff": str(cutoff), "source": data.source,
            "n_customers": full.shape[0], "n_items": full.shape[1], "n_interactions": full.nnz,
            "n_train_customers": train.shape[0], "tune_trials": tune_trials, "used_gpu": used_gpu,
            "n_eval_customers": int(table["n_customers"].iloc[0]),
            "repeat_share": repeat_share, "exclude_purchased_default": exclude_default,
        })
        mlflow.log_params({key: ("None" if v is None else v) for key, v in params.items()})
        metrics: dict[str, float] = {}
        for ranker, row in table.drop(columns=["n_customers"]).iterrows():
            for name, value in row.items():
                if pd.isna(value):
                    continue
                if ranker == "model":
                    metrics[name] = float(value)
                    if config["mode"] == "als":  # the same answers, under the name monitoring looks up
                        metrics[f"excluding_purchased/{name}"] = float(value)
                elif ranker == "model_excluding_purchased":
                    metrics[f"excluding_purchased/{name}"] = float(value)
                else:
                    metrics[f"baseline/{ranker}/{name}"] = float(value)
        if next_basket is not None:
            for ranker, row in next_basket.drop(columns=["n_customers"]).iterrows():
                for name, value in row.items():
                    if not pd.isna(value):
                        metrics[f"next_basket/{ranker}/{name}"] = float(value)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            csv = Path(tmp) / "metrics.csv"
            table.to_csv(csv)
            if next_basket is not None:
                next_basket.to_csv(Path(tmp) / "next_basket.csv")
                mlflow.log_artifact(str(Path(tmp) / "next_basket.csv"), artifact_path="evaluation")
            mlflow.log_artifact(str(csv), artifact_path="evaluation")
        mlflow.log_artifacts(str(model_dir), artifact_path="recommender")
        mlflow.pyfunc.log_model(
            name="model", python_model=RecommenderPyfunc(), artifacts={"recommender": str(model_dir)},
            pip_requirements=["implicit==0.7.3", "numpy", "scipy", "pandas", "threadpoolctl"],
        )
        return run.info.run_id


# ---- gate ----------------------------------------------------------------------------------


def _version_manifest(settings: Settings, version: str) -> dict[str, Any]:
    """The ``manifest.json`` of a registered version (its source and configuration), through the
    registry's one download and local cache (:class:`registry.champion.ModelCache`)."""
    from tenure.registry.champion import ModelCache
    from tenure.registry.recommender_runtime import _find_model_dir

    folder = ModelCache.from_settings(settings).download("recommender", str(version))
    return json.loads((_find_model_dir(folder) / "manifest.json").read_text())


def compare_for_gate(settings: Settings, champion_version: str, challenger_version: str,
                     data: RecommenderData | None = None):
    """Judge the challenger against the champion on the same, current holdout.

    Both versions' recorded configurations are refitted on the events before the current
    cut-off (``settings.recommender.holdout_days`` before the latest event, data source of the
    challenger) and scored on the holdout. The challenger is promoted when its nDCG@k and
    recall@k are each at least the champion's minus ``gate_ndcg_tolerance``. ``data``
    replaces the tables (tests, in-memory sources).
    """
    from tenure.registry.models import GateDecision

    r = settings.recommender
    challenger = _version_manifest(settings, challenger_version)
    champion = _version_manifest(settings, champion_version)
    source = challenger.get("source", "generated")
    on_cluster = _on_cluster(settings, data, source, 0)
    if data is None:
        data = cluster_data(settings) if on_cluster else load_data(settings, source)
    configs = {}
    for role, manifest in (("challenger", challenger), ("champion", champion)):
        config = dict(config_from_settings(settings, data))
        config.update(manifest.get("config", {}))
        configs[role] = config
    if on_cluster:  # the events stay on the workers; both configurations are split there
        tables, cutoff = _holdout_tables_on_cluster(settings, data, configs)
    else:
        tables = {}
        for role, config in configs.items():
            tables[role], cutoff, _ = holdout_evaluation(data, config, r.holdout_days, r.k, baselines=())
    scores = {role: {m: float(table.loc["model", m]) for m in GATE_METRICS} for role, table in tables.items()}
    tol = r.gate_ndcg_tolerance
    worse = [m for m in GATE_METRICS if scores["challenger"][m] < scores["champion"][m] - tol]
    detail = ", ".join(
        f"{m.replace('_at_k', f'@{r.k}')} {scores['challenger'][m]:.4f} vs {scores['champion'][m]:.4f}"
        for m in GATE_METRICS)
    if worse:
        reason = f"challenger worse than champion beyond tolerance {tol} on the holdout after {cutoff:%Y-%m-%d}: {detail}"
    else:
        reason = f"challenger not worse than champion (tolerance {tol}) on the holdout after {cutoff:%Y-%m-%d}: {detail}"
    return GateDecision(promoted=not worse, reason=reason, challenger_metrics=scores["challenger"],
                        champion_metrics=scores["champion"])


def _holdout_tables_on_cluster(settings: Settings, data: RecommenderData, configs: Mapping[str, Mapping[str, Any]],
                               client=None) -> tuple[dict[str, pd.DataFrame], pd.Timestamp]:
    """:func:`holdout_evaluation` (no baselines) of each configuration with the events on the cluster, read once:
    ({name: metrics table}, cut-off)."""
    if client is None:
        from tenure.compute.cluster import dask_client

        with dask_client(settings.compute) as own:
            return _holdout_tables_on_cluster(settings, data, configs, own)
    r = settings.recommender
    first = next(iter(configs.values()))
    splits = _ClusterSplits(settings, client, data, first)
    tables, cutoff = {}, None
    try:
        for name, config in configs.items():
            own = splits.using(config)
            held, cutoff, targets = own.holdout(r.holdout_days)
            blend = own.holdout_blend(cutoff, r.holdout_days, 0)
            tables[name] = _judge(data, config, held.train, targets, blend, r.k, (), 0,
                                  float(day_numbers(pd.DatetimeIndex([cutoff]))[0]))
    finally:
        splits.release()
    return tables, cutoff
