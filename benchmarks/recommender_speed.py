"""Recommender speed: confidence matrix + ALS fit on ~100k customers x 10k items x ~2M events, and
recommendation latency of the serving runtime for 1 and for 100 customers.

Data: generated here (vectorised; the shop simulator is too slow at this size): each customer has
one of 50 taste clusters; 80% of events fall on items of that cluster (Zipf-like popularity),
20% anywhere; types view 70% / add_to_cart 15% / purchase 15% over 180 days. The timed fit is
``build_interactions`` (from the canonical events DataFrame) + ALS (64 factors, 15 iterations,
all cores, CPU: no GPU is lent to this benchmark). Latency: ``RecommenderRuntime.recommend`` and
``recommend_batch`` with filters off, ``because`` included, 1 BLAS thread (as the runtime sets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tenure.training.interactions import build_interactions
from tenure.training.recommender_model import ALSRecommender

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "return": -5.0}


def make_events(n_customers: int, n_items: int, n_events: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(items, events) in the canonical shape, clustered tastes, about ``n_events`` rows."""
    rng = np.random.default_rng(seed)
    n_clusters = 50
    item_cluster = rng.integers(0, n_clusters, n_items)
    members = [np.flatnonzero(item_cluster == c) for c in range(n_clusters)]
    cust_cluster = rng.integers(0, n_clusters, n_customers)
    activity = rng.gamma(1.5, 1.0, n_customers)
    cust = rng.choice(n_customers, size=n_events, p=activity / activity.sum())
    in_cluster = rng.random(n_events) < 0.8
    item = rng.integers(0, n_items, n_events)
    zipf = np.minimum(rng.zipf(1.2, n_events) - 1, 10_000)
    for c in range(n_clusters):
        sel = in_cluster & (cust_cluster[cust] == c)
        if members[c].size:
            item[sel] = members[c][zipf[sel] % members[c].size]
    start = pd.Timestamp("2026-01-01", tz="UTC")
    cids = np.char.add("C", np.arange(n_customers).astype(str))
    iids = np.char.add("I", np.arange(n_items).astype(str))
    events = pd.DataFrame({
        "event_id": np.char.add("E", np.arange(n_events).astype(str)),
        "customer_id": cids[cust],
        "event_at": start + pd.to_timedelta(rng.uniform(0, 180 * 86400, n_events).astype("int64"), unit="s"),
        "event_type": rng.choice(np.array(["view", "add_to_cart", "purchase"]), n_events, p=[0.7, 0.15, 0.15]),
        "item_id": iids[item],
    })
    items = pd.DataFrame({"item_id": iids, "category": np.char.add("cat", (item_cluster % 20).astype(str)),
                          "price": 10.0, "available": rng.random(n_items) > 0.02})
    return items, events


def _quantiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {"min_ms": round(float(a.min()), 3), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p95_ms": round(float(np.percentile(a, 95)), 3), "mean_ms": round(float(a.mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="implicit threads (0 = all cores)")
    parser.add_argument("--repeats", type=int, default=200, help="latency samples per case")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recommender_speed.json")
    args = parser.parse_args()

    import implicit.gpu

    load_start = os.getloadavg()
    t = time.perf_counter()
    items, events = make_events(args.customers, args.items, args.events)
    gen_s = time.perf_counter() - t

    t, c = time.perf_counter(), time.process_time()
    matrix = build_interactions(events, None, items, event_weights=WEIGHTS)
    build_s, build_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    model = ALSRecommender(factors=args.factors, iterations=args.iterations, num_threads=args.threads,
                           use_gpu="auto", mode="als").fit(matrix.user_items, matrix.purchases)
    fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c

    runtime = model.to_runtime(matrix, items, params={"event_weights": WEIGHTS})
    rng = np.random.default_rng(1)
    known = matrix.customer_ids
    single, batch, fresh = [], [], []
    for _ in range(20):  # warm-up
        runtime.recommend(known[rng.integers(len(known))], k=10)
    for _ in range(args.repeats):
        cid = known[rng.integers(len(known))]
        t = time.perf_counter()
        runtime.recommend(cid, k=10)
        single.append((time.perf_counter() - t) * 1000)
    for _ in range(max(args.repeats // 4, 10)):
        ids = known[rng.integers(0, len(known), 100)].tolist()
        t = time.perf_counter()
        runtime.recommend_batch(ids, k=10)
        batch.append((time.perf_counter() - t) * 1000)
    for _ in range(max(args.repeats // 4, 10)):
        recent = [(matrix.item_ids[j], 3.0) for j in rng.integers(0, len(matrix.item_ids), 5)]
        t = time.perf_counter()
        runtime.recommend("new-customer", k=10, recent_items=recent)
        fresh.append((time.perf_counter() - t) * 1000)

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "gpu": bool(implicit.gpu.HAS_CUDA), "used_gpu": bool(model.used_gpu_),
        "data": {"customers": int(matrix.shape[0]), "items": int(matrix.shape[1]), "events": len(events),
                 "nonzero": matrix.nnz, "generate_s": round(gen_s, 2)},
        "fit": {"factors": args.factors, "iterations": args.iterations, "threads": args.threads or os.cpu_count(),
                "build_matrix_s": round(build_s, 2), "als_fit_s": round(fit_s, 2),
                "total_s": round(build_s + fit_s, 2), "target_total_s": 15.0,
                "build_matrix_cpu_s": round(build_cpu, 2), "als_fit_cpu_s": round(fit_cpu, 2),
                "note": "wall seconds on a shared machine; cpu_s = CPU time of this process (all threads)"},
        "latency": {"recommend_1": _quantiles(single), "recommend_batch_100": _quantiles(batch),
                    "recommend_fresh_1": _quantiles(fresh)},
    }
    print(f"data: {matrix.shape[0]:,} customers x {matrix.shape[1]:,} items, {len(events):,} events, "
          f"{matrix.nnz:,} non-zero (generated in {gen_s:.1f} s)")
    print(f"matrix build {build_s:.2f} s + ALS fit {fit_s:.2f} s = {build_s + fit_s:.2f} s "
          f"({args.factors} factors, {args.iterations} iterations, {result['fit']['threads']} threads, "
          f"{'GPU' if model.used_gpu_ else 'CPU'}); CPU time {build_cpu:.2f} + {fit_cpu:.2f} s")
    for name, q in result["latency"].items():
        print(f"{name:22s} min {q['min_ms']:.2f} ms  p50 {q['p50_ms']:.2f} ms  p95 {q['p95_ms']:.2f} ms")
    print(f"load average start {load_start}, end {result['loadavg_end']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
