"""implicit ALS behind the scikit-learn contract, with the buy-again / blend modes and export to the runtime."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tenure.registry.recommender_runtime import (
    MODES,
    RecommenderRuntime,
    learned_blend_scores,
    mode_scores,
    top_k,
)
from tenure.training.interactions import InteractionMatrix

logger = logging.getLogger(__name__)


def gpu_available(use_gpu: str) -> bool:
    """Whether ALS should run on the GPU: implicit built with CUDA and ``use_gpu`` is ``auto``."""
    if use_gpu not in ("auto", "never"):
        raise ValueError(f"use_gpu must be 'auto' or 'never', got {use_gpu!r}")
    if use_gpu == "never":
        return False
    import implicit.gpu

    return bool(implicit.gpu.HAS_CUDA)


class ALSRecommender:
    """Implicit-feedback ALS (implicit 0.7) with optional rebuy modes.

    Parameters
    ----------
    factors, regularization, alpha, iterations:
        Passed to ``implicit.als.AlternatingLeastSquares``; confidence is ``alpha * value``.
    use_gpu:
        ``auto`` fits on the GPU when implicit has CUDA, ``never`` stays on the CPU. The fitted
        model is always converted to a CPU model (``to_cpu``) for saving and serving.
    mode:
        ``als`` (never re-recommends purchased items), ``buy_again`` (rebuys first) or
        ``blend`` (score mix, ``blend_weight`` = share of the rebuy score).
    num_threads:
        Threads for fitting (0 = all cores); 1 makes fits bit-for-bit repeatable.
    random_state:
        Seed of the factor initialisation.
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        use_gpu: str = "auto",
        mode: str = "als",
        blend_weight: float = 0.5,
        num_threads: int = 0,
        random_state: int | None = 42,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.use_gpu = use_gpu
        self.mode = mode
        self.blend_weight = blend_weight
        self.num_threads = num_threads
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (
            "factors", "regularization", "alpha", "iterations", "use_gpu", "mode", "blend_weight",
            "num_threads", "random_state")}

    def set_params(self, **params: Any) -> ALSRecommender:
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"unknown parameter {name!r} for ALSRecommender")
            setattr(self, name, value)
        return self

    def _validate(self) -> None:
        if int(self.factors) < 1:
            raise ValueError(f"factors must be at least 1, got {self.factors}")
        if self.regularization < 0:
            raise ValueError(f"regularization must be >= 0, got {self.regularization}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if int(self.iterations) < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 <= self.blend_weight <= 1:
            raise ValueError(f"blend_weight must be within [0, 1], got {self.blend_weight}")

    def fit(self, user_items: sp.csr_matrix, purchases: sp.csr_matrix | None = None,
            timing=None) -> ALSRecommender:
        """Factorise ``user_items`` (CSR, customers x items, confidence >= 0).

        ``purchases`` (CSR, customers x items, counts) is kept for the rebuy modes; when None,
        the non-zero pattern of ``user_items`` stands in for it. ``timing``
        (:class:`registry.recommender_runtime.RepurchaseTiming`, same shape) is kept for the
        learned blend (:meth:`set_blend`).
        """
        self._validate()
        if not sp.issparse(user_items):
            raise ValueError("user_items must be a scipy sparse matrix (customers x items)")
        user_items = sp.csr_matrix(user_items, dtype=np.float32)
        if user_items.nnz == 0:
            raise ValueError("user_items is empty: no customer-item interactions to learn from")
        if purchases is not None and purchases.shape != user_items.shape:
            raise ValueError(f"purchases has shape {purchases.shape}, user_items {user_items.shape}")
        from implicit.als import AlternatingLeastSquares

        self.used_gpu_ = gpu_available(self.use_gpu)
        from threadpoolctl import threadpool_limits

        # implicit runs its own threads; a threaded BLAS underneath only fights them (implicit's advice)
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=int(self.factors), regularization=float(self.regularization), alpha=float(self.alpha),
                iterations=int(self.iterations), use_gpu=self.used_gpu_, num_threads=int(self.num_threads),
                random_state=self.random_state,
            )
            model.fit(user_items, show_progress=False)
        if self.used_gpu_:
            model = model.to_cpu()
        self.model_ = model
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.user_items_ = user_items
        if purchases is None:
            purchases = user_items.copy()
            purchases.data[:] = 1.0
        self.purchases_ = sp.csr_matrix(purchases, dtype=np.float32)
        self.timing_ = timing
        self.blend_coefficients_: dict[str, float] | None = None
        counts = np.asarray((user_items > 0).sum(axis=0)).ravel().astype(np.float64)
        self.popularity01_ = counts / max(float(counts.max(initial=0.0)), 1.0)
        logger.info("ALS fitted: %d customers x %d items, %d factors (%s)",
                    user_items.shape[0], user_items.shape[1], self.factors, "GPU" if self.used_gpu_ else "CPU")
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("ALSRecommender is not fitted yet: call fit(user_items) first")

    def als_scores(self, rows: np.ndarray) -> np.ndarray:
        """ALS scores (len(rows) x items) of training rows."""
        self._check_fitted()
        return self.user_factors_[rows] @ self.item_factors_.T

    def set_blend(self, coefficients: dict[str, float] | None) -> ALSRecommender:
        """Use learned blend weights (:mod:`training.recommender_blend`) in ``blend`` mode; None = the fixed blend."""
        self._check_fitted()
        if coefficients is not None and self.timing_ is None:
            raise ValueError("a learned blend needs the repurchase timing: fit(..., timing=matrix.timing)")
        self.blend_coefficients_ = None if coefficients is None else dict(coefficients)
        return self

    def scores(self, rows: np.ndarray, now: np.ndarray | float | None = None) -> np.ndarray:
        """Scores (len(rows) x items) of the model's mode; ``now`` = day number(s) of the request
        (default: the last training purchase), read by the learned blend's timing."""
        self._check_fitted()
        rows = np.asarray(rows)
        buys = self.purchases_[rows]
        als = self.als_scores(rows)
        if self.mode == "blend" and self.blend_coefficients_ and self.timing_ is not None:
            last, gap = self.timing_.rows(rows)
            when = self.timing_.as_of_days if now is None else now
            return learned_blend_scores(als, buys, last, gap, self.timing_, when, self.popularity01_,
                                        self.blend_coefficients_)
        return mode_scores(als, buys, self.mode, self.blend_weight)

    def recommend(self, rows: np.ndarray, k: int, exclude_purchased: bool | None = None,
                  now: np.ndarray | float | None = None) -> list[np.ndarray]:
        """Top-``k`` item columns for training ``rows`` under the model's mode.

        ``exclude_purchased`` defaults to what the mode implies: True for ``als``, False for
        ``buy_again`` / ``blend`` (rebuys are their point). The same rule is used in evaluation.
        ``now``: day number of the request, one per row or one for all (see :meth:`scores`).
        """
        self._check_fitted()
        rows = np.asarray(rows)
        if exclude_purchased is None:
            exclude_purchased = self.mode == "als"
        buys = self.purchases_[rows]
        if exclude_purchased:  # what the service answers then: ALS scores, bought items left out
            scores = self.als_scores(rows)
        else:
            scores = self.scores(rows, now)
        return [c for c, _ in top_k(scores, k, exclude=buys if exclude_purchased else None)]

    def to_runtime(
        self,
        interactions: InteractionMatrix,
        items: pd.DataFrame | None = None,
        params: dict[str, Any] | None = None,
    ) -> RecommenderRuntime:
        """The serving runtime of this model (item metadata from ``items``, one row per item)."""
        self._check_fitted()
        item_ids = interactions.item_ids
        category = np.full(len(item_ids), "unknown", dtype=object)
        available = np.ones(len(item_ids), dtype=bool)
        if items is not None and len(items):
            meta = items.assign(item_id=items["item_id"].astype(str)).drop_duplicates("item_id").set_index("item_id")
            meta = meta.reindex(pd.Index(item_ids))
            if "category" in meta:
                category = meta["category"].fillna("unknown").astype(str).to_numpy(dtype=object)
            if "available" in meta:
                available = meta["available"].fillna(True).astype(bool).to_numpy()
        popularity = np.asarray((interactions.user_items > 0).sum(axis=0)).ravel().astype(np.float64)
        all_params = {"factors": int(self.factors), "regularization": float(self.regularization),
                      "alpha": float(self.alpha), "iterations": int(self.iterations), "mode": self.mode,
                      "blend_weight": float(self.blend_weight), "random_state": self.random_state,
                      "blend_coefficients": self.blend_coefficients_}
        all_params.update(params or {})
        return RecommenderRuntime(
            user_factors=self.user_factors_, item_factors=self.item_factors_,
            customer_ids=interactions.customer_ids, item_ids=item_ids,
            user_items=interactions.user_items, purchases=interactions.purchases,
            item_category=category, item_available=available, popularity=popularity, params=all_params,
            timing=self.timing_ if self.timing_ is not None else interactions.timing,
        )
