"""Uplift: learners on a known-answer case, the Qini maths, the serving form, and the train -> gate -> export path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tenure.pipelines.cli import app
from tenure.training.uplift import UpliftModel, expected_saves, qini_auc, qini_curve


def _known_effect(n=6000, seed=0):
    """Churn 30% everywhere; the treatment halves it where x0 > 0 (persuadable) and raises it where x1 > 0.8."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    treated = rng.random(n) < 0.5
    p = np.full(n, 0.3)
    p = np.where(treated & (X[:, 0] > 0), 0.15, p)
    p = np.where(treated & (X[:, 1] > 0.8), 0.45, p)
    true_reduction = np.where(X[:, 0] > 0, 0.15, 0.0) - np.where(X[:, 1] > 0.8, 0.15, 0.0)
    true_reduction = np.where((X[:, 0] > 0) & (X[:, 1] > 0.8), 0.3 - 0.45, true_reduction)
    return X, treated, (rng.random(n) < p).astype(float), true_reduction


@pytest.mark.parametrize("learner", ["t_learner", "x_learner"])
def test_learners_find_the_persuadables_and_the_sleeping_dogs(learner):
    X, t, y, truth = _known_effect()
    model = UpliftModel(learner=learner, random_state=0).fit(X[:4000], t[:4000], y[:4000])
    u = model.predict_uplift(X[4000:])
    persuadable = (X[4000:, 0] > 0) & (X[4000:, 1] <= 0.8)
    sleeping_dog = (X[4000:, 0] <= 0) & (X[4000:, 1] > 0.8)
    assert u[persuadable].mean() > 0.08 and u[sleeping_dog].mean() < -0.03
    held_t, retained = t[4000:], 1 - y[4000:]
    assert qini_auc(u, held_t, retained) > qini_auc(np.random.default_rng(1).random(2000), held_t, retained)
    budget = 200
    assert expected_saves(u, truth[4000:], budget) > 2 * expected_saves(-X[4000:, 2], truth[4000:], budget)


def test_qini_curve_on_a_hand_computed_case():
    score = np.array([4, 3, 2, 1])
    treated = np.array([True, False, True, False])
    retained = np.array([1, 0, 1, 1])
    x, y = qini_curve(score, treated, retained)
    # top 1: 1 treated retained, no control -> 1; top 2: 1 - 0*1/1 = 1; top 3: 2 - 0 = 2; top 4: 2 - 1*2/2 = 1
    assert x.tolist() == [0, 1, 2, 3, 4] and y.tolist() == [0.0, 1.0, 1.0, 2.0, 1.0]


def test_bad_input_is_refused():
    X, t, y, _ = _known_effect(200)
    with pytest.raises(ValueError, match="only one arm"):
        UpliftModel().fit(X, np.ones(200, dtype=bool), y)
    with pytest.raises(ValueError, match="y must be 0/1"):
        UpliftModel().fit(X, t, y + 0.5)
    with pytest.raises(ValueError, match="learner must be one of"):
        UpliftModel(learner="s_learner").fit(X, t, y)
    with pytest.raises(ValueError, match="not fitted"):
        UpliftModel().predict_uplift(X)


@pytest.mark.parametrize("learner", ["t_learner", "x_learner"])
def test_the_serving_form_predicts_what_the_model_does(learner, tmp_path):
    from tenure.registry.uplift_runtime import UpliftRuntime
    from tenure.training.uplift_dataset import FeatureEncoder

    rng = np.random.default_rng(2)
    encoder = FeatureEncoder(columns=("a", "b", "plan"))
    frame = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800),
                          "plan": rng.choice(["free", "annual"], 800)})
    encoder.vocabulary_ = {"plan": ["annual", "free"]}
    X = encoder.transform(frame)
    t, y = rng.random(800) < 0.5, (rng.random(800) < 0.3).astype(float)
    model = UpliftModel(learner=learner, params={"min_child_samples": 20}).fit(X, t, y)
    runtime = UpliftRuntime.load(model.to_runtime(encoder, {"campaign": "w", "treatment_arm": "offer"}).save(tmp_path))
    rows = frame.to_dict(orient="records")
    rows[0]["plan"] = "never-seen"  # an unseen category is its own bin, not an error
    expected = model.predict_uplift(encoder.transform(pd.DataFrame(rows)))
    assert np.allclose(runtime.predict_rows(rows), expected) and runtime.treatment == "w/offer"


@pytest.fixture(scope="module")
def uplift_workspace(tmp_path_factory):
    """A simulated campaign, ingested, with one feature snapshot for scoring."""
    from tenure.features.ingest import ingest_shop_frames
    from tenure.features.sim_campaigns import CampaignSpec
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables
    from tenure.settings import load_settings

    root = tmp_path_factory.mktemp("uplift")
    values = {"paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                        "exports_dir": str(root / "exports")},
              "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                         "artifact_root": str(root / "mlruns" / "artifacts")},
              "experiments": {"definitions": [{"name": "winback", "arms": [
                  {"name": "control", "share": 0.5}, {"name": "offer", "share": 0.5, "offer": "10% off"}]}]}}
    config = root / "tenure.yaml"
    config.write_text(yaml.safe_dump(values))
    settings = load_settings(config)
    shop = simulate_shop(2500, 40, 130, seed=31, campaign=CampaignSpec(day=90))
    ingest_shop_frames(settings, "sim", shop.customers, shop.items, shop.events)
    build_feature_tables(settings, [shop.events["event_at"].max()])
    return config, settings


def test_train_gate_and_uplift_audience(uplift_workspace):
    from tenure.experiments.assignment import Assigner
    from tenure.training.gate import promote

    config, settings = uplift_workspace
    run = CliRunner().invoke(app, ["--config", str(config), "train", "uplift", "--experiment", "winback",
                                   "--promote", "--json"])
    assert run.exit_code == 0, run.output
    trained = json.loads(run.stdout)
    m = trained["metrics"]
    assert trained["treatment_arm"] == "offer" and {"qini_auc", "qini_auc_churn_ranking", "qini_auc_random"} <= set(m)
    gate = trained["gate"]
    beats = m["qini_auc"] > m["qini_auc_churn_ranking"] and m["qini_auc"] > m["qini_auc_random"]
    assert gate["promoted"] == beats  # the gate follows its rule, whichever way this small shop goes
    if not beats:
        promote(settings, "uplift", force_reason="test: export needs a champion")
    out = settings.paths.exports_dir / "uplift.csv"
    export = CliRunner().invoke(app, ["--config", str(config), "export", "audience", "--policy", "uplift",
                                      "--budget", "50", "--source", "snapshot", "--out", str(out), "--json"])
    assert export.exit_code == 0, export.output
    summary = json.loads(export.stdout)["uplift"]
    audience = pd.read_csv(out)
    assert len(audience) == summary["rows"] <= 50 and (audience["uplift"] > 0).all()
    assert audience["uplift"].is_monotonic_decreasing and summary["holdout_excluded"] > 0
    assigner = Assigner.from_settings(settings)
    assert not any(assigner.in_holdout(c) for c in audience["customer_id"])
    missing = CliRunner().invoke(app, ["--config", str(config), "export", "audience", "--policy", "uplift"])
    assert missing.exit_code == 2 and "--budget" in missing.output
