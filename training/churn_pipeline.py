"""Train, evaluate, log and register the churn model; compare two versions for the promotion gate.

Sources: ``generated`` (the ingested tables of this workspace, features through Feast),
``cdnow`` (CDNOW transactions through the same point-in-time path, in a workspace of
its own under ``data/sources/cdnow``) and ``telco`` (a static snapshot with an explicit
label: no cut-offs, a stratified split of customers).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from registry.models import GateDecision, model_name_for, register_version
from tenure.settings import Settings
from training.churn_dataset import LABEL_COLUMN, TimeSplit, build_churn_training_set, split_by_time
from training.churn_evaluate import (
    classification_metrics,
    fit_logistic_baseline,
    global_importance,
    logistic_predict,
    recency_rule_scores,
    save_plots,
    segment_metrics,
)
from training.churn_model import ChurnModel, to_matrix
from training.tracking import configure_mlflow, ensure_experiment

logger = logging.getLogger(__name__)

Source = Literal["generated", "telco", "cdnow"]
SEGMENT_COLUMNS = ("acquisition_channel", "plan", "region", "internet_service", "payment_method")
NON_FEATURES = ("customer_id", "event_timestamp", LABEL_COLUMN, "created")
REFERENCE_ROWS = 5000
TELCO_TEST_SHARE = 0.2
TELCO_VALID_SHARE = 0.2
CDNOW_HORIZON_DAYS = 90
Progress = Callable[[str], None]


@dataclasses.dataclass
class ChurnTrainingResult:
    """What one training run produced."""

    run_id: str
    version: str
    metrics: dict[str, dict[str, float]]
    segments: pd.DataFrame
    importance: pd.DataFrame
    split_rows: dict[str, int]
    decision: GateDecision | None = None
    tuning: TuningResult | None = None


@dataclasses.dataclass
class TuningResult:
    """What an Optuna search found: the best overrides and every trial (validation ROC-AUC)."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    trials: list[dict[str, Any]]


# --- data ----------------------------------------------------------------------------------------

def _source_settings(settings: Settings, source: str) -> Settings:
    """Settings of the workspace a source is trained in (CDNOW gets its own data dir and Feast project)."""
    if source != "cdnow":
        return settings
    data_dir = settings.paths.data_dir / "sources" / "cdnow"
    paths = settings.paths.model_copy(update={"data_dir": data_dir})
    feast = settings.feast.model_copy(update={"project": f"{settings.feast.project}_cdnow", "profile": "local"})
    churn = settings.churn.model_copy(update={
        "horizon_days": max(settings.churn.horizon_days, CDNOW_HORIZON_DAYS),
        "qualifying_event_types": ["purchase"],
        "history_days": 540,
        "cutoff_every_days": 28,
    })
    return settings.model_copy(update={"paths": paths, "feast": feast, "churn": churn})


def prepare_cdnow_workspace(settings: Settings, path: Path | str) -> Settings:
    """Ingest CDNOW into its own workspace, build 4-weekly snapshots and apply Feast; return its settings."""
    from feature_repo.store import apply_definitions
    from features.adapters import read_cdnow
    from features.ingest import IngestRun
    from features.snapshots import build_feature_tables, snapshot_times

    ws = _source_settings(settings, "cdnow")
    customers, items, events = read_cdnow(path)
    with IngestRun(ws) as run:
        run.ingest_frame("customers", customers, source="cdnow customers")
        run.ingest_frame("items", items, source="cdnow items")
        run.ingest_frame("events", events, source="cdnow events")
    start = events["event_at"].min().normalize() + pd.Timedelta(days=ws.churn.cutoff_every_days)
    times = snapshot_times(start, events["event_at"].max(), every_days=ws.churn.cutoff_every_days)
    build_feature_tables(ws, times, events=events, customers=customers, items=items, replace=True)
    apply_definitions(ws)
    return ws


def load_generated_split(settings: Settings, store=None) -> tuple[TimeSplit, list[str], list[str]]:
    """Point-in-time training set of the workspace, split by time; also the numeric and categorical features."""
    from features.customer_features import CUSTOMER_CATEGORICAL_FEATURES

    frame = build_churn_training_set(settings, store=store)
    features = [c for c in frame.columns if c not in NON_FEATURES]
    categorical = [c for c in features if c in CUSTOMER_CATEGORICAL_FEATURES]
    numeric = [c for c in features if c not in categorical]
    split = split_by_time(frame, settings.churn.validation_cutoffs, settings.churn.test_cutoffs, settings.churn.horizon_days)
    return split, numeric, categorical


def load_telco_split(path: Path | str, random_state: int) -> tuple[TimeSplit, list[str], list[str]]:
    """Telco snapshot split into stratified train / validation / test customers (60/20/20)."""
    from sklearn.model_selection import train_test_split

    from features.adapters import read_telco

    customers = read_telco(path)
    frame = telco_feature_frame(customers)
    rest, test = train_test_split(frame, test_size=TELCO_TEST_SHARE, stratify=frame[LABEL_COLUMN], random_state=random_state)
    train, valid = train_test_split(rest, test_size=TELCO_VALID_SHARE / (1 - TELCO_TEST_SHARE),
                                    stratify=rest[LABEL_COLUMN], random_state=random_state)
    numeric, categorical = telco_feature_names(frame)
    split = TimeSplit(train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True))
    return split, numeric, categorical


def telco_feature_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """Telco customers -> features + ``label`` (attributes only; ``signup_at`` is tenure again)."""
    if "churned" not in customers.columns:
        raise ValueError("the Telco snapshot has no 'churned' label column")
    frame = customers.drop(columns=["signup_at", "consent_personalization"], errors="ignore").copy()
    frame[LABEL_COLUMN] = frame.pop("churned").astype(np.int64)
    frame["event_timestamp"] = pd.Timestamp("2026-01-01", tz="UTC")
    return frame


def telco_feature_names(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature columns of a Telco frame."""
    features = [c for c in frame.columns if c not in NON_FEATURES]
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in features if c not in categorical]
    return numeric, categorical


def load_split(settings: Settings, source: str, path: Path | str | None) -> tuple[Settings, TimeSplit, list[str], list[str]]:
    """Dispatch on ``source``; returns the workspace settings, the split and the feature names."""
    if source == "generated":
        return (settings, *load_generated_split(settings))
    if path is None:
        raise ValueError(f"--source {source} needs --path pointing at the dataset folder")
    if source == "telco":
        return (settings, *load_telco_split(path, settings.churn.random_state))
    if source == "cdnow":
        ws = prepare_cdnow_workspace(settings, path)
        return (ws, *load_generated_split(ws))
    raise ValueError(f"source must be 'generated', 'telco' or 'cdnow', got {source!r}")


# --- fitting -------------------------------------------------------------------------------------

def _model_from_settings(settings: Settings, features: list[str], categorical: list[str], **overrides: Any) -> ChurnModel:
    c = settings.churn
    params: dict[str, Any] = {
        "num_leaves": c.num_leaves,
        "learning_rate": c.learning_rate,
        "n_estimators": c.n_estimators,
        "early_stopping_rounds": c.early_stopping_rounds,
        "calibration": c.calibration,
        "band_thresholds": (c.medium_threshold, c.high_threshold) if c.risk_bands == "thresholds" else None,
        "random_state": c.random_state,
    }
    params.update(overrides)
    return ChurnModel(features, categorical, **params)


def tune_churn_model(settings: Settings, split: TimeSplit, features: list[str], categorical: list[str],
                     trials: int) -> TuningResult:
    """Optuna search over LightGBM parameters, judged on validation ROC-AUC (uncalibrated scores).

    The sampler is seeded with ``churn.random_state`` and LightGBM is deterministic, so the same
    data and trials give the same result. Returns the best overrides and every trial.
    """
    import optuna
    from sklearn.metrics import roc_auc_score

    if trials < 1:
        raise ValueError(f"--tune needs at least 1 trial, got {trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        overrides = {
            "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        }
        model = _model_from_settings(settings, features, categorical, **overrides)
        model.fit(split.train, split.train[LABEL_COLUMN], split.valid, split.valid[LABEL_COLUMN])
        return roc_auc_score(split.valid[LABEL_COLUMN], model.predict_uncalibrated(split.valid))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.churn.random_state))
    study.optimize(objective, n_trials=trials)
    logger.info("tuning: best validation ROC-AUC %.4f with %s", study.best_value, study.best_params)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return TuningResult(
        best_params=dict(study.best_params),
        best_value=float(study.best_value),
        best_trial=int(study.best_trial.number),
        trials=[{"number": t.number, "valid_roc_auc": float(t.value), "params": dict(t.params)} for t in done],
    )


def evaluate_split(model: ChurnModel, split: TimeSplit, numeric: list[str], categorical: list[str],
                   random_state: int) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Model and baselines on the test window: metrics per model, and the test scores per model."""
    y_test = split.test[LABEL_COLUMN].to_numpy()
    p_model = model.predict_proba(split.test)
    scores = {"tenure": p_model, "tenure_uncalibrated": model.predict_uncalibrated(split.test)}
    lr = fit_logistic_baseline(split.train, split.train[LABEL_COLUMN], numeric, categorical, random_state)
    scores["logistic"] = logistic_predict(lr, split.test)
    metrics = {
        "tenure": classification_metrics(y_test, p_model),
        "tenure_uncalibrated": classification_metrics(y_test, scores["tenure_uncalibrated"]),
        "logistic": classification_metrics(y_test, scores["logistic"]),
    }
    if "days_since_last_activity" in split.test.columns:
        scores["recency_rule"] = recency_rule_scores(split.test)
        metrics["recency_rule"] = classification_metrics(y_test, scores["recency_rule"], probabilities=False)
    return metrics, scores


def _data_hash(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def _pip_requirements() -> list[str]:
    """What the logged pyfunc needs (explicit, so MLflow does not export the whole lock each run)."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn")]


def _code_version() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True,
                              timeout=5, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def train_churn(
    settings: Settings,
    source: Source = "generated",
    path: Path | str | None = None,
    tune: int = 0,
    promote: bool = False,
    progress: Progress | None = None,
) -> ChurnTrainingResult:
    """Build the training set, fit, evaluate beside the baselines, log to MLflow and register.

    Parameters
    ----------
    settings:
        Where data, Feast and MLflow live, and the churn settings.
    source:
        ``generated`` (this workspace's ingested data), ``telco`` or ``cdnow`` (with ``path``).
    tune:
        Optuna trials before the final fit (0 = use the settings' parameters).
    promote:
        Run the promotion gate after registering.
    progress:
        Called with a short description as each stage starts (the CLI shows it).

    Returns
    -------
    ChurnTrainingResult
        Run id, registered version, metrics of the model and baselines, and the gate's decision.
    """
    import mlflow

    say = progress or (lambda message: logger.info("%s", message))
    say("building the training set")
    ws, split, numeric, categorical = load_split(settings, source, path)
    features = numeric + categorical
    overrides: dict[str, Any] = {}
    tuning = None
    if tune:
        say(f"tuning ({tune} trials)")
        tuning = tune_churn_model(ws, split, features, categorical, tune)
        overrides = tuning.best_params
    say("fitting LightGBM and calibration")
    model = _model_from_settings(ws, features, categorical, **overrides)
    model.fit(split.train, split.train[LABEL_COLUMN], split.valid, split.valid[LABEL_COLUMN])
    from sklearn.metrics import roc_auc_score

    valid_roc_auc = float(roc_auc_score(split.valid[LABEL_COLUMN], model.predict_uncalibrated(split.valid)))
    say("evaluating against the baselines")
    metrics, scores = evaluate_split(model, split, numeric, categorical, ws.churn.random_state)
    y_test = split.test[LABEL_COLUMN].to_numpy()
    segments = segment_metrics(split.test, y_test, scores["tenure"], SEGMENT_COLUMNS)
    X_test = to_matrix(split.test, model.feature_names_, model.categories_)
    cutoffs = split.cutoffs()
    metadata = {
        "source": source,
        "feature_service": "churn_v1" if source != "telco" else None,
        "horizon_days": ws.churn.horizon_days,
        "trained_through": str(max(cutoffs["train"])),
        "test_cutoffs": [str(t) for t in cutoffs["test"]],
    }
    scorer = model.to_scorer(metadata)
    importance = global_importance(scorer, X_test[:2000])

    say("logging to MLflow")
    experiment_id = ensure_experiment(settings, settings.mlflow.churn_experiment)
    from registry.churn_pyfunc import ChurnPyfunc

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"churn-{source}") as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        mlflow.log_params({
            "source": source,
            "horizon_days": ws.churn.horizon_days,
            "cutoff_every_days": ws.churn.cutoff_every_days,
            "calibration": model.calibration,
            "num_leaves": model.num_leaves,
            "learning_rate": model.learning_rate,
            "min_child_samples": model.min_child_samples,
            "feature_fraction": model.feature_fraction,
            "lambda_l2": model.lambda_l2,
            "best_iteration": model.best_iteration_,
            "n_features": len(features),
            "tuning_trials": tune,
            "band_medium": scorer.band_thresholds[0],
            "band_high": scorer.band_thresholds[1],
        })
        for name, values in metrics.items():
            prefix = "test" if name == "tenure" else f"{name}_test"
            mlflow.log_metrics({f"{prefix}_{k}": v for k, v in values.items() if np.isfinite(v)})
        mlflow.log_metrics({f"rows_{name}": float(len(part)) for name, part in
                            (("train", split.train), ("valid", split.valid), ("test", split.test))})
        mlflow.log_metric("valid_roc_auc_uncalibrated", valid_roc_auc)
        if tuning is not None:
            for trial in tuning.trials:
                mlflow.log_metric("tuning_valid_roc_auc", trial["valid_roc_auc"], step=trial["number"])
            mlflow.log_metric("tuning_best_valid_roc_auc", tuning.best_value)
            mlflow.log_dict(dataclasses.asdict(tuning), "tuning.json")
            mlflow.set_tags({"tenure.tuning.best_trial": str(tuning.best_trial),
                             "tenure.tuning.best_params": json.dumps(tuning.best_params, sort_keys=True)})
        mlflow.set_tags({
            "tenure.source": source,
            "tenure.source_path": str(path) if path else "",
            "tenure.feature_service": metadata["feature_service"] or "",
            "tenure.data_window": f"{min(cutoffs['train'])} .. {max(cutoffs['test'])}",
            "tenure.training_data_hash": _data_hash(split.train[features + [LABEL_COLUMN]]),
            "tenure.code_version": _code_version(),
        })
        mlflow.log_dict({"numeric": numeric, "categorical": categorical, "feature_service": metadata["feature_service"],
                         "cutoffs": {k: [str(t) for t in v] for k, v in cutoffs.items()}}, "features.json")
        for path_ in save_plots(tmp_dir / "plots", y_test, {k: v for k, v in scores.items() if k != "tenure_uncalibrated"},
                                scores["tenure"], importance):
            mlflow.log_artifact(str(path_), "plots")
        segments.to_csv(tmp_dir / "segments.csv", index=False)
        importance.to_csv(tmp_dir / "importance.csv", index=False)
        mlflow.log_artifact(str(tmp_dir / "segments.csv"))
        mlflow.log_artifact(str(tmp_dir / "importance.csv"))
        reference = split.test[features].copy()
        reference["prediction"] = scores["tenure"]
        reference[LABEL_COLUMN] = y_test
        reference = reference.sample(min(REFERENCE_ROWS, len(reference)), random_state=ws.churn.random_state)
        (tmp_dir / "reference").mkdir()
        reference.to_parquet(tmp_dir / "reference" / "reference.parquet", index=False)
        mlflow.log_artifact(str(tmp_dir / "reference" / "reference.parquet"), "reference")

        bundle = scorer.save(tmp_dir / "bundle")
        # Natural dtypes: counts are never missing (0 when nothing happened), so they stay long.
        example = split.test[features].head(5).copy()
        from mlflow.models import infer_signature

        signature = infer_signature(example, ChurnPyfunc.predict_frame(scorer, example))
        model_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnPyfunc(),
            artifacts={"bundle": str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
        )
        run_id = run.info.run_id
    version = register_version(settings, "churn", run_id, tags={"source": source}, model_uri=model_info.model_uri)
    decision = None
    if promote:
        from training.gate import promote as run_gate

        say("promotion gate")
        decision = run_gate(settings, "churn")
    return ChurnTrainingResult(
        run_id=run_id,
        version=version,
        metrics=metrics,
        segments=segments,
        importance=importance,
        split_rows={"train": len(split.train), "valid": len(split.valid), "test": len(split.test)},
        decision=decision,
        tuning=tuning,
    )


# --- the promotion gate --------------------------------------------------------------------------

def load_registered_scorer(settings: Settings, version: str, dst: Path | None = None):
    """Download version ``version`` of ``tenure-churn`` and return its :class:`ChurnScorer`."""
    import mlflow

    from registry.churn_scorer import ChurnScorer

    configure_mlflow(settings)
    name = model_name_for(settings, "churn")
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                                dst_path=str(dst) if dst else None)
    scorer = ChurnScorer.from_model_dir(local)
    scorer.model_version = str(version)
    return scorer


def _run_tags(settings: Settings, version: str) -> dict[str, str]:
    client = configure_mlflow(settings)
    mv = client.get_model_version(model_name_for(settings, "churn"), version)
    return dict(client.get_run(mv.run_id).data.tags)


def compare_for_gate(settings: Settings, champion_version: str, challenger_version: str) -> GateDecision:
    """Judge challenger vs champion on the same, latest test window rebuilt from current data.

    The challenger passes when its ROC-AUC is at most ``churn.gate_auc_tolerance`` below the
    champion's and its calibration error (ECE) at most ``churn.gate_calibration_tolerance`` above.
    """
    tags = _run_tags(settings, challenger_version)
    source = tags.get("tenure.source", "generated")
    path = tags.get("tenure.source_path") or None
    if source == "cdnow":
        ws = _source_settings(settings, "cdnow")
        split, _, _ = load_generated_split(ws)
    elif source == "telco":
        split, _, _ = load_telco_split(path, settings.churn.random_state)
    else:
        split, _, _ = load_generated_split(settings)
    y = split.test[LABEL_COLUMN].to_numpy()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for role, version in (("champion", champion_version), ("challenger", challenger_version)):
            scorer = load_registered_scorer(settings, version, Path(tmp) / role)
            missing = [f for f in scorer.feature_names if f not in split.test.columns]
            if missing:
                results[role] = {"roc_auc": float("nan"), "ece": float("nan")}
                logger.warning("version %s needs features the current data lacks: %s", version, missing)
                continue
            p = scorer.predict_proba(to_matrix(split.test, scorer.feature_names, scorer.categories))
            m = classification_metrics(y, p)
            results[role] = {"roc_auc": m.get("roc_auc", float("nan")), "ece": m.get("ece", float("nan")),
                             "brier": m.get("brier", float("nan"))}
    new, old = results["challenger"], results["champion"]
    auc_tol, cal_tol = settings.churn.gate_auc_tolerance, settings.churn.gate_calibration_tolerance
    if not np.isfinite(new["roc_auc"]):
        promoted, reason = False, "the challenger cannot be scored on the current test window"
    elif not np.isfinite(old["roc_auc"]):
        promoted, reason = True, "the champion cannot be scored on the current test window any more"
    elif new["roc_auc"] < old["roc_auc"] - auc_tol:
        promoted = False
        reason = f"ROC-AUC {new['roc_auc']:.4f} is more than {auc_tol} below the champion's {old['roc_auc']:.4f}"
    elif new["ece"] > old["ece"] + cal_tol:
        promoted = False
        reason = f"calibration error {new['ece']:.4f} is more than {cal_tol} above the champion's {old['ece']:.4f}"
    else:
        promoted = True
        reason = (f"not worse: ROC-AUC {new['roc_auc']:.4f} vs {old['roc_auc']:.4f} (tolerance {auc_tol}), "
                  f"ECE {new['ece']:.4f} vs {old['ece']:.4f} (tolerance {cal_tol}) on {len(y)} test rows")
    return GateDecision(promoted=promoted, reason=reason, challenger_metrics=new, champion_metrics=old)


def metrics_table(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Model and baselines side by side (rows: metric, columns: model), for printing."""
    keys = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top10", "capture_top10", "lift_top20", "capture_top20"]
    return pd.DataFrame({name: {k: values.get(k, float("nan")) for k in keys} for name, values in metrics.items()})


def json_ready(metrics: dict[str, dict[str, float]]) -> str:
    """Metrics as JSON (NaN as null)."""
    return json.dumps({m: {k: (v if np.isfinite(v) else None) for k, v in d.items()} for m, d in metrics.items()}, indent=2)
