"""Honest model selection for churn: fit every candidate, choose on validation, refit, calibrate.

Candidates (``churn.candidates``):

- ``lightgbm``: LightGBM with the settings' parameters (or the tuned ones);
- ``lightgbm_shallow``: small trees, slow learning rate, more rounds (it earns its place on
  small data sets and on Telco, see ``benchmarks/churn_quality.py``);
- ``logistic``: logistic regression on a standardised design (missing "days since" = the far
  end, log of skewed counts, missing indicators, one-hot categories), its ``C`` chosen on
  validation from ``churn.logistic_c_grid``;
- ``blend``: ``w * best LightGBM + (1 - w) * logistic`` in log-odds, ``w`` chosen on validation.

Each is fitted on the training window; the one with the best **validation** ROC-AUC is chosen
(ties: the earlier in the list). The test window is never looked at here. The calibration map is
chosen and fitted on the chosen candidate's validation scores
(:func:`training.churn_model.choose_calibration`). Then, with ``churn.refit_on_validation``,
every candidate is refitted on training + validation rows with what validation chose (trees,
``C``, ``w``): the validation window is the most recent labelled data, and leaving it out of
the served model costs a lot when customers' behaviour moves with time. The logistic candidate
refitted the same way is also the logistic baseline the gate compares with.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd

from tenure.registry.churn_scorer import ChurnScorer
from tenure.settings import ChurnSettings
from tenure.training.churn_model import ChurnModel, choose_calibration, fit_linear, to_matrix

logger = logging.getLogger(__name__)

CANDIDATES = ("lightgbm", "lightgbm_shallow", "logistic", "blend")
SHALLOW_PARAMS: dict[str, Any] = {"num_leaves": 7, "learning_rate": 0.02, "n_estimators": 2000,
                                  "early_stopping_rounds": 100, "min_child_samples": 40}
BLEND_GRID = tuple(np.round(np.linspace(0.1, 0.9, 9), 2))


@dataclasses.dataclass
class Selection:
    """What selection produced.

    ``chosen`` names the candidate; ``scorer`` is it, refitted and calibrated, ready to serve
    (bands set, no reference population yet); ``candidates`` maps every candidate to its
    uncalibrated scorer (refitted too) for the test report; ``valid`` maps each candidate to
    ``{"roc_auc": ..., **what validation chose}`` (``logistic`` is always there: it is the
    baseline, fitted even when it is not a candidate); ``calibration_choice`` says which
    calibration and why; ``valid_raw`` is the chosen candidate's validation log-odds before
    the refit (what calibration was fitted on).
    """

    chosen: str
    scorer: ChurnScorer
    candidates: dict[str, ChurnScorer]
    valid: dict[str, dict[str, Any]]
    calibration_choice: str
    refit: bool
    booster_params: dict[str, Any]
    valid_raw: np.ndarray


def select_churn_model(train: pd.DataFrame, y_train: np.ndarray, valid: pd.DataFrame, y_valid: np.ndarray,
                       features: list[str], categorical: list[str], churn: ChurnSettings,
                       lightgbm_overrides: dict[str, Any] | None = None) -> Selection:
    """Fit the candidates on ``train``, choose on ``valid``, calibrate, refit on both (see the module docstring).

    Raises
    ------
    ValueError
        For an empty window, a single-class window, or an unknown candidate name.
    """
    from sklearn.metrics import roc_auc_score

    names = list(churn.candidates)
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown or not names:
        raise ValueError(f"churn.candidates must be a non-empty subset of {list(CANDIDATES)}, got {names}")
    y_train, y_valid = np.asarray(y_train, dtype=np.int64), np.asarray(y_valid, dtype=np.int64)
    boosters = {"lightgbm": {**_booster_settings(churn), **(lightgbm_overrides or {})},
                "lightgbm_shallow": {**_booster_settings(churn), **SHALLOW_PARAMS}}
    need_trees = [n for n in boosters if n in names] or ["lightgbm"]
    if "blend" in names:
        need_trees = list(dict.fromkeys([*need_trees, *(n for n in boosters if n not in need_trees)]))
    models = {n: ChurnModel(features, categorical, calibration="sigmoid", band_thresholds=None,
                            random_state=churn.random_state, **boosters[n]).fit(train, y_train, valid, y_valid)
              for n in need_trees}
    first = models[need_trees[0]]
    categories = first.categories_
    X_train, X_valid = to_matrix(train, features, categories), to_matrix(valid, features, categories)
    raw = {n: m.booster_.predict(X_valid, raw_score=True) for n, m in models.items()}
    valid_auc = {n: float(roc_auc_score(y_valid, r)) for n, r in raw.items()}
    chosen_params: dict[str, dict[str, Any]] = {n: {"trees": models[n].best_iteration_} for n in models}

    need_linear = True  # the logistic regression is also the baseline every model is judged against
    if need_linear:
        c, spec = _choose_c(X_train, y_train, X_valid, y_valid, features, categories, churn)
        linear_valid = ChurnScorer(first.booster_, features, categories, {"method": "none"}, (0.3, 0.6),
                                   linear=spec, blend_weight=0.0)
        raw["logistic"] = linear_valid.raw_scores(X_valid)
        valid_auc["logistic"] = float(roc_auc_score(y_valid, raw["logistic"]))
        chosen_params["logistic"] = {"C": c}
    if "blend" in names:
        best_tree = max(need_trees, key=lambda n: valid_auc[n])
        w = max(BLEND_GRID, key=lambda w: roc_auc_score(y_valid, w * raw[best_tree] + (1 - w) * raw["logistic"]))
        raw["blend"] = w * raw[best_tree] + (1 - w) * raw["logistic"]
        valid_auc["blend"] = float(roc_auc_score(y_valid, raw["blend"]))
        chosen_params["blend"] = {"trees_from": best_tree, "weight": float(w), "C": c}

    chosen = max(names, key=lambda n: (valid_auc[n], -names.index(n)))
    logger.info("validation ROC-AUC: %s; chosen %s",
                ", ".join(f"{n} {valid_auc[n]:.4f}" for n in names), chosen)
    calibration, why = choose_calibration(raw[chosen], y_valid, churn.calibration, churn.isotonic_min_rows,
                                          churn.calibration_max_auc_drop)
    bands = _bands(churn, calibration, raw[chosen])

    if churn.refit_on_validation:
        full = pd.concat([train, valid], ignore_index=True)
        y_full = np.concatenate([y_train, y_valid])
        final_boosters = {n: m.refit(full, y_full) for n, m in models.items()}
        X_fit, y_fit = to_matrix(full, features, categories), y_full
    else:
        final_boosters = {n: m.booster_ for n, m in models.items()}
        X_fit, y_fit = X_train, y_train
    final_spec = (fit_linear(X_fit, y_fit, features, categories, chosen_params["logistic"]["C"], churn.random_state)
                  if need_linear else None)

    def build(name: str, calib: dict[str, Any]) -> ChurnScorer:
        if name == "logistic":
            return ChurnScorer(final_boosters[need_trees[0]], features, categories, calib, bands,
                               linear=final_spec, blend_weight=0.0)
        if name == "blend":
            p = chosen_params["blend"]
            return ChurnScorer(final_boosters[p["trees_from"]], features, categories, calib, bands,
                               linear=final_spec, blend_weight=p["weight"])
        return ChurnScorer(final_boosters[name], features, categories, calib, bands)

    reported = list(dict.fromkeys([*names, "logistic"]))
    valid_report = {n: {"roc_auc": valid_auc[n], **chosen_params[n]} for n in reported}
    return Selection(
        chosen=chosen,
        scorer=build(chosen, calibration),
        candidates={n: build(n, {"method": "none", "eps": 0.0}) for n in reported},
        valid=valid_report,
        calibration_choice=why,
        refit=churn.refit_on_validation,
        booster_params=boosters,
        valid_raw=raw[chosen],
    )


def _booster_settings(churn: ChurnSettings) -> dict[str, Any]:
    return {"num_leaves": churn.num_leaves, "learning_rate": churn.learning_rate,
            "n_estimators": churn.n_estimators, "early_stopping_rounds": churn.early_stopping_rounds}


def _choose_c(X_train: np.ndarray, y_train: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray,
              features: list[str], categories: dict[str, list[str]], churn: ChurnSettings) -> tuple[float, dict]:
    """The logistic regression's ``C`` with the best validation ROC-AUC, and that fit's spec."""
    from sklearn.metrics import roc_auc_score

    from tenure.registry.churn_linear import LinearPart

    best: tuple[float, float, dict] | None = None
    for c in churn.logistic_c_grid:
        spec = fit_linear(X_train, y_train, features, categories, c, churn.random_state)
        auc = float(roc_auc_score(y_valid, LinearPart(spec, len(features)).raw_scores(X_valid)))
        if best is None or auc > best[0]:
            best = (auc, c, spec)
    return best[1], best[2]


def _bands(churn: ChurnSettings, calibration: dict[str, Any], raw_valid: np.ndarray) -> tuple[float, float]:
    """Risk-band thresholds: the settings' probabilities, or the validation scores' 70th/90th percentiles."""
    from tenure.registry.churn_scorer import Calibration

    if churn.risk_bands == "thresholds":
        return churn.medium_threshold, churn.high_threshold
    medium, high = np.quantile(Calibration(calibration).apply(raw_valid), [0.7, 0.9])
    return float(medium), float(max(high, medium + 1e-6))


def reference_population(scores: np.ndarray, points: int = 1001) -> np.ndarray:
    """The population's score distribution for percentiles: ``points`` quantiles (all scores when fewer)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    if len(scores) <= points:
        return scores
    return np.quantile(scores, np.linspace(0.0, 1.0, points))



def cross_validate_selection(frame, numeric: list[str], categorical: list[str], folds: int, seed: int) -> dict:
    """ROC-AUC / PR-AUC / Brier of the chosen model and each candidate on ``folds`` stratified folds.

    Every fold runs the training's own selection (candidates fitted on an inner training split,
    chosen on its inner validation split, refitted on the whole outer fold), so the figures say how
    ``tenure train churn`` does on a snapshot, not how one hand-picked model does.

    Parameters
    ----------
    frame:
        One row per customer with the feature columns and the label column (``churned``).
    numeric, categorical:
        Feature column names by kind.

    Returns
    -------
    dict
        ``{candidate: {metric: {"mean", "std"}, "folds": [...]}, "chosen_per_fold": [...]}``.
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from tenure.settings import ChurnSettings
    from tenure.training.churn_dataset import LABEL_COLUMN
    from tenure.training.churn_model import to_matrix

    features = numeric + categorical
    y = frame[LABEL_COLUMN].to_numpy()
    churn = ChurnSettings(random_state=seed)
    results: dict[str, list[dict]] = {}
    chosen = []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame, y)):
        outer, test = frame.iloc[tr], frame.iloc[te]
        inner, valid = train_test_split(outer, test_size=0.2, stratify=outer[LABEL_COLUMN], random_state=seed)
        sel = select_churn_model(inner, inner[LABEL_COLUMN].to_numpy(), valid, valid[LABEL_COLUMN].to_numpy(),
                                 features, categorical, churn)
        chosen.append(sel.chosen)
        yt = test[LABEL_COLUMN].to_numpy()
        X = to_matrix(test, features, sel.scorer.categories)
        preds = {"tenure": sel.scorer.predict_proba(X),
                 **{name: scorer.predict_proba(X) for name, scorer in sel.candidates.items()}}
        for name, p in preds.items():
            results.setdefault(name, []).append({"fold": k, "roc_auc": float(roc_auc_score(yt, p)),
                                                 "pr_auc": float(average_precision_score(yt, p)),
                                                 "brier": float(brier_score_loss(yt, np.clip(p, 0, 1)))})
    summary: dict = {}
    for name, rows in results.items():
        summary[name] = {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))}
                         for m in ("roc_auc", "pr_auc", "brier")}
        summary[name]["folds"] = rows
    summary["chosen_per_fold"] = chosen
    return summary
