"""The learned blend: how much ALS, "buy again", recency and repurchase timing each count.

The blend mode scores every item by ``sum(w_f * feature_f)`` over
:data:`registry.recommender_runtime.BLEND_FEATURES` (ALS, own purchase frequency, recency,
repurchase timing, the item's repeat rate, popularity, "bought"). The weights ``w`` are learned
here, never on the data they are judged on: the events given (the training part) are split
the way the model will be asked, either next-basket style (each customer's last order held
out, :func:`training.interactions.last_order_split`, "now" = the moment of that order; what
serving and the next-basket evaluation use) or at a time cut-off ``holdout_days`` before their
end (the time-holdout evaluation, "now" = the cut-off). An ALS with the run's configuration is
fitted on the part before, and a logistic regression learns which candidates (the customer's
own items and ALS's top new items) were bought in the part held out. Serving then computes the same
features with numpy (:func:`registry.recommender_runtime.learned_blend_scores`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from tenure.registry.recommender_runtime import BLEND_FEATURES, blend_features, top_k
from tenure.training.interactions import (
    InteractionMatrix,
    day_numbers,
    holdout_targets,
    last_order_split,
    time_split,
)

logger = logging.getLogger(__name__)

MIN_CUSTOMERS = 20
"""Fewer customers with a held-out order than this: too little to learn from, the fixed blend is used."""
N_NEW_CANDIDATES = 50
"""ALS's best items the customer never bought, added to their own items as candidates."""


def _batch_rows(n_items: int) -> int:
    """Customers per batch so one dense feature array stays around 32 MB."""
    return int(max(1, min(2048, 4_000_000 // max(n_items, 1))))


def popularity01(train: InteractionMatrix) -> np.ndarray:
    """Buyers (customers who interacted) per item, scaled so the most popular item is 1."""
    counts = np.asarray((train.user_items > 0).sum(axis=0)).ravel().astype(np.float64)
    return counts / max(float(counts.max(initial=0.0)), 1.0)


def candidate_features(
    als_scores_fn: Callable[[np.ndarray], np.ndarray],
    train: InteractionMatrix,
    targets: Mapping[int, np.ndarray],
    now_days: Mapping[int, float],
    n_new: int = N_NEW_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray]:
    """Features (candidates x BLEND_FEATURES) and labels (1 = in the held-out order).

    Candidates per customer: their own purchased items and the ``n_new`` best ALS items they
    never bought.
    """
    if train.timing is None:
        raise ValueError("the interaction matrix has no repurchase timing: build it with build_interactions")
    rows = np.asarray(sorted(targets), dtype=np.int64)
    pop = popularity01(train)
    xs, ys = [], []
    step = _batch_rows(train.shape[1])
    for start in range(0, len(rows), step):
        batch = rows[start:start + step]
        als = np.asarray(als_scores_fn(batch), dtype=np.float32)
        buys = train.purchases[batch]
        new = top_k(als, n_new, exclude=buys)
        cand_rows, cand_cols = [], []
        for b, (cols, _) in enumerate(new):
            own = buys.indices[buys.indptr[b]:buys.indptr[b + 1]]
            both = np.unique(np.concatenate([own, cols]))
            cand_rows.append(np.full(len(both), b))
            cand_cols.append(both)
        r, c = np.concatenate(cand_rows), np.concatenate(cand_cols)
        last, gap = train.timing.rows(batch)
        now = np.asarray([now_days[int(u)] for u in batch])
        feats = {name: np.asarray(values)[r, c] for name, values in
                 blend_features(als, buys, last, gap, train.timing, now, pop)}
        xs.append(np.column_stack([feats[name] for name in BLEND_FEATURES]))
        label = np.zeros(len(r), dtype=np.int8)
        for b, u in enumerate(batch):
            at = r == b
            label[at] = np.isin(c[at], targets[int(u)])
        ys.append(label)
    return np.vstack(xs), np.concatenate(ys)


def fit_coefficients(X: np.ndarray, y: np.ndarray, random_state: int | None = 42) -> dict[str, float] | None:
    """Logistic-regression weights of BLEND_FEATURES (None when ``y`` has one class only)."""
    if len(np.unique(y)) < 2:
        return None
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000, random_state=random_state)
    model.fit(X, y)
    return {name: float(w) for name, w in zip(BLEND_FEATURES, model.coef_[0])}


def learn_blend(
    events: pd.DataFrame,
    build_matrix: Callable[[pd.DataFrame], InteractionMatrix],
    fit_als: Callable[[InteractionMatrix], Callable[[np.ndarray], np.ndarray]],
    purchase_event_types: tuple[str, ...],
    target_event_types: tuple[str, ...],
    order_window_hours: float,
    random_state: int | None = 42,
    holdout_days: int | None = None,
) -> dict[str, float] | None:
    """Blend weights learned on ``events`` (see the module docstring); None when too little data.

    Parameters
    ----------
    holdout_days:
        None: split next-basket style; a number: at a time cut-off that many days before the end.
    build_matrix:
        events -> InteractionMatrix with the run's configuration.
    fit_als:
        matrix -> ALS score function (rows -> rows x items), fitted on that matrix.
    """
    if holdout_days is None:
        history, held_out, order_at = last_order_split(events, purchase_event_types, order_window_hours)
    else:
        try:
            history, held_out, cutoff = time_split(events, holdout_days)
        except ValueError as exc:
            logger.info("blend: %s; the fixed blend is used", exc)
            return None
    if history.empty or held_out.empty:
        logger.info("blend: nothing bought after earlier history; the fixed blend is used")
        return None
    train = build_matrix(history)
    targets = holdout_targets(held_out, train, target_event_types)
    if len(targets) < MIN_CUSTOMERS:
        logger.info("blend: only %d customers with held-out purchases (< %d); the fixed blend is used",
                    len(targets), MIN_CUSTOMERS)
        return None
    if holdout_days is None:
        days = pd.Series(day_numbers(order_at), index=order_at.index.astype(str))
        now = {row: float(days[train.customer_ids[row]]) for row in targets}
    else:
        at = float(day_numbers(pd.DatetimeIndex([cutoff]))[0])
        now = dict.fromkeys(targets, at)
    X, y = candidate_features(fit_als(train), train, targets, now)
    coefficients = fit_coefficients(X, y, random_state)
    if coefficients is not None:
        logger.info("blend learned on %d customers (%s, %d candidates): %s", len(targets),
                    "last orders" if holdout_days is None else f"{holdout_days}-day holdout", len(y),
                    ", ".join(f"{k} {v:+.2f}" for k, v in coefficients.items()))
    return coefficients
