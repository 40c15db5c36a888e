"""The churn estimator: LightGBM with early stopping, then probability calibration and risk bands.

Imbalance: churners are the minority, so positives get weight ``sqrt(n_neg / n_pos)``
(a moderate up-weighting that helps the trees find them) and the resulting scores are
calibrated afterwards on the validation window, so the served probability means what it
says (a 0.3 is about 30%).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from tenure.registry.churn_scorer import Calibration, ChurnScorer

logger = logging.getLogger(__name__)


def encode_categories(frame: pd.DataFrame, categorical: Sequence[str]) -> dict[str, list[str]]:
    """Category lists per categorical column, sorted, learned from ``frame`` (training rows)."""
    return {
        column: sorted(str(v) for v in frame[column].dropna().unique())
        for column in categorical
        if column in frame.columns
    }


def to_matrix(frame: pd.DataFrame, feature_names: Sequence[str], categories: dict[str, list[str]]) -> np.ndarray:
    """DataFrame -> float64 matrix (n_rows, n_features) with categoricals as codes (unknown = NaN)."""
    missing = [f for f in feature_names if f not in frame.columns]
    if missing:
        raise ValueError(f"the training frame lacks the features {missing}; rebuild the feature tables")
    columns = []
    for name in feature_names:
        values = frame[name]
        if name in categories:
            index = pd.Index(categories[name])
            codes = index.get_indexer(values.astype("string").fillna("\x00").astype(str)).astype(np.float64)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


CalibrationMethod = Literal["auto", "isotonic", "sigmoid", "beta"]
ISOTONIC_TIE_BREAK = 1e-3
"""Share of the raw probability mixed into isotonic output: flat steps keep the raw order (no ties)."""


def fit_calibration(raw: np.ndarray, y: np.ndarray, method: Literal["isotonic", "sigmoid", "beta"],
                    eps: float = 1e-4) -> dict[str, Any]:
    """Calibration map fitted on held-out raw log-odds ``raw`` (n,) and labels ``y`` (n,).

    ``sigmoid`` (Platt) and ``beta`` are strictly increasing, so they never change ROC-AUC;
    ``isotonic`` is mixed with :data:`ISOTONIC_TIE_BREAK` of the raw probability for the same
    reason. The scorer bounds every output to ``[eps, 1 - eps]``.
    """
    from sklearn.linear_model import LogisticRegression

    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        p = 1.0 / (1.0 + np.exp(-raw))
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist(),
                "tie_break": ISOTONIC_TIE_BREAK, "eps": eps}
    if method == "sigmoid":
        lr = LogisticRegression(C=1e6).fit(raw.reshape(-1, 1), y)
        return {"method": "sigmoid", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0]), "eps": eps}
    if method == "beta":
        # Kull et al. (2017): logistic regression on (ln p, -ln(1 - p)); a, b >= 0 keeps it increasing
        features = np.column_stack([-np.logaddexp(0.0, -raw), np.logaddexp(0.0, raw)])
        lr = LogisticRegression(C=1e6).fit(features, y)
        a, b = (float(v) for v in lr.coef_[0])
        if a < 0 or b < 0:  # not monotone on these rows: Platt scaling instead
            logger.info("beta calibration came out non-monotone (a=%.3g, b=%.3g); using sigmoid", a, b)
            return fit_calibration(raw, y, "sigmoid", eps)
        return {"method": "beta", "a": a, "b": b, "c": float(lr.intercept_[0]), "eps": eps}
    raise ValueError(f"calibration must be 'isotonic', 'sigmoid' or 'beta', got {method!r}")


def choose_calibration(raw: np.ndarray, y: np.ndarray, method: CalibrationMethod = "auto",
                       isotonic_min_rows: int = 5000, max_auc_drop: float = 0.002) -> tuple[dict[str, Any], str]:
    """The calibration map for validation log-odds ``raw`` and labels ``y``, and why it was chosen.

    ``auto``: sigmoid below ``isotonic_min_rows`` validation rows (isotonic overfits small
    samples), isotonic from there on. Whatever the method, when it lowers the validation
    ROC-AUC by more than ``max_auc_drop`` the strictly monotone sigmoid is used instead.
    """
    from sklearn.metrics import roc_auc_score

    n = len(raw)
    if method == "auto":
        chosen = "isotonic" if n >= isotonic_min_rows else "sigmoid"
        why = f"{chosen}: {n:,} validation rows {'>=' if chosen == 'isotonic' else '<'} {isotonic_min_rows:,}"
    else:
        chosen, why = method, f"{method}: set in churn.calibration"
    calibration = fit_calibration(raw, y, chosen)
    before = roc_auc_score(y, raw)
    after = roc_auc_score(y, Calibration(calibration).apply(raw))
    if before - after > max_auc_drop and chosen != "sigmoid":
        why = (f"sigmoid: {chosen} lowered validation ROC-AUC by {before - after:.4f} "
               f"(more than {max_auc_drop})")
        calibration = fit_calibration(raw, y, "sigmoid")
    return calibration, why


class ChurnModel:
    """LightGBM churn classifier with calibrated output (scikit-learn style).

    Parameters
    ----------
    feature_names:
        Input columns, in order.
    categorical_features:
        The subset of ``feature_names`` holding categories (strings).
    num_leaves, learning_rate, n_estimators, early_stopping_rounds, min_child_samples,
    feature_fraction, lambda_l2:
        LightGBM parameters.
    calibration:
        ``auto``, ``isotonic``, ``sigmoid`` or ``beta``, fitted on the validation rows
        (:func:`choose_calibration`).
    band_thresholds:
        ``(medium_from, high_from)``; None derives them from validation score percentiles
        (top 10% high, next 20% medium).
    random_state:
        Seed of LightGBM's randomness.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        categorical_features: Sequence[str] = (),
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        n_estimators: int = 500,
        early_stopping_rounds: int = 50,
        min_child_samples: int = 50,
        feature_fraction: float = 0.9,
        lambda_l2: float = 1.0,
        calibration: CalibrationMethod = "auto",
        band_thresholds: tuple[float, float] | None = (0.3, 0.6),
        random_state: int = 42,
    ) -> None:
        self.feature_names = feature_names
        self.categorical_features = categorical_features
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.lambda_l2 = lambda_l2
        self.calibration = calibration
        self.band_thresholds = band_thresholds
        self.random_state = random_state

    def _params(self, pos_weight: float) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "scale_pos_weight": pos_weight,
            "seed": self.random_state,
            "deterministic": True,
            "num_threads": 2,
            "verbosity": -1,
        }

    def fit(self, train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray) -> ChurnModel:
        """Fit the booster (early stopping on ``valid``), then calibration and bands on ``valid``.

        Parameters
        ----------
        train, valid:
            DataFrames with the feature columns, one row per (customer, cut-off).
        y_train, y_valid:
            Arrays of shape (n_rows,), 1 = churned.
        """
        import lightgbm as lgb

        y_train, y_valid = np.asarray(y_train, dtype=np.int64), np.asarray(y_valid, dtype=np.int64)
        for name, y, frame in (("training", y_train, train), ("validation", y_valid, valid)):
            if len(y) == 0:
                raise ValueError(f"the {name} window is empty; nothing to fit on")
            if len(y) != len(frame):
                raise ValueError(f"{name}: {len(frame)} rows but {len(y)} labels")
            if len(np.unique(y)) < 2:
                raise ValueError(f"the {name} window has a single class ({int(y[0])}); churn cannot be learned")
        self.feature_names_ = list(self.feature_names)
        self.categories_ = encode_categories(train, [c for c in self.categorical_features if c in self.feature_names_])
        X_train = to_matrix(train, self.feature_names_, self.categories_)
        X_valid = to_matrix(valid, self.feature_names_, self.categories_)
        pos = max(int(y_train.sum()), 1)
        pos_weight = float(np.sqrt((len(y_train) - pos) / pos))
        cat_idx = [self.feature_names_.index(c) for c in self.categories_]
        dtrain = lgb.Dataset(X_train, y_train, feature_name=self.feature_names_, categorical_feature=cat_idx,
                             free_raw_data=False)
        dvalid = lgb.Dataset(X_valid, y_valid, reference=dtrain)
        self.booster_ = lgb.train(
            self._params(pos_weight),
            dtrain,
            num_boost_round=self.n_estimators,
            valid_sets=[dvalid],
            valid_names=["valid"],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.n_estimators)
        raw_valid = self.booster_.predict(X_valid, raw_score=True, num_iteration=self.best_iteration_)
        self.calibration_, self.calibration_choice_ = choose_calibration(raw_valid, y_valid, self.calibration)
        # Keep only the trees early stopping chose, so the saved booster predicts the same.
        self.booster_ = lgb.Booster(model_str=self.booster_.model_to_string(num_iteration=self.best_iteration_))
        scorer = ChurnScorer(self.booster_, self.feature_names_, self.categories_, self.calibration_, (0.3, 0.6))
        if self.band_thresholds is None:
            p_valid = scorer.calibrate(raw_valid)
            medium, high = np.quantile(p_valid, [0.7, 0.9])
            if medium >= high:
                high = min(1.0, medium + 1e-6)
            self.band_thresholds_ = (float(medium), float(high))
        else:
            self.band_thresholds_ = tuple(self.band_thresholds)
        logger.info("LightGBM stopped at %d trees; calibration %s; bands %s",
                    self.best_iteration_, self.calibration, self.band_thresholds_)
        return self

    def refit(self, frame: pd.DataFrame, y: np.ndarray) -> Any:
        """A booster with the same parameters and the number of trees early stopping chose, fitted on ``frame``.

        Used to refit on training + validation rows once the candidate is chosen (the
        categories stay the ones learned from the training rows).
        """
        import lightgbm as lgb

        y = np.asarray(y, dtype=np.int64)
        X = to_matrix(frame, self.feature_names_, self.categories_)
        pos = max(int(y.sum()), 1)
        cat_idx = [self.feature_names_.index(c) for c in self.categories_]
        data = lgb.Dataset(X, y, feature_name=self.feature_names_, categorical_feature=cat_idx)
        return lgb.train(self._params(float(np.sqrt((len(y) - pos) / pos))), data, num_boost_round=self.best_iteration_)

    def to_scorer(self, metadata: dict[str, Any] | None = None) -> ChurnScorer:
        """The fitted model as the runtime object the service loads."""
        if not hasattr(self, "booster_"):
            raise ValueError("the churn model is not fitted yet; call fit first")
        return ChurnScorer(self.booster_, self.feature_names_, self.categories_, self.calibration_,
                           self.band_thresholds_, metadata)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probabilities, array of shape (n_rows,)."""
        scorer = self.to_scorer()
        return scorer.predict_proba(to_matrix(frame, self.feature_names_, self.categories_))

    def predict_uncalibrated(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw probabilities before calibration (for the calibration check)."""
        raw = self.booster_.predict(to_matrix(frame, self.feature_names_, self.categories_), raw_score=True)
        return 1.0 / (1.0 + np.exp(-raw))


# --- the linear candidate ------------------------------------------------------------------------

def linear_columns(X: np.ndarray, feature_names: Sequence[str], categories: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Design columns (without mean/scale/coef) learned from the training matrix ``X``.

    Numeric inputs: missing filled with the median, or with the largest value for
    ``days_since_*`` (missing there means "never", the far end of the scale); ``log1p`` for
    non-negative, right-skewed inputs (skewness above 1); a missing-indicator column when the
    training rows have missing values. Categorical inputs: one column per category.
    """
    columns: list[dict[str, Any]] = []
    for j, name in enumerate(feature_names):
        x = X[:, j]
        present = x[~np.isnan(x)]
        if name in categories:
            columns += [{"source": j, "kind": "category", "code": code} for code in range(len(categories[name]))]
            continue
        if len(present) == 0:
            continue
        fill = float(present.max() if name.startswith("days_since") else np.median(present))
        std = present.std()
        skew = float(((present - present.mean()) ** 3).mean() / std**3) if std > 0 else 0.0
        columns.append({"source": j, "kind": "numeric", "fill": fill, "log1p": bool(present.min() >= 0 and skew > 1)})
        if len(present) < len(x):
            columns.append({"source": j, "kind": "missing"})
    return columns


def fit_linear(X: np.ndarray, y: np.ndarray, feature_names: Sequence[str], categories: dict[str, list[str]],
               C: float, random_state: int = 42) -> dict[str, Any]:
    """Logistic regression on the standardised design of ``X`` (n_rows, n_features): its spec for the scorer."""
    from sklearn.linear_model import LogisticRegression

    from tenure.registry.churn_linear import KINDS, raw_design

    columns = linear_columns(X, feature_names, categories)
    arrays = _column_arrays(columns)
    design = raw_design(X, arrays["source"], np.array([KINDS.index(c["kind"]) for c in columns]), arrays["fill"],
                        arrays["log1p"], arrays["code"])
    mean, scale = design.mean(axis=0), design.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=C, max_iter=2000, random_state=random_state)
    model.fit((design - mean) / scale, np.asarray(y, dtype=np.int64))
    for column, m, sd, coef in zip(columns, mean, scale, model.coef_[0], strict=True):
        column.update(mean=float(m), scale=float(sd), coef=float(coef))
    return {"intercept": float(model.intercept_[0]), "columns": columns, "C": C}


def _column_arrays(columns: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {
        "source": np.array([c["source"] for c in columns], dtype=np.int64),
        "fill": np.array([c.get("fill", 0.0) for c in columns], dtype=np.float64),
        "log1p": np.array([c.get("log1p", False) for c in columns], dtype=bool),
        "code": np.array([c.get("code", -1) for c in columns], dtype=np.float64),
    }
