"""Churn training speed and memory: point-in-time training-set build and model fit on generated data.

Run: ``flock /tmp/tenure-bench.lock .venv/bin/python benchmarks/churn_speed.py --customers 100000 --days 180``.

Two processes, so the figure that counts is not mixed with data preparation:

1. ``prepare`` (a child process): simulate a shop, ingest it, build weekly feature snapshots and
   apply the Feast definitions, into a workspace folder.
2. ``train`` (a fresh child process): what ``tenure train churn`` does before logging:
   ``build_churn_training_set`` (labels, Feast point-in-time join through ``churn_v1``, leakage
   guard), the time split and the LightGBM + calibration fit.

Each child records its wall time per stage and its memory: ``peak_rss_gib`` is the kernel's
high-water mark of the process (``ru_maxrss``, exact); ``stage_peak_rss_gib`` is the largest RSS
a sampling thread saw during each stage (every 50 ms, so a shorter spike can be missed; it is a
lower bound). Inside the build, the stages ``build.labels``, ``build.feast_join`` and
``build.leakage_guard`` are told apart by wrapping those functions here (instrumentation only).

``--pipeline`` measures the whole ``tenure train churn`` instead (``train_churn``: build, fit,
evaluation beside the baselines, plots, MLflow logging and registration into the workspace's
own tracking store), its stages told apart by the pipeline's progress messages.

``--workspace DIR`` keeps (or reuses, when it holds a prepared workspace of the same size) the
prepared data, to measure the training stage again without preparing again.

The join runs on the settings' offline store (``feast.offline_store``: DuckDB by default on the
local profile; ``TENURE_FEAST__OFFLINE_STORE=file`` for Feast's file store), recorded as
``train.offline_store``. ``--frame-out PATH`` also writes the training frame (Parquet), to compare
the frames of two stores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GIB = 1024 ** 3


class RssSampler:
    """Largest RSS of this process seen per stage, sampled in a thread."""

    def __init__(self, interval_s: float = 0.05) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self.stage = "start"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def _sample(self) -> None:
        rss = self._process.memory_info().rss
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss)

    @contextlib.contextmanager
    def during(self, stage: str):
        previous, self.stage = self.stage, stage
        self._sample()
        try:
            yield
        finally:
            self._sample()
            self.stage = previous

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, float]:
        return {k: round(v / GIB, 3) for k, v in self.peaks.items() if k != "start"}


def _settings(root: Path):
    from tenure.settings import load_settings

    return load_settings(None, paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                                      "exports_dir": str(root / "exports")},
                         mlflow={"tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                                 "artifact_root": str(root / "artifacts")})


def _max_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB on Linux


def prepare(root: Path, customers: int, days: int, seed: int) -> dict:
    """Simulate, ingest, build snapshots, apply Feast (the data a training run starts from)."""
    import pandas as pd

    from tenure.feature_repo.store import apply_definitions
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables, snapshot_times

    settings = _settings(root)
    timings, out = {}, {}
    with RssSampler() as rss:
        t = time.perf_counter()
        with rss.during("simulate"):
            shop = simulate_shop(n_customers=customers, n_items=500, days=days, seed=seed, start="2026-01-01")
        timings["simulate_s"] = time.perf_counter() - t
        t = time.perf_counter()
        with rss.during("ingest"), IngestRun(settings) as run:
            run.ingest_frame("customers", shop.customers, source="sim customers")
            run.ingest_frame("items", shop.items, source="sim items")
            run.ingest_frame("events", shop.events, source="sim events")
        timings["ingest_s"] = time.perf_counter() - t
        out["events"] = len(shop.events)
        t = time.perf_counter()
        with rss.during("snapshots_and_feast_apply"):
            start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=14)
            times = snapshot_times(start, shop.events["event_at"].max(), every_days=7)
            build_feature_tables(settings, times)
            apply_definitions(settings)
        timings["snapshots_and_feast_apply_s"] = time.perf_counter() - t
        out["snapshots"] = len(times)
    out.update(timings=timings, stage_peak_rss_gib=rss.report(), peak_rss_gib=round(_max_rss_gib(), 3))
    return out


def train(root: Path, frame_out: Path | None = None) -> dict:
    """``build_churn_training_set`` + time split + fit, as ``tenure train churn`` runs them.

    ``frame_out``: also write the training frame there (Parquet, after the timings), to compare
    the frames of two offline stores.
    """
    import tenure.feature_repo.store as store_module
    import tenure.training.churn_dataset as dataset_module
    from tenure.features.customer_features import CUSTOMER_CATEGORICAL_FEATURES
    from tenure.training.churn_dataset import LABEL_COLUMN, build_churn_training_set, split_by_time
    from tenure.training.churn_pipeline import NON_FEATURES, _model_from_settings

    settings = _settings(root)
    timings, out = {}, {}
    with RssSampler() as rss:
        def staged(stage, function):
            def wrapper(*args, **kwargs):
                t = time.perf_counter()
                try:
                    with rss.during(stage):
                        return function(*args, **kwargs)
                finally:
                    timings[f"{stage}_s"] = timings.get(f"{stage}_s", 0.0) + time.perf_counter() - t
            return wrapper

        dataset_module.label_churn = staged("build.labels", dataset_module.label_churn)
        dataset_module.check_point_in_time = staged("build.leakage_guard", dataset_module.check_point_in_time)
        store_module.get_training_frame = staged("build.feast_join", store_module.get_training_frame)

        t = time.perf_counter()
        with rss.during("build.other"):
            frame = build_churn_training_set(settings)
        timings["build_churn_training_set_s"] = time.perf_counter() - t
        out["peak_rss_after_build_gib"] = round(_max_rss_gib(), 3)
        out["cutoffs"] = int(frame["event_timestamp"].nunique())
        out["training_rows"] = len(frame)
        out["training_frame_gib"] = round(frame.memory_usage(deep=True).sum() / GIB, 3)
        out["churn_rate"] = float(frame[LABEL_COLUMN].mean())
        if frame_out is not None:
            frame.to_parquet(frame_out)
        features = [c for c in frame.columns if c not in NON_FEATURES]
        categorical = [c for c in features if c in CUSTOMER_CATEGORICAL_FEATURES]
        numeric = [c for c in features if c not in categorical]
        c = settings.churn
        t = time.perf_counter()
        with rss.during("fit"):
            split = split_by_time(frame, c.validation_cutoffs, c.test_cutoffs, c.horizon_days)
            del frame
            out["split_rows"] = {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}
            model = _model_from_settings(settings, numeric + categorical, categorical)
            model.fit(split.train, split.train[LABEL_COLUMN].to_numpy(), split.valid, split.valid[LABEL_COLUMN].to_numpy())
        timings["split_and_fit_s"] = time.perf_counter() - t
    out.update(timings=timings, stage_peak_rss_gib=rss.report(), peak_rss_gib=round(_max_rss_gib(), 3),
               join_rows_per_call=settings.churn.join_rows_per_call, offline_store=_offline_store(settings))
    return out


def _offline_store(settings) -> str:
    from tenure.feature_repo.store import render_config

    return render_config(settings)["offline_store"]["type"]


def train_pipeline(root: Path) -> dict:
    """The whole ``train_churn`` (what ``tenure train churn`` runs), stages from its progress messages."""
    from tenure.training.churn_pipeline import train_churn

    settings = _settings(root)
    timings: dict[str, float] = {}
    with RssSampler() as rss:
        started = {"stage": None, "t": time.perf_counter()}

        def progress(message: str) -> None:
            now = time.perf_counter()
            if started["stage"]:
                timings[f"{started['stage']}_s"] = now - started["t"]
            stage = message.split(" (")[0].replace(" ", "_")
            started.update(stage=stage, t=now)
            rss.stage = stage

        t = time.perf_counter()
        result = train_churn(settings, progress=progress)
        end = time.perf_counter()
        timings[f"{started['stage']}_s"] = end - started["t"]
        timings["train_churn_s"] = end - t
    return {"timings": timings, "stage_peak_rss_gib": rss.report(), "peak_rss_gib": round(_max_rss_gib(), 3),
            "split_rows": result.split_rows, "test_roc_auc": result.metrics["tenure"].get("roc_auc"),
            "join_rows_per_call": settings.churn.join_rows_per_call, "offline_store": _offline_store(settings)}


def _child(stage: str, root: Path, args: argparse.Namespace) -> dict:
    """Run one stage in a fresh interpreter and return what it measured."""
    result = root / f"{stage}.json"
    command = [sys.executable, __file__, "--stage", stage, "--workspace", str(root), "--customers",
               str(args.customers), "--days", str(args.days), "--seed", str(args.seed), "--result", str(result)]
    if args.frame_out is not None:
        command += ["--frame-out", str(args.frame_out)]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--note", default="")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="Keep the prepared data here (reused when already prepared with the same size).")
    parser.add_argument("--pipeline", action="store_true",
                        help="Measure the whole train_churn (tenure train churn) instead of build + fit.")
    parser.add_argument("--frame-out", type=Path, default=None,
                        help="Also write the training frame here (Parquet; not with --pipeline).")
    parser.add_argument("--stage", choices=("prepare", "train", "pipeline"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "churn_speed.json")
    args = parser.parse_args()

    if args.stage:  # a child: one stage, result to a file
        stages = {"prepare": lambda: prepare(args.workspace, args.customers, args.days, args.seed),
                  "train": lambda: train(args.workspace, args.frame_out), "pipeline": lambda: train_pipeline(args.workspace)}
        got = stages[args.stage]()
        args.result.write_text(json.dumps(got, indent=2, default=str))
        return

    out = {"command": " ".join([".venv/bin/python", "benchmarks/churn_speed.py", *sys.argv[1:]]),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu_count": os.cpu_count(),
           "loadavg_start": os.getloadavg(), "customers": args.customers, "days": args.days, "note": args.note,
           "measures": "two child processes: prepare (simulate, ingest, snapshots, Feast apply) and train ("
                       + ("the whole train_churn, i.e. `tenure train churn`: build, fit, evaluate, plots, MLflow "
                          "logging and registration" if args.pipeline else
                          "build_churn_training_set + split + fit, what `tenure train churn` does before "
                          "evaluation and MLflow logging")
                       + "); peak_rss_gib = ru_maxrss of each process (exact), stage_peak_rss_gib = largest RSS "
                         "sampled every 50 ms per stage (lower bound)"}
    with contextlib.ExitStack() as stack:
        root = args.workspace or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        marker = root / "prepared.json"
        size = {"customers": args.customers, "days": args.days, "seed": args.seed}
        if marker.exists() and json.loads(marker.read_text()).get("size") == size:
            out["prepare"] = {**json.loads(marker.read_text())["prepare"], "reused": True}
        else:
            out["prepare"] = _child("prepare", root, args)
            marker.write_text(json.dumps({"size": size, "prepare": out["prepare"]}, default=str))
        out["loadavg_before_train"] = os.getloadavg()
        out["train"] = _child("pipeline" if args.pipeline else "train", root, args)
    t = out["train"]["timings"]
    out["training_s"] = t["train_churn_s"] if args.pipeline else t["build_churn_training_set_s"] + t["split_and_fit_s"]
    out["training_peak_rss_gib"] = out["train"]["peak_rss_gib"]
    out["loadavg_end"] = os.getloadavg()
    out["targets"] = {"training_under_s": 300, "training_peak_rss_under_gib": 8}
    for part in ("prepare", "train"):
        for k, v in out[part]["timings"].items():
            print(f"{k:36s} {v:8.1f} s")
        for k, v in out[part]["stage_peak_rss_gib"].items():
            print(f"  peak RSS {k:27s} {v:8.2f} GiB")
        print(f"  {part} process peak RSS (ru_maxrss) {out[part]['peak_rss_gib']:8.2f} GiB")
    print(f"rows {out['train'].get('training_rows', out['train']['split_rows'])}, "
          f"training {out['training_s']:.1f} s, peak {out['training_peak_rss_gib']:.2f} GiB, load {out['loadavg_end']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
