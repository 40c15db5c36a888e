"""Benchmark: materialization into the online store, and online read latency, SQLite vs Redis.

For each backend: build one feature snapshot of a simulated shop, apply the definitions, time
`materialize` (every view), then time `OnlineFeatureReader.read` in-process for 1 and for 100
random known customers (p50/p99 over --reads calls each) and `push_customer_features` for one
customer. SQLite = local profile; Redis = production profile (Redis online store, PostgreSQL
registry), under a throw-away Feast project that is torn down afterwards.

    .venv/bin/python benchmarks/features_online.py --customers 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _percentiles(samples: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "mean_ms": round(float(ms.mean()), 3)}


def _bench_backend(name: str, settings, shop, as_of, reads: int, seed: int) -> dict:
    import numpy as np
    import pandas as pd

    from tenure.feature_repo.online import OnlineFeatureReader, push_customer_features
    from tenure.feature_repo.store import apply_definitions, materialize, open_store, teardown
    from tenure.features.customer_features import compute_customer_features
    from tenure.features.snapshots import build_feature_tables

    result: dict = {"backend": name}
    tables = build_feature_tables(settings, [as_of], events=shop.events, customers=shop.customers,
                                  items=shop.items, replace=True)
    result["customer_rows"], result["item_rows"] = tables.customer_rows, tables.item_rows
    try:
        t0 = time.perf_counter()
        apply_definitions(settings)
        result["apply_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        materialize(settings)
        result["materialize_s"] = round(time.perf_counter() - t0, 2)

        store = open_store(settings)
        reader = OnlineFeatureReader(store, "churn_v1")
        known = pd.read_parquet(tables.customer_path, columns=["customer_id"])["customer_id"].to_numpy()
        rng = np.random.default_rng(seed)
        for _ in range(20):  # warm-up: registry cache, connections
            reader.read([str(rng.choice(known))])
        for batch in (1, 100):
            samples = []
            for _ in range(reads):
                ids = [str(x) for x in rng.choice(known, batch, replace=False)]
                t0 = time.perf_counter()
                rows = reader.read(ids)
                samples.append(time.perf_counter() - t0)
                assert all(r is not None for r in rows)
            result[f"read_{batch}"] = _percentiles(samples)

        customer_id = str(known[0])
        own_events = shop.events.loc[shop.events["customer_id"] == customer_id]
        own = shop.customers.loc[shop.customers["customer_id"] == customer_id]
        samples_compute, samples_push = [], []
        for i in range(min(reads, 200)):
            now = as_of + pd.Timedelta(seconds=i + 1)
            t0 = time.perf_counter()
            frame = compute_customer_features(own_events, own, shop.items, now)
            t1 = time.perf_counter()
            push_customer_features(store, frame, as_of=now)
            t2 = time.perf_counter()
            samples_compute.append(t1 - t0)
            samples_push.append(t2 - t1)
        result["compute_one_customer"] = _percentiles(samples_compute)
        result["push_one_customer"] = _percentiles(samples_push)
    finally:
        if settings.feast.profile == "production":
            teardown(settings)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reads", type=int, default=1000, help="Reads per batch size.")
    parser.add_argument("--backends", default="sqlite,redis", help="Comma-separated: sqlite, redis.")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--registry-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "features_online.json")
    args = parser.parse_args()

    import logging

    import pandas as pd

    from tenure.features.simulator import simulate_shop
    from tenure.settings import load_settings

    logging.basicConfig(level=logging.WARNING)
    shop = simulate_shop(args.customers, args.items, args.days, args.seed, start="2026-01-01")
    as_of = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=args.days)
    scratch = Path(tempfile.mkdtemp(prefix="tenure-bench-online-"))
    results, skipped = [], {}
    try:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            paths = {"data_dir": str(scratch / backend / "data")}
            repo = {"repo_path": str(scratch / backend / "feature_repo")}
            if backend == "sqlite":
                settings = load_settings(None, paths=paths, feast={**repo, "profile": "local"})
            elif backend == "redis":
                if not (_reachable(int(args.redis.split(":")[1])) and _reachable(5432)):
                    skipped["redis"] = "Redis or PostgreSQL not reachable"
                    continue
                settings = load_settings(None, paths=paths, feast={
                    **repo, "profile": "production", "project": f"tenure_bench_{uuid.uuid4().hex[:8]}",
                    "redis_connection_string": args.redis, "registry_url": args.registry_url})
            else:
                raise SystemExit(f"unknown backend {backend!r}; use sqlite or redis")
            results.append(_bench_backend(backend, settings, shop, as_of, args.reads, args.seed))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print(f"\nonline features: {args.customers:,} customers, {args.reads} reads per batch size, in-process")
    print(f"{'backend':<8}{'rows':>9}{'materialize s':>15}{'read 1 p50/p99 ms':>20}{'read 100 p50/p99 ms':>22}"
          f"{'push 1 p50 ms':>15}")
    for r in results:
        print(f"{r['backend']:<8}{r['customer_rows']:>9,}{r['materialize_s']:>15}"
              f"{r['read_1']['p50_ms']:>11}/{r['read_1']['p99_ms']:<8}"
              f"{r['read_100']['p50_ms']:>13}/{r['read_100']['p99_ms']:<8}{r['push_one_customer']['p50_ms']:>15}")
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")
    record = {
        "benchmark": "features_online",
        "command": " ".join([".venv/bin/python", "benchmarks/features_online.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "note": "the machine is shared during development; loadavg is the load when the run ended. "
                "materialize_s covers all three views (customer activity, profile, items).",
        "scale": {"customers": args.customers, "items": args.items, "days": args.days, "reads": args.reads},
        "results": results,
        "skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
