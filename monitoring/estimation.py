"""Performance before the labels: confidence-based performance estimation (CBPE) of the churn model.

Churn labels mature only after the horizon (30 days), so realised ROC-AUC arrives a month late.
A calibrated model's probabilities say how often it expects to be right: if a customer's churn
probability is 0.3, the customer is a churner with probability 0.3. CBPE (the method of NannyML's
``CBPE``) turns that into the *expected* confusion matrix at every threshold, and so into an
expected ROC curve and ROC-AUC, on unlabelled data:

- sort the current probabilities ``p`` from high to low;
- at the k-th threshold, expected true positives = sum of the top-k ``p``, expected false
  positives = sum of the top-k ``1 - p``;
- TPR = TP / sum(p), FPR = FP / sum(1 - p); the area under that curve is the estimate.

It holds while the model stays calibrated on the current data: under *covariate shift* (the mix
of customers changes, the relation of features to churn does not) it tracks the realised ROC-AUC;
under *concept drift* (same inputs, another relation to churn) it cannot see the change, and only
the realised ROC-AUC, a horizon later, can. The reference's calibration error is returned with the
estimate so the reader knows how far to trust it.

Why not NannyML itself: its releases pin ``lightgbm<4.6`` (0.13) or ``pandas<2`` (older), which
fight this project's lock (LightGBM 4.7, pandas 2.3); the estimator is 20 lines of numpy, written
here and tested against labels drawn from the probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def estimate_roc_auc(probabilities: np.ndarray) -> float:
    """CBPE estimate of ROC-AUC from calibrated churn probabilities alone.

    Parameters
    ----------
    probabilities: array of shape (n_customers,), calibrated P(churn) in [0, 1].

    Returns
    -------
    The expected ROC-AUC (NaN when the probabilities expect a single class: all 0 or all 1).
    """
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 1 or not len(p):
        raise ValueError(f"probabilities must be a non-empty 1-d array, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1] without NaN")
    positives, negatives = p.sum(), (1 - p).sum()
    if positives <= 0 or negatives <= 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    # one point per distinct score (ties move together, as in roc_curve)
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_p) != 0), len(p) - 1]
    tp = np.cumsum(sorted_p)[last_of_tie]
    fp = np.cumsum(1 - sorted_p)[last_of_tie]
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    return float(np.trapezoid(tpr, fpr))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE with ``bins`` equal-frequency bins (as :func:`tenure.monitoring.performance.churn_metrics`)."""
    y, p = np.asarray(labels, dtype=float), np.asarray(probabilities, dtype=float)
    order = np.argsort(p, kind="stable")
    return float(sum(len(c) * abs(p[c].mean() - y[c].mean()) for c in np.array_split(order, bins) if len(c)) / len(y))


def reference_calibrator(reference: np.ndarray, reference_labels: np.ndarray, min_rows: int = 200):
    """A map from the model's probabilities to calibrated ones, fitted on the labelled reference.

    As NannyML's CBPE does: the model's own calibration (fitted on its validation cut-offs) may
    be off on the reference population; an isotonic regression of the labels on the reference's
    probabilities corrects that before the expected confusion matrices are built. Returns None
    (use the probabilities as they are) with fewer than ``min_rows`` rows or a single class.

    Returns
    -------
    Callable ``array (n,) -> array (n,)`` or None.
    """
    from sklearn.isotonic import IsotonicRegression

    r, y = np.asarray(reference, dtype=float), np.asarray(reference_labels, dtype=float)
    keep = ~(np.isnan(r) | np.isnan(y))
    r, y = r[keep], y[keep]
    if len(r) < min_rows or len(np.unique(y)) < 2:
        return None
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(r, y)
    return iso.predict


def estimate_performance(
    current: np.ndarray,
    reference: np.ndarray | None = None,
    reference_labels: np.ndarray | None = None,
    promised_roc_auc: float | None = None,
) -> dict[str, Any]:
    """Estimated ROC-AUC and churn rate of the current window, with how far to trust them.

    Parameters
    ----------
    current: churn probabilities of the current window, shape (n,).
    reference, reference_labels: the champion's reference sample's probabilities and labels
        (optional): the probabilities are recalibrated on them first
        (:func:`reference_calibrator`), their ECE says whether the model's own calibration held,
        and the CBPE estimate on the reference against its realised ROC-AUC shows the method's
        own error on known data.
    promised_roc_auc: the champion's test ROC-AUC; ``estimated_auc_drop`` = promised - estimate.

    Returns
    -------
    dict with ``estimated_roc_auc``, ``estimated_churn_rate``, ``rows``, ``estimated_auc_drop``,
    ``recalibrated`` and, with a labelled reference, ``reference_ece``, ``reference_roc_auc``,
    ``reference_estimated_roc_auc``; ``method`` = ``"CBPE"``.
    """
    p = np.asarray(current, dtype=float)
    calibrate = None
    if reference is not None and reference_labels is not None:
        calibrate = reference_calibrator(reference, reference_labels)
    if calibrate is not None:
        p = calibrate(p)
    out: dict[str, Any] = {"method": "CBPE", "rows": len(p), "estimated_roc_auc": estimate_roc_auc(p),
                           "estimated_churn_rate": float(p.mean()), "recalibrated": calibrate is not None}
    out["estimated_auc_drop"] = (promised_roc_auc - out["estimated_roc_auc"]
                                 if promised_roc_auc is not None and np.isfinite(out["estimated_roc_auc"]) else None)
    out["promised_roc_auc"] = promised_roc_auc
    if reference is not None and reference_labels is not None and len(reference):
        from sklearn.metrics import roc_auc_score

        r, y = np.asarray(reference, dtype=float), np.asarray(reference_labels, dtype=float)
        out["reference_ece"] = expected_calibration_error(y, r)
        out["reference_estimated_roc_auc"] = estimate_roc_auc(calibrate(r) if calibrate is not None else r)
        out["reference_roc_auc"] = float(roc_auc_score(y, r)) if len(np.unique(y)) == 2 else None
    return out
