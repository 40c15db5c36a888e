"""Churn model quality: Telco 5-fold (every candidate on the same folds), CDNOW and the demo data vs the baselines.

Run: ``.venv/bin/python benchmarks/churn_quality.py [--mode all|telco|demo] [--data-dir ../shared/datasets]
[--skip-cdnow]``. ``demo`` generates the shop at `tenure generate`'s default size, trains through the
pipeline (candidates chosen on validation) and runs the gate; the champion must beat logistic
regression and the recency rule on the test window.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def telco_cv(path: Path, folds: int, seed: int) -> dict:
    """Stratified CV of the training's own selection on Telco (its adapter's feature frame)."""
    from tenure.features.adapters import read_telco
    from tenure.training.churn_pipeline import telco_feature_frame, telco_feature_names
    from tenure.training.churn_selection import cross_validate_selection

    frame = telco_feature_frame(read_telco(path))
    numeric, categorical = telco_feature_names(frame)
    return cross_validate_selection(frame, numeric, categorical, folds, seed)


def workspace_settings(root: Path):
    """Settings with every store (tables, features, MLflow) under ``root``."""
    from tenure.settings import load_settings

    return load_settings(None, paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                                      "exports_dir": str(root / "exports")},
                         mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                                 "artifact_root": str(root / "artifacts")})


def demo_run(seed: int) -> dict:
    """The demo data at `tenure generate`'s default size through the whole training path and the gate."""
    from tenure.feature_repo.store import apply_definitions
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables
    from tenure.pipelines.flows import feature_snapshot_times
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = workspace_settings(root)
        sim = settings.simulator
        start = time.perf_counter()
        shop = simulate_shop(sim.customers, sim.items, sim.days, seed, start=sim.start)
        with IngestRun(settings) as run:
            run.ingest_frame("customers", shop.customers, source="demo customers")
            run.ingest_frame("items", shop.items, source="demo items")
            run.ingest_frame("events", shop.events, source="demo events")
        build_feature_tables(settings, feature_snapshot_times(settings))
        apply_definitions(settings)
        result = train_churn(settings)
        decision = promote(settings, "churn")
        return {"seconds": time.perf_counter() - start, "shop": {"customers": sim.customers, "items": sim.items,
                                                                  "days": sim.days, "seed": seed},
                "split_rows": result.split_rows, "chosen": result.chosen, "validation": result.valid,
                "metrics": result.metrics, "calibration": result.calibration, "segments": result.segment_summary,
                "gate": decision.as_dict()}


def cdnow_run(path: Path) -> dict:
    from tenure.pipelines.flows import prepare_source
    from tenure.training.churn_pipeline import train_churn

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = workspace_settings(root)
        start = time.perf_counter()
        prepare_source(settings, "cdnow", path)  # ingest + features, as `tenure train churn --source cdnow` does
        result = train_churn(settings, source="cdnow")
        return {"seconds": time.perf_counter() - start, "metrics": result.metrics, "split_rows": result.split_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("all", "telco", "demo"), default="all")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--out", type=Path, default=None,
                        help="Result file (default: benchmarks/results/churn_quality[_MODE].json).")
    args = parser.parse_args()
    suffix = "" if args.mode == "all" else f"_{args.mode}"
    target = args.out or ROOT / "benchmarks" / "results" / f"churn_quality{suffix}.json"

    out = {"command": " ".join([".venv/bin/python", "benchmarks/churn_quality.py", *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
           "loadavg_start": os.getloadavg()}
    if args.mode in ("all", "demo"):
        out["demo"] = demo_run(args.seed)
        print_demo(out["demo"])
    if args.mode in ("all", "telco"):
        start = time.perf_counter()
        out["telco"] = telco_cv(args.data_dir / "telco_churn", args.folds, args.seed)
        out["telco_seconds"] = time.perf_counter() - start
        print_telco(out["telco"], args.folds)
        if not args.skip_cdnow:
            out["cdnow"] = cdnow_run(args.data_dir / "cdnow")
            print("CDNOW test ROC-AUC:", {k: round(v.get("roc_auc", float("nan")), 4)
                                          for k, v in out["cdnow"]["metrics"].items()})
    out["loadavg_end"] = os.getloadavg()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2, default=str))
    print("wrote", target)


def print_demo(demo: dict) -> None:
    """The demo run's test ROC-AUC per model, what was chosen, and the gate."""
    print(f"demo shop {demo['shop']}: rows {demo['split_rows']}; chosen on validation: {demo['chosen']}")
    for name, m in demo["metrics"].items():
        print(f"  {name:20s} test ROC-AUC {m.get('roc_auc', float('nan')):.4f}  "
              f"valid {demo['validation'].get(name, {}).get('roc_auc', float('nan')):.4f}")
    print("  calibration:", demo["calibration"]["why"], "| gate:", demo["gate"]["promoted"], demo["gate"]["reason"])


def print_telco(telco: dict, folds: int) -> None:
    """Telco's per-model mean ± std over the folds."""
    print(f"Telco {folds}-fold stratified (same folds for every model)")
    print(f"{'model':20s} {'ROC-AUC':>16s} {'PR-AUC':>16s} {'Brier':>16s}  per-fold ROC-AUC")
    for name, s in telco.items():
        if not isinstance(s, dict) or "roc_auc" not in s:
            continue
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['std']:.4f}" for m in ("roc_auc", "pr_auc", "brier")]
        folds_text = " ".join(f"{r['roc_auc']:.3f}" for r in s["folds"])
        print(f"{name:20s} {cells[0]:>16s} {cells[1]:>16s} {cells[2]:>16s}  {folds_text}")
    print("chosen per fold:", telco["chosen_per_fold"])


if __name__ == "__main__":
    main()
