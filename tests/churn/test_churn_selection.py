"""Model selection on validation, calibration that never serves 0/1 nor costs ROC-AUC, percentiles,
plain-language reasons and segment gaps; synthetic seeded data, real LightGBM and scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.registry.churn_reasons import reason_text
from tenure.registry.churn_scorer import Calibration, ChurnScorer
from tenure.settings import ChurnSettings
from tenure.training.churn_evaluate import segment_metrics, segment_summary
from tenure.training.churn_model import choose_calibration, fit_calibration, to_matrix
from tenure.training.churn_selection import reference_population, select_churn_model

from .test_churn_model import FEATURES, synthetic

CHURN = ChurnSettings(n_estimators=80, early_stopping_rounds=10)


@pytest.fixture(scope="module")
def selection():
    train, y_train = synthetic(2000, 0)
    valid, y_valid = synthetic(1000, 1)
    return select_churn_model(train, y_train, valid, y_valid, FEATURES, ["plan"], CHURN), valid, y_valid


def test_every_candidate_is_fitted_and_the_best_on_validation_is_chosen(selection):
    from sklearn.metrics import roc_auc_score

    sel, valid, y_valid = selection
    assert set(sel.valid) == {"lightgbm", "lightgbm_shallow", "logistic", "blend"}
    assert sel.chosen == max(sel.valid, key=lambda n: sel.valid[n]["roc_auc"])
    # the validation numbers are those of the train-only fits (the test window is never an input)
    assert sel.valid["logistic"]["C"] in CHURN.logistic_c_grid
    assert 0 < sel.valid["blend"]["weight"] < 1
    # the served model is the chosen one, refitted: it still ranks the validation rows well
    X = to_matrix(valid, FEATURES, sel.scorer.categories)
    assert roc_auc_score(y_valid, sel.scorer.predict_proba(X)) > 0.7


def test_a_single_candidate_setting_still_reports_the_logistic_baseline():
    train, y_train = synthetic(1500, 2)
    valid, y_valid = synthetic(800, 3)
    sel = select_churn_model(train, y_train, valid, y_valid, FEATURES, ["plan"],
                             CHURN.model_copy(update={"candidates": ["lightgbm"]}))
    assert sel.chosen == "lightgbm"
    assert set(sel.candidates) == {"lightgbm", "logistic"}


def test_blend_and_linear_contributions_add_up_to_the_score_and_survive_a_round_trip(selection, tmp_path):
    sel, valid, _ = selection
    spec = sel.scorer.linear_spec or sel.candidates["logistic"].linear_spec
    blend = ChurnScorer(sel.scorer.booster, FEATURES, sel.scorer.categories, {"method": "sigmoid", "a": 1.0, "b": 0.0},
                        (0.3, 0.6), linear=spec, blend_weight=0.4, reference_scores=[0.1, 0.2, 0.3])
    X = to_matrix(valid.head(50), FEATURES, blend.categories)
    np.testing.assert_allclose(blend.contributions(X).sum(axis=1), blend.raw_scores(X), rtol=1e-9, atol=1e-9)
    loaded = ChurnScorer.load(blend.save(tmp_path / "bundle"))
    np.testing.assert_allclose(loaded.predict_proba(X), blend.predict_proba(X), rtol=1e-12)
    np.testing.assert_allclose(loaded.contributions(X[:1]), blend.contributions(X[:1]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid", "beta"])
def test_calibration_never_serves_0_or_1_and_keeps_roc_auc(method):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    raw = rng.normal(0, 2, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(1.5 * raw - 1)))).astype(int)
    calibration = fit_calibration(raw, y, method)
    extreme = np.array([-60.0, -20.0, 0.0, 20.0, 60.0])
    p = Calibration(calibration).apply(np.concatenate([raw, extreme]))
    assert p.min() > 0 and p.max() < 1
    drop = roc_auc_score(y, raw) - roc_auc_score(y, Calibration(calibration).apply(raw))
    assert drop <= 0.002


def test_auto_calibration_is_sigmoid_below_the_row_count_and_isotonic_above():
    rng = np.random.default_rng(6)
    raw = rng.normal(0, 1, 3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-raw))).astype(int)
    small, why = choose_calibration(raw[:500], y[:500], "auto", isotonic_min_rows=1000)
    assert small["method"] == "sigmoid" and "500" in why
    large, _ = choose_calibration(raw, y, "auto", isotonic_min_rows=1000)
    assert large["method"] == "isotonic"


def test_percentile_is_monotone_in_probability(selection):
    sel, valid, _ = selection
    scorer = sel.scorer
    scorer.reference_scores = reference_population(scorer.predict_proba(to_matrix(valid, FEATURES, scorer.categories)))
    p = np.linspace(0, 1, 501)
    pct = scorer.percentiles(p)
    assert np.all(np.diff(pct) >= 0)
    assert pct[0] == 0.0 and pct[-1] == 100.0
    assert len(reference_population(np.arange(5000.0))) == 1001


def test_reasons_read_in_plain_language_and_keep_the_raw_numbers(selection):
    assert reason_text("days_since_last_activity", 47.6) == "no activity for 48 days"
    assert reason_text("last_nps", 2.0) == "last NPS 2 of 10"
    assert reason_text("tickets_30d", 3.0) == "3 support tickets in 30 days"
    assert reason_text("tickets_30d", 1.0) == "1 support ticket in 30 days"
    assert reason_text("days_since_last_purchase", None) == "never purchased"
    assert reason_text("MonthlyCharges", 70.456) == "MonthlyCharges: 70"
    assert reason_text("contract_type", "two year") == "contract type: two year"
    sel, valid, _ = selection
    X = to_matrix(valid.head(3), FEATURES, sel.scorer.categories)
    for row in sel.scorer.top_reasons(X, k=2):
        for reason in row:
            assert {"feature", "value", "contribution", "text", "direction"} <= set(reason)
            assert reason["direction"] == ("raises risk" if reason["contribution"] > 0 else "lowers risk")


def test_segment_metrics_and_the_largest_gap():
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame({"plan": rng.choice(["a", "b"], n), "region": rng.choice(["x", "y", "z"], n)})
    y = rng.integers(0, 2, n)
    noise = np.where(frame["plan"] == "a", 0.2, 3.0)  # scores good for plan a, poor for plan b
    p = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, noise))))
    segments = segment_metrics(frame, y, p, ["plan", "region", "absent"], min_rows=50)
    assert set(segments["segment"]) == {"plan", "region"}
    summary = segment_summary(segments)
    assert summary["worst"]["segment"] == "plan" and summary["worst"]["value"] == "b"
    assert summary["largest_gap"]["segment"] == "plan"
    plan = summary["by_segment"]["plan"]
    assert plan["gap"] == pytest.approx(plan["best"] - plan["worst"]) and plan["gap"] > 0.2
