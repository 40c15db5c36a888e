"""Benchmark: batch feature build for a simulated shop (default 100k customers x 180 days).

Simulates the shop, stores it as canonical tables (not timed), then runs the feature build in a
fresh process, as `tenure features build` would: read the tables, compute the snapshots, write
the Parquet feature tables. Reports time per phase and the child's peak memory (max RSS), for one
as-of time and for weekly snapshots over the whole period.

    .venv/bin/python benchmarks/features_build.py --customers 100000 --days 180
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _child(data_dir: str, as_of: list[str], queue) -> None:
    import resource

    import pandas as pd

    from tenure.features.customer_features import EVENT_COLUMNS_USED, LOOKBACK_DAYS
    from tenure.features.snapshots import build_feature_tables
    from tenure.features.tables import read_customers, read_events, read_items
    from tenure.settings import load_settings

    settings = load_settings(None, paths={"data_dir": data_dir})
    times = [pd.Timestamp(t) for t in as_of]
    t0 = time.perf_counter()
    customers, items = read_customers(settings), read_items(settings)
    events = read_events(settings, start=min(times) - pd.Timedelta(days=LOOKBACK_DAYS), end=max(times),
                         columns=list(EVENT_COLUMNS_USED))
    t1 = time.perf_counter()
    result = build_feature_tables(settings, times, events=events, customers=customers, items=items, replace=True)
    t2 = time.perf_counter()
    queue.put({
        "read_s": round(t1 - t0, 2),
        "compute_and_write_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "events": len(events),
        "snapshots": len(times),
        "customer_rows": result.customer_rows,
        "item_rows": result.item_rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    })


def _run_child(data_dir: str, as_of: list[str]) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(data_dir, as_of, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--every", type=int, default=7, help="Days between weekly snapshots.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch data folder.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "features_build.json")
    args = parser.parse_args()

    import pandas as pd

    from tenure.features.simulator import simulate_shop
    from tenure.features.tables import append_events, upsert_customers, upsert_items
    from tenure.settings import load_settings

    scratch = Path(tempfile.mkdtemp(prefix="tenure-bench-features-"))
    try:
        settings = load_settings(None, paths={"data_dir": str(scratch / "data")})
        t0 = time.perf_counter()
        shop = simulate_shop(args.customers, args.items, args.days, args.seed, start=args.start)
        sim_s = time.perf_counter() - t0
        upsert_customers(settings, shop.customers)
        upsert_items(settings, shop.items)
        append_events(settings, shop.events)
        store_s = time.perf_counter() - t0 - sim_s
        n_events = len(shop.events)
        del shop
        start = pd.Timestamp(args.start, tz="UTC")
        last = start + pd.Timedelta(days=args.days)
        weekly = list(pd.date_range(start + pd.Timedelta(days=args.every), last, freq=f"{args.every}D"))
        runs = {
            "single_as_of": _run_child(str(settings.paths.data_dir), [str(last)]),
            "weekly_snapshots": _run_child(str(settings.paths.data_dir), [str(t) for t in weekly]),
        }
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nfeature build: {args.customers:,} customers, {args.items:,} items, {args.days} days, "
          f"{n_events:,} events (simulated in {sim_s:.1f} s, stored in {store_s:.1f} s)")
    print(f"{'run':<18}{'snapshots':>10}{'rows':>12}{'read s':>9}{'compute+write s':>17}{'total s':>9}{'peak RSS MB':>13}")
    for name, r in runs.items():
        print(f"{name:<18}{r['snapshots']:>10}{r['customer_rows']:>12,}{r['read_s']:>9}"
              f"{r['compute_and_write_s']:>17}{r['total_s']:>9}{r['peak_rss_mb']:>13}")
    record = {
        "benchmark": "features_build",
        "command": " ".join([".venv/bin/python", "benchmarks/features_build.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "note": "the machine is shared during development; loadavg is the load when the run ended",
        "scale": {"customers": args.customers, "items": args.items, "days": args.days, "events": n_events},
        "simulate_s": round(sim_s, 1),
        "store_tables_s": round(store_s, 1),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
