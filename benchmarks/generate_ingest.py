"""Benchmark: `tenure generate` at scale (time, peak memory), then ingest + validate of its output (rows/s).

Each step runs in its own process so its peak memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
is its own. Also reports the simulated world's churn rate per 30 days and the ROC-AUC of a
recency-only rule on a 30-day horizon (point in time), which must stay below 0.9.

    .venv/bin/python benchmarks/generate_ingest.py                      # 100k x 5k x 180 days
    .venv/bin/python benchmarks/generate_ingest.py --customers 20000 --items 1000 --days 90

Writes benchmarks/results/generate_ingest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "generate_ingest.json"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def step_generate(args: argparse.Namespace) -> dict:
    from tenure.features.simulator import simulate_shop, write_shop

    t0 = time.perf_counter()
    shop = simulate_shop(args.customers, args.items, args.days, args.seed, start=args.start, drift_at=args.drift_at)
    t_sim = time.perf_counter() - t0
    peak_sim = _peak_mib()
    t1 = time.perf_counter()
    paths = write_shop(shop, args.workdir / "raw", args.format)
    t_write = time.perf_counter() - t1
    result = {
        "events": len(shop.events),
        "customers": len(shop.customers),
        "items": len(shop.items),
        "simulate_s": round(t_sim, 2),
        "write_s": round(t_write, 2),
        "generate_total_s": round(t_sim + t_write, 2),
        "peak_rss_mib_simulate": round(peak_sim, 1),
        "peak_rss_mib_generate": round(_peak_mib(), 1),
        "raw_bytes": {k: p.stat().st_size for k, p in paths.items()},
        "event_types": shop.events["event_type"].value_counts().to_dict(),
    }
    result.update(churn_checks(shop, args.days))
    return result


def churn_checks(shop, days: int) -> dict:
    """True churn rate per 30 days and recency-only ROC-AUC on the contract's 30-day label."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    e = shop.events
    start = e["event_at"].min().normalize()
    ids = pd.Index(shop.customers["customer_id"])
    cust = ids.get_indexer(e["customer_id"])
    t = e["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    etype = e["event_type"].to_numpy()
    qual = np.isin(etype, ["view", "add_to_cart", "purchase", "session"])
    cancel = etype == "subscription_cancel"
    day = 86_400 * 10**9
    out: dict = {"recency_auc_30d": {}, "true_churn_rate_30d": {}}
    signup = shop.customers["signup_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    left = shop.truth["left_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    for cut_day in [d for d in (60, 90, 120, 150) if d + 30 <= days]:
        T = start.value + cut_day * day
        last = np.full(len(ids), np.iinfo(np.int64).min)
        m = qual & (t <= T) & (t > T - 90 * day)
        np.maximum.at(last, cust[m], t[m])
        cancelled_before = np.zeros(len(ids), bool)
        cancelled_before[cust[cancel & (t <= T)]] = True
        pop = (last > np.iinfo(np.int64).min) & ~cancelled_before
        future = np.zeros(len(ids), bool)
        future[cust[qual & (t > T) & (t <= T + 30 * day)]] = True
        cancels = np.zeros(len(ids), bool)
        cancels[cust[cancel & (t > T) & (t <= T + 30 * day)]] = True
        label = (~future | cancels)[pop]
        recency = (T - last[pop]) / day
        out["recency_auc_30d"][f"day_{cut_day}"] = round(float(roc_auc_score(label, recency)), 4)
        alive = (signup <= T) & ~((left != np.iinfo(np.int64).min) & (left <= T))
        leaving = alive & (left > T) & (left <= T + 30 * day)
        out["true_churn_rate_30d"][f"day_{cut_day}"] = round(float(leaving.sum() / alive.sum()), 4)
    return out


def step_ingest(args: argparse.Namespace) -> dict:
    from tenure.features.ingest import ingest
    from tenure.settings import load_settings

    settings = load_settings(None, paths={"data_dir": str(args.workdir / "data")})
    t0 = time.perf_counter()
    report = ingest(settings, args.workdir / "raw")
    seconds = time.perf_counter() - t0
    rows = report.rows_read
    ev = next(f for f in report.files if f.table == "events")
    tables_bytes = sum(p.stat().st_size for p in settings.paths.tables_dir.rglob("*.parquet"))
    t1 = time.perf_counter()
    again = ingest(settings, args.workdir / "raw")
    reingest_s = time.perf_counter() - t1
    return {
        "ingest_s": round(seconds, 2),
        "rows_read": rows,
        "rows_per_s": round(rows / seconds),
        "events_rows_per_s": round(ev.rows_read / ev.seconds),
        "accepted": report.accepted,
        "rejected": report.rejected_rows,
        "tables_bytes": tables_bytes,
        "peak_rss_mib_ingest": round(_peak_mib(), 1),
        "reingest_s": round(reingest_s, 2),
        "reingest_skipped_duplicates": again.skipped_duplicates,
    }


def run_step(step: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--step", step, "--customers", str(args.customers), "--items", str(args.items),
           "--days", str(args.days), "--seed", str(args.seed), "--start", args.start, "--format", args.format,
           "--workdir", str(args.workdir)]
    if args.drift_at is not None:
        cmd += ["--drift-at", str(args.drift_at)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"step {step} failed with exit code {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result[f"{step}_process_wall_s"] = round(time.perf_counter() - t0, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--drift-at", type=int, default=None)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--workdir", type=Path, default=None, help="Scratch folder (default: a temp dir, removed).")
    parser.add_argument("--step", choices=["generate", "ingest"], help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="Do not write the results JSON.")
    args = parser.parse_args()

    if args.step:
        result = step_generate(args) if args.step == "generate" else step_ingest(args)
        print(json.dumps(result, default=str))
        return

    keep = args.workdir is not None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tenure-bench-"))
    try:
        gen = run_step("generate", args)
        ing = run_step("ingest", args)
    finally:
        if not keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    figures = {**gen, **ing}
    record = {
        "benchmark": "generate_ingest",
        "command": " ".join([".venv/bin/python", "benchmarks/generate_ingest.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "scale": {"customers": args.customers, "items": args.items, "days": args.days, "seed": args.seed,
                  "drift_at": args.drift_at, "format": args.format},
        "figures": figures,
    }
    rows = [
        ("events generated", f"{gen['events']:,}"),
        ("simulate (s)", gen["simulate_s"]),
        ("write raw files (s)", gen["write_s"]),
        ("peak memory, generate (MiB)", gen["peak_rss_mib_generate"]),
        ("ingest + validate (s)", ing["ingest_s"]),
        ("ingest rows/s (all tables)", f"{ing['rows_per_s']:,}"),
        ("ingest rows/s (events)", f"{ing['events_rows_per_s']:,}"),
        ("peak memory, ingest (MiB)", ing["peak_rss_mib_ingest"]),
        ("re-ingest, all skipped (s)", ing["reingest_s"]),
        ("true churn / 30 days", gen["true_churn_rate_30d"]),
        ("recency-only ROC-AUC, 30 d", gen["recency_auc_30d"]),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
