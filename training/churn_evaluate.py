"""Churn evaluation: metrics, the recency baseline, per-segment metrics and gaps, explanations and plots.

Definitions:
- lift@q: churn rate among the top q of scores divided by the overall churn rate.
- capture@q: share of all churners found in the top q of scores.
- ECE (expected calibration error): 10 equal-frequency bins of the score; the mean over
  bins of |mean score - churn rate|, weighted by bin size.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def lift_and_capture(y: np.ndarray, scores: np.ndarray, top: float) -> tuple[float, float]:
    """(lift, capture rate) among the ``top`` share (0..1) of highest scores."""
    y = np.asarray(y, dtype=np.float64)
    n = max(1, round(len(y) * top))
    order = np.argsort(-np.asarray(scores), kind="stable")[:n]
    base = y.mean()
    if base == 0:
        return float("nan"), float("nan")
    return float(y[order].mean() / base), float(y[order].sum() / y.sum())


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over ``bins`` equal-frequency bins (see module docstring)."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(y))):
        if len(chunk):
            total += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(total / len(y))


def classification_metrics(y: np.ndarray, p: np.ndarray, probabilities: bool = True) -> dict[str, float]:
    """ROC-AUC, PR-AUC, lift/capture at 10% and 20%, and (for probabilities) Brier, log loss, ECE."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    out: dict[str, float] = {"rows": float(len(y)), "churn_rate": float(y.mean()) if len(y) else float("nan")}
    if len(np.unique(y)) < 2:
        logger.warning("single class in evaluation rows: ranking metrics are undefined")
        return out
    out["roc_auc"] = float(roc_auc_score(y, p))
    out["pr_auc"] = float(average_precision_score(y, p))
    for q in (0.1, 0.2):
        lift, capture = lift_and_capture(y, p, q)
        out[f"lift_top{int(q * 100)}"] = lift
        out[f"capture_top{int(q * 100)}"] = capture
    if probabilities:
        clipped = np.clip(p, 1e-6, 1 - 1e-6)
        out["brier"] = float(brier_score_loss(y, clipped))
        out["log_loss"] = float(log_loss(y, clipped, labels=[0, 1]))
        out["ece"] = expected_calibration_error(y, p)
    return out


def segment_metrics(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, segments: Sequence[str],
                    min_rows: int = 50) -> pd.DataFrame:
    """The metrics per value of each segment column (rows with fewer than ``min_rows`` skipped).

    Returns
    -------
    DataFrame, one row per (segment, value): ``segment``, ``value`` and the metrics.
    """
    rows = []
    y = np.asarray(y)
    p = np.asarray(p)
    for segment in segments:
        if segment not in frame.columns:
            continue
        values = frame[segment].astype("string").fillna("unknown").to_numpy()
        for value in pd.unique(values):
            mask = values == value
            if mask.sum() < min_rows:
                continue
            metrics = classification_metrics(y[mask], p[mask])
            rows.append({"segment": segment, "value": str(value), **metrics})
    return pd.DataFrame(rows)


def segment_summary(segments: pd.DataFrame, metric: str = "roc_auc") -> dict:
    """Worst and best value per segment column and the largest gap between them (on ``metric``).

    Returns
    -------
    ``{"metric", "worst": {"segment", "value", metric, "rows"}, "largest_gap": {"segment", "gap"},
    "by_segment": {column: {"worst", "best", "worst_value", "best_value", "gap", "values"}}}``;
    empty ``by_segment`` when no segment had enough rows with both classes. Fairlearn's
    ``MetricFrame`` computes the same (``group_min``, ``difference``); this small function keeps
    that out of the dependencies.
    """
    out: dict = {"metric": metric, "worst": None, "largest_gap": None, "by_segment": {}}
    if segments.empty or metric not in segments.columns:
        return out
    scored = segments[np.isfinite(segments[metric].astype(float))]
    for column, rows in scored.groupby("segment", sort=False):
        low, high = rows.loc[rows[metric].idxmin()], rows.loc[rows[metric].idxmax()]
        out["by_segment"][str(column)] = {
            "worst": float(low[metric]), "worst_value": str(low["value"]),
            "best": float(high[metric]), "best_value": str(high["value"]),
            "gap": float(high[metric] - low[metric]), "values": len(rows),
        }
    if out["by_segment"]:
        column, worst = min(out["by_segment"].items(), key=lambda kv: kv[1]["worst"])
        out["worst"] = {"segment": column, "value": worst["worst_value"], metric: worst["worst"]}
        column, widest = max(out["by_segment"].items(), key=lambda kv: kv[1]["gap"])
        out["largest_gap"] = {"segment": column, "gap": widest["gap"]}
    return out


def worst_segment(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, segments: Sequence[str],
                  min_rows: int = 50) -> dict | None:
    """The segment value with the lowest ROC-AUC for scores ``p`` on these rows (see :func:`segment_summary`)."""
    return segment_summary(segment_metrics(frame, y, p, segments, min_rows))["worst"]


def recency_rule_scores(frame: pd.DataFrame, column: str = "days_since_last_activity", cap_days: float = 365.0) -> np.ndarray:
    """The recency rule: the longer since the last activity, the higher the risk (never = cap)."""
    if column not in frame.columns:
        raise ValueError(f"the recency rule needs the feature {column!r}")
    return pd.to_numeric(frame[column], errors="coerce").fillna(cap_days).clip(upper=cap_days).to_numpy() / cap_days


def global_importance(scorer, X: np.ndarray) -> pd.DataFrame:
    """Gain importance and mean |SHAP| per feature, sorted by mean |SHAP|."""
    gain = scorer.booster.feature_importance(importance_type="gain")
    shap = np.abs(scorer.contributions(X)[:, :-1]).mean(axis=0) if len(X) else np.zeros(len(scorer.feature_names))
    return (
        pd.DataFrame({"feature": scorer.feature_names, "gain": gain, "mean_abs_shap": shap})
        .sort_values("mean_abs_shap", ascending=False)
        .reset_index(drop=True)
    )


def save_plots(out_dir: Path, y: np.ndarray, scores: dict[str, np.ndarray], calibrated: np.ndarray,
               importance: pd.DataFrame) -> list[Path]:
    """ROC, PR, calibration, lift and importance plots as PNG files in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test window")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, s in scores.items():
        prec, rec, _ = precision_recall_curve(y, s)
        ax.plot(rec, prec, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, test window")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "pr.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    frac, mean = calibration_curve(y, calibrated, n_bins=10, strategy="quantile")
    ax.plot(mean, frac, "o-", label="tenure (calibrated)")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration, test window")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "calibration.png"))

    fig, ax = plt.subplots(figsize=(5, 4))
    shares = np.linspace(0.05, 1.0, 20)
    for name, s in scores.items():
        ax.plot(shares * 100, [lift_and_capture(y, s, q)[0] for q in shares], label=name)
    ax.axhline(1.0, color="k", ls=":", lw=0.8)
    ax.set(xlabel="top % of customers by score", ylabel="lift", title="Lift, test window")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out_dir / "lift.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    top = importance.head(15).iloc[::-1]
    ax.barh(top["feature"], top["mean_abs_shap"])
    ax.set(xlabel="mean |SHAP| (log-odds)", title="Feature importance")
    paths.append(_save(fig, out_dir / "importance.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
