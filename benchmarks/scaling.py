"""Scaling curve of the dask engine beside the local path: generate + ingest + features + training frame + fit.

Every stage runs in a child process of its own, watched from here: its wall time and its **peak memory
summed over the whole process tree** (the stage's process, the client, the LocalCluster's scheduler and
every worker process, sampled every 0.2 s with psutil) are its own.

- ``generate``: simulate the shop in shards of ``--shard-customers`` (each shard its own simulation, seed
  ``seed + k``, its customers renamed ``s<k>-...``; the catalogue is shard 0's), one child per shard,
  so no process ever holds the whole shop;
- ``ingest``: validate and store each shard's files (one child per shard; both paths read these tables);
- ``features``: weekly snapshots over the churn window, local (pandas) or on the cluster;
- ``frame_fit``: labels and the point-in-time training frame, then the LightGBM fit of the ``lightgbm``
  candidate (local: ``training.churn_model.ChurnModel`` on the whole frame; dask: the frame stays on
  the cluster and ``lightgbm.dask`` fits it). The peak is also split at the end of the frame.

It must never take the machine down (other work shares it):

- each LocalCluster worker is a process with ``--worker-memory-gib`` of memory: beyond 60-70% of it the
  worker spills to disk (under the work folder), at 80% it pauses, at 95% its nanny restarts it;
- a stage whose tree passes its limit (``--local-limit-gib`` for the local path, ``--dask-limit-gib``
  for the dask path), or that leaves the machine less than ``--min-free-gib`` available, is stopped
  (the whole tree killed) and recorded as ``stopped`` with where it was; the local path then stops;
- before a point starts, the machine must have ``--min-start-gib`` available.

Run::

    .venv/bin/python benchmarks/scaling.py --customers 100000 300000            # both paths
    .venv/bin/python benchmarks/scaling.py --customers 1000000 --paths dask --workers 2
    .venv/bin/python benchmarks/scaling.py --customers 1000000 --paths dask --workers 1   # the speed-up
    .venv/bin/python benchmarks/scaling.py --customers 1000000 --workers 2 --reuse-tables DIR  # tables kept

Results go to ``benchmarks/results/scaling.json`` (one entry per point and worker count, with the load
average before and after every stage: times on a shared machine are noisy, peak memory is not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "scaling.json"
GIB = 2**30


def _settings(args, path: str):
    from tenure.settings import load_settings

    workdir = args.workdir
    return load_settings(None, paths={"data_dir": str(workdir / f"data-{path}"), "reports_dir": str(workdir / "reports"),
                                      "exports_dir": str(workdir / "exports")},
                         mlflow={"tracking_uri": f"sqlite:///{workdir / 'mlflow.db'}",
                                 "artifact_root": str(workdir / "artifacts")},
                         compute={"engine": "dask" if path == "dask" else "local", "local_workers": args.workers,
                                  "partitions": args.partitions, "threads_per_worker": 1,
                                  "worker_processes": True, "memory_limit": f"{args.worker_memory_gib}GiB"})


def _shards(customers: int, shard: int) -> list[int]:
    sizes = [shard] * (customers // shard)
    if customers % shard:
        sizes.append(customers % shard)
    return sizes


# --- the stages (run in a child: python benchmarks/scaling.py --stage NAME ...) -----------------------

def stage_generate(args) -> dict:
    """One shard of the shop, written as raw files under ``raw/shard_<k>``."""
    from tenure.features.simulator import simulate_shop

    k = args.shard
    n = _shards(args.customers[0], args.shard_customers)[k]
    shop = simulate_shop(n, args.items, args.days, args.seed + k, start="2026-01-01")
    prefix = f"s{k}-"
    customers = shop.customers.assign(customer_id=prefix + shop.customers["customer_id"].astype(str))
    events = shop.events.assign(customer_id=prefix + shop.events["customer_id"].astype(str))
    out = args.workdir / "raw" / f"shard_{k:03d}"
    out.mkdir(parents=True, exist_ok=True)
    customers.to_parquet(out / "customers.parquet", index=False)
    if k == 0:
        shop.items.to_parquet(out / "items.parquet", index=False)
    events.to_parquet(out / "events.parquet", index=False, compression="zstd")
    return {"events": len(events), "customers": n}


def stage_ingest(args) -> dict:
    """One shard's raw files validated and stored (then deleted: disk stays bounded)."""
    from tenure.features.ingest import ingest

    settings = _settings(args, "local")
    raw = args.workdir / "raw" / f"shard_{args.shard:03d}"
    report = ingest(settings, raw)
    shutil.rmtree(raw, ignore_errors=True)
    dask_tables = args.workdir / "data-dask" / "tables"
    dask_tables.parent.mkdir(parents=True, exist_ok=True)
    if not dask_tables.exists():
        dask_tables.symlink_to(settings.paths.tables_dir.resolve())  # both paths read the same tables
    return {"accepted": int(sum(getattr(f, "accepted", 0) or 0 for f in getattr(report, "files", [])))}


def stage_features(args) -> dict:
    from tenure.feature_repo.store import apply_definitions

    settings = _settings(args, args.path)
    if args.path == "local":
        from tenure.features.snapshots import build_feature_tables
        from tenure.pipelines.flows import feature_snapshot_times

        rows = build_feature_tables(settings, feature_snapshot_times(settings)).customer_rows
    else:
        from tenure.pipelines.cluster_steps import build_features_on_cluster

        rows = build_features_on_cluster(settings).customer_rows
    apply_definitions(settings)
    return {"customer_feature_rows": rows}


def stage_frame_fit(args) -> dict:
    settings = _settings(args, args.path)
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
        out.update(frame_s=round(time.perf_counter() - t0, 1), frame_done_at=time.time(), train_rows=len(split.train))
        t1 = time.perf_counter()
        features = [c for c in split.train.columns if c not in NON_FEATURES]
        categorical = [c for c in features if c in ("plan", "region", "acquisition_channel")]
        model = ChurnModel(features, categorical, n_estimators=settings.churn.n_estimators,
                           early_stopping_rounds=settings.churn.early_stopping_rounds)
        model.fit(split.train, split.train[LABEL_COLUMN], split.valid, split.valid[LABEL_COLUMN])
        out.update(fit_s=round(time.perf_counter() - t1, 1), trees=model.best_iteration_)
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
        out.update(frame_s=round(time.perf_counter() - t0, 1), frame_done_at=time.time(), train_rows=split.train_rows)
        t1 = time.perf_counter()
        churn = settings.churn.model_copy(update={"refit_on_validation": False})
        *_, params = fit_lightgbm_on_cluster(client, split, churn)
        out.update(fit_s=round(time.perf_counter() - t1, 1), trees=params["trees"])
    return out


STAGES = {"generate": stage_generate, "ingest": stage_ingest, "features": stage_features, "frame_fit": stage_frame_fit}


# --- watching a child --------------------------------------------------------------------------------

def available_gib() -> float:
    import psutil

    return psutil.virtual_memory().available / GIB


class TreeWatch(threading.Thread):
    """Samples the summed RSS of a process and all its descendants; kills the tree past a limit or when the
    machine's available memory falls under a floor."""

    def __init__(self, pid: int, limit_gib: float | None, min_free_gib: float, every_s: float = 0.2):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.limit, self.floor, self.every = limit_gib, min_free_gib, every_s
        self.peak_gib, self.min_free = 0.0, available_gib()
        self.timeline: list[tuple[float, float]] = []
        self.stopped: str | None = None
        self._done = threading.Event()

    def tree(self):
        import psutil

        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_gib(self) -> float:
        import psutil

        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / GIB

    def kill_tree(self) -> None:
        import psutil

        for p in reversed(self.tree()):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass

    def run(self) -> None:
        while not self._done.is_set():
            rss, free = self.rss_gib(), available_gib()
            self.peak_gib, self.min_free = max(self.peak_gib, rss), min(self.min_free, free)
            self.timeline.append((time.time(), rss))
            if self.limit and rss > self.limit:
                self.stopped = f"passed its {self.limit:g} GiB limit (tree at {rss:.1f} GiB)"
            elif free < self.floor:
                self.stopped = (f"the machine's available memory fell to {free:.1f} GiB (floor {self.floor:g}) with the "
                                f"stage's tree at {rss:.1f} GiB")
            if self.stopped:
                self.kill_tree()
                return
            self._done.wait(self.every)

    def finish(self) -> None:
        self._done.set()
        self.join(timeout=5)

    def peak_between(self, start: float, end: float) -> float:
        values = [rss for t, rss in self.timeline if start <= t <= end]
        return max(values) if values else 0.0


def run_child(stage: str, args, path: str, limit_gib: float | None, shard: int = 0) -> dict:
    """Run one stage in a child process, watched; its wall time, peak tree memory and result (or why not)."""
    cmd = [sys.executable, __file__, "--stage", stage, "--path", path, "--workdir", str(args.workdir),
           "--customers", str(args.customers[0]), "--items", str(args.items), "--days", str(args.days),
           "--workers", str(args.workers), "--partitions", str(args.partitions), "--seed", str(args.seed),
           "--shard", str(shard), "--shard-customers", str(args.shard_customers),
           "--worker-memory-gib", str(args.worker_memory_gib)]
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": str(args.workdir / "dask-spill"),
           "OMP_NUM_THREADS": "1" if path == "dask" else os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch = TreeWatch(proc.pid, limit_gib, args.min_free_gib)
    watch.start()
    stdout, stderr = proc.communicate()
    watch.finish()
    wall = time.perf_counter() - t0
    row = {"stage": stage, "path": path, "wall_s": round(wall, 1), "peak_gib": round(watch.peak_gib, 2),
           "min_available_gib": round(watch.min_free, 1), "load_before": [round(x, 1) for x in load_before],
           "load_after": [round(x, 1) for x in os.getloadavg()]}
    if watch.stopped:
        row.update(status="stopped", error=f"stopped after {wall:.0f} s: {watch.stopped}")
        return row
    if proc.returncode != 0:
        log = args.workdir / f"failed-{stage}-{path}-{shard}.stderr"  # the whole story (worker restarts...)
        log.write_text(stderr)
        row.update(status="failed", error=(stderr.strip().splitlines() or ["?"])[-1][:300], stderr_file=str(log))
        return row
    result = json.loads(stdout.strip().splitlines()[-1])
    done_at = result.pop("frame_done_at", None)
    if done_at:
        row["frame_peak_gib"] = round(watch.peak_between(started, done_at), 2)
        row["fit_peak_gib"] = round(watch.peak_between(done_at, time.time()), 2)
    row.update(status="done", **result)
    return row


def _merge_shards(stage: str, rows: list[dict]) -> dict:
    """The shards of one stage as one row: wall times added, the largest peak, results summed."""
    out = {"stage": stage, "path": "shared", "shards": len(rows), "wall_s": round(sum(r["wall_s"] for r in rows), 1),
           "shard_wall_s": [r["wall_s"] for r in rows], "shard_peak_gib": [r["peak_gib"] for r in rows],
           "peak_gib": max(r["peak_gib"] for r in rows), "min_available_gib": min(r["min_available_gib"] for r in rows),
           "load_before": rows[0]["load_before"], "load_after": rows[-1]["load_after"]}
    bad = [r for r in rows if r["status"] != "done"]
    out["status"] = bad[0]["status"] if bad else "done"
    if bad:
        out["error"] = bad[0]["error"]
    for key in ("events", "customers", "accepted"):
        if all(key in r for r in rows):
            out[key] = sum(r[key] for r in rows)
    return out


def run_point(args, n: int, workdir: Path, reuse: bool) -> dict:
    point_args = argparse.Namespace(**{**vars(args), "customers": [n], "workdir": workdir,
                                       "partitions": args.partitions or max(16, n // 6250)})
    rows = []
    if not reuse:
        for stage in ("generate", "ingest"):
            shard_rows = []
            for k in range(len(_shards(n, args.shard_customers))):
                shard_rows.append(run_child(stage, point_args, "local", args.dask_limit_gib, shard=k))
                if shard_rows[-1]["status"] != "done":
                    break
            rows.append(_merge_shards(stage, shard_rows))
            print(json.dumps(rows[-1]), flush=True)
            if rows[-1]["status"] != "done":
                return {"stages": rows}
    if args.tables_only:
        return {"stages": rows}
    for path in args.paths:
        limit = args.local_limit_gib if path == "local" else args.dask_limit_gib
        for stage in args.stages:
            row = run_child(stage, point_args, path, limit)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if row["status"] != "done":
                break
    return {"stages": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes of the dask path")
    parser.add_argument("--partitions", type=int, default=0,
                        help="customer-hash partitions (0: one per 6,250 customers, at least 16)")
    parser.add_argument("--worker-memory-gib", type=float, default=3.0, help="memory limit of each dask worker")
    parser.add_argument("--shard-customers", type=int, default=50_000, help="customers simulated/ingested per child")
    parser.add_argument("--paths", nargs="+", default=["local", "dask"], choices=["local", "dask"])
    parser.add_argument("--local-limit-gib", type=float, default=20.0, help="a local-path stage past this is stopped")
    parser.add_argument("--dask-limit-gib", type=float, default=12.0, help="a dask-path (or shared) stage past this is stopped")
    parser.add_argument("--min-free-gib", type=float, default=2.0, help="stop a stage when the machine has less available")
    parser.add_argument("--min-start-gib", type=float, default=8.0, help="do not start a point with less available")
    parser.add_argument("--workdir", type=Path, default=None, help="where the data goes (kept with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the point's tables (for --reuse-tables)")
    parser.add_argument("--reuse-tables", action="store_true",
                        help="the workdir already holds this point's ingested tables: skip generate and ingest")
    parser.add_argument("--stages", nargs="+", default=["features", "frame_fit"], choices=["features", "frame_fit"],
                        help="timed stages per path (frame_fit needs the features of the same path and point)")
    parser.add_argument("--tables-only", action="store_true",
                        help="generate and ingest the point's tables, then stop (with --keep: the paths later, "
                             "with --reuse-tables, e.g. on a quiet machine)")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--path", default="local", help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:  # a child: run one stage, print its result as the last line
        import logging

        logging.basicConfig(level=logging.WARNING)
        t0 = time.perf_counter()
        result = STAGES[args.stage](args)
        result.setdefault("stage_s", round(time.perf_counter() - t0, 1))
        print(json.dumps(result))
        return
    import tempfile

    points = []
    for n in args.customers:
        base = args.workdir or Path(tempfile.mkdtemp(prefix="tenure-scaling-"))
        workdir = base / f"n{n}"
        if not args.reuse_tables:
            shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True, exist_ok=True)
        for stale in ("data-dask/features", "data-local/features", "dask-spill"):
            shutil.rmtree(workdir / stale, ignore_errors=True)
        free = available_gib()
        point = {"customers": n, "days": args.days, "items": args.items, "workers": args.workers,
                 "worker_memory_gib": args.worker_memory_gib, "partitions": args.partitions or max(16, n // 6250),
                 "shard_customers": args.shard_customers, "cpus": os.cpu_count(),
                 "memory_gib": round(__import__("psutil").virtual_memory().total / GIB, 1),
                 "available_gib_before": round(free, 1), "load_before": os.getloadavg()}
        if free < args.min_start_gib:
            point.update(stages=[], error=f"not started: {free:.1f} GiB available, under --min-start-gib")
        else:
            point.update(run_point(args, n, workdir, args.reuse_tables))
        point["load_after"] = os.getloadavg()
        points.append(point)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"points": []}
    done = {(q["customers"], q["workers"], tuple(sorted({r["path"] for r in q["stages"]}))) for q in points}
    keep = [p for p in previous.get("points", [])
            if (p["customers"], p["workers"], tuple(sorted({r["path"] for r in p["stages"]}))) not in done]
    RESULTS.write_text(json.dumps({"points": keep + points}, indent=2, default=str))
    print(json.dumps(points, indent=2, default=str))


if __name__ == "__main__":
    main()
