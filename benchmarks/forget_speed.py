"""Erasure speed and completeness: forget N customers of a simulated shop, then byte-search for them.

Builds a workspace (raw Parquet files, ingested tables, one feature snapshot, the Feast online
store in SQLite and, when the servers answer, in Redis with the PostgreSQL registry), erases
``--forget`` active customers with the code of ``tenure forget`` (every workspace store; the
Redis store added), then checks: every store's own count, a raw-byte search of every workspace
file for each id, and a scan of the Redis project's keys. Target (issue 17): 100 customers of
the 100k-customer shop in at most 60 s, 0 hits outside the tombstones' hashed form.

Not measured here: the service answering during the erasure (0 errors at 100 req/s): that needs a
trained, served workspace (tests/serving/test_privacy_api.py checks DELETE on a live service).

    python benchmarks/forget_speed.py --customers 100000 --days 60 --forget 100
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


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--forget", type=int, default=100, help="Customers to erase (the most active ones).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-redis", action="store_true", help="SQLite online store only.")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--registry-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "forget_speed.json")
    args = parser.parse_args()

    import logging

    import pandas as pd

    from tenure.erase import byte_hits
    from tenure.feature_repo import erasure as online
    from tenure.feature_repo.store import apply_definitions, materialize, open_store, teardown
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop, write_shop
    from tenure.features.snapshots import build_feature_tables
    from tenure.privacy.erasure import (
        forget_customers,
        verify_customers,
        workspace_files,
        workspace_stores,
    )
    from tenure.privacy.stores import Store
    from tenure.serving.erasure import serving_stores
    from tenure.settings import load_settings

    logging.basicConfig(level=logging.WARNING)
    scratch = Path(tempfile.mkdtemp(prefix="tenure-bench-forget-"))
    timings: dict[str, float] = {}
    redis_settings = None
    try:
        paths = {"data_dir": str(scratch / "data"), "reports_dir": str(scratch / "reports"),
                 "exports_dir": str(scratch / "exports")}
        mlflow = {"tracking_uri": f"sqlite:///{scratch / 'mlruns' / 'mlflow.db'}", "artifact_root": str(scratch / "mlruns")}
        settings = load_settings(None, paths=paths, mlflow=mlflow, feast={"repo_path": str(scratch / "feature_repo")})
        t0 = time.perf_counter()
        shop = simulate_shop(args.customers, args.items, args.days, args.seed, start="2026-01-01")
        write_shop(shop, settings.paths.raw_dir)
        timings["simulate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with IngestRun(settings) as run:
            run.ingest_dir(settings.paths.raw_dir)
        timings["ingest_s"] = time.perf_counter() - t0
        as_of = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=args.days)
        t0 = time.perf_counter()
        build_feature_tables(settings, [as_of])
        apply_definitions(settings)
        materialize(settings)
        timings["features_sqlite_s"] = time.perf_counter() - t0
        if not args.no_redis and _reachable(int(args.redis.split(":")[1])) and _reachable(5432):
            redis_settings = load_settings(None, paths=paths, mlflow=mlflow, feast={
                "repo_path": str(scratch / "feature_repo_redis"), "profile": "production",
                "project": f"tenure_bench_{uuid.uuid4().hex[:8]}", "redis_connection_string": args.redis,
                "registry_url": args.registry_url})
            t0 = time.perf_counter()
            apply_definitions(redis_settings)
            materialize(redis_settings)
            timings["features_redis_s"] = time.perf_counter() - t0
        ids = [str(c) for c in shop.events["customer_id"].value_counts().index[: args.forget]]
        del shop
        stores = [*workspace_stores(settings), *serving_stores(settings, None)]
        if redis_settings is not None:
            redis_store = open_store(redis_settings)
            stores.append(Store("feast_online_redis", f"Redis {args.redis}", lambda i: online.count_online(redis_store, i),
                                lambda i: online.forget_online(redis_store, i)))
        load_before = os.getloadavg()
        t0 = time.perf_counter()
        receipt = forget_customers(settings, ids, stores)
        forget_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        check = verify_customers(settings, ids, stores, byte_search=True)
        verify_s = time.perf_counter() - t0
        files = workspace_files(settings)
        redis_hits = None
        if redis_settings is not None:
            client = redis_store._get_provider().online_store._get_client(redis_store.config.online_store)
            keys = [k for k in client.scan_iter(match=f"*{redis_settings.feast.project}", count=10_000)]
            wanted = [c.encode() for c in ids]
            redis_hits = sum(any(w in k for w in wanted) for k in keys)  # crude: ids are whole strings in the key
        tombstone_file = scratch / "data" / "privacy" / "tombstones.json"
        tombstone_hits = byte_hits([tombstone_file], ids)
    finally:
        if redis_settings is not None:
            try:
                teardown(redis_settings)
            except Exception as exc:  # noqa: BLE001
                print(f"redis teardown failed: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)

    per_store = {k: {"removed": v["removed"], "seconds": v["seconds"]} for k, v in receipt["stores"].items()}
    print(f"\nerasure of {len(ids)} customers in a shop of {args.customers:,} customers, {args.days} days")
    print(f"forget: {forget_s:.1f} s (target <= 60 s); verify (stores + byte search of {len(files):,} files): {verify_s:.1f} s")
    for name, r in per_store.items():
        print(f"  {name:<26} removed {r['removed']:>9,}  {r['seconds']:>7.2f} s")
    print(f"remaining per store: {check['stores']}; files with raw-id hits: {len(check['files'])}; "
          f"Redis keys naming an id: {redis_hits}; tombstone file hits: {len(tombstone_hits)}")
    record = {
        "benchmark": "forget_speed",
        "command": " ".join([".venv/bin/python", "benchmarks/forget_speed.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "note": "the machine is shared during development (2 cores, other work running): times are from a busy "
                "machine; loadavg is the 1/5/15-minute load before and after the erasure",
        "customers": args.customers, "days": args.days, "items": args.items, "forgotten": len(ids),
        "setup": {k: round(v, 1) for k, v in timings.items()},
        "forget_s": round(forget_s, 2), "verify_s": round(verify_s, 2), "per_store": per_store,
        "remaining": check["stores"], "files_with_hits": check["files"], "files_searched": len(files),
        "redis_keys_with_ids": redis_hits, "redis": redis_settings is not None,
        "clean": check["clean"] and not redis_hits,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
