"""Recommender runtime used by the service and the CLI: a trained ALS model as plain files, served
with numpy/scipy/implicit only (no pandas, no MLflow on the hot path).

Files in a model directory (what ``save`` writes and ``from_model_dir`` reads):
``manifest.json`` (format, parameters, mode, counts), ``factors.npz`` (``user_factors``
customers x factors, ``item_factors`` items x factors, float32), ``mappings.json``
(``customer_ids``, ``item_ids`` in row/column order), ``user_items.npz`` (CSR confidence,
customers x items), ``purchases.npz`` (CSR purchase counts, customers x items),
``items.json`` (``category`` and ``available`` per item column), ``popularity.json``
(``popularity`` per item column: customers who interacted, and the global ranking).

Strategies (the ``strategy`` of every answer):
``als`` (known customer, stored user vector), ``als_fresh`` (user vector recomputed with
implicit's ``recalculate_user`` from the stored row plus ``recent_items``), ``buy_again`` /
``blend`` (the model's mode, when purchased items are allowed), ``popular`` (no usable
history), ``no_consent_popular`` (customer without personalisation consent: nothing personal
is read). Segments are not supported, so ``popular_in_segment`` is never returned.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from tenure.jsonable import to_jsonable

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODES = ("als", "buy_again", "blend")
STRATEGIES = ("als", "als_fresh", "buy_again", "blend", "popular", "popular_in_segment", "no_consent_popular")
_FILES = ("manifest.json", "factors.npz", "mappings.json", "user_items.npz", "purchases.npz",
          "items.json", "popularity.json")


@dataclasses.dataclass
class Recommendations:
    """Answer for one customer: ranked ``items`` (dicts ``item_id``, ``score``, ``because``)."""

    items: list[dict[str, Any]]
    strategy: str
    model_version: str | None = None

    def item_ids(self) -> list[str]:
        """The recommended item ids, best first."""
        return [it["item_id"] for it in self.items]


# ---------------------------------------------------------------------------------------------
# Pure scoring functions (also used by training's evaluation, so offline and online agree)


def normalise_rows(scores: np.ndarray) -> np.ndarray:
    """Min-max scale each row of ``scores`` (n x items) to [0, 1]; constant rows become 0."""
    lo = scores.min(axis=1, keepdims=True)
    span = scores.max(axis=1, keepdims=True) - lo
    return np.divide(scores - lo, span, out=np.zeros_like(scores), where=span > 0)


DAY_SECONDS = 86400.0
BLEND_FEATURES: tuple[str, ...] = ("als", "frequency", "recency", "timing", "item_repeat", "popularity", "bought")
"""What the learned blend weighs (each an n x items array in [0, 1], see :func:`blend_features`)."""
TIMING_WIDTH = 0.5
MAX_CLOCK_GAP_DAYS = 366.0
"""A wall clock further than this past the training data is not "now" for that data (see ``now_days``)."""
"""Width of the "due" bump of the timing score, in natural-log units of elapsed / interval."""


@dataclasses.dataclass
class RepurchaseTiming:
    """When each customer last bought each item, and how regularly items are rebought.

    Attributes
    ----------
    last_bought:
        CSR matrix (customers x items), float64: day number (days since 1970-01-01 UTC) of the
        customer's last purchase of the item; no entry = never bought.
    pair_interval:
        CSR matrix (customers x items), float64: median days between the customer's own
        purchases of the item (only pairs bought at two or more distinct times).
    item_interval:
        Array (items,), float64: median days between consecutive purchases of the item by the
        same customer, pooled over customers; NaN when nobody bought it twice.
    item_repeat_rate:
        Array (items,), float64: share of the item's buyers who bought it again.
    recency_scale_days:
        The shop's clock: median of all rebuy intervals (the half-life of the recency score).
    as_of_days:
        Day number of the last purchase seen in training ("now" when no clock is given).
    """

    last_bought: sp.csr_matrix
    pair_interval: sp.csr_matrix
    item_interval: np.ndarray
    item_repeat_rate: np.ndarray
    recency_scale_days: float
    as_of_days: float

    def rows(self, rows: np.ndarray | Sequence[int]) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """(last_bought, pair_interval) of these customer rows."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.last_bought[rows], self.pair_interval[rows]

    def save(self, path: Path) -> None:
        """Write to one ``.npz`` file."""
        lb, pi = self.last_bought.tocsr(), self.pair_interval.tocsr()
        np.savez(path, lb_data=lb.data, lb_indices=lb.indices, lb_indptr=lb.indptr,
                 pi_data=pi.data, pi_indices=pi.indices, pi_indptr=pi.indptr, shape=np.asarray(lb.shape),
                 item_interval=self.item_interval, item_repeat_rate=self.item_repeat_rate,
                 scalars=np.asarray([self.recency_scale_days, self.as_of_days], dtype=np.float64))

    @classmethod
    def load(cls, path: Path) -> RepurchaseTiming:
        """Read what :meth:`save` wrote."""
        with np.load(path) as f:
            shape = tuple(int(v) for v in f["shape"])
            return cls(
                last_bought=sp.csr_matrix((f["lb_data"], f["lb_indices"], f["lb_indptr"]), shape=shape),
                pair_interval=sp.csr_matrix((f["pi_data"], f["pi_indices"], f["pi_indptr"]), shape=shape),
                item_interval=np.asarray(f["item_interval"], dtype=np.float64),
                item_repeat_rate=np.asarray(f["item_repeat_rate"], dtype=np.float64),
                recency_scale_days=float(f["scalars"][0]), as_of_days=float(f["scalars"][1]),
            )


OWN_ITEM_FEATURES: tuple[str, ...] = ("frequency", "recency", "timing", "item_repeat", "bought")
"""Blend features that are 0 outside the customer's own (bought) items."""


def own_item_features(
    purchases: sp.csr_matrix,
    last_bought: sp.csr_matrix,
    pair_interval: sp.csr_matrix,
    timing: RepurchaseTiming,
    now_days: np.ndarray | float,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """:data:`OWN_ITEM_FEATURES` on the customers' own items only (definitions: :func:`blend_features`).

    Returns
    -------
    (rows, columns, {name: values}): one entry per bought customer-item pair of these rows.
    """
    p = purchases.tocsr()
    n = p.shape[0]
    rows = np.repeat(np.arange(n), np.diff(p.indptr))
    keep = p.data > 0
    rows, cols, counts = rows[keep], p.indices[keep].astype(np.int64), p.data[keep].astype(np.float64)
    top = np.zeros(n)
    np.maximum.at(top, rows, counts)
    frequency = np.log1p(counts) / np.log1p(top[rows])
    if len(rows):
        last = np.asarray(last_bought[rows, cols], dtype=np.float64).ravel()
        gap = np.asarray(pair_interval[rows, cols], dtype=np.float64).ravel()
    else:
        last = gap = np.empty(0)
    now = np.broadcast_to(np.asarray(now_days, dtype=np.float64).reshape(-1), (n,))[rows]
    has = last > 0
    elapsed = np.where(has, np.clip(now - last, 0.0, None), np.inf)
    scale = max(float(timing.recency_scale_days), 1e-6)
    recency = np.where(has, np.power(0.5, np.minimum(elapsed, 1e9) / scale), 0.0)
    interval = np.where(gap > 0, gap, timing.item_interval[cols])
    ok = has & np.isfinite(interval) & (interval > 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(ok, elapsed / np.where(ok, interval, 1.0), 1.0)
    due = np.where(ok, np.exp(-0.5 * (np.log(np.clip(ratio, 1e-3, 1e6)) / TIMING_WIDTH) ** 2), 0.0)
    values = {"frequency": frequency, "recency": recency, "timing": due,
              "item_repeat": timing.item_repeat_rate[cols].astype(np.float64), "bought": np.ones(len(rows))}
    return rows, cols, values


def blend_features(
    als_scores: np.ndarray,
    purchases: sp.csr_matrix,
    last_bought: sp.csr_matrix,
    pair_interval: sp.csr_matrix,
    timing: RepurchaseTiming,
    now_days: np.ndarray | float,
    popularity01: np.ndarray,
):
    """The learned blend's inputs for ``n`` customers, one (name, n x items float array) at a time.

    ``purchases``, ``last_bought`` and ``pair_interval`` are the customers' rows; ``now_days``
    is the moment of the request (day number, one per customer or one for all).

    * ``als``: ALS score, min-max scaled per customer;
    * ``frequency``: ``log1p(purchases) / log1p(the customer's largest count)`` ("buy again");
    * ``recency``: ``0.5 ** (days since the customer last bought the item / the shop's clock)``;
    * ``timing``: ``exp(-0.5 * (ln(elapsed / interval) / TIMING_WIDTH) ** 2)`` with ``interval`` the
      customer's own median gap for the item when they bought it at least twice, else the item's
      median gap over all customers: rises as the time since the last purchase approaches the
      item's usual interval, peaks (1) when it is due, falls when long overdue; 0 for items never
      rebought by anyone;
    * ``item_repeat``: share of the item's buyers who bought it again (only on own items);
    * ``popularity``: the item's buyers scaled to [0, 1] (the same for every customer);
    * ``bought``: 1 on the customer's own items.

    All but ``als`` and ``popularity`` are 0 outside the customer's own items
    (:func:`own_item_features` computes them there; serving uses that directly).
    """
    shape = als_scores.shape
    yield "als", normalise_rows(np.asarray(als_scores, dtype=np.float32))
    rows, cols, values = own_item_features(purchases, last_bought, pair_interval, timing, now_days)
    for name in ("frequency", "recency", "timing", "item_repeat"):
        dense = np.zeros(shape)
        dense[rows, cols] = values[name]
        yield name, dense
    yield "popularity", np.broadcast_to(np.asarray(popularity01, dtype=np.float64)[None, :], shape)
    bought = np.zeros(shape)
    bought[rows, cols] = 1.0
    yield "bought", bought


def learned_blend_scores(
    als_scores: np.ndarray,
    purchases: sp.csr_matrix,
    last_bought: sp.csr_matrix,
    pair_interval: sp.csr_matrix,
    timing: RepurchaseTiming,
    now_days: np.ndarray | float,
    popularity01: np.ndarray,
    coefficients: dict[str, float],
) -> np.ndarray:
    """``sum(coefficient * feature)`` over :data:`BLEND_FEATURES` (n x items, float32).

    Dense work only for ALS and popularity; the own-item features are added where the customer
    bought (the hot path of a request).
    """
    w = {name: float(coefficients.get(name, 0.0)) for name in BLEND_FEATURES}
    score = w["als"] * normalise_rows(np.asarray(als_scores, dtype=np.float32))
    if w["popularity"]:
        score += np.float32(w["popularity"]) * np.asarray(popularity01, dtype=np.float32)[None, :]
    rows, cols, values = own_item_features(purchases, last_bought, pair_interval, timing, now_days)
    if len(rows):
        own = sum(w[name] * values[name] for name in OWN_ITEM_FEATURES)
        score[rows, cols] += own.astype(np.float32)
    return np.asarray(score, dtype=np.float32)


class OwnItemBlend:
    """The learned blend of :func:`learned_blend_scores` with its request-independent parts done once.

    Built at model load from every customer's purchases and timing: per bought customer-item
    pair (in the order of the purchases CSR), the columns, the weighted frequency, item repeat
    rate and "bought" terms, the last purchase day and the interval of the timing score; and
    the weighted popularity row. A request then only computes recency and timing (they depend
    on "now") on the customer's own slice of these arrays, with the same operations in the same
    order as :func:`learned_blend_scores`, so the scores are identical to it.

    Parameters
    ----------
    purchases:
        CSR matrix (customers x items) of purchase counts.
    timing:
        The repurchase timing of the same customers.
    popularity01:
        Array (items,) of popularity scaled to [0, 1].
    coefficients:
        The learned weights of :data:`BLEND_FEATURES`.
    """

    def __init__(self, purchases: sp.csr_matrix, timing: RepurchaseTiming, popularity01: np.ndarray,
                 coefficients: dict[str, float]) -> None:
        w = {name: float(coefficients.get(name, 0.0)) for name in BLEND_FEATURES}
        self.w_als, self.w_recency, self.w_timing, self.w_bought = w["als"], w["recency"], w["timing"], w["bought"]
        self.popularity_term = (np.float32(w["popularity"]) * np.asarray(popularity01, dtype=np.float32)
                                if w["popularity"] else None)
        p = purchases.tocsr()
        keep = p.data > 0
        rows = np.repeat(np.arange(p.shape[0]), np.diff(p.indptr))[keep]
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=p.shape[0]))]).astype(np.int64)
        self.cols = p.indices[keep].astype(np.int64)
        counts = p.data[keep].astype(np.float64)
        top = np.zeros(p.shape[0])
        np.maximum.at(top, rows, counts)
        self.frequency_term = w["frequency"] * (np.log1p(counts) / np.log1p(top[rows]))
        self.repeat_term = w["item_repeat"] * timing.item_repeat_rate[self.cols].astype(np.float64)
        if len(rows):
            self.last = np.asarray(timing.last_bought[rows, self.cols], dtype=np.float64).ravel()
            gap = np.asarray(timing.pair_interval[rows, self.cols], dtype=np.float64).ravel()
        else:
            self.last = gap = np.empty(0)
        self.has = self.last > 0
        interval = np.where(gap > 0, gap, timing.item_interval[self.cols])
        self.ok = self.has & np.isfinite(interval) & (interval > 0)
        self.safe_interval = np.where(self.ok, interval, 1.0)
        self.scale = max(float(timing.recency_scale_days), 1e-6)

    def scores(self, als_scores: np.ndarray, rows: np.ndarray, now_days: float) -> np.ndarray:
        """Blend scores (len(rows) x items, float32) of these customer rows at ``now_days``."""
        score = self.w_als * normalise_rows(np.asarray(als_scores, dtype=np.float32))
        if self.popularity_term is not None:
            score += self.popularity_term[None, :]
        starts, ends = self.indptr[rows], self.indptr[np.asarray(rows) + 1]
        if len(rows) == 1:
            at = slice(int(starts[0]), int(ends[0]))
            batch_rows = np.zeros(int(ends[0] - starts[0]), dtype=np.int64)
        else:
            sizes = ends - starts
            batch_rows = np.repeat(np.arange(len(rows)), sizes)
            at = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes) + np.repeat(starts, sizes)
        last, has, ok = self.last[at], self.has[at], self.ok[at]
        if not len(last):
            return np.asarray(score, dtype=np.float32)
        elapsed = np.where(has, np.clip(now_days - last, 0.0, None), np.inf)
        recency = np.where(has, np.power(0.5, np.minimum(elapsed, 1e9) / self.scale), 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(ok, elapsed / self.safe_interval[at], 1.0)
        due = np.where(ok, np.exp(-0.5 * (np.log(np.clip(ratio, 1e-3, 1e6)) / TIMING_WIDTH) ** 2), 0.0)
        # the order of learned_blend_scores' sum over OWN_ITEM_FEATURES, so the floats are the same
        own = self.frequency_term[at] + self.w_recency * recency + self.w_timing * due + self.repeat_term[at] + self.w_bought
        score[batch_rows, self.cols[at]] += own.astype(np.float32)
        return np.asarray(score, dtype=np.float32)


def mode_scores(als_scores: np.ndarray, purchases: sp.csr_matrix, mode: str, blend_weight: float) -> np.ndarray:
    """Final scores of ``mode`` from ALS scores and purchase counts (the blend without timing).

    Parameters
    ----------
    als_scores:
        Array (n customers x items) of ALS scores.
    purchases:
        CSR matrix (n customers x items) of purchase counts of the same customers.
    mode:
        ``als``: the ALS scores unchanged. ``blend``: ``(1 - w) * als01 + w * rebuy01`` where
        ``als01`` is the row-wise min-max scaled ALS score and ``rebuy01`` the purchase count
        divided by the customer's largest count. ``buy_again``: purchased items first (ranked by
        ``rebuy01``), then the others by ``als01`` (scores in (0, 1] and [-1, 0]).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "als":
        return als_scores
    als01 = normalise_rows(np.asarray(als_scores, dtype=np.float32))
    rebuy = np.asarray(purchases.todense(), dtype=np.float32)
    top = rebuy.max(axis=1, keepdims=True)
    rebuy01 = np.divide(rebuy, top, out=np.zeros_like(rebuy), where=top > 0)
    if mode == "blend":
        return (1.0 - blend_weight) * als01 + blend_weight * rebuy01
    return np.where(rebuy01 > 0, rebuy01, als01 - 1.0)


def top_k(
    scores: np.ndarray,
    k: int,
    exclude: sp.csr_matrix | None = None,
    allowed: np.ndarray | None = None,
    overwrite: bool = False,
    blocked: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Best ``k`` columns of each row of ``scores`` (n x items), best first.

    ``exclude`` (CSR, n x items): non-zero entries are never returned; ``allowed``
    (bool array, items): only these columns may be returned; ``blocked`` (int array): columns
    never returned (``~allowed`` computed once by a caller that filters the same way often).
    Rows with fewer candidates return fewer items. ``overwrite`` lets the function mask
    ``scores`` in place.

    Returns
    -------
    list of (item columns, scores) per row.
    """
    if overwrite and scores.dtype == np.float32 and scores.flags.writeable:
        scores = np.asarray(scores)
    else:
        scores = np.array(scores, dtype=np.float32, copy=True)
    n, m = scores.shape
    if allowed is not None and not allowed.all():
        scores[:, ~allowed] = -np.inf
    if blocked is not None and len(blocked):
        scores[:, blocked] = -np.inf
    if exclude is not None and exclude.nnz:
        exclude = exclude.tocsr()
        row_of = np.repeat(np.arange(n), np.diff(exclude.indptr))
        scores[row_of, exclude.indices] = -np.inf
    k = min(k, m)
    if k <= 0:
        return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in range(n)]
    if k < m:
        part = np.argpartition(scores, m - k, axis=1)[:, m - k:]
    else:
        part = np.tile(np.arange(m), (n, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(part_scores, order, axis=1)
    finite = np.isfinite(best)
    if finite.all():
        return list(zip(ids, best))
    return [(ids[r][finite[r]], best[r][finite[r]]) for r in range(n)]


def explain_contributions(
    item_factors: np.ndarray,
    yty: np.ndarray,
    regularization: float,
    alpha: float,
    user_rows: sp.csr_matrix,
    item_cols: Sequence[np.ndarray],
    n: int = 3,
    projected: np.ndarray | None = None,
    padded: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[list[list[int]]]:
    """Own items that contributed most to each recommended item (implicit's ``explain``, batched).

    Same formula as ``implicit.cpu.als.AlternatingLeastSquares.explain``: with
    ``C = alpha * user_row``, ``D = diag(c - 1)`` over the customer's own items ``Y_u`` and
    ``A = YtY + reg I + Y_u^T D Y_u``, the contribution of own item ``j`` to item ``i`` is
    ``c_j * y_j . A^-1 y_i``. For customers with at most as many own items as factors this is
    computed without forming ``A`` (Woodbury): ``Y_u A^-1 Y_i^T = (I + G D)^-1 H`` with
    ``P = Y (YtY + reg I)^-1`` (``projected``, items x factors), ``G = P_u Y_u^T``,
    ``H = P_u Y_i^T``, batched over customers.

    Parameters
    ----------
    user_rows:
        CSR matrix (customers x items) of confidence, one row per customer.
    item_cols:
        One array of recommended item columns per row.
    projected:
        ``P`` above, precomputed (float64, items x factors); computed when None.
    padded:
        ``(Y, P)`` as float64 with one all-zero row appended, precomputed by callers that
        explain often (the runtime); built when None.

    Returns
    -------
    Per row, per recommended item: own item columns with a positive contribution, largest first
    (at most ``n``).
    """
    f = yty.shape[0]
    base = yty + regularization * np.eye(f)
    n_rows = user_rows.shape[0]
    out: list[list[list[int]]] = [[[] for _ in cols] for cols in item_cols]
    width = max((len(c) for c in item_cols), default=0)
    if width == 0 or n_rows == 0:
        return out
    if projected is None:
        projected = np.linalg.solve(base, item_factors.astype(np.float64).T).T
    user_rows = user_rows.tocsr()
    if user_rows.nnz and user_rows.data.min() <= 0:  # only positive confidence contributes (as in implicit)
        user_rows = user_rows.copy()
        user_rows.data[user_rows.data < 0] = 0
        user_rows.eliminate_zeros()
    indptr, indices = user_rows.indptr, user_rows.indices
    conf_all = alpha * user_rows.data.astype(np.float64)
    sizes = np.diff(indptr)
    n_recs = np.array([len(c) for c in item_cols])
    small = np.flatnonzero((sizes > 0) & (sizes <= f) & (n_recs > 0))
    big = np.flatnonzero((sizes > f) & (n_recs > 0))
    if len(small):
        yz, pz = padded if padded is not None else _padded_factors(item_factors, projected)
        pad = yz.shape[0] - 1
        rec_pad = np.full((n_rows, width), pad, dtype=np.int64)
        for r in small:
            rec_pad[r, :n_recs[r]] = item_cols[r]
        # Buckets of similar history length, so short histories are not padded to long ones.
        bucket_of = np.searchsorted(_EXPLAIN_BUCKETS, sizes[small])
        for bucket in np.unique(bucket_of):
            rows = small[bucket_of == bucket]
            m = int(sizes[rows].max())
            pos = indptr[rows][:, None] + np.arange(m)[None, :]
            inside = np.arange(m)[None, :] < sizes[rows][:, None]
            pos = np.where(inside, pos, 0)
            own_pad = np.where(inside, indices[pos] if len(indices) else pad, pad)
            conf_pad = np.where(inside, conf_all[pos] if len(conf_all) else 0.0, 0.0)
            _explain_woodbury(yz, pz, own_pad, conf_pad, rec_pad[rows], rows, item_cols, n, out)
    for r in big:
        _explain_direct(item_factors, base, indices[indptr[r]:indptr[r + 1]], conf_all[indptr[r]:indptr[r + 1]],
                        r, item_cols, n, out)
    return out


def explain_one(
    item_factors: np.ndarray,
    base: np.ndarray,
    padded: tuple[np.ndarray, np.ndarray],
    own: np.ndarray,
    weights: np.ndarray,
    alpha: float,
    cols: np.ndarray,
    n: int = 3,
) -> list[list[int]]:
    """:func:`explain_contributions` for one customer, from their row's arrays (no CSR built).

    ``own`` / ``weights``: the item columns and confidence of the customer's row (as stored);
    ``base``: ``YtY + reg I``; ``padded``: as for :func:`explain_contributions`. The same
    operations as :func:`explain_contributions` on a one-row matrix, so the same answer.
    """
    out: list[list[list[int]]] = [[[] for _ in cols]]
    keep = weights > 0  # only positive confidence contributes (as in implicit)
    if not keep.all():
        own, weights = own[keep], weights[keep]
    if len(cols) == 0 or len(own) == 0:
        return out[0]
    conf = alpha * weights.astype(np.float64)
    if len(own) <= base.shape[0]:
        _explain_woodbury(padded[0], padded[1], own[None], conf[None], np.asarray(cols)[None], np.zeros(1, np.int64),
                          [cols], n, out)
    else:
        _explain_direct(item_factors, base, own, conf, 0, [cols], n, out)
    return out[0]


def _explain_direct(item_factors, base, own, conf, r, item_cols, n, out) -> None:
    """Contributions for a customer with a long history (more own items than factors), forming ``A``."""
    y = item_factors[own].astype(np.float64)
    a = base + (y * (conf - 1.0)[:, None]).T @ y
    w = np.linalg.solve(a, item_factors[item_cols[r]].astype(np.float64).T)
    contrib = ((y @ w) * conf[:, None])[None]
    _top_contributors(contrib, own[None], [r], item_cols, n, out)


def _padded_factors(item_factors: np.ndarray, projected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = item_factors.shape[1]
    return (np.vstack([item_factors.astype(np.float64), np.zeros((1, f))]),
            np.vstack([np.asarray(projected, dtype=np.float64), np.zeros((1, f))]))


_EXPLAIN_BUCKETS = np.array([8, 16, 32, 64, 128, 256])


def _explain_woodbury(yz, pz, own_pad, conf_pad, rec_pad, rows, item_cols, n, out) -> None:
    """Contributions for customers with short histories (batch x own x recommended), via Woodbury."""
    pad = yz.shape[0] - 1  # the all-zero row
    m = own_pad.shape[1]
    p_own = pz[own_pad]  # batch x m x f
    g = p_own @ yz[own_pad].transpose(0, 2, 1)  # batch x m x m
    h = p_own @ yz[rec_pad].transpose(0, 2, 1)  # batch x m x width
    d = np.where(conf_pad > 0, conf_pad - 1.0, 0.0)
    system = np.eye(m)[None, :, :] + g * d[:, None, :]
    contrib = np.linalg.solve(system, h) * conf_pad[:, :, None]
    contrib[own_pad == pad] = -np.inf
    _top_contributors(contrib, own_pad, rows, item_cols, n, out)


def _top_contributors(contrib, own, rows, item_cols, n, out) -> None:
    """Fill ``out[r]`` from contributions (batch x own x recommended), keeping positive ones."""
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :n, :]
    best = np.take_along_axis(contrib, order, axis=1)
    items = np.take_along_axis(np.broadcast_to(own[:, :, None], contrib.shape), order, axis=1)
    items = np.where(best > 0, items, -1).transpose(0, 2, 1).tolist()  # batch x recommended x n
    for b, r in enumerate(rows):
        out[r] = [[j for j in top if j >= 0] for top in items[b][:len(item_cols[r])]]


# ---------------------------------------------------------------------------------------------


class RecommenderRuntime:
    """A trained recommender ready to answer requests.

    Parameters
    ----------
    user_factors:
        Array (customers x factors), float32.
    item_factors:
        Array (items x factors), float32.
    customer_ids, item_ids:
        Sequences of str in row / column order.
    user_items:
        CSR matrix (customers x items) of training confidence (for ``recalculate_user`` and
        ``because``).
    purchases:
        CSR matrix (customers x items) of purchase counts ("exclude purchased", buy-again).
    item_category, item_available:
        Per item column: category (str) and availability (bool).
    popularity:
        Array (items,) of customers who interacted with each item (popularity answers score
        items by the share of customers who did).
    params:
        ``regularization``, ``alpha``, ``mode``, ``blend_weight``, ``event_weights`` and
        whatever else the manifest records.
    """

    def __init__(
        self,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        customer_ids: Sequence[str],
        item_ids: Sequence[str],
        user_items: sp.csr_matrix,
        purchases: sp.csr_matrix,
        item_category: Sequence[str],
        item_available: Sequence[bool],
        popularity: np.ndarray,
        params: dict[str, Any],
        model_version: str | None = None,
        timing: RepurchaseTiming | None = None,
    ) -> None:
        n_users, n_items = len(customer_ids), len(item_ids)
        if user_factors.shape[0] != n_users or item_factors.shape[0] != n_items:
            raise ValueError(
                f"factor shapes {user_factors.shape} / {item_factors.shape} do not match "
                f"{n_users} customers x {n_items} items"
            )
        for name, m in (("user_items", user_items), ("purchases", purchases)):
            if m.shape != (n_users, n_items):
                raise ValueError(f"{name} has shape {m.shape}, expected {(n_users, n_items)}")
        mode = params.get("mode", "als")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.customer_ids = [str(c) for c in customer_ids]
        self.item_ids = [str(i) for i in item_ids]
        self.user_items = user_items.tocsr().astype(np.float32)
        self.purchases = purchases.tocsr().astype(np.float32)
        self.item_category = np.asarray([str(c) for c in item_category], dtype=object)
        self.item_available = np.asarray(item_available, dtype=bool)
        self.popularity = np.asarray(popularity, dtype=np.float64)
        self.params = dict(params)
        self.mode: str = mode
        self.blend_weight: float = float(params.get("blend_weight", 0.5))
        self.regularization: float = float(params.get("regularization", 0.01))
        self.alpha: float = float(params.get("alpha", 1.0))
        self.event_weights: dict[str, float] = dict(params.get("event_weights", {}))
        # what exclude_purchased="auto" means for this model (decided from the data at training;
        # bundles from before the decision keep the old default, True)
        self.exclude_purchased_default: bool = bool(params.get("exclude_purchased_default", True))
        self.blend_coefficients: dict[str, float] | None = (
            {str(key): float(v) for key, v in params["blend_coefficients"].items()}
            if params.get("blend_coefficients") and timing is not None else None)
        self.timing = timing
        if timing is not None and timing.last_bought.shape != (n_users, n_items):
            raise ValueError(f"timing has shape {timing.last_bought.shape}, expected {(n_users, n_items)}")
        self.model_version = model_version
        self._customer_index = {c: i for i, c in enumerate(self.customer_ids)}
        self._item_index = {c: i for i, c in enumerate(self.item_ids)}
        self._categories = sorted(set(self.item_category.tolist()))
        self._yty = self.item_factors.T.astype(np.float64) @ self.item_factors.astype(np.float64)
        self._popular_order = np.argsort(-self.popularity, kind="stable")
        self._als = None  # implicit model, built on first recalculate_user
        self._norms = None
        self._blas = None
        self._projected = None  # item_factors (YtY + reg I)^-1, for explanations
        self._popularity01 = self.popularity / max(float(self.popularity.max(initial=0.0)), 1.0)
        self._prepare_requests()

    def _prepare_requests(self) -> None:
        """What every request would otherwise recompute: the learned blend's own-item and
        popularity terms (:class:`OwnItemBlend`), the popular answer's shares and order, and the
        default filter (available items only)."""
        self._own_blend = (OwnItemBlend(self.purchases, self.timing, self._popularity01, self.blend_coefficients)
                           if self.mode == "blend" and self.blend_coefficients else None)
        self._popular_share = self.popularity / max(len(self.customer_ids), 1)  # share of customers who interacted
        self._default_allowed = self.item_available.copy()
        self._default_allowed.setflags(write=False)
        self._default_blocked = np.flatnonzero(~self._default_allowed)
        self._default_popular_order = self._popular_order[self._default_allowed[self._popular_order]]
        self._explain_base = self._yty + self.regularization * np.eye(self._yty.shape[0])  # YtY + reg I

    # ---- persistence --------------------------------------------------------------------

    @classmethod
    def from_model_dir(cls, local_dir: str | Path) -> RecommenderRuntime:
        """Load from a model directory, or from an MLflow pyfunc model directory holding one.

        ``local_dir`` may be the folder ``save`` wrote, or the MLflow model folder that
        ``registry.champion`` downloads (the files are then under ``artifacts/recommender/``).
        """
        root = _find_model_dir(Path(local_dir))
        manifest = json.loads((root / "manifest.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{root}: recommender format {manifest.get('format_version')} is not supported "
                f"(expected {FORMAT_VERSION}); retrain with this version of tenure"
            )
        with np.load(root / "factors.npz") as f:
            user_factors, item_factors = f["user_factors"], f["item_factors"]
        mappings = json.loads((root / "mappings.json").read_text())
        items = json.loads((root / "items.json").read_text())
        popularity = json.loads((root / "popularity.json").read_text())
        return cls(
            user_factors=user_factors,
            item_factors=item_factors,
            customer_ids=mappings["customer_ids"],
            item_ids=mappings["item_ids"],
            user_items=sp.load_npz(root / "user_items.npz").tocsr(),
            purchases=sp.load_npz(root / "purchases.npz").tocsr(),
            item_category=items["category"],
            item_available=items["available"],
            popularity=np.asarray(popularity["popularity"], dtype=np.float64),
            params=manifest.get("params", {}),
            timing=RepurchaseTiming.load(root / "timing.npz") if (root / "timing.npz").is_file() else None,
            model_version=manifest.get("model_version"),
        )

    def save(self, directory: str | Path, extra_manifest: dict[str, Any] | None = None) -> Path:
        """Write the model as plain files under ``directory`` (created); returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "factors.npz", user_factors=self.user_factors, item_factors=self.item_factors)
        (directory / "mappings.json").write_text(
            json.dumps({"customer_ids": self.customer_ids, "item_ids": self.item_ids})
        )
        sp.save_npz(directory / "user_items.npz", self.user_items)
        sp.save_npz(directory / "purchases.npz", self.purchases)
        if self.timing is not None:
            self.timing.save(directory / "timing.npz")
        (directory / "items.json").write_text(
            json.dumps({"item_ids": self.item_ids, "category": self.item_category.tolist(),
                        "available": self.item_available.tolist()})
        )
        (directory / "popularity.json").write_text(
            json.dumps({"popularity": self.popularity.tolist(),
                        "popular_item_ids": [self.item_ids[i] for i in self._popular_order[:1000]]})
        )
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "tenure-recommender",
            "n_customers": len(self.customer_ids),
            "n_items": len(self.item_ids),
            "factors": int(self.item_factors.shape[1]),
            "params": self.params,
            "files": list(_FILES) + (["timing.npz"] if self.timing is not None else []),
        }
        manifest.update(extra_manifest or {})
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=to_jsonable))
        return directory

    # ---- lookups ------------------------------------------------------------------------

    def knows_customer(self, customer_id: str) -> bool:
        """Whether the model has a row (training history) for ``customer_id``."""
        return str(customer_id) in self._customer_index

    @property
    def categories(self) -> list[str]:
        """Item categories known to the model."""
        return list(self._categories)

    def _allowed(self, categories: Sequence[str] | None, available_only: bool) -> np.ndarray | None:
        if available_only and not categories:
            return self._default_allowed  # read-only, shared by requests
        mask = None
        if available_only:
            mask = self.item_available.copy()
        if categories:
            if isinstance(categories, str):
                categories = [categories]
            cat = np.isin(self.item_category, [str(c) for c in categories])
            mask = cat if mask is None else mask & cat
        return mask

    def _item(self, col: int, score: float, because: Sequence[int] = ()) -> dict[str, Any]:
        return {"item_id": self.item_ids[col], "score": float(score),
                "because": [self.item_ids[j] for j in because]}

    # ---- recommendations ----------------------------------------------------------------

    def recommend(
        self,
        customer_id: str,
        k: int = 10,
        exclude_purchased: bool | str = "auto",
        categories: Sequence[str] | None = None,
        available_only: bool = True,
        consent: bool = True,
        recent_items: Sequence[tuple[str, float]] | None = None,
        now: float | None = None,
    ) -> Recommendations:
        """Top-``k`` items for one customer (see :meth:`recommend_batch`)."""
        return self.recommend_batch(
            [customer_id], k=k, exclude_purchased=exclude_purchased, categories=categories,
            available_only=available_only, consent=[consent],
            recent_items=None if recent_items is None else [recent_items], now=now,
        )[0]

    def recommend_batch(
        self,
        customer_ids: Sequence[str],
        k: int = 10,
        exclude_purchased: bool | str = "auto",
        categories: Sequence[str] | None = None,
        available_only: bool = True,
        consent: bool | Sequence[bool] = True,
        recent_items: Sequence[Sequence[tuple[str, float]] | None] | None = None,
        now: float | None = None,
    ) -> list[Recommendations]:
        """Top-``k`` items for many customers, in the order given.

        Parameters
        ----------
        customer_ids:
            Customers to answer for.
        k:
            Items per customer (1..1000).
        exclude_purchased:
            ``auto`` (default): what training decided from the data (:attr:`exclude_purchased_default`:
            False for shops where a good share of purchases are repeats). True: leave out items
            the customer bought (training purchases, plus ``recent_items`` whose weight reaches
            the purchase weight). When False and the model's mode is
            ``blend`` or ``buy_again``, rebuys are mixed in and the strategy says so.
        categories:
            Only items of these categories.
        available_only:
            Only items marked available.
        consent:
            One flag for all, or one per customer; without consent nothing personal is read
            and the answer is ``no_consent_popular``.
        recent_items:
            None, or one entry per customer: None or a list of ``(item_id, weight)`` (weights
            on the scale of ``event_weights``) for events the model has not seen; the user
            vector is then recomputed (``als_fresh``). Unknown item ids are ignored.
        now:
            The moment of the request as a day number (days since 1970-01-01 UTC), for the
            repurchase timing of the blend; None: :meth:`now_days`.
        """
        if not 1 <= int(k) <= 1000:
            raise ValueError(f"k must be between 1 and 1000, got {k}")
        exclude = self.resolve_exclude_purchased(exclude_purchased)
        now_days = self.now_days() if now is None else float(now)
        # Small matrix products are slower with a threaded BLAS (and would fight the server's
        # own threads): one BLAS thread while answering.
        with self._blas_one_thread():
            return self._recommend_batch(customer_ids, int(k), exclude, categories,
                                         available_only, consent, recent_items, now_days)

    def resolve_exclude_purchased(self, exclude_purchased: bool | str | None) -> bool:
        """``auto`` / None -> the model's data-driven default; True / False as given."""
        if exclude_purchased is None or (isinstance(exclude_purchased, str) and exclude_purchased == "auto"):
            return self.exclude_purchased_default
        if isinstance(exclude_purchased, (bool, np.bool_)):
            return bool(exclude_purchased)
        raise ValueError(f"exclude_purchased must be true, false or 'auto', got {exclude_purchased!r}")

    def now_days(self, wall_clock_s: float | None = None) -> float:
        """"Now" for the repurchase timing, as a day number.

        The wall clock, unless the model was trained on data from another time: when the clock
        is before the last training purchase (simulated future data) or more than
        :data:`MAX_CLOCK_GAP_DAYS` after it (a historical data set), the end of the training
        data is used, so timing reads as it did when the data was recorded.
        """
        import time

        wall = (time.time() if wall_clock_s is None else wall_clock_s) / DAY_SECONDS
        if self.timing is None:
            return wall
        end = self.timing.as_of_days
        return wall if end <= wall <= end + MAX_CLOCK_GAP_DAYS else end

    def _blas_one_thread(self):
        if self._blas is None:
            from threadpoolctl import ThreadpoolController

            self._blas = ThreadpoolController()
        return self._blas.limit(limits=1, user_api="blas")

    def _recommend_batch(self, customer_ids, k, exclude_purchased, categories, available_only, consent,
                         recent_items, now_days) -> list[Recommendations]:
        n = len(customer_ids)
        consents = [bool(consent)] * n if isinstance(consent, (bool, np.bool_)) else [bool(c) for c in consent]
        if len(consents) != n:
            raise ValueError(f"consent has {len(consents)} flags for {n} customers")
        if recent_items is not None and len(recent_items) != n:
            raise ValueError(f"recent_items has {len(recent_items)} entries for {n} customers")
        allowed = self._allowed(categories, available_only)
        results: list[Recommendations | None] = [None] * n

        als_pos, als_rows = [], []
        fresh_pos, fresh_rows, fresh_recent = [], [], []
        for pos, cid in enumerate(customer_ids):
            if not consents[pos]:
                results[pos] = self._popular(k, allowed, None, "no_consent_popular")
                continue
            row = self._customer_index.get(str(cid))
            recent = self._recent_vector(recent_items[pos]) if recent_items is not None else None
            if recent is not None:
                fresh_pos.append(pos)
                fresh_rows.append(row)
                fresh_recent.append(recent)
            elif row is not None and self.user_items.indptr[row + 1] > self.user_items.indptr[row]:
                als_pos.append(pos)
                als_rows.append(row)
            else:
                excl = self.purchases[row] if (row is not None and exclude_purchased) else None
                results[pos] = self._popular(k, allowed, excl, "popular")

        if als_rows:
            rows = np.asarray(als_rows)
            # one customer (a /recommend request) is explained from the stored row's arrays, and the
            # purchases row is only cut when something reads it
            conf = self.user_items[rows] if len(rows) > 1 else None
            needs_buys = exclude_purchased or (self.mode != "als" and self._own_blend is None)
            buys = _csr_rows(self.purchases, rows) if needs_buys else None
            answers = self._score(self.user_factors[rows], conf, buys, k, exclude_purchased, allowed, "als",
                                  self._timing_rows(rows) if self._own_blend is None else None, now_days,
                                  known_rows=rows)
            for pos, ans in zip(als_pos, answers):
                results[pos] = ans
        if fresh_rows:
            conf_rows, buy_rows, last_rows, gap_rows = [], [], [], []
            for row, (cols, weights) in zip(fresh_rows, fresh_recent):
                base = self.user_items[row] if row is not None else sp.csr_matrix((1, len(self.item_ids)), dtype=np.float32)
                add = sp.csr_matrix((weights, (np.zeros_like(cols), cols)), shape=(1, len(self.item_ids)), dtype=np.float32)
                merged = base + add
                merged.data = np.clip(merged.data, 0, None)
                merged.eliminate_zeros()
                conf_rows.append(merged)
                # an entry is one event: it is a purchase when its own weight is the purchase weight
                # (judged before duplicates are summed, so views + carts never add up to a "purchase")
                buy_weight = self.event_weights.get("purchase", np.inf)
                is_buy = weights >= buy_weight
                bought = sp.csr_matrix((np.ones(int(is_buy.sum()), dtype=np.float32),
                                        (np.zeros(int(is_buy.sum()), dtype=np.int64), cols[is_buy])),
                                       shape=(1, len(self.item_ids)), dtype=np.float32)
                bought.data[:] = 1.0
                base_buys = self.purchases[row] if row is not None else sp.csr_matrix((1, len(self.item_ids)), dtype=np.float32)
                buy_rows.append(base_buys + bought)
                if self.timing is not None:
                    last, gap = self._timing_rows(np.asarray([row]) if row is not None else None)
                    last = last.toarray()
                    last[0, cols[is_buy]] = now_days  # bought just now
                    last_rows.append(sp.csr_matrix(last))
                    gap_rows.append(gap)
            conf = sp.vstack(conf_rows).tocsr()
            buys = sp.vstack(buy_rows).tocsr()
            vectors = self._recalculate(conf)
            fresh_timing = (sp.vstack(last_rows).tocsr(), sp.vstack(gap_rows).tocsr()) if last_rows else None
            answers = self._score(vectors, conf, buys, k, exclude_purchased, allowed, "als_fresh", fresh_timing,
                                  now_days)
            for pos, ans, c in zip(fresh_pos, answers, conf_rows):
                if c.nnz == 0:  # recent items were all unknown or cancelled out
                    row = self._customer_index.get(str(customer_ids[pos]))
                    excl = self.purchases[row] if (row is not None and exclude_purchased) else None
                    ans = self._popular(k, allowed, excl, "popular")
                results[pos] = ans
        for r in results:
            r.model_version = self.model_version
        return results  # type: ignore[return-value]

    def _timing_rows(self, rows: np.ndarray | None) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
        """(last_bought, pair_interval) rows of these customers; empty rows for None; None without timing."""
        if self.timing is None:
            return None
        if rows is None:
            empty = sp.csr_matrix((1, len(self.item_ids)), dtype=np.float64)
            return empty, empty.copy()
        return self.timing.rows(rows)

    def _recent_vector(self, recent: Sequence[tuple[str, float]] | None) -> tuple[np.ndarray, np.ndarray] | None:
        if not recent:
            return None
        cols, weights = [], []
        for entry in recent:
            item_id, weight = entry
            col = self._item_index.get(str(item_id))
            if col is not None:
                cols.append(col)
                weights.append(float(weight))
        if not cols:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return np.asarray(cols, dtype=np.int64), np.asarray(weights, dtype=np.float32)

    def _recalculate(self, conf: sp.csr_matrix) -> np.ndarray:
        """implicit's ``recalculate_user`` on rows of confidence (n x items) -> (n x factors)."""
        if self._als is None:
            from implicit.cpu.als import AlternatingLeastSquares

            als = AlternatingLeastSquares(
                factors=self.item_factors.shape[1], regularization=self.regularization,
                alpha=self.alpha, num_threads=1,
            )
            als.item_factors = self.item_factors
            als.user_factors = self.user_factors
            self._als = als
        return np.asarray(self._als.recalculate_user(np.arange(conf.shape[0]), conf), dtype=np.float32).reshape(
            conf.shape[0], -1
        )

    def _score(
        self,
        vectors: np.ndarray,
        conf: sp.csr_matrix | None,
        buys: sp.csr_matrix | None,
        k: int,
        exclude_purchased: bool,
        allowed: np.ndarray | None,
        strategy: str,
        timing_rows: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
        now_days: float | None = None,
        known_rows: np.ndarray | None = None,
    ) -> list[Recommendations]:
        """Rank, explain and package; ``known_rows``: the customers' model rows when their stored
        rows are used unchanged (the learned blend then reads :class:`OwnItemBlend`; ``conf`` None:
        one customer, explained from ``user_items`` directly; ``buys`` None: not needed)."""
        scores = vectors @ self.item_factors.T
        if not exclude_purchased and self.mode != "als":
            if known_rows is not None and self._own_blend is not None:
                scores = self._own_blend.scores(scores, known_rows, now_days)
            elif self.mode == "blend" and self.blend_coefficients and timing_rows is not None:
                scores = learned_blend_scores(scores, buys, timing_rows[0], timing_rows[1], self.timing,
                                              now_days, self._popularity01, self.blend_coefficients)
            else:
                scores = mode_scores(scores, buys, self.mode, self.blend_weight)
            strategy = self.mode
        default = allowed is self._default_allowed
        ranked = top_k(scores, k, exclude=buys if exclude_purchased else None, allowed=None if default else allowed,
                       overwrite=True, blocked=self._default_blocked if default else None)
        if self._projected is None:
            projected = np.linalg.solve(
                self._yty + self.regularization * np.eye(self._yty.shape[0]), self.item_factors.astype(np.float64).T
            ).T
            self._projected = (projected, _padded_factors(self.item_factors, projected))
        if conf is None:  # one known customer: their stored row
            start, end = self.user_items.indptr[known_rows[0]], self.user_items.indptr[known_rows[0] + 1]
            because = [explain_one(self.item_factors, self._explain_base, self._projected[1],
                                   self.user_items.indices[start:end], self.user_items.data[start:end], self.alpha,
                                   ranked[0][0])]
        else:
            because = explain_contributions(self.item_factors, self._yty, self.regularization, self.alpha,
                                            conf, [cols for cols, _ in ranked], projected=self._projected[0],
                                            padded=self._projected[1])
        out = []
        for (cols, vals), why in zip(ranked, because):
            out.append(Recommendations([self._item(c, s, b) for c, s, b in zip(cols.tolist(), vals.tolist(), why)],
                                       strategy))
        return out

    def _popular(self, k: int, allowed: np.ndarray | None, exclude: sp.csr_matrix | None, strategy: str) -> Recommendations:
        if allowed is self._default_allowed:
            order = self._default_popular_order
        else:
            order = self._popular_order if allowed is None else self._popular_order[allowed[self._popular_order]]
        if exclude is not None and exclude.nnz:
            order = order[~np.isin(order, exclude.indices)]
        top = order[:k]
        share = self._popular_share
        return Recommendations([self._item(int(c), share[c]) for c in top], strategy)

    def popular(self, k: int = 10, categories: Sequence[str] | None = None, available_only: bool = True) -> Recommendations:
        """The ``k`` most popular items, nothing personal read (strategy ``popular``; an experiment arm's baseline)."""
        if not 1 <= int(k) <= 1000:
            raise ValueError(f"k must be between 1 and 1000, got {k}")
        recs = self._popular(int(k), self._allowed(categories, available_only), None, "popular")
        recs.model_version = self.model_version
        return recs

    def similar_items(self, item_id: str, k: int = 10, available_only: bool = False) -> list[dict[str, Any]]:
        """Items closest to ``item_id`` by cosine of item factors, itself left out.

        Returns
        -------
        list of dicts ``item_id``, ``score`` (cosine), best first.

        Raises
        ------
        KeyError
            When the item is not in the model.
        """
        col = self._item_index.get(str(item_id))
        if col is None:
            raise KeyError(f"item {item_id!r} is not in the recommender model")
        if self._norms is None:
            self._norms = np.linalg.norm(self.item_factors, axis=1)
        norms = self._norms
        sims = (self.item_factors @ self.item_factors[col]) / np.maximum(norms * norms[col], 1e-12)
        sims = sims[None, :]
        allowed = self.item_available.copy() if available_only else np.ones(len(self.item_ids), bool)
        allowed[col] = False
        (cols, vals), = top_k(sims, k, allowed=allowed)
        return [{"item_id": self.item_ids[c], "score": float(v)} for c, v in zip(cols, vals)]


def _csr_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """``matrix[rows]``; one row is cut straight from the CSR arrays (a third of scipy's indexing cost)."""
    if len(rows) != 1:
        return matrix[rows]
    start, end = matrix.indptr[rows[0]], matrix.indptr[rows[0] + 1]
    return sp.csr_matrix((matrix.data[start:end], matrix.indices[start:end], np.asarray([0, end - start])),
                         shape=(1, matrix.shape[1]))


def _find_model_dir(path: Path) -> Path:
    if (path / "manifest.json").is_file():
        return path
    for candidate in (path / "artifacts" / "recommender", path / "recommender"):
        if (candidate / "manifest.json").is_file():
            return candidate
    found = sorted(path.glob("**/manifest.json"))
    if found:
        return found[0].parent
    raise FileNotFoundError(
        f"no recommender model under {path}: expected manifest.json (train one with "
        "'tenure train recommender')"
    )
