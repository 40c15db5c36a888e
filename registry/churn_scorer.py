"""The churn model as the service runs it: LightGBM and/or a linear model, calibration, bands, percentile, reasons.

The model is the candidate training chose (:mod:`training.churn_selection`): the LightGBM
booster, the logistic regression (:class:`registry.churn_linear.LinearPart`) or their blend
``w * booster + (1 - w) * linear`` in log-odds. Calibration maps the log-odds to a probability
that is never exactly 0 or 1; ``percentile`` places a probability within the customer
population scored at training (stored sorted in the bundle, looked up by ``searchsorted``);
reasons carry the raw feature, value and contribution plus plain-language text
(:mod:`registry.churn_reasons`).

Plain files in one folder (``booster.txt``, ``calibration.json``, ``manifest.json``), numpy
and lightgbm only, so the service's hot path has no pandas. Training writes the folder
with :meth:`ChurnScorer.save`; the service reads it with :meth:`ChurnScorer.from_model_dir`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from tenure.jsonable import to_jsonable
from tenure.registry.churn_linear import LinearPart
from tenure.registry.churn_reasons import reason_direction, reason_text

logger = logging.getLogger(__name__)

BOOSTER_FILE = "booster.txt"
CALIBRATION_FILE = "calibration.json"
MANIFEST_FILE = "manifest.json"
BUNDLE_DIR = "bundle"
RISK_BANDS = ("low", "medium", "high")
DEFAULT_EPS = 1e-4
"""Served probabilities stay within ``[eps, 1 - eps]`` unless the calibration says otherwise."""


class ChurnScorer:
    """Calibrated churn probabilities and per-customer reasons from a trained booster.

    Parameters
    ----------
    booster:
        A trained ``lightgbm.Booster`` predicting raw log-odds of churn.
    feature_names:
        Column order of the model's input matrix.
    categories:
        ``{feature: [category, ...]}``; a categorical value is encoded as its index, an
        unknown or missing one as NaN (as in training).
    calibration:
        ``{"method": "isotonic", "x": [...], "y": [...], "tie_break": d}`` (piecewise-linear
        map of the raw probability, mixed with ``d`` of the raw probability so that no two
        different scores tie), ``{"method": "sigmoid", "a": ..., "b": ...}`` (Platt scaling of
        the log-odds), ``{"method": "beta", "a": ..., "b": ..., "c": ...}`` (beta calibration:
        ``sigmoid(a ln p - b ln(1 - p) + c)``) or ``{"method": "none"}``; ``eps`` (default
        1e-4) bounds the output to ``[eps, 1 - eps]``.
    band_thresholds:
        ``(medium_from, high_from)`` calibrated probabilities.
    metadata:
        Free-form facts stored with the model (feature service, training window, ...).
    linear:
        The linear model's spec (:class:`registry.churn_linear.LinearPart`), or None.
    blend_weight:
        Weight of the booster's log-odds; ``1 - blend_weight`` goes to the linear model
        (1 = LightGBM alone, 0 = the linear model alone).
    reference_scores:
        Calibrated probabilities of the customer population at training, for percentiles
        (sorted here); None = no percentiles.
    """

    def __init__(
        self,
        booster: Any,
        feature_names: list[str],
        categories: dict[str, list[str]],
        calibration: dict[str, Any],
        band_thresholds: tuple[float, float],
        metadata: dict[str, Any] | None = None,
        linear: dict[str, Any] | None = None,
        blend_weight: float = 1.0,
        reference_scores: Any = None,
    ) -> None:
        if not 0.0 <= blend_weight <= 1.0:
            raise ValueError(f"blend_weight must be within [0, 1], got {blend_weight}")
        if blend_weight < 1.0 and linear is None:
            raise ValueError("a blend weight below 1 needs the linear model's spec")
        self.booster = booster
        self.feature_names = list(feature_names)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.calibration = dict(calibration)
        self.band_thresholds = (float(band_thresholds[0]), float(band_thresholds[1]))
        self.metadata = dict(metadata or {})
        self.model_version: str | None = None
        self.linear_spec = linear
        self.linear = LinearPart(linear, len(self.feature_names)) if linear is not None else None
        self.blend_weight = float(blend_weight)
        self.reference_scores = (np.sort(np.asarray(reference_scores, dtype=np.float64))
                                 if reference_scores is not None and len(reference_scores) else None)
        self._calibration = Calibration(self.calibration)
        self._codes = {f: {c: float(i) for i, c in enumerate(cats)} for f, cats in self.categories.items()}
        self._positions = {name: i for i, name in enumerate(self.feature_names)}
        self._single_row: _SingleRowContributions | None | bool = None  # built on first use; False: unavailable

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_single_row"] = None  # a C handle: rebuilt on first use after unpickling
        return state

    # --- input ---------------------------------------------------------------------------------
    def vectorize(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Feature dicts -> matrix of shape (n_rows, n_features), float64, NaN where missing.

        Keys other than the model's features are ignored; categorical values are encoded with
        the training mapping (unknown -> NaN, as LightGBM saw missing values in training).
        """
        X = np.full((len(rows), len(self.feature_names)), np.nan, dtype=np.float64)
        for i, row in enumerate(rows):
            for name, value in row.items():
                j = self._positions.get(name)
                if j is None or value is None:
                    continue
                mapping = self._codes.get(name)
                if mapping is not None:
                    code = mapping.get(str(value))
                    if code is not None:
                        X[i, j] = code
                else:
                    try:
                        X[i, j] = float(value)
                    except (TypeError, ValueError):
                        pass
        return X

    def missing_counts(self, X: np.ndarray) -> np.ndarray:
        """Missing values per row, array of shape (n_rows,)."""
        return np.isnan(X).sum(axis=1)

    # --- output --------------------------------------------------------------------------------
    def raw_scores(self, X: np.ndarray) -> np.ndarray:
        """Uncalibrated log-odds of the model (booster, linear or blend), array of shape (n_rows,)."""
        w = self.blend_weight
        out = np.zeros(X.shape[0], dtype=np.float64)
        if w > 0:
            out += w * np.asarray(self.booster.predict(X, raw_score=True, num_threads=1), dtype=np.float64)
        if w < 1:
            out += (1 - w) * self.linear.raw_scores(X)
        return out

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Map raw log-odds to calibrated probabilities within ``[eps, 1 - eps]``."""
        return self._calibration.apply(raw)

    def percentiles(self, probabilities: np.ndarray) -> np.ndarray | None:
        """Share (0-100, one decimal) of the training-time population scoring at or below each probability.

        None when the bundle has no reference population (models trained before percentiles).
        """
        ref = self.reference_scores
        if ref is None:
            return None
        ranks = np.searchsorted(ref, np.asarray(probabilities, dtype=np.float64), side="right")
        return np.round(100.0 * ranks / len(ref), 1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated churn probabilities, array of shape (n_rows,)."""
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected a matrix with {len(self.feature_names)} columns, got shape {X.shape}")
        return self.calibrate(self.raw_scores(X))

    def risk_bands(self, probabilities: np.ndarray) -> list[str]:
        """``low`` / ``medium`` / ``high`` for each probability."""
        medium, high = self.band_thresholds
        idx = (np.asarray(probabilities) >= medium).astype(int) + (np.asarray(probabilities) >= high).astype(int)
        return [RISK_BANDS[i] for i in idx]

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """SHAP contributions in log-odds, shape (n_rows, n_features + 1); the last column is the bias.

        One row goes through LightGBM's single-row C API (the same model and computation,
        without the Python wrapper's per-call set-up, ~60 us less); more rows through
        ``Booster.predict``.
        """
        w = self.blend_weight
        out = np.zeros((X.shape[0], len(self.feature_names) + 1), dtype=np.float64)
        if w > 0:
            out += w * self._booster_contributions(X)
        if w < 1:
            out += (1 - w) * self.linear.contributions(X)
        return out

    def _booster_contributions(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] == 1:
            single = self._single_row_predictor()
            if single is not None:
                return single.contributions(X[0])[None, :]
        return np.asarray(self.booster.predict(X, pred_contrib=True, num_threads=1), dtype=np.float64)

    def _single_row_predictor(self) -> _SingleRowContributions | None:
        if self._single_row is None:
            try:
                self._single_row = _SingleRowContributions(self.booster, len(self.feature_names))
            except Exception:  # an older or mocked LightGBM: the general path is used
                logger.debug("LightGBM single-row prediction not available", exc_info=True)
                self._single_row = False
        return self._single_row or None

    def score(self, X: np.ndarray, k: int = 3) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Calibrated probabilities and top-``k`` reasons from one booster call.

        The raw log-odds are the row sums of the SHAP contributions (bias included), so the
        service needs a single ``pred_contrib`` pass per request.
        """
        contrib = self.contributions(X)
        return self.calibrate(contrib.sum(axis=1)), self._reasons(X, contrib[:, :-1], k)

    def top_reasons(self, X: np.ndarray, k: int = 3) -> list[list[dict[str, Any]]]:
        """The ``k`` features that moved each score most, as ``{feature, value, contribution, text, direction}``.

        ``contribution`` is the signed contribution in log-odds (SHAP for the trees, exact for
        the linear model; positive raises the churn risk); ``value`` is the customer's feature
        value (the category name for categoricals, None when missing); ``text`` reads it in
        plain language (``no activity for 48 days``) and ``direction`` is ``raises risk`` or
        ``lowers risk``.
        """
        return self._reasons(X, self.contributions(X)[:, :-1], k)

    def _reasons(self, X: np.ndarray, contrib: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        k = min(k, contrib.shape[1])
        order = np.argsort(-np.abs(contrib), axis=1)[:, :k]
        reasons = []
        for i in range(X.shape[0]):
            row = []
            for j in order[i]:
                name = self.feature_names[j]
                value = self._display_value(name, X[i, j])
                weight = float(contrib[i, j])
                row.append({"feature": name, "value": value, "contribution": round(weight, 6),
                            "text": reason_text(name, value), "direction": reason_direction(weight)})
            reasons.append(row)
        return reasons

    def _display_value(self, name: str, value: float) -> Any:
        if math.isnan(value):
            return None
        cats = self.categories.get(name)
        if cats is not None:
            return cats[int(value)]
        return float(value)

    # --- files ---------------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        """Write the three plain files into ``folder`` (created) and return it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / BOOSTER_FILE).write_text(self.booster.model_to_string())
        (folder / CALIBRATION_FILE).write_text(json.dumps(self.calibration))
        manifest = {
            "feature_names": self.feature_names,
            "categories": self.categories,
            "band_thresholds": list(self.band_thresholds),
            "metadata": self.metadata,
            "linear": self.linear_spec,
            "blend_weight": self.blend_weight,
            "reference_scores": None if self.reference_scores is None else self.reference_scores.tolist(),
        }
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=to_jsonable))
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> ChurnScorer:
        """Read a folder written by :meth:`save`."""
        import lightgbm as lgb

        folder = Path(folder)
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        booster = lgb.Booster(model_str=(folder / BOOSTER_FILE).read_text())
        calibration = json.loads((folder / CALIBRATION_FILE).read_text())
        return cls(
            booster=booster,
            feature_names=manifest["feature_names"],
            categories=manifest["categories"],
            calibration=calibration,
            band_thresholds=tuple(manifest["band_thresholds"]),
            metadata=manifest.get("metadata", {}),
            linear=manifest.get("linear"),
            blend_weight=float(manifest.get("blend_weight", 1.0)),
            reference_scores=manifest.get("reference_scores"),
        )

    @classmethod
    def from_model_dir(cls, local_dir: Path | str) -> ChurnScorer:
        """Load from an MLflow model folder (what ``registry.champion`` downloads into its cache).

        Accepts the model folder itself (``artifacts/bundle/``), the bundle folder, or a
        folder holding ``manifest.json`` directly.
        """
        root = Path(local_dir)
        for candidate in (root, root / BUNDLE_DIR, root / "artifacts" / BUNDLE_DIR):
            if (candidate / MANIFEST_FILE).is_file():
                return cls.load(candidate)
        for manifest in sorted(root.rglob(f"{BUNDLE_DIR}/{MANIFEST_FILE}")):  # however MLflow nested it
            return cls.load(manifest.parent)
        raise FileNotFoundError(f"no churn model files ({MANIFEST_FILE}) under {root}")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class Calibration:
    """A calibration map (the dict form :class:`ChurnScorer` documents) ready to apply."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = dict(spec)
        self.method = self.spec.get("method", "none")
        if self.method not in ("none", "isotonic", "sigmoid", "beta"):
            raise ValueError(f"unknown calibration method {self.method!r} in the model bundle")
        self.eps = float(self.spec.get("eps", DEFAULT_EPS))
        if self.method == "isotonic":
            self._x = np.asarray(self.spec["x"], dtype=np.float64)
            self._y = np.asarray(self.spec["y"], dtype=np.float64)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of log-odds ``raw``, bounded to ``[eps, 1 - eps]``."""
        raw = np.asarray(raw, dtype=np.float64)
        c = self.spec
        if self.method == "isotonic":
            p_raw = _sigmoid(raw)
            d = float(c.get("tie_break", 0.0))
            p = (1 - d) * np.interp(p_raw, self._x, self._y) + d * p_raw
        elif self.method == "sigmoid":
            p = _sigmoid(c["a"] * raw + c["b"])
        elif self.method == "beta":
            log_p, log_q = -np.logaddexp(0.0, -raw), -np.logaddexp(0.0, raw)  # ln p, ln(1 - p), stable
            p = _sigmoid(c["a"] * log_p - c["b"] * log_q + c["c"])
        else:
            p = _sigmoid(raw)
        return np.clip(p, self.eps, 1.0 - self.eps)


class _SingleRowContributions:
    """``pred_contrib`` for one row through ``LGBM_BoosterPredictForMatSingleRowFast``.

    The C handle is made once per booster; calls are serialised by a lock (the handle holds
    one output buffer), which costs nothing uncontended. The booster must outlive this object
    (the scorer holds both).
    """

    _CONTRIB = 3  # C_API_PREDICT_CONTRIB
    _FLOAT64 = 1  # C_API_DTYPE_FLOAT64

    def __init__(self, booster: Any, n_features: int) -> None:
        import ctypes
        import threading

        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._ctypes, self._lib, self._safe_call = ctypes, _LIB, _safe_call
        self._handle = ctypes.c_void_p()
        _safe_call(_LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster._handle, ctypes.c_int(self._CONTRIB), ctypes.c_int(0), ctypes.c_int(-1),
            ctypes.c_int(self._FLOAT64), ctypes.c_int32(n_features), _c_str("num_threads=1"),
            ctypes.byref(self._handle)))
        self._booster = booster
        self._n = n_features
        self._lock = threading.Lock()
        self._out_len = ctypes.c_int64()

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """Contributions of one row (n_features values, float64), shape (n_features + 1,)."""
        ctypes = self._ctypes
        x = np.ascontiguousarray(row, dtype=np.float64)
        if x.shape != (self._n,):
            raise ValueError(f"expected {self._n} values, got shape {x.shape}")
        out = np.empty(self._n + 1, dtype=np.float64)
        with self._lock:
            self._safe_call(self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle, x.ctypes.data_as(ctypes.c_void_p), ctypes.byref(self._out_len),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
            if self._out_len.value != self._n + 1:
                raise RuntimeError(f"LightGBM returned {self._out_len.value} contributions, expected {self._n + 1}")
        return out

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            with contextlib.suppress(Exception):  # interpreter shutdown
                self._lib.LGBM_FastConfigFree(handle)
