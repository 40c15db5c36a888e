"""The churn estimator, calibration, metrics and the runtime scorer, on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.training.churn_evaluate import (
    classification_metrics,
    expected_calibration_error,
    lift_and_capture,
)
from tenure.training.churn_model import ChurnModel, fit_calibration, to_matrix


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "days_since_last_activity": rng.exponential(10, n),
            "purchases_30d": rng.poisson(2, n).astype(float),
            "plan": rng.choice(["free", "monthly", "annual"], n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "purchases_30d"] = np.nan
    logit = -2.0 + 0.12 * frame["days_since_last_activity"] - 0.3 * frame["purchases_30d"].fillna(0) \
        + frame["plan"].map({"free": 0.8, "monthly": 0.0, "annual": -1.0})
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, y.to_numpy()


FEATURES = ["days_since_last_activity", "purchases_30d", "plan"]


@pytest.fixture(scope="module")
def fitted():
    train, y_train = synthetic(3000, 0)
    valid, y_valid = synthetic(1500, 1)
    model = ChurnModel(FEATURES, ["plan"], n_estimators=80, early_stopping_rounds=10).fit(train, y_train, valid, y_valid)
    return model


def test_fit_returns_self_with_learned_state(fitted):
    assert fitted.best_iteration_ >= 1
    assert fitted.categories_ == {"plan": ["annual", "free", "monthly"]}
    test, y = synthetic(2000, 2)
    assert classification_metrics(y, fitted.predict_proba(test))["roc_auc"] > 0.7


def test_direction_more_inactivity_means_more_risk(fitted):
    base = pd.DataFrame({"days_since_last_activity": [1.0, 40.0], "purchases_30d": [2.0, 2.0], "plan": ["monthly"] * 2})
    p = fitted.predict_proba(base)
    assert p[1] > p[0]


def test_calibration_improves_brier_on_a_miscalibrated_score():
    rng = np.random.default_rng(5)
    z = rng.normal(-1.5, 1.0, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(int)
    raw = 3.0 * z + 1.0  # overconfident and shifted log-odds
    fit_idx, test_idx = np.arange(10000), np.arange(10000, 20000)
    from tenure.registry.churn_scorer import ChurnScorer

    for method in ("isotonic", "sigmoid"):
        cal = fit_calibration(raw[fit_idx], y[fit_idx], method)
        scorer = ChurnScorer(None, [], {}, cal, (0.3, 0.6))
        before = classification_metrics(y[test_idx], 1 / (1 + np.exp(-raw[test_idx])))
        after = classification_metrics(y[test_idx], scorer.calibrate(raw[test_idx]))
        assert after["brier"] < before["brier"]
        assert after["ece"] < before["ece"] / 2


def test_scorer_matches_model_and_explains_each_score(fitted, tmp_path):
    from tenure.registry.churn_scorer import ChurnScorer

    test, _ = synthetic(100, 3)
    scorer = fitted.to_scorer({"source": "synthetic"})
    loaded = ChurnScorer.from_model_dir(scorer.save(tmp_path / "bundle").parent)
    rows = test.to_dict(orient="records")
    X = loaded.vectorize(rows)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(test), rtol=1e-9)
    reasons = loaded.top_reasons(X, k=2)
    assert len(reasons) == 100 and all(len(r) == 2 for r in reasons)
    contrib = loaded.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), loaded.raw_scores(X), rtol=1e-6, atol=1e-6)
    first = reasons[0][0]
    assert abs(first["contribution"]) == pytest.approx(np.abs(contrib[0, :-1]).max(), abs=1e-6)
    expected = rows[0][first["feature"]]
    assert first["value"] == (None if isinstance(expected, float) and np.isnan(expected) else expected)
    unknown = loaded.vectorize([{"plan": "enterprise", "purchases_30d": None, "not_a_feature": 1}])[0]
    assert np.isnan(unknown).all()  # unknown category and missing value -> NaN, as in training
    bands = loaded.risk_bands(np.array([0.1, 0.3, 0.59, 0.6]))
    assert bands == ["low", "medium", "medium", "high"]


def test_bad_input_is_a_clear_error(fitted):
    train, y = synthetic(200, 4)
    with pytest.raises(ValueError, match="single class"):
        ChurnModel(FEATURES, ["plan"]).fit(train, np.zeros(200), train, y)
    with pytest.raises(ValueError, match="training window is empty"):
        ChurnModel(FEATURES, ["plan"]).fit(train.iloc[:0], y[:0], train, y)
    with pytest.raises(ValueError, match=r"lacks the features \['plan'\]"):
        to_matrix(train.drop(columns=["plan"]), FEATURES, {"plan": ["free"]})
    with pytest.raises(ValueError, match="not fitted"):
        ChurnModel(FEATURES).to_scorer()


def test_lift_capture_and_ece_known_answers():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    s = np.linspace(1, 0, 10)
    lift, capture = lift_and_capture(y, s, 0.2)
    assert lift == pytest.approx(5.0) and capture == pytest.approx(1.0)
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0
    assert expected_calibration_error(np.array([0, 0]), np.array([0.5, 0.5]), bins=1) == pytest.approx(0.5)
