"""Where monitoring's data comes from: the service's prediction log, the champion (through registry/), feature snapshots."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime
from pathlib import Path

import pandas as pd

from tenure.registry.champion import Champion, ModelCache, NoChampionError, load_runtime

logger = logging.getLogger(__name__)


def read_prediction_log(folder: Path, kind: str, since: datetime | None = None) -> pd.DataFrame:
    """Records of ``kind`` (``churn`` or ``recommend``) from ``folder/<kind>-*.jsonl``, newest window only.

    Returns
    -------
    DataFrame, one row per logged prediction; for ``churn`` the ``features`` dict is spread
    into columns and ``churn_probability`` is also given as ``prediction``. Malformed lines
    are skipped and counted in the log.
    """
    records, bad = [], 0
    for path in sorted(Path(folder).glob(f"{kind}-*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    bad += 1
    if bad:
        logger.warning("skipped %d malformed prediction-log lines in %s", bad, folder)
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame(records)
    frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True, format="ISO8601")
    if since is not None:
        frame = frame[frame["logged_at"] >= pd.Timestamp(since)]
    if kind == "churn" and "features" in frame.columns and len(frame):
        features = pd.DataFrame(list(frame["features"]), index=frame.index)
        frame = pd.concat([frame.drop(columns=["features"]), features], axis=1)
        frame["prediction"] = frame["churn_probability"]
    return frame.reset_index(drop=True)


def load_champion(settings, kind: str, with_reference: bool = True) -> Champion | None:
    """The ``champion`` of ``kind`` with its run's metrics and params, and (churn) its reference sample.

    No model files are downloaded here; :func:`load_champion_runtime` does that when a pass
    needs to score. Returns None when the model has no champion yet.
    """
    cache = ModelCache.from_settings(settings)
    try:
        champion = cache.describe(kind)
    except NoChampionError:
        return None
    if with_reference:
        champion = dataclasses.replace(champion, reference=cache.read_reference(champion))
    return champion


def latest_snapshot(features_dir: Path, table: str = "customer_features.parquet") -> tuple[pd.Timestamp, pd.DataFrame] | None:
    """The newest as-of time in the batch feature table and its rows (only those rows are read)."""
    from tenure.monitoring.snapshots import SnapshotTable

    snapshots = SnapshotTable(Path(features_dir) / table)
    if not snapshots.exists():
        return None
    times = snapshots.as_of_times()
    if not times:
        return None
    return times[-1], snapshots.rows(times[-1:]).reset_index(drop=True)


def load_champion_runtime(settings, champion: Champion):
    """``champion`` as the service's pickle-free runtime (``ChurnScorer``), from the model cache.

    The runtime reads plain files (the LightGBM model text, JSON calibration and manifest);
    ``mlflow.pyfunc.load_model`` would unpickle the wrapper, so anyone able to write the
    artefact store could run code in the monitoring job.
    """
    model_dir = ModelCache.from_settings(settings).download(champion.kind, champion.version)
    return load_runtime(champion.kind, model_dir, champion.version)


def score_with_champion(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``prediction`` and ``risk_band`` to ``frame`` with the champion runtime ``model`` (a ``ChurnScorer``).

    Columns the model does not know are ignored; a feature missing from ``frame`` is missing
    for every row (NaN), as in the service.
    """
    present = [name for name in model.feature_names if name in frame.columns]
    X = model.vectorize(frame[present].to_dict("records"))
    probabilities = model.predict_proba(X)
    out = frame.copy()
    out["prediction"] = probabilities
    out["risk_band"] = model.risk_bands(probabilities)
    return out


def with_risk_bands(reference: pd.DataFrame, params: dict[str, str]) -> pd.DataFrame:
    """Add ``risk_band`` to the reference sample from its ``prediction`` and the run's band thresholds.

    The reference holds probabilities but not bands; the champion's run logs the thresholds it
    serves with (``band_medium``, ``band_high``), so the reference mix is the one the model
    would have served. Returned unchanged when a band or the thresholds are missing.
    """
    if "risk_band" in reference.columns or "prediction" not in reference.columns:
        return reference
    try:
        medium, high = float(params["band_medium"]), float(params["band_high"])
    except (KeyError, TypeError, ValueError):
        return reference
    p = pd.to_numeric(reference["prediction"], errors="coerce")
    bands = pd.Series("low", index=reference.index, dtype=object)
    bands[p >= medium] = "medium"
    bands[p >= high] = "high"
    return reference.assign(risk_band=bands.where(p.notna(), None))

