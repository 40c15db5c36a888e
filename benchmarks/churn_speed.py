"""Churn training speed: point-in-time training-set build and model fit on generated data, weekly cut-offs.

Run: ``.venv/bin/python benchmarks/churn_speed.py --customers 100000 --days 180``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "churn_speed.json")
    args = parser.parse_args()

    from feature_repo.store import apply_definitions
    from features.ingest import IngestRun
    from features.simulator import simulate_shop
    from features.snapshots import build_feature_tables, snapshot_times
    from tenure.settings import load_settings
    from training.churn_dataset import LABEL_COLUMN, build_churn_training_set, split_by_time
    from training.churn_pipeline import _model_from_settings

    out = {"command": " ".join([".venv/bin/python", "benchmarks/churn_speed.py", *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
           "loadavg_start": os.getloadavg(), "customers": args.customers, "days": args.days, "note": args.note}
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(None, paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                                              "exports_dir": str(root / "exports")},
                                 mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                                         "artifact_root": str(root / "artifacts")})
        t = time.perf_counter()
        shop = simulate_shop(n_customers=args.customers, n_items=500, days=args.days, seed=args.seed, start="2026-01-01")
        timings["simulate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with IngestRun(settings) as run:
            run.ingest_frame("customers", shop.customers, source="sim customers")
            run.ingest_frame("items", shop.items, source="sim items")
            run.ingest_frame("events", shop.events, source="sim events")
        timings["ingest_s"] = time.perf_counter() - t
        out["events"] = len(shop.events)
        t = time.perf_counter()
        start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=14)
        times = snapshot_times(start, shop.events["event_at"].max(), every_days=7)
        build_feature_tables(settings, times)
        apply_definitions(settings)
        timings["snapshots_and_feast_apply_s"] = time.perf_counter() - t
        out["cutoffs"] = len(times)
        del shop
        t = time.perf_counter()
        frame = build_churn_training_set(settings)
        timings["build_churn_training_set_s"] = time.perf_counter() - t
        out["training_rows"] = len(frame)
        out["churn_rate"] = float(frame[LABEL_COLUMN].mean())
        from features.customer_features import CUSTOMER_CATEGORICAL_FEATURES
        from training.churn_pipeline import NON_FEATURES

        features = [c for c in frame.columns if c not in NON_FEATURES]
        categorical = [c for c in features if c in CUSTOMER_CATEGORICAL_FEATURES]
        numeric = [c for c in features if c not in categorical]
        c = settings.churn
        split = split_by_time(frame, c.validation_cutoffs, c.test_cutoffs, c.horizon_days)
        del frame
        out["split_rows"] = {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}
        model = _model_from_settings(settings, numeric + categorical, categorical)
        t = time.perf_counter()
        model.fit(split.train, split.train[LABEL_COLUMN].to_numpy(), split.valid, split.valid[LABEL_COLUMN].to_numpy())
        timings["fit_s"] = time.perf_counter() - t
    out["timings"] = timings
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    out["loadavg_end"] = os.getloadavg()
    out["targets"] = {"build_plus_fit_under_s": 300, "peak_rss_under_gib": 8}
    for k, v in timings.items():
        print(f"{k:32s} {v:8.1f}")
    print(f"{'training rows':32s} {out['training_rows']:8d}  cut-offs {out['cutoffs']}")
    print(f"{'peak RSS GiB':32s} {out['peak_rss_gib']:8.2f}  load {out['loadavg_end']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
