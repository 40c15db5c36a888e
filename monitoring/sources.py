"""Where monitoring's data comes from: the service's prediction log, the champion in MLflow, feature snapshots."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

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


@dataclasses.dataclass
class Champion:
    """The served model as monitoring sees it."""

    kind: str
    name: str
    version: str
    run_id: str
    experiment_id: str
    created_at: datetime
    metrics: dict[str, float]
    reference: pd.DataFrame | None
    params: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def age_days(self) -> float:
        """Days since the version was registered."""
        return (datetime.now(UTC) - self.created_at).total_seconds() / 86400


def load_champion(tracking_uri: str, model_name: str, kind: str, with_reference: bool = True) -> Champion | None:
    """The ``champion`` of ``model_name`` with its run's metrics and ``reference/reference.parquet``."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version_by_alias(model_name, "champion")
    except MlflowException:
        return None
    run = client.get_run(mv.run_id)
    reference = None
    if with_reference:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="reference/reference.parquet",
                                                        tracking_uri=tracking_uri)
            reference = pd.read_parquet(local)
        except (MlflowException, OSError) as exc:
            logger.warning("champion %s v%s has no reference sample: %s", model_name, mv.version, exc)
    return Champion(
        kind=kind,
        name=model_name,
        version=str(mv.version),
        run_id=mv.run_id,
        experiment_id=run.info.experiment_id,
        created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
        metrics=dict(run.data.metrics),
        reference=reference,
        params=dict(run.data.params),
    )


def latest_snapshot(features_dir: Path, table: str = "customer_features.parquet") -> tuple[pd.Timestamp, pd.DataFrame] | None:
    """The newest as-of time in the batch feature table and its rows."""
    path = Path(features_dir) / table
    if not path.exists():
        return None
    frame = pd.read_parquet(path)
    if frame.empty:
        return None
    latest = frame["event_timestamp"].max()
    return latest, frame[frame["event_timestamp"] == latest].reset_index(drop=True)


def load_champion_pyfunc(tracking_uri: str, model_name: str):
    """The champion as an MLflow pyfunc (calibrated probabilities and risk bands)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    # An explicit client, not a models:/ URI: that would be resolved through MLflow's
    # process-wide registry setting, which other code in the process may have pointed elsewhere.
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = client.get_model_version_by_alias(model_name, "champion").version
    return mlflow.pyfunc.load_model(client.get_model_version_download_uri(model_name, version))


def score_with_champion(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``prediction`` and ``risk_band`` to ``frame`` with the champion pyfunc ``model``."""
    inputs = model.metadata.get_input_schema().inputs
    scored = model.predict(frame[[c.name for c in inputs]])
    out = frame.copy()
    out["prediction"] = scored["churn_probability"].to_numpy()
    out["risk_band"] = scored["risk_band"].to_numpy()
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


def as_jsonable(value: Any) -> Any:
    """Plain JSON types (for summaries)."""
    if dataclasses.is_dataclass(value):
        return as_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): as_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_jsonable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value
