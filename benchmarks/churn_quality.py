"""Churn model quality on real data: Telco 5-fold vs logistic regression, CDNOW vs the recency rule.

Run: ``.venv/bin/python benchmarks/churn_quality.py [--data-dir ../shared/datasets] [--skip-cdnow]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def telco_cv(path: Path, folds: int, seed: int) -> dict:
    """5-fold stratified CV; every model sees the same outer folds and the same inner validation split."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from features.adapters import read_telco
    from training.churn_evaluate import fit_logistic_baseline, logistic_predict
    from training.churn_model import ChurnModel
    from training.churn_pipeline import LABEL_COLUMN, telco_feature_frame, telco_feature_names

    frame = telco_feature_frame(read_telco(path))
    numeric, categorical = telco_feature_names(frame)
    features = numeric + categorical
    y = frame[LABEL_COLUMN].to_numpy()
    configs = {
        "lightgbm_default": {},
        "lightgbm_shallow": {"num_leaves": 7, "learning_rate": 0.02, "n_estimators": 2000, "early_stopping_rounds": 100,
                             "min_child_samples": 40},
    }
    results: dict[str, list[dict]] = {name: [] for name in [*configs, "logistic", "blend_shallow_lr"]}
    blend_weights = []
    for k, (tr, te) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(frame, y)):
        outer, test = frame.iloc[tr], frame.iloc[te]
        inner, valid = train_test_split(outer, test_size=0.2, stratify=outer[LABEL_COLUMN], random_state=seed)
        yi, yv, yt = inner[LABEL_COLUMN].to_numpy(), valid[LABEL_COLUMN].to_numpy(), test[LABEL_COLUMN].to_numpy()
        preds, vpreds = {}, {}
        for name, params in configs.items():
            model = ChurnModel(features, categorical, random_state=seed, **params).fit(inner, yi, valid, yv)
            preds[name], vpreds[name] = model.predict_proba(test), model.predict_proba(valid)
        lr_inner = fit_logistic_baseline(inner, yi, numeric, categorical, random_state=seed)
        vpreds["logistic"] = logistic_predict(lr_inner, valid)
        # logistic regression has no use for a validation split: refit it on the whole outer training fold
        lr = fit_logistic_baseline(outer, outer[LABEL_COLUMN].to_numpy(), numeric, categorical, random_state=seed)
        preds["logistic"] = logistic_predict(lr, test)
        # blend weight chosen on the inner validation rows only
        grid = np.linspace(0, 1, 11)
        aucs = [roc_auc_score(yv, w * vpreds["lightgbm_shallow"] + (1 - w) * vpreds["logistic"]) for w in grid]
        w = float(grid[int(np.argmax(aucs))])
        blend_weights.append(w)
        preds["blend_shallow_lr"] = w * preds["lightgbm_shallow"] + (1 - w) * preds["logistic"]
        for name, p in preds.items():
            results[name].append({"fold": k, "roc_auc": float(roc_auc_score(yt, p)),
                                  "pr_auc": float(average_precision_score(yt, p)),
                                  "brier": float(brier_score_loss(yt, np.clip(p, 0, 1)))})
    summary = {}
    for name, rows in results.items():
        summary[name] = {m: {"mean": float(np.mean([r[m] for r in rows])), "std": float(np.std([r[m] for r in rows]))}
                         for m in ("roc_auc", "pr_auc", "brier")}
        summary[name]["folds"] = rows
    summary["blend_weights_lightgbm"] = blend_weights
    summary["configs"] = configs
    return summary


def cdnow_run(path: Path) -> dict:
    from pipelines.flows import prepare_source
    from tenure.settings import load_settings
    from training.churn_pipeline import train_churn

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(None, paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                                              "exports_dir": str(root / "exports")},
                                 mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                                         "artifact_root": str(root / "artifacts")})
        start = time.perf_counter()
        prepare_source(settings, "cdnow", path)  # ingest + features, as `tenure train churn --source cdnow` does
        result = train_churn(settings, source="cdnow")
        return {"seconds": time.perf_counter() - start, "metrics": result.metrics, "split_rows": result.split_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "churn_quality.json")
    args = parser.parse_args()

    out = {"command": " ".join([".venv/bin/python", "benchmarks/churn_quality.py", *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
           "loadavg_start": os.getloadavg()}
    start = time.perf_counter()
    out["telco"] = telco_cv(args.data_dir / "telco_churn", args.folds, args.seed)
    out["telco_seconds"] = time.perf_counter() - start
    print(f"Telco {args.folds}-fold stratified (same folds for every model)")
    print(f"{'model':20s} {'ROC-AUC':>16s} {'PR-AUC':>16s} {'Brier':>16s}  per-fold ROC-AUC")
    for name, s in out["telco"].items():
        if not isinstance(s, dict) or "roc_auc" not in s:
            continue
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in ("roc_auc", "pr_auc", "brier")]
        folds = " ".join(f"{r['roc_auc']:.3f}" for r in s["folds"])
        print(f"{name:20s} {cells[0]:>16s} {cells[1]:>16s} {cells[2]:>16s}  {folds}")
    print("blend weight on LightGBM per fold:", out["telco"]["blend_weights_lightgbm"])
    if not args.skip_cdnow:
        out["cdnow"] = cdnow_run(args.data_dir / "cdnow")
        print("CDNOW test metrics:", json.dumps(out["cdnow"]["metrics"].get("test", out["cdnow"]["metrics"]), indent=1)[:2000])
    out["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
