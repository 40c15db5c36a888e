"""Scaling curve of the dask engine beside the local path: generate + ingest + features + training frame + fit.

Each stage runs in a child process of its own, so its wall time and peak memory (the child's maximum
resident set; the LocalCluster's workers are threads of that process, so they are counted) are its own:

- ``generate``: simulate the shop and write the raw files (local in both paths);
- ``ingest``: validate and store the canonical tables (local in both paths; shared by both);
- ``features``: weekly snapshots over the churn window, local (pandas) or on the cluster;
- ``frame+fit``: labels and the point-in-time training frame, then the LightGBM fit of the ``lightgbm``
  candidate (local: ``training.churn_model.ChurnModel`` on the whole frame; dask: the frame stays on
  the cluster and ``lightgbm.dask`` fits it). Peak memory is reported after the frame and after the fit.

Run::

    .venv/bin/python benchmarks/scaling.py --customers 100000              # one point, both paths
    .venv/bin/python benchmarks/scaling.py --customers 100000 300000 1000000 --workers 2
    .venv/bin/python benchmarks/scaling.py --customers 1000000 --paths dask --workers 1   # the speed-up

A local stage that fails, or passes ``--local-limit-gib`` of memory (the child is limited with
RLIMIT_AS), is recorded as failed with the reason. Results go to ``benchmarks/results/scaling.json``
(one entry per point, with the load average before and after, since speed on a shared machine is noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"


def _settings(workdir: Path, path: str, workers: int, partitions: int):
    from tenure.settings import load_settings

    data = workdir / f"data-{path}"
    return load_settings(None, paths={"data_dir": str(data), "reports_dir": str(workdir / "reports"),
                                      "exports_dir": str(workdir / "exports")},
                         mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}",
                                 "artifact_root": str(workdir / "artifacts")},
                         compute={"engine": "dask" if path == "dask" else "local", "local_workers": workers,
                                  "partitions": partitions})


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the stages (run in a child: python benchmarks/scaling.py --stage NAME ...) -----------------------

def stage_generate(args) -> dict:
    from tenure.features.simulator import simulate_shop, write_shop

    shop = simulate_shop(args.customers[0], args.items, args.days, args.seed, start="2026-01-01")
    write_shop(shop, args.workdir / "raw", "parquet")
    return {"events": len(shop.events)}


def stage_ingest(args) -> dict:
    from tenure.features.ingest import ingest

    settings = _settings(args.workdir, "local", args.workers, args.partitions)
    report = ingest(settings, args.workdir / "raw")
    dask_tables = args.workdir / "data-dask" / "tables"
    dask_tables.parent.mkdir(parents=True, exist_ok=True)
    if not dask_tables.exists():
        dask_tables.symlink_to(settings.paths.tables_dir.resolve())  # both paths read the same tables
    return {"accepted": int(getattr(report, "accepted", 0))}


def stage_features(args) -> dict:
    from tenure.feature_repo.store import apply_definitions
    from tenure.pipelines.flows import feature_snapshot_times

    settings = _settings(args.workdir, args.path, args.workers, args.partitions)
    if args.path == "local":
        from tenure.features.snapshots import build_feature_tables

        tables = build_feature_tables(settings, feature_snapshot_times(settings))
        rows = tables.customer_rows
    else:
        from tenure.pipelines.cluster_steps import build_features_on_cluster

        rows = build_features_on_cluster(settings).customer_rows
    apply_definitions(settings)
    return {"customer_feature_rows": rows}


def stage_frame_fit(args) -> dict:
    settings = _settings(args.workdir, args.path, args.workers, args.partitions)
    out: dict = {}
    t0 = time.perf_counter()
    if args.path == "local":
        from tenure.training.churn_dataset import (
            LABEL_COLUMN,
            build_churn_training_set,
            split_by_time,
        )
        from tenure.training.churn_model import ChurnModel
        from tenure.training.churn_pipeline import NON_FEATURES

        frame = build_churn_training_set(settings, verify_sample=0)
        split = split_by_time(frame, settings.churn.validation_cutoffs, settings.churn.test_cutoffs,
                              settings.churn.horizon_days)
        del frame
        out.update(frame_s=round(time.perf_counter() - t0, 1), frame_peak_mib=round(_peak_mib()),
                   train_rows=len(split.train))
        t1 = time.perf_counter()
        features = [c for c in split.train.columns if c not in NON_FEATURES]
        categorical = [c for c in features if c in ("plan", "region", "acquisition_channel")]
        model = ChurnModel(features, categorical, n_estimators=settings.churn.n_estimators,
                           early_stopping_rounds=settings.churn.early_stopping_rounds)
        model.fit(split.train, split.train[LABEL_COLUMN], split.valid, split.valid[LABEL_COLUMN])
        out.update(fit_s=round(time.perf_counter() - t1, 1), fit_peak_mib=round(_peak_mib()),
                   trees=model.best_iteration_)
        return out
    from tenure.compute.cluster import dask_client
    from tenure.training.churn_distributed import (
        build_training_frame_on_cluster,
        fit_lightgbm_on_cluster,
        split_on_cluster,
    )

    with dask_client(settings.compute) as client:
        frame, cutoffs = build_training_frame_on_cluster(settings)
        split = split_on_cluster(settings, frame, cutoffs)
        out.update(frame_s=round(time.perf_counter() - t0, 1), frame_peak_mib=round(_peak_mib()),
                   train_rows=split.train_rows)
        t1 = time.perf_counter()
        churn = settings.churn.model_copy(update={"refit_on_validation": False})
        *_, params = fit_lightgbm_on_cluster(client, split, churn)
        out.update(fit_s=round(time.perf_counter() - t1, 1), fit_peak_mib=round(_peak_mib()), trees=params["trees"])
    return out


STAGES = {"generate": stage_generate, "ingest": stage_ingest, "features": stage_features, "frame_fit": stage_frame_fit}


def run_child(stage: str, args, path: str, limit_gib: float | None) -> dict:
    """Run one stage in a child process; its wall time, peak memory and result (or why it failed)."""
    cmd = [sys.executable, __file__, "--stage", stage, "--path", path, "--workdir", str(args.workdir),
           "--customers", str(args.customers[0]), "--items", str(args.items), "--days", str(args.days),
           "--workers", str(args.workers), "--partitions", str(args.partitions), "--seed", str(args.seed)]

    def limit() -> None:
        if limit_gib:
            size = int(limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit)  # noqa: PLW1509 - the parent runs no threads
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = {"stage": stage, "path": path, "wall_s": round(wall, 1)}
    if proc.returncode != 0:
        row.update(status="failed", error=(stderr.strip().splitlines() or ["?"])[-1][:300])
        if limit_gib:
            row["limit_gib"] = limit_gib
        return row
    row.update(status="done", **json.loads(stdout.strip().splitlines()[-1]))
    row.setdefault("peak_mib", round(usage.ru_maxrss / 1024))  # the largest child so far (see the per-stage peaks)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster workers of the dask path")
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--paths", nargs="+", default=["local", "dask"], choices=["local", "dask"])
    parser.add_argument("--local-limit-gib", type=float, default=20.0, help="memory limit of a local-path stage")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--path", default="local", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:  # a child: run one stage, print its result as the last line
        import logging

        logging.basicConfig(level=logging.WARNING)
        t0 = time.perf_counter()
        result = STAGES[args.stage](args)
        result.setdefault("stage_s", round(time.perf_counter() - t0, 1))
        result["peak_mib"] = round(_peak_mib())
        print(json.dumps(result))
        return
    import tempfile

    points = []
    for n in args.customers:
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="tenure-scaling-")) / f"n{n}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        point_args = argparse.Namespace(**{**vars(args), "customers": [n], "workdir": workdir})
        load_before = os.getloadavg()
        rows = [run_child("generate", point_args, "local", None), run_child("ingest", point_args, "local", None)]
        for path in args.paths:
            limit = args.local_limit_gib if path == "local" else None
            for stage in ("features", "frame_fit"):
                row = run_child(stage, point_args, path, limit)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if row["status"] != "done":
                    break
        points.append({"customers": n, "days": args.days, "items": args.items, "workers": args.workers,
                       "partitions": args.partitions, "cpus": os.cpu_count(), "load_before": load_before,
                       "load_after": os.getloadavg(), "stages": rows})
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"points": []}
    keep = [p for p in previous.get("points", []) if (p["customers"], p["workers"]) not in
            {(q["customers"], q["workers"]) for q in points}]
    RESULTS.write_text(json.dumps({"points": keep + points}, indent=2, default=str))
    print(json.dumps(points, indent=2, default=str))


if __name__ == "__main__":
    main()
