"""Honest evaluation of the recommender: time-based holdout, ranking metrics at k, baselines side by side.

Metric definitions (binary relevance; ``R_u`` = the customer's top-k list, ``T_u`` = items
the customer acted on in the holdout; averages over evaluated customers, i.e. customers in
the training matrix with at least one holdout item; the same customers and the same
definitions for the model and every baseline):

* ``precision_at_k`` = |R_u ∩ T_u| / k  (divides by k; implicit's ``ranking_metrics_at_k``
  divides by min(k, |T_u|), reported as ``precision_implicit_at_k`` for comparison with
  published figures);
* ``recall_at_k`` = |R_u ∩ T_u| / |T_u|;
* ``ndcg_at_k`` = DCG / ideal DCG with gain 1 / log2(rank + 1), ideal over min(k, |T_u|) hits;
* ``map_at_k`` = sum over hit ranks r of precision@r, divided by min(k, |T_u|);
* ``hit_rate_at_k`` = share of customers with at least one hit;
* ``coverage_at_k`` = distinct items recommended to evaluated customers / items in the catalogue;
* ``popularity_percentile_at_k`` = mean over all recommended items of the item's training
  popularity percentile (1.0 = most popular item, 0 = never interacted): popularity bias.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tenure.registry.recommender_runtime import top_k
from tenure.training.interactions import InteractionMatrix
from tenure.training.recommender_model import ALSRecommender

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = (
    "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k",
    "coverage_at_k", "popularity_percentile_at_k", "precision_implicit_at_k",
)
BASELINES: tuple[str, ...] = ("popular", "popular_in_category", "buy_again", "own_recent", "item_cosine", "bpr",
                               "als")
NEXT_BASKET_BASELINES: tuple[str, ...] = ("popular", "buy_again", "own_recent")
_BATCH = 2048

ScoreFn = Callable[[np.ndarray], np.ndarray]


def popularity_percentiles(user_items: sp.csr_matrix) -> np.ndarray:
    """Percentile (0..1, 1 = most popular) of each item's number of interacting customers."""
    counts = np.asarray((user_items > 0).sum(axis=0)).ravel().astype(np.float64)
    if len(counts) == 0:
        return counts
    from scipy.stats import rankdata

    pct = rankdata(counts, method="average") / len(counts)
    pct[counts == 0] = 0.0
    return pct


def ranking_metrics(
    recommendations: Mapping[int, np.ndarray],
    targets: Mapping[int, np.ndarray],
    k: int,
    n_items: int,
    popularity_pct: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics at ``k`` (definitions in the module docstring).

    Parameters
    ----------
    recommendations:
        customer row -> item columns, best first (only the first ``k`` count).
    targets:
        customer row -> relevant item columns in the holdout; the customers evaluated.
    n_items:
        Catalogue size (for coverage).
    popularity_pct:
        Array (items,) from :func:`popularity_percentiles`; None leaves that metric out.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not targets:
        raise ValueError("no customer has holdout items to evaluate on: lengthen the holdout or add data")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    sums = dict.fromkeys(("precision", "recall", "ndcg", "map", "hit", "precision_implicit"), 0.0)
    seen: set[int] = set()
    pop_sum, pop_n = 0.0, 0
    for row, relevant in targets.items():
        recs = np.asarray(recommendations.get(row, np.empty(0, np.int64)))[:k]
        seen.update(recs.tolist())
        if popularity_pct is not None and len(recs):
            pop_sum += float(popularity_pct[recs].sum())
            pop_n += len(recs)
        hits = np.isin(recs, relevant)
        n_hit = int(hits.sum())
        n_rel = len(relevant)
        denom = min(k, n_rel)
        sums["precision"] += n_hit / k
        sums["precision_implicit"] += n_hit / denom
        sums["recall"] += n_hit / n_rel
        sums["hit"] += float(n_hit > 0)
        if n_hit:
            sums["ndcg"] += float(discounts[: len(recs)][hits].sum() / discounts[:denom].sum())
            ranks = np.flatnonzero(hits)
            sums["map"] += float((np.arange(1, n_hit + 1) / (ranks + 1)).sum() / denom)
    n = len(targets)
    out = {
        "precision_at_k": sums["precision"] / n,
        "recall_at_k": sums["recall"] / n,
        "ndcg_at_k": sums["ndcg"] / n,
        "map_at_k": sums["map"] / n,
        "hit_rate_at_k": sums["hit"] / n,
        "coverage_at_k": len(seen) / max(n_items, 1),
        "precision_implicit_at_k": sums["precision_implicit"] / n,
    }
    if popularity_pct is not None:
        out["popularity_percentile_at_k"] = pop_sum / max(pop_n, 1)
    return out


def _rank(score_fn: ScoreFn, rows: np.ndarray, k: int, exclude: sp.csr_matrix | None,
          n_items: int) -> dict[int, np.ndarray]:
    recs: dict[int, np.ndarray] = {}
    step = max(1, min(_BATCH, 4_000_000 // max(n_items, 1)))  # dense score rows of about 16-32 MB
    for start in range(0, len(rows), step):
        batch = rows[start:start + step]
        scores = np.asarray(score_fn(batch), dtype=np.float32)
        ranked = top_k(scores, k, exclude=None if exclude is None else exclude[batch])
        recs.update({int(r): cols for r, (cols, _) in zip(batch, ranked)})
    return recs


def _dense(m: sp.spmatrix | np.ndarray) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def baseline_scorers(
    train: InteractionMatrix,
    item_categories: Sequence[str] | None,
    names: Sequence[str],
    model: ALSRecommender | None = None,
    bpr_params: Mapping[str, float] | None = None,
    num_threads: int = 0,
    random_state: int | None = 42,
    cosine_k: int = 100,
) -> dict[str, tuple[ScoreFn, bool]]:
    """Score functions of the baselines: name -> (rows -> scores (rows x items), may_exclude).

    ``may_exclude`` is False for buy-again ("own most-bought": the customer's items by purchase
    count) and own-recent ("own most-recent": their items by the time of the last purchase),
    which by definition recommend bought items; both fill up with popular items.
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {list(BASELINES)}")
    ui = train.user_items
    counts = np.asarray((ui > 0).sum(axis=0)).ravel().astype(np.float32)
    pop01 = counts / max(counts.max(), 1.0)
    out: dict[str, tuple[ScoreFn, bool]] = {}
    if "popular" in names:
        out["popular"] = (lambda rows: np.broadcast_to(pop01, (len(rows), len(pop01))), True)
    if "popular_in_category" in names:
        cats = np.asarray(item_categories if item_categories is not None else ["all"] * ui.shape[1], dtype=object)
        codes, _ = pd.factorize(pd.Series(cats))
        onehot = sp.csr_matrix((np.ones(len(codes), np.float32), (np.arange(len(codes)), codes)),
                               shape=(len(codes), codes.max() + 1))
        user_cat = _dense(ui @ onehot)  # customers x categories

        def _pop_in_cat(rows: np.ndarray, n_fav: int = 2) -> np.ndarray:
            uc = user_cat[rows]
            fav = np.zeros_like(uc, dtype=bool)
            top = np.argsort(-uc, axis=1)[:, :n_fav]
            np.put_along_axis(fav, top, True, axis=1)
            fav &= uc > 0
            return fav[:, codes].astype(np.float32) + pop01[None, :]

        out["popular_in_category"] = (_pop_in_cat, True)
    if "buy_again" in names:
        buys = train.purchases

        def _buy_again(rows: np.ndarray) -> np.ndarray:
            b = _dense(buys[rows])
            return np.where(b > 0, b + 1.0, pop01[None, :])

        out["buy_again"] = (_buy_again, False)
    if "own_recent" in names:
        if train.timing is None:
            raise ValueError("the own_recent baseline needs the repurchase timing of the matrix")
        last_bought = train.timing.last_bought
        bought = train.purchases

        def _own_recent(rows: np.ndarray) -> np.ndarray:
            last = _dense(last_bought[rows])
            own = (_dense(bought[rows]) > 0) & (last > 0)
            # later purchase first: own items in [1, 2) by day number, above every popular item (< 1)
            lo, hi = (last[own].min(), last[own].max()) if own.any() else (0.0, 0.0)
            return np.where(own, 1.0 + (last - lo) / (hi - lo + 1.0), pop01[None, :])

        out["own_recent"] = (_own_recent, False)
    if "item_cosine" in names:
        import warnings

        from implicit.nearest_neighbours import CosineRecommender

        cosine = CosineRecommender(K=cosine_k, num_threads=num_threads)
        with warnings.catch_warnings():  # implicit transposes to COO itself and then warns about it
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            cosine.fit(ui, show_progress=False)
        sim = cosine.similarity
        out["item_cosine"] = (lambda rows: _dense(ui[rows] @ sim), True)
    if "bpr" in names:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        params = {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100}
        params.update(bpr_params or {})
        bpr = BayesianPersonalizedRanking(**params, num_threads=num_threads, random_state=random_state)
        bpr.fit(ui, show_progress=False)
        uf, itf = np.asarray(bpr.user_factors), np.asarray(bpr.item_factors)
        out["bpr"] = (lambda rows: uf[rows] @ itf.T, True)
    if "als" in names and model is not None:
        out["als"] = (model.als_scores, True)
    return out


def evaluate(
    model: ALSRecommender,
    train: InteractionMatrix,
    targets: Mapping[int, np.ndarray],
    k: int,
    item_categories: Sequence[str] | None = None,
    baselines: Sequence[str] = BASELINES,
    num_threads: int = 0,
    random_state: int | None = 42,
    bpr_params: Mapping[str, float] | None = None,
    cosine_k: int = 100,
    now: Mapping[int, float] | float | None = None,
) -> pd.DataFrame:
    """Metrics of ``model`` and the baselines on the same holdout customers.

    ``now``: the moment of each customer's request as a day number (one per customer row, or one
    for all; None = the end of the training data), read by the learned blend's repurchase timing.

    Exclusion of purchased items follows the model's mode for every ranker that may
    exclude: ``als`` mode excludes the customer's training purchases, ``buy_again`` and
    ``blend`` do not (rebuys are their point). The plain ``als`` baseline is left out when
    the model itself is in ``als`` mode (it would be the same row). In the other modes a row
    ``model_excluding_purchased`` adds what the service answers to requests with
    ``exclude_purchased=True`` (strategy ``als``).

    Returns
    -------
    DataFrame, one row per ranker (``model`` first), one column per metric in METRICS.
    """
    rows = np.asarray(sorted(targets), dtype=np.int64)
    exclude = train.purchases if model.mode == "als" else None
    pct = popularity_percentiles(train.user_items)
    n_items = train.user_items.shape[1]
    when = None if now is None else (
        np.full(len(rows), float(now)) if np.isscalar(now) else np.asarray([now[int(r)] for r in rows]))
    table = {"model": ranking_metrics(
        {int(r): c for r, c in zip(rows, _model_recs(model, rows, k, now=when))}, targets, k, n_items, pct)}
    if model.mode != "als":
        # What the service answers when a request asks to exclude purchased items (strategy "als").
        table["model_excluding_purchased"] = ranking_metrics(
            {int(r): c for r, c in zip(rows, _model_recs(model, rows, k, exclude_purchased=True))},
            targets, k, n_items, pct)
    names = [b for b in baselines if not (b == "als" and model.mode == "als")]
    for name, (fn, may_exclude) in baseline_scorers(
        train, item_categories, names, model=model, bpr_params=bpr_params, num_threads=num_threads,
        random_state=random_state, cosine_k=cosine_k,
    ).items():
        recs = _rank(fn, rows, k, exclude if may_exclude else None, n_items)
        table[name] = ranking_metrics(recs, targets, k, n_items, pct)
        logger.info("baseline %s: ndcg@%d %.4f", name, k, table[name]["ndcg_at_k"])
    frame = pd.DataFrame.from_dict(table, orient="index")[list(METRICS)]
    frame.index.name = "ranker"
    frame["n_customers"] = len(rows)
    return frame


def _model_recs(model: ALSRecommender, rows: np.ndarray, k: int, exclude_purchased: bool | None = None,
                now: np.ndarray | None = None) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    step = max(1, min(_BATCH, 4_000_000 // max(model.item_factors_.shape[0], 1)))
    for start in range(0, len(rows), step):
        out.extend(model.recommend(rows[start:start + step], k, exclude_purchased=exclude_purchased,
                                   now=None if now is None else now[start:start + step]))
    return out
