"""The MLflow record of one churn training run: parameters, metrics, tags, artifacts and the model.

One function, :func:`log_churn_run`, called by :func:`training.churn_pipeline.train_churn`
after evaluation. It writes what a reader of the run needs to trust and reproduce it:

- parameters: source, horizon, the chosen candidate and what validation chose for it,
  calibration, risk-band thresholds, tuning trials;
- metrics: the chosen model's test metrics (``test_*``), every candidate's and baseline's
  (``<name>_test_*``), every candidate's validation ROC-AUC (``valid_<name>_roc_auc``),
  segment metrics (``segment_worst_roc_auc``, ``segment_largest_gap_roc_auc``,
  ``segment_<column>_worst_roc_auc``/``_gap_roc_auc``), row counts, the tuning trials;
- tags: source and workspace, feature service, data window, a hash of the training rows,
  the code version, the chosen candidate, the calibration choice, the worst segment;
- artifacts: ``features.json``, ``selection.json``, ``plots/``, ``segments.csv``, ``importance.csv``,
  ``reference/reference.parquet`` (monitoring's reference) and the pyfunc model ``model``
  (the scorer bundle, with its signature and an input example).

Registering the logged model is the next stage (:func:`training.churn_pipeline.register_challenger`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tenure.training.churn_dataset import LABEL_COLUMN
from tenure.training.churn_evaluate import save_plots
from tenure.training.tracking import ensure_experiment

if TYPE_CHECKING:
    from tenure.registry.churn_scorer import ChurnScorer
    from tenure.settings import Settings
    from tenure.training.churn_pipeline import ChurnData, ChurnEvaluation, TuningResult
    from tenure.training.churn_selection import Selection

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 5000
"""Test rows (with prediction and label) kept as monitoring's drift reference."""


def log_churn_run(
    settings: Settings,
    data: ChurnData,
    selection: Selection,
    scorer: ChurnScorer,
    evaluation: ChurnEvaluation,
    tuning: TuningResult | None = None,
) -> tuple[str, str]:
    """Log one churn run to the churn experiment.

    Parameters
    ----------
    settings:
        This workspace's settings (MLflow lives here, whatever the data source).
    data, selection, scorer, evaluation, tuning:
        The outputs of the earlier stages.

    Returns
    -------
    (run_id, model_uri)
        The MLflow run and the URI of its logged pyfunc model, for registration.
    """
    import mlflow
    from mlflow.models import infer_signature

    from tenure.registry.churn_pyfunc import ChurnPyfunc

    experiment_id = ensure_experiment(settings, settings.mlflow.churn_experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"churn-{data.source}") as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        mlflow.log_params(_params(data, selection, scorer, tuning))
        mlflow.log_metrics(_metrics(data, evaluation, tuning))
        if tuning is not None:
            for trial in tuning.trials:  # one metric, a step per trial
                mlflow.log_metric("tuning_valid_roc_auc", trial["valid_roc_auc"], step=trial["number"])
            mlflow.log_dict(dataclasses.asdict(tuning), "tuning.json")
            mlflow.set_tags({"tenure.tuning.best_trial": str(tuning.best_trial),
                             "tenure.tuning.best_params": json.dumps(tuning.best_params, sort_keys=True)})
        mlflow.set_tags(_tags(data, scorer, selection, evaluation))
        mlflow.log_dict({"chosen": selection.chosen, "valid": selection.valid, "refit": selection.refit,
                         "calibration": selection.calibration_choice, "booster_params": selection.booster_params,
                         "segments": evaluation.segment_summary}, "selection.json")
        cutoffs = data.split.cutoffs()
        mlflow.log_dict({"numeric": data.numeric, "categorical": data.categorical,
                         "feature_service": scorer.metadata.get("feature_service"),
                         "cutoffs": {k: [str(t) for t in v] for k, v in cutoffs.items()}}, "features.json")
        _log_tables_and_plots(tmp_dir, data, evaluation)
        bundle = scorer.save(tmp_dir / "bundle")
        # Natural dtypes: counts are never missing (0 when nothing happened), so they stay long.
        example = data.split.test[data.features].head(5).copy()
        signature = infer_signature(example, ChurnPyfunc.predict_frame(scorer, example))
        model_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnPyfunc(),
            artifacts={"bundle": str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
        )
        return run.info.run_id, model_info.model_uri


def _params(data: ChurnData, selection: Selection, scorer: ChurnScorer, tuning: TuningResult | None) -> dict:
    churn = data.settings.churn
    params = {
        "source": data.source,
        "horizon_days": churn.horizon_days,
        "cutoff_every_days": churn.cutoff_every_days,
        "candidate": selection.chosen,
        "candidates": ",".join(selection.valid),
        "refit_on_validation": selection.refit,
        "calibration": scorer.calibration.get("method"),
        "n_features": len(data.features),
        "tuning_trials": len(tuning.trials) if tuning is not None else 0,
        "band_medium": scorer.band_thresholds[0],
        "band_high": scorer.band_thresholds[1],
    }
    for name, values in selection.valid.items():
        params.update({f"{name}_{k}": v for k, v in values.items() if k != "roc_auc"})
    params.update(selection.booster_params["lightgbm"])  # the lightgbm candidate's (tuned) parameters
    return params


def _metrics(data: ChurnData, evaluation: ChurnEvaluation, tuning: TuningResult | None) -> dict[str, float]:
    """Test metrics of the chosen model (``test_*``), each candidate and baseline (``<name>_test_*``), validation
    ROC-AUC per candidate, segment metrics, row counts."""
    metrics: dict[str, float] = {}
    for name, values in evaluation.metrics.items():
        prefix = "test" if name == "tenure" else f"{name}_test"
        metrics.update({f"{prefix}_{k}": v for k, v in values.items() if np.isfinite(v)})
    for name, part in (("train", data.split.train), ("valid", data.split.valid), ("test", data.split.test)):
        metrics[f"rows_{name}"] = float(len(part))
    metrics["valid_roc_auc_uncalibrated"] = evaluation.valid_roc_auc
    for name, values in evaluation.valid.items():
        metrics[f"valid_{name}_roc_auc"] = values["roc_auc"]
    metrics.update(segment_metric_values(evaluation.segment_summary))
    if tuning is not None:
        metrics["tuning_best_valid_roc_auc"] = tuning.best_value
    return metrics


def segment_metric_values(summary: dict) -> dict[str, float]:
    """Segment summary (:func:`training.churn_evaluate.segment_summary`) as flat MLflow metrics."""
    out: dict[str, float] = {}
    metric = summary.get("metric", "roc_auc")
    if summary.get("worst"):
        out[f"segment_worst_{metric}"] = summary["worst"][metric]
    if summary.get("largest_gap"):
        out[f"segment_largest_gap_{metric}"] = summary["largest_gap"]["gap"]
    for column, values in summary.get("by_segment", {}).items():
        out[f"segment_{column}_worst_{metric}"] = values["worst"]
        out[f"segment_{column}_gap_{metric}"] = values["gap"]
    return out


def _tags(data: ChurnData, scorer: ChurnScorer, selection: Selection, evaluation: ChurnEvaluation) -> dict[str, str]:
    cutoffs = data.split.cutoffs()
    worst = evaluation.segment_summary.get("worst")
    return {
        "tenure.candidate": selection.chosen,
        "tenure.calibration": selection.calibration_choice,
        "tenure.segment_worst": f"{worst['segment']}={worst['value']}" if worst else "",
        "tenure.source": data.source,
        "tenure.source_workspace": str(data.settings.paths.data_dir),
        "tenure.feature_service": scorer.metadata.get("feature_service") or "",
        "tenure.data_window": f"{min(cutoffs['train'])} .. {max(cutoffs['test'])}",
        "tenure.training_data_hash": _data_hash(data.split.train[data.features + [LABEL_COLUMN]]),
        "tenure.code_version": _code_version(),
    }


def _log_tables_and_plots(tmp_dir: Path, data: ChurnData, evaluation: ChurnEvaluation) -> None:
    """Plots, per-segment metrics, feature importance and monitoring's reference sample."""
    import mlflow

    y_test = data.split.test[LABEL_COLUMN].to_numpy()
    curves = {k: v for k, v in evaluation.scores.items() if k != "tenure_uncalibrated"}
    for path in save_plots(tmp_dir / "plots", y_test, curves, evaluation.scores["tenure"], evaluation.importance):
        mlflow.log_artifact(str(path), "plots")
    evaluation.segments.to_csv(tmp_dir / "segments.csv", index=False)
    evaluation.importance.to_csv(tmp_dir / "importance.csv", index=False)
    mlflow.log_artifact(str(tmp_dir / "segments.csv"))
    mlflow.log_artifact(str(tmp_dir / "importance.csv"))
    reference = data.split.test[data.features].copy()
    reference["prediction"] = evaluation.scores["tenure"]
    reference[LABEL_COLUMN] = y_test
    reference = reference.sample(min(REFERENCE_ROWS, len(reference)), random_state=data.settings.churn.random_state)
    (tmp_dir / "reference").mkdir()
    reference.to_parquet(tmp_dir / "reference" / "reference.parquet", index=False)
    mlflow.log_artifact(str(tmp_dir / "reference" / "reference.parquet"), "reference")


def _data_hash(frame: pd.DataFrame) -> str:
    """16 hex characters identifying the training rows (order and values)."""
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _pip_requirements() -> list[str]:
    """What the logged pyfunc needs (explicit, so MLflow does not export the whole lock each run)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn")]


def _code_version() -> str:
    """The git commit of this checkout, or ``unknown``."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                              timeout=5, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
