"""The churn model as the service runs it: LightGBM booster + calibration + risk bands + reasons.

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

logger = logging.getLogger(__name__)

BOOSTER_FILE = "booster.txt"
CALIBRATION_FILE = "calibration.json"
MANIFEST_FILE = "manifest.json"
BUNDLE_DIR = "bundle"
RISK_BANDS = ("low", "medium", "high")


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
        ``{"method": "isotonic", "x": [...], "y": [...]}`` (piecewise-linear map of the raw
        probability) or ``{"method": "sigmoid", "a": ..., "b": ...}`` (Platt scaling of the
        raw log-odds), or ``{"method": "none"}``.
    band_thresholds:
        ``(medium_from, high_from)`` calibrated probabilities.
    metadata:
        Free-form facts stored with the model (feature service, training window, ...).
    """

    def __init__(
        self,
        booster: Any,
        feature_names: list[str],
        categories: dict[str, list[str]],
        calibration: dict[str, Any],
        band_thresholds: tuple[float, float],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.booster = booster
        self.feature_names = list(feature_names)
        self.categories = {k: list(v) for k, v in categories.items()}
        self.calibration = dict(calibration)
        self.band_thresholds = (float(band_thresholds[0]), float(band_thresholds[1]))
        self.metadata = dict(metadata or {})
        self.model_version: str | None = None
        self._codes = {f: {c: float(i) for i, c in enumerate(cats)} for f, cats in self.categories.items()}
        self._positions = {name: i for i, name in enumerate(self.feature_names)}
        if calibration.get("method") == "isotonic":
            self._iso_x = np.asarray(calibration["x"], dtype=np.float64)
            self._iso_y = np.asarray(calibration["y"], dtype=np.float64)
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
        """Uncalibrated log-odds, array of shape (n_rows,)."""
        return np.asarray(self.booster.predict(X, raw_score=True, num_threads=1), dtype=np.float64)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Map raw log-odds to calibrated probabilities."""
        method = self.calibration.get("method", "none")
        if method == "isotonic":
            p = 1.0 / (1.0 + np.exp(-raw))
            return np.clip(np.interp(p, self._iso_x, self._iso_y), 0.0, 1.0)
        if method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.calibration["a"] * raw + self.calibration["b"])))
        return 1.0 / (1.0 + np.exp(-raw))

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
        """The ``k`` features that moved each score most, as ``{feature, value, contribution}``.

        ``contribution`` is the signed SHAP value in log-odds (positive raises the churn
        risk); ``value`` is the customer's feature value (the category name for categoricals,
        None when missing).
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
                row.append({"feature": name, "value": self._display_value(name, X[i, j]),
                            "contribution": round(float(contrib[i, j]), 6)})
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
