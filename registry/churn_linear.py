"""The linear part of a churn model, in numpy: design matrix, log-odds and exact per-feature contributions.

The logistic-regression candidate (and the linear half of a blend) is stored as plain numbers,
so the service scores it without scikit-learn. Each design column comes from one model input
(column ``source`` of the scorer's matrix) and is one of:

- ``numeric``: the value, missing filled with ``fill``, optionally ``log1p`` (sign kept);
- ``missing``: 1 where the value is missing;
- ``category``: 1 where the categorical code equals ``code``.

Every column is standardised with the training rows' ``mean`` and ``scale``, so a column's
contribution ``coef * (v - mean) / scale`` is its push relative to the average training
customer; the contributions of a feature's columns add up, and with the intercept they sum to
the log-odds exactly (as SHAP values do for the trees).
"""

from __future__ import annotations

from typing import Any

import numpy as np

KINDS = ("numeric", "missing", "category")


class LinearPart:
    """Log-odds of a fitted linear model over the scorer's input matrix.

    Parameters
    ----------
    spec:
        ``{"intercept": float, "columns": [{"source": int, "kind": str, "fill": float,
        "log1p": bool, "code": int, "mean": float, "scale": float, "coef": float}, ...]}``
        (``fill``/``log1p`` for numeric columns, ``code`` for category columns).
    n_features:
        Width of the scorer's input matrix.
    """

    def __init__(self, spec: dict[str, Any], n_features: int) -> None:
        columns = spec["columns"]
        bad = [c for c in columns if c["kind"] not in KINDS or not 0 <= int(c["source"]) < n_features]
        if bad:
            raise ValueError(f"linear model columns with an unknown kind or input position: {bad[:3]}")
        self.spec = spec
        self.intercept = float(spec["intercept"])
        self.source = np.array([int(c["source"]) for c in columns], dtype=np.int64)
        self.kind = np.array([KINDS.index(c["kind"]) for c in columns], dtype=np.int64)
        self.fill = np.array([float(c.get("fill", 0.0)) for c in columns])
        self.log1p = np.array([bool(c.get("log1p", False)) for c in columns])
        self.code = np.array([float(c.get("code", -1)) for c in columns])
        self.mean = np.array([float(c["mean"]) for c in columns])
        self.scale = np.array([float(c["scale"]) for c in columns])
        self.coef = np.array([float(c["coef"]) for c in columns])
        # (n_columns, n_features): sums the columns' contributions per model input
        self._owner = np.zeros((len(columns), n_features))
        self._owner[np.arange(len(columns)), self.source] = 1.0

    def design(self, X: np.ndarray) -> np.ndarray:
        """Standardised design matrix, shape (n_rows, n_columns)."""
        return standardized_design(X, self.source, self.kind, self.fill, self.log1p, self.code, self.mean, self.scale)

    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of churn, shape (n_rows,)."""
        return self.design(X) @ self.coef + self.intercept

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per-input contributions with the intercept last, shape (n_rows, n_features + 1); rows sum to the log-odds."""
        per_feature = (self.design(X) * self.coef) @ self._owner
        return np.column_stack([per_feature, np.full(len(X), self.intercept)])


def raw_design(X: np.ndarray, source: np.ndarray, kind: np.ndarray, fill: np.ndarray, log1p: np.ndarray,
               code: np.ndarray) -> np.ndarray:
    """Unstandardised design columns (see the module docstring), shape (n_rows, n_columns)."""
    values = X[:, source]
    missing = np.isnan(values)
    numeric = np.where(missing, fill, values)
    numeric = np.where(log1p, np.sign(numeric) * np.log1p(np.abs(numeric)), numeric)
    out = np.where(kind == 0, numeric, 0.0)
    out = np.where(kind == 1, missing.astype(np.float64), out)
    return np.where(kind == 2, (values == code).astype(np.float64), out)


def standardized_design(X: np.ndarray, source: np.ndarray, kind: np.ndarray, fill: np.ndarray, log1p: np.ndarray,
                        code: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """:func:`raw_design` standardised with ``mean`` and ``scale`` (per column)."""
    return (raw_design(X, source, kind, fill, log1p, code) - mean) / scale
