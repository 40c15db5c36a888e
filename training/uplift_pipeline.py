"""``tenure train uplift``: fit an uplift model on a past randomised campaign, evaluate, log, register, gate.

1. The campaign's customers (``training.uplift_dataset.uplift_frame``: features at the treatment,
   churn in the horizon after it) are split into training and held-out rows, stratified by arm.
2. The learner (X-learner by default, or T-learner) is fitted on the training rows.
3. On the held-out rows: Qini AUC of the model, of ranking by churn probability (a LightGBM churn
   classifier on the control arm's training rows: what a risk policy ranks by) and of a seeded
   random ranking, and the observed uplift among the top 10%.
4. MLflow: experiment ``mlflow.uplift_experiment``; params, metrics, the held-out rows
   (``holdout/holdout.parquet``, for the gate) and the pyfunc model; registered as
   ``mlflow.uplift_model_name`` with alias ``challenger``.
5. The gate (``training.gate.promote(settings, "uplift")``): the model must beat churn ranking and
   random on its held-out rows (:func:`check_baselines`), and must not rank the challenger's
   held-out rows worse than the champion does (:func:`compare_for_gate`, both models on the same rows).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tenure.registry.models import GateDecision

logger = logging.getLogger(__name__)

HOLDOUT_ARTIFACT = "holdout/holdout.parquet"
GATE_TOLERANCE = 0.0005
"""Qini AUC the challenger may lose to the champion on the same rows and still be promoted."""


@dataclass
class UpliftTrainingResult:
    """What one ``tenure train uplift`` produced."""

    run_id: str
    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    campaign: str = ""
    treatment_arm: str = ""


def split_by_arm(treated: np.ndarray, test_share: float, random_state: int) -> np.ndarray:
    """Boolean mask of held-out rows, ``test_share`` of each arm (seeded)."""
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    rng = np.random.default_rng(random_state)
    test = np.zeros(len(treated), dtype=bool)
    for arm in (True, False):
        idx = np.flatnonzero(treated == arm)
        test[rng.choice(idx, round(test_share * len(idx)), replace=False)] = True
    return test


def evaluate(uplift: np.ndarray, churn_score: np.ndarray, treated: np.ndarray, retained: np.ndarray,
             random_state: int = 0) -> dict[str, float]:
    """Qini AUC of the uplift, of churn ranking and of a random ranking; observed uplift in the top 10%."""
    from tenure.training.uplift import qini_auc, uplift_at

    rng = np.random.default_rng(random_state)
    return {"qini_auc": qini_auc(uplift, treated, retained),
            "qini_auc_churn_ranking": qini_auc(churn_score, treated, retained),
            "qini_auc_random": qini_auc(rng.random(len(uplift)), treated, retained),
            "uplift_top10": uplift_at(uplift, treated, retained, 0.10),
            "uplift_top10_churn_ranking": uplift_at(churn_score, treated, retained, 0.10),
            "uplift_overall": uplift_at(np.zeros(len(uplift)), treated, retained, 1.0)}


def train_uplift(settings, campaign: str, learner: str = "x_learner", test_share: float = 0.3,
                 random_state: int = 0) -> UpliftTrainingResult:
    """Fit, evaluate, log and register an uplift model on campaign ``campaign`` (see the module docstring).

    Raises
    ------
    UnknownExperimentError
        When no treatment event names ``campaign``.
    ValueError
        When no window has ended, an arm is missing, or the campaign has more than one treated arm.
    """
    import lightgbm as lgb
    import mlflow

    from tenure.features.tables import read_customers, read_events, read_items
    from tenure.registry.models import register_version
    from tenure.registry.uplift_pyfunc import UpliftPyfunc
    from tenure.training.tracking import configure_mlflow, ensure_experiment
    from tenure.training.uplift import UpliftModel
    from tenure.training.uplift_dataset import FeatureEncoder, uplift_frame

    definition = next((d for d in settings.experiments.definitions if d.name == campaign), None)
    control = definition.control if definition is not None else "control"
    horizon = (definition.horizon_days if definition is not None and definition.horizon_days
               else settings.churn.horizon_days)
    events = read_events(settings)
    frame = uplift_frame(events, read_customers(settings), read_items(settings), campaign, horizon,
                         settings.churn.qualifying_event_types, control=control)
    treated_arms = sorted(set(frame["arm"]) - {control})
    if len(treated_arms) != 1:
        raise ValueError(f"campaign {campaign!r} has treated arms {treated_arms}; the uplift model learns one "
                         "treatment against control (one model per arm is not built)")
    test = split_by_arm(frame["treated"].to_numpy(), test_share, random_state)
    train, held = frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)
    encoder = FeatureEncoder().fit(train)
    X, Xh = encoder.transform(train), encoder.transform(held)
    t, th = train["treated"].to_numpy(), held["treated"].to_numpy()
    y = train["churned"].to_numpy(dtype=float)
    model = UpliftModel(learner=learner, random_state=random_state).fit(X, t, y, list(encoder.columns))
    churn = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=40,
                               verbose=-1, random_state=random_state).fit(X[~t], y[~t])
    metrics = evaluate(model.predict_uplift(Xh), churn.predict_proba(Xh)[:, 1], th,
                       held["retained"].to_numpy(dtype=float), random_state)
    metrics.update({"rows_train": float(len(train)), "rows_holdout": float(len(held)),
                    "treated_share": float(frame["treated"].mean())})
    runtime = model.to_runtime(encoder, {"campaign": campaign, "treatment_arm": treated_arms[0],
                                          "control_arm": control, "horizon_days": horizon, "metrics": metrics})
    configure_mlflow(settings)
    experiment_id = ensure_experiment(settings, settings.mlflow.uplift_experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"uplift-{campaign}") as run, \
            tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({"learner": learner, "campaign": campaign, "treatment_arm": treated_arms[0],
                           "horizon_days": horizon, "test_share": test_share, "random_state": random_state})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"tenure.campaign": campaign, "tenure.treatment_arm": treated_arms[0]})
        holdout_path = Path(tmp) / "holdout.parquet"
        held[["customer_id", "treated", "retained", *encoder.columns]].to_parquet(holdout_path, index=False)
        mlflow.log_artifact(str(holdout_path), "holdout")
        bundle = runtime.save(Path(tmp) / "bundle")
        info = mlflow.pyfunc.log_model(name="model", python_model=UpliftPyfunc(), artifacts={"bundle": str(bundle)},
                                       pip_requirements=["lightgbm", "numpy", "pandas"])
        run_id = run.info.run_id
    version = register_version(settings, "uplift", run_id, model_uri=info.model_uri,
                               tags={"campaign": campaign, "treatment_arm": treated_arms[0]})
    logger.info("uplift model v%s on %s: Qini AUC %.4f vs churn ranking %.4f, random %.4f", version, campaign,
                metrics["qini_auc"], metrics["qini_auc_churn_ranking"], metrics["qini_auc_random"])
    return UpliftTrainingResult(run_id, version, metrics, campaign, treated_arms[0])


def _holdout_of(settings, version: str) -> tuple[pd.DataFrame, dict]:
    """The held-out rows a version was evaluated on (its run's ``holdout/holdout.parquet``) and its metrics."""
    from tenure.registry.champion import load_version
    from tenure.registry.models import mlflow_client

    described = load_version(settings, "uplift", version, runtime=False)
    client = mlflow_client(settings.mlflow.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        frame = pd.read_parquet(client.download_artifacts(described.run_id, HOLDOUT_ARTIFACT, tmp))
    return frame, described.metrics


def check_baselines(settings, version: str) -> GateDecision:
    """The version's Qini AUC on its held-out rows must beat churn ranking and random (recorded at training)."""
    from tenure.registry.champion import load_version

    m = load_version(settings, "uplift", version, runtime=False).metrics
    q, churn, rnd = m.get("qini_auc"), m.get("qini_auc_churn_ranking"), m.get("qini_auc_random")
    if q is None or churn is None or rnd is None:
        return GateDecision(False, f"version {version} has no Qini metrics (not trained by tenure train uplift)")
    ok = q > churn and q > rnd
    verdict = "beats" if ok else "does not beat"
    return GateDecision(ok, f"Qini AUC {q:.4f} {verdict} churn ranking {churn:.4f} and random {rnd:.4f}",
                        challenger_metrics={"qini_auc": q, "qini_auc_churn_ranking": churn, "qini_auc_random": rnd})


def compare_for_gate(settings, champion: str, challenger: str) -> GateDecision:
    """Both versions rank the challenger's held-out rows; the challenger may lose at most :data:`GATE_TOLERANCE`."""
    from tenure.registry.champion import load_version
    from tenure.training.uplift import qini_auc

    holdout, _ = _holdout_of(settings, challenger)
    treated = holdout["treated"].to_numpy()
    retained = holdout["retained"].to_numpy(dtype=float)
    rows = holdout.drop(columns=["customer_id", "treated", "retained"]).to_dict(orient="records")
    scores = {}
    for label, version in (("champion", champion), ("challenger", challenger)):
        runtime = load_version(settings, "uplift", version).runtime
        scores[label] = qini_auc(runtime.predict_rows(rows), treated, retained)
    ok = scores["challenger"] >= scores["champion"] - GATE_TOLERANCE
    return GateDecision(ok, f"Qini AUC on the challenger's held-out rows: challenger {scores['challenger']:.4f} vs "
                            f"champion {scores['champion']:.4f} (tolerance {GATE_TOLERANCE})",
                        challenger_metrics={"qini_auc": scores["challenger"]},
                        champion_metrics={"qini_auc": scores["champion"]})
