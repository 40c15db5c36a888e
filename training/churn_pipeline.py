"""Churn training in stages, and the promotion gate's comparison of two registered versions.

:func:`train_churn` reads top to bottom, one small function per stage:

1. data source -> training frame: :func:`load_training_data` reads the prepared tables of the
   source's workspace (:func:`training.sources.source_settings`) and splits them;
2. (tune: :func:`tune_churn_model`) -> fit: :func:`fit_churn_model`, which fits every candidate
   and chooses on the validation window (:mod:`training.churn_selection`);
3. evaluate: :func:`evaluate_churn_model`: every candidate, the logistic and recency baselines
   and per-segment metrics on the test window;
4. log: :func:`training.churn_logging.log_churn_run` (MLflow);
5. register: :func:`register_challenger` (alias ``challenger``).

Training never promotes: ``training.gate.promote`` decides, called by the CLI (``--promote``)
and the pipeline flows after training. Sources: ``generated`` (this workspace, features
through Feast), ``cdnow`` (the same point-in-time path in its own workspace) and ``telco`` (a
static snapshot with an explicit label: no cut-offs, a stratified split of customers). Real
datasets are ingested (and their features built) by :func:`pipelines.flows.prepare_source`
before training; training reads only the prepared tables.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd

from tenure.registry.churn_scorer import ChurnScorer
from tenure.registry.models import GateDecision, model_name_for, register_version
from tenure.settings import Settings
from tenure.training.churn_dataset import (
    LABEL_COLUMN,
    TimeSplit,
    build_churn_training_set,
    build_snapshot_training_set,
    split_by_time,
    split_snapshot,
)
from tenure.training.churn_evaluate import (
    classification_metrics,
    global_importance,
    recency_rule_scores,
    segment_metrics,
    segment_summary,
    worst_segment,
)
from tenure.training.churn_logging import log_churn_run
from tenure.training.churn_model import ChurnModel, to_matrix
from tenure.training.churn_selection import Selection, reference_population, select_churn_model
from tenure.training.sources import CHURN_SOURCES, source_settings
from tenure.training.tracking import configure_mlflow

logger = logging.getLogger(__name__)

Source = Literal["generated", "snapshot", "telco", "cdnow"]
SEGMENT_COLUMNS = ("acquisition_channel", "plan", "region", "internet_service", "payment_method")
NON_FEATURES = ("customer_id", "event_timestamp", LABEL_COLUMN, "created")
TELCO_TEST_SHARE = 0.2
TELCO_VALID_SHARE = 0.2
IMPORTANCE_ROWS = 2000
Progress = Callable[[str], None]


@dataclasses.dataclass
class ChurnData:
    """Stage 1's output: the split training frame of one source and its feature names.

    ``settings`` are the settings of the source's workspace (CDNOW's horizon, for example).
    """

    settings: Settings
    source: str
    split: TimeSplit
    numeric: list[str]
    categorical: list[str]

    @property
    def features(self) -> list[str]:
        """Every feature column, numeric first."""
        return self.numeric + self.categorical


@dataclasses.dataclass
class TuningResult:
    """What an Optuna search found: the best overrides and every trial (validation ROC-AUC)."""

    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    trials: list[dict[str, Any]]


@dataclasses.dataclass
class ChurnEvaluation:
    """Stage 3's output: the chosen model, every candidate and the baselines on the test window.

    ``metrics`` maps model name (``tenure`` = the chosen candidate calibrated,
    ``tenure_uncalibrated``, each candidate: ``lightgbm``, ``lightgbm_shallow``, ``logistic``
    (also the logistic baseline), ``blend``, and ``recency_rule``) to its metrics; ``scores`` the
    same names to test scores, arrays of shape (n_test_rows,); ``segments`` one row per segment
    value (the chosen model); ``segment_summary`` the worst segment and largest gap per segment
    column; ``importance`` one row per feature; ``valid_roc_auc`` the chosen candidate's ROC-AUC
    on the validation window; ``valid`` every candidate's validation ROC-AUC and what it chose.
    """

    metrics: dict[str, dict[str, float]]
    scores: dict[str, np.ndarray]
    segments: pd.DataFrame
    importance: pd.DataFrame
    valid_roc_auc: float
    segment_summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    valid: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ChurnTrainingResult:
    """What one training run produced (a registered ``challenger``; the gate is a separate step)."""

    run_id: str
    version: str
    metrics: dict[str, dict[str, float]]
    segments: pd.DataFrame
    importance: pd.DataFrame
    split_rows: dict[str, int]
    tuning: TuningResult | None = None
    chosen: str = "lightgbm"
    valid: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    calibration: dict[str, Any] = dataclasses.field(default_factory=dict)
    segment_summary: dict[str, Any] = dataclasses.field(default_factory=dict)


# --- stage 1: data source -> training frame ------------------------------------------------------

def load_training_data(settings: Settings, source: str = "generated") -> ChurnData:
    """The split training frame of ``source``, read from its prepared workspace.

    Parameters
    ----------
    settings:
        This workspace's settings.
    source:
        ``generated``, ``cdnow`` (point-in-time frame through Feast, split by time) or ``telco``
        (the ingested snapshot, stratified split).

    Raises
    ------
    ValueError
        For an unknown source, or a source whose workspace was not prepared.
    """
    if source not in CHURN_SOURCES:
        raise ValueError(f"churn source must be one of {', '.join(CHURN_SOURCES)}, got {source!r}")
    ws = source_settings(settings, source)
    if source == "snapshot":
        frame, numeric, categorical = build_snapshot_training_set(ws)
        split = split_snapshot(frame, ws.churn.random_state)
    elif source == "telco":
        split, numeric, categorical = load_telco_split(ws)
    else:
        split, numeric, categorical = load_generated_split(ws)
    return ChurnData(ws, source, split, numeric, categorical)


def load_generated_split(settings: Settings, store=None) -> tuple[TimeSplit, list[str], list[str]]:
    """Point-in-time training set of the workspace, split by time; also the numeric and categorical features."""
    from tenure.features.customer_features import CUSTOMER_CATEGORICAL_FEATURES

    frame = build_churn_training_set(settings, store=store)
    features = [c for c in frame.columns if c not in NON_FEATURES]
    categorical = [c for c in features if c in CUSTOMER_CATEGORICAL_FEATURES]
    numeric = [c for c in features if c not in categorical]
    split = split_by_time(frame, settings.churn.validation_cutoffs, settings.churn.test_cutoffs, settings.churn.horizon_days)
    return split, numeric, categorical


def load_telco_split(settings: Settings) -> tuple[TimeSplit, list[str], list[str]]:
    """The ingested Telco snapshot split into stratified train / validation / test customers (60/20/20).

    ``settings`` are the Telco workspace's (:func:`training.sources.source_settings`); its
    customers table holds the attributes and the ``churned`` label.
    """
    from sklearn.model_selection import train_test_split

    from tenure.features.tables import read_customers

    customers = read_customers(settings, missing_ok=True)
    if customers.empty:
        raise ValueError(f"no Telco customers under {settings.paths.tables_dir}: prepare the workspace first "
                         "(`tenure train churn --source telco --path DIR` ingests the dataset)")
    frame = telco_feature_frame(customers)
    random_state = settings.churn.random_state
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


# --- stage 2: (tune ->) fit ----------------------------------------------------------------------

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


def fit_churn_model(data: ChurnData, tuning: TuningResult | None = None) -> Selection:
    """Every candidate on the training window, the one chosen on validation, calibrated and refitted.

    The ``lightgbm`` candidate's parameters come from ``data.settings.churn``, overridden by
    ``tuning.best_params`` when given (:func:`training.churn_selection.select_churn_model`).
    """
    split = data.split
    return select_churn_model(split.train, split.train[LABEL_COLUMN].to_numpy(), split.valid,
                              split.valid[LABEL_COLUMN].to_numpy(), data.features, data.categorical,
                              data.settings.churn, tuning.best_params if tuning is not None else None)


def package_scorer(selection: Selection, data: ChurnData) -> ChurnScorer:
    """The chosen model as the serving runtime: metadata saying what it was trained on, and the reference
    population for percentiles (its calibrated scores of the latest customers, the test window)."""
    cutoffs = data.split.cutoffs()
    scorer = selection.scorer
    scorer.metadata.update({
        "source": data.source,
        "feature_service": "churn_v1" if data.source != "telco" else None,
        "horizon_days": data.settings.churn.horizon_days,
        "trained_through": str(max(cutoffs["valid" if selection.refit else "train"])),
        "test_cutoffs": [str(t) for t in cutoffs["test"]],
        "candidate": selection.chosen,
        "calibration_choice": selection.calibration_choice,
    })
    X_test = to_matrix(data.split.test, scorer.feature_names, scorer.categories)
    scorer.reference_scores = reference_population(scorer.predict_proba(X_test))
    return scorer


# --- stage 3: evaluate ---------------------------------------------------------------------------

def evaluate_split(selection: Selection, split: TimeSplit) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """The chosen model (calibrated and not), every candidate and the recency rule on the test window.

    Returns metrics per model and the test scores per model (probabilities; the candidates'
    uncalibrated).
    """
    y_test = split.test[LABEL_COLUMN].to_numpy()
    scorer = selection.scorer
    X_test = to_matrix(split.test, scorer.feature_names, scorer.categories)
    scores = {"tenure": scorer.predict_proba(X_test),
              **{name: candidate.predict_proba(X_test) for name, candidate in selection.candidates.items()}}
    scores["tenure_uncalibrated"] = scores[selection.chosen]
    metrics = {name: classification_metrics(y_test, p) for name, p in scores.items()}
    if "days_since_last_activity" in split.test.columns:
        scores["recency_rule"] = recency_rule_scores(split.test)
        metrics["recency_rule"] = classification_metrics(y_test, scores["recency_rule"], probabilities=False)
    order = ["tenure", "tenure_uncalibrated", *selection.candidates, "recency_rule"]
    return {k: metrics[k] for k in order if k in metrics}, {k: scores[k] for k in order if k in scores}


def segment_columns(data: ChurnData) -> list[str]:
    """Columns to cut the test window by: the known segment columns and every categorical feature present."""
    return [c for c in dict.fromkeys([*SEGMENT_COLUMNS, *data.categorical]) if c in data.split.test.columns]


def evaluate_churn_model(selection: Selection, scorer: ChurnScorer, data: ChurnData) -> ChurnEvaluation:
    """Test metrics of every candidate beside the baselines, metrics per segment, global importance."""
    split = data.split
    metrics, scores = evaluate_split(selection, split)
    y_test = split.test[LABEL_COLUMN].to_numpy()
    segments = segment_metrics(split.test, y_test, scores["tenure"], segment_columns(data),
                               data.settings.churn.segment_min_rows)
    X_test = to_matrix(split.test, scorer.feature_names, scorer.categories)
    importance = global_importance(scorer, X_test[:IMPORTANCE_ROWS])
    return ChurnEvaluation(metrics, scores, segments, importance, selection.valid[selection.chosen]["roc_auc"],
                           segment_summary(segments), selection.valid)


# --- stage 5: register (stage 4, log, is training.churn_logging) ---------------------------------

def register_challenger(settings: Settings, source: str, run_id: str, model_uri: str) -> str:
    """Register the run's logged model as a new ``tenure-churn`` version aliased ``challenger``; its version."""
    return register_version(settings, "churn", run_id, tags={"source": source}, model_uri=model_uri)


# --- the stages composed -------------------------------------------------------------------------

def train_churn(
    settings: Settings,
    source: Source = "generated",
    tune: int = 0,
    progress: Progress | None = None,
) -> ChurnTrainingResult:
    """Build the training frame, fit, evaluate beside the baselines, log to MLflow, register as challenger.

    Promotion is not decided here: call ``training.gate.promote(settings, "churn")`` afterwards.

    Parameters
    ----------
    settings:
        Where data, Feast and MLflow live, and the churn settings.
    source:
        ``generated`` (this workspace), ``telco`` or ``cdnow`` (their prepared workspaces, see
        :func:`pipelines.flows.prepare_source`).
    tune:
        Optuna trials before the final fit (0 = use the settings' parameters).
    progress:
        Called with a short description as each stage starts (the CLI shows it).

    Returns
    -------
    ChurnTrainingResult
        Run id, registered version, metrics of the model and baselines, split sizes, tuning.
    """
    say = progress or (lambda message: logger.info("%s", message))
    say("building the training set")
    data = load_training_data(settings, source)
    tuning = None
    if tune:
        say(f"tuning ({tune} trials)")
        tuning = tune_churn_model(data.settings, data.split, data.features, data.categorical, tune)
    say("fitting the candidates, choosing on validation, calibrating")
    selection = fit_churn_model(data, tuning)
    scorer = package_scorer(selection, data)
    say("evaluating every candidate against the baselines")
    evaluation = evaluate_churn_model(selection, scorer, data)
    say("logging to MLflow")
    run_id, model_uri = log_churn_run(settings, data, selection, scorer, evaluation, tuning)
    say("registering the challenger")
    version = register_challenger(settings, source, run_id, model_uri)
    split = data.split
    return ChurnTrainingResult(
        run_id=run_id,
        version=version,
        metrics=evaluation.metrics,
        segments=evaluation.segments,
        importance=evaluation.importance,
        split_rows={"train": len(split.train), "valid": len(split.valid), "test": len(split.test)},
        tuning=tuning,
        chosen=selection.chosen,
        valid=evaluation.valid,
        calibration=calibration_report(selection, evaluation),
        segment_summary=evaluation.segment_summary,
    )


def calibration_report(selection: Selection, evaluation: ChurnEvaluation) -> dict[str, Any]:
    """Which calibration, why, and Brier / log loss / ECE / ROC-AUC before and after it on the test window."""
    keys = ("brier", "log_loss", "ece", "roc_auc")
    before, after = evaluation.metrics["tenure_uncalibrated"], evaluation.metrics["tenure"]
    return {"method": selection.scorer.calibration.get("method"), "why": selection.calibration_choice,
            "before": {k: before.get(k) for k in keys}, "after": {k: after.get(k) for k in keys}}


# --- the promotion gate --------------------------------------------------------------------------

def load_registered_scorer(settings: Settings, version: str) -> ChurnScorer:
    """Version ``version`` of ``tenure-churn`` as its :class:`ChurnScorer`, through the registry's
    one download and local cache (:class:`registry.champion.ModelCache`)."""
    from tenure.registry.champion import ModelCache

    return ModelCache.from_settings(settings).load("churn", alias=None, version=str(version)).runtime


def _run_tags(settings: Settings, version: str) -> dict[str, str]:
    client = configure_mlflow(settings)
    mv = client.get_model_version(model_name_for(settings, "churn"), version)
    return dict(client.get_run(mv.run_id).data.tags)


BASELINES = {"logistic": "logistic regression", "recency_rule": "the recency rule"}


def check_baselines(settings: Settings, version: str) -> GateDecision:
    """Does version ``version`` beat its own baselines on its training run's test window?

    Reads what the run logged on the same test rows: the model's ``test_roc_auc`` and each
    baseline's ``<baseline>_test_roc_auc`` (:data:`BASELINES`). ``promoted`` is False, with the
    reason, when the model is more than ``churn.gate_auc_tolerance`` below any baseline;
    baselines the run did not log are named as not measured.
    """
    client = configure_mlflow(settings)
    mv = client.get_model_version(model_name_for(settings, "churn"), version)
    logged = client.get_run(mv.run_id).data.metrics
    tol = settings.churn.gate_auc_tolerance
    model_auc = logged.get("test_roc_auc", float("nan"))
    found = {name: logged[f"{name}_test_roc_auc"] for name in BASELINES if f"{name}_test_roc_auc" in logged}
    metrics = {"roc_auc": model_auc, **{f"{name}_roc_auc": v for name, v in found.items()}}
    unmeasured = [BASELINES[n] for n in BASELINES if n not in found]
    if not np.isfinite(model_auc):
        return GateDecision(False, f"version {version} logged no test ROC-AUC: it cannot be judged", metrics)
    losses = [f"{BASELINES[n]} {v:.4f}" for n, v in found.items() if model_auc < v - tol]
    if losses:
        return GateDecision(False, f"ROC-AUC {model_auc:.4f} loses to its baselines by more than {tol}: "
                                   f"{', '.join(losses)} (test window of its training run)", metrics)
    versus = ", ".join(f"{BASELINES[n]} {v:.4f}" for n, v in found.items()) or "no baselines"
    reason = f"beats its baselines: ROC-AUC {model_auc:.4f} vs {versus}"
    if unmeasured:
        reason += f" ({', '.join(unmeasured)} not measured)"
    return GateDecision(True, reason, metrics)


def compare_for_gate(settings: Settings, champion_version: str, challenger_version: str,
                     data: ChurnData | None = None) -> GateDecision:
    """Judge challenger vs champion on the same, latest test window rebuilt from current data.

    The challenger passes when its ROC-AUC is at most ``churn.gate_auc_tolerance`` below the
    champion's, its calibration error (ECE) at most ``churn.gate_calibration_tolerance`` above,
    and its worst segment's ROC-AUC (segment columns with at least ``churn.segment_min_rows``
    rows per value) at most ``churn.gate_segment_tolerance`` below the champion's worst on the
    same rows. ``data`` replaces the rebuilt frame (its test window is what is read; the gate's dask branch
    builds it on the cluster).
    """
    if data is None:
        source = _run_tags(settings, challenger_version).get("tenure.source", "generated")
        data = load_training_data(settings, source)
    split = data.split
    y = split.test[LABEL_COLUMN].to_numpy()
    columns = segment_columns(data)
    results = {}
    for role, version in (("champion", champion_version), ("challenger", challenger_version)):
        scorer = load_registered_scorer(settings, version)
        missing = [f for f in scorer.feature_names if f not in split.test.columns]
        if missing:
            results[role] = {"roc_auc": float("nan"), "ece": float("nan")}
            logger.warning("version %s needs features the current data lacks: %s", version, missing)
            continue
        p = scorer.predict_proba(to_matrix(split.test, scorer.feature_names, scorer.categories))
        m = classification_metrics(y, p)
        worst = worst_segment(split.test, y, p, columns, settings.churn.segment_min_rows)
        results[role] = {"roc_auc": m.get("roc_auc", float("nan")), "ece": m.get("ece", float("nan")),
                         "brier": m.get("brier", float("nan")),
                         "worst_segment_roc_auc": worst["roc_auc"] if worst else float("nan")}
        if worst:
            results[role]["worst_segment"] = f"{worst['segment']}={worst['value']}"
    new, old = results["challenger"], results["champion"]
    promoted, reason = _verdict(settings, new, old, len(y))
    numbers = {role: {k: v for k, v in r.items() if not isinstance(v, str)} for role, r in results.items()}
    return GateDecision(promoted=promoted, reason=reason, challenger_metrics=numbers["challenger"],
                        champion_metrics=numbers["champion"])


def _verdict(settings: Settings, new: dict[str, Any], old: dict[str, Any], rows: int) -> tuple[bool, str]:
    """(promoted, reason) of challenger metrics ``new`` against champion metrics ``old``."""
    churn = settings.churn
    auc_tol, cal_tol, seg_tol = churn.gate_auc_tolerance, churn.gate_calibration_tolerance, churn.gate_segment_tolerance
    if not np.isfinite(new["roc_auc"]):
        return False, "the challenger cannot be scored on the current test window"
    if not np.isfinite(old["roc_auc"]):
        return True, "the champion cannot be scored on the current test window any more"
    if new["roc_auc"] < old["roc_auc"] - auc_tol:
        return False, f"ROC-AUC {new['roc_auc']:.4f} is more than {auc_tol} below the champion's {old['roc_auc']:.4f}"
    if new["ece"] > old["ece"] + cal_tol:
        return False, f"calibration error {new['ece']:.4f} is more than {cal_tol} above the champion's {old['ece']:.4f}"
    new_seg, old_seg = new.get("worst_segment_roc_auc", float("nan")), old.get("worst_segment_roc_auc", float("nan"))
    if np.isfinite(new_seg) and np.isfinite(old_seg) and new_seg < old_seg - seg_tol:
        return False, (f"worst segment ({new.get('worst_segment')}) ROC-AUC {new_seg:.4f} is more than {seg_tol} "
                       f"below the champion's worst ({old.get('worst_segment')}) {old_seg:.4f}")
    segment_text = (f", worst segment {new_seg:.4f} vs {old_seg:.4f} (tolerance {seg_tol})"
                    if np.isfinite(new_seg) and np.isfinite(old_seg) else "")
    return True, (f"not worse: ROC-AUC {new['roc_auc']:.4f} vs {old['roc_auc']:.4f} (tolerance {auc_tol}), "
                  f"ECE {new['ece']:.4f} vs {old['ece']:.4f} (tolerance {cal_tol}){segment_text} on {rows} test rows")


def metrics_table(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Model and baselines side by side (rows: metric, columns: model), for printing."""
    keys = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "lift_top10", "capture_top10", "lift_top20", "capture_top20"]
    return pd.DataFrame({name: {k: values.get(k, float("nan")) for k in keys} for name, values in metrics.items()})


def json_ready(metrics: dict[str, dict[str, float]]) -> str:
    """Metrics as JSON (NaN as null)."""
    return json.dumps({m: {k: (v if np.isfinite(v) else None) for k, v in d.items()} for m, d in metrics.items()}, indent=2)
