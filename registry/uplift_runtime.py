"""The uplift champion at rest and in use: churn reduction per customer (numpy + lightgbm only).

Written by ``training/uplift_pipeline.py`` (from a fitted ``training.uplift.UpliftModel``), loaded
through ``tenure.registry.champion`` (kind ``uplift``). A bundle folder holds ``manifest.json``
(learner, propensity, feature columns, categorical vocabularies, the campaign and arm it was
learnt from, metrics) and one LightGBM text model per fitted learner part.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tenure.jsonable import to_jsonable

MANIFEST_FILE = "manifest.json"
BUNDLE_DIR = "bundle"
FORMAT_VERSION = 1


class UpliftRuntime:
    """Predicts, per customer, how much the campaign's treatment lowers the churn probability.

    Parameters
    ----------
    boosters:
        ``lightgbm.Booster`` per part: ``control`` and ``treated`` (T-learner) plus ``tau_control``
        and ``tau_treated`` (X-learner).
    manifest:
        ``learner``, ``propensity``, ``columns``, ``vocabulary``, ``campaign``, ``treatment_arm``,
        ``offer`` and free metadata.
    """

    def __init__(self, boosters: dict[str, Any], manifest: dict[str, Any]) -> None:
        self.boosters = boosters
        self.manifest = manifest
        self.columns: list[str] = list(manifest["columns"])
        self.vocabulary: dict[str, dict[str, int]] = {c: {v: i for i, v in enumerate(vals)}
                                                      for c, vals in manifest.get("vocabulary", {}).items()}
        self.model_version: str | None = None

    @property
    def treatment(self) -> str:
        """The treatment this model's uplift is about (campaign/arm)."""
        return f"{self.manifest.get('campaign')}/{self.manifest.get('treatment_arm')}"

    def vectorize(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Feature rows (dicts, e.g. online churn features) -> array (n, n_features), NaN for missing."""
        out = np.full((len(rows), len(self.columns)), np.nan)
        for i, row in enumerate(rows):
            for j, col in enumerate(self.columns):
                value = row.get(col)
                if col in self.vocabulary:
                    out[i, j] = self.vocabulary[col].get(str(value), -1) if value is not None else -1
                elif value is not None:
                    try:
                        out[i, j] = float(value)
                    except (TypeError, ValueError):
                        continue
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Churn reduction by the treatment, shape (n,) (positive = it keeps the customer)."""
        X = np.asarray(X, dtype=float)
        if self.manifest["learner"] == "t_learner":
            return self.boosters["control"].predict(X) - self.boosters["treated"].predict(X)
        e = float(self.manifest["propensity"])
        return e * self.boosters["tau_control"].predict(X) + (1 - e) * self.boosters["tau_treated"].predict(X)

    def predict_rows(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """:meth:`predict` of :meth:`vectorize`."""
        return self.predict(self.vectorize(rows)) if len(rows) else np.empty(0)

    def save(self, directory: str | Path) -> Path:
        """Write the bundle (manifest + one LightGBM text model per part) into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        for name, booster in self.boosters.items():
            booster.save_model(str(folder / f"{name}.txt"))
        manifest = {**self.manifest, "format_version": FORMAT_VERSION, "parts": sorted(self.boosters)}
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=to_jsonable))
        return folder

    @classmethod
    def load(cls, directory: str | Path) -> UpliftRuntime:
        """Read a bundle written by :meth:`save`."""
        import lightgbm as lgb

        folder = Path(directory)
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"uplift bundle {folder} has format {manifest.get('format_version')}, "
                             f"this tenure reads {FORMAT_VERSION}")
        boosters = {name: lgb.Booster(model_file=str(folder / f"{name}.txt")) for name in manifest["parts"]}
        return cls(boosters, manifest)

    @classmethod
    def from_model_dir(cls, local_dir: str | Path) -> UpliftRuntime:
        """Load from an MLflow model folder (what ``registry.champion`` downloads), or the bundle itself."""
        root = Path(local_dir)
        for candidate in (root, root / BUNDLE_DIR, root / "artifacts" / BUNDLE_DIR):
            if (candidate / MANIFEST_FILE).is_file():
                return cls.load(candidate)
        for manifest in sorted(root.rglob(f"{BUNDLE_DIR}/{MANIFEST_FILE}")):
            return cls.load(manifest.parent)
        raise FileNotFoundError(f"no uplift model files ({MANIFEST_FILE}) under {root}")
