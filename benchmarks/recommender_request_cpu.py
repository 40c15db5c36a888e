"""CPU time of one ``/recommend`` answer of the recommender runtime, in-process (no HTTP).

The model is the one ``benchmarks/serving_load.py`` serves: the shop simulator's shop (2,000
customers, 10,000 items, 150 days, seed 11), trained with the serving workspace's recommender
settings (16 factors, 5 iterations, the learned repeat-purchase blend), saved once under
``--model-dir`` and reused. The calls are the service's: ``recommend(customer_id, k=10)``
(``exclude_purchased`` "auto", available items only, consent, no live events) for customers
drawn as ``serving_load.py`` draws them (any customer of the shop; those the model does not
know get the popular answer), after a warm-up.

CPU per call is ``time.process_time`` over all calls / calls (all threads of this process; the
runtime answers with one BLAS thread), which a busy machine disturbs much less than wall-clock
latency; the load average is recorded with it. ``--profile`` prints cProfile's top functions
over the same calls instead of timing them. Results are merged into ``--out`` under ``--label``
(e.g. ``before`` / ``after`` a change).

    .venv/bin/python benchmarks/recommender_request_cpu.py --label after
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import shlex
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tenure.registry.recommender_runtime import RecommenderRuntime

RESULTS = ROOT / "benchmarks" / "results" / "recommender_request_cpu.json"


def train_model(model_dir: Path, customers: int, items: int, days: int, seed: int) -> dict:
    """Simulate the shop, fit the recommender as the serving workspace does, save it to ``model_dir``."""
    import pandas as pd

    from tenure.features.simulator import simulate_shop
    from tenure.settings import load_settings
    from tenure.training.interactions import decide_exclude_purchased, repeat_purchase_share
    from tenure.training.recommender_pipeline import (
        RecommenderData,
        _fit,
        _matrix,
        config_from_settings,
        learn_blend_weights,
    )

    t = time.perf_counter()
    shop = simulate_shop(n_customers=customers, n_items=items, days=days, seed=seed, start="2026-01-01")
    settings = load_settings(None, recommender={"iterations": 5, "factors": 16})  # as tests/serving/workspace.py
    data = RecommenderData(shop.events, shop.customers, shop.items, "generated", None,
                           dict(settings.recommender.event_weights))
    config = config_from_settings(settings, data)
    end = pd.to_datetime(data.events["event_at"], utc=True).max()
    full = _matrix(data, data.events, config, as_of=end)
    model = _fit(config, full, 1).set_blend(learn_blend_weights(data, config, data.events, 1))
    share = repeat_purchase_share(data.events, data.purchase_event_types)
    runtime = model.to_runtime(full, data.items, params={
        "event_weights": config["event_weights"], "weighting": config["weighting"],
        "half_life_days": config["half_life_days"], "use_gpu": config["use_gpu"],
        "exclude_purchased_default": decide_exclude_purchased(share, settings.recommender.exclude_purchased_repeat_share),
        "repeat_share": share,
    })
    runtime.save(model_dir, extra_manifest={"trained_until": str(end)})
    info = {"customers_in_shop": customers, "items": items, "days": days, "seed": seed,
            "events": len(shop.events), "build_s": round(time.perf_counter() - t, 1)}
    (model_dir / "bench_shop.json").write_text(json.dumps(
        info | {"customer_ids": shop.customers["customer_id"].astype(str).tolist()}))
    return info


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/tenure-reco-cpu/model"),
                        help="Where the benchmark model is saved (built on first use, then reused).")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--calls", type=int, default=2000, help="Timed calls.")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="Print cProfile's top functions, write nothing.")
    parser.add_argument("--label", default="after", help="Key of this measurement in --out (e.g. before, after).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    if not (args.model_dir / "manifest.json").is_file():
        print(f"training the benchmark model into {args.model_dir} ...")
        print(train_model(args.model_dir, args.customers, args.items, args.days, args.seed))
    shop = json.loads((args.model_dir / "bench_shop.json").read_text())
    t = time.perf_counter()
    runtime = RecommenderRuntime.from_model_dir(args.model_dir)
    load_s = time.perf_counter() - t
    rng = np.random.default_rng(7)
    ids = np.asarray(shop["customer_ids"])
    picks = ids[rng.integers(0, len(ids), args.calls)].tolist()
    for cid in ids[rng.integers(0, len(ids), args.warmup)].tolist():
        runtime.recommend(cid, k=args.k)

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for cid in picks:
            runtime.recommend(cid, k=args.k)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        print(text.getvalue())
        return {}

    load_start = os.getloadavg()
    strategies: dict[str, int] = {}
    wall = np.empty(len(picks))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, cid in enumerate(picks):
        t = time.perf_counter()
        recs = runtime.recommend(cid, k=args.k)
        wall[i] = time.perf_counter() - t
        strategies[recs.strategy] = strategies.get(recs.strategy, 0) + 1
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    result = {
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
        "model": {"customers": len(runtime.customer_ids), "items": len(runtime.item_ids),
                  "factors": int(runtime.item_factors.shape[1]), "mode": runtime.mode,
                  "learned_blend": runtime.blend_coefficients is not None,
                  "exclude_purchased_default": runtime.exclude_purchased_default, "load_s": round(load_s, 3),
                  "shop": {key: v for key, v in shop.items() if key != "customer_ids"}},
        "calls": len(picks), "k": args.k, "strategies": strategies,
        "cpu_ms_per_call": round(cpu_s / len(picks) * 1000, 3),
        "wall_ms_per_call": round(wall_s / len(picks) * 1000, 3),
        "wall_p50_ms": round(float(np.percentile(wall, 50)) * 1000, 3),
        "wall_p99_ms": round(float(np.percentile(wall, 99)) * 1000, 3),
        "note": "process_time of this process over the calls / calls; a shared 2-core machine: see loadavg",
    }
    print(f"{args.label}: {result['cpu_ms_per_call']:.3f} ms CPU per call over {len(picks)} calls "
          f"(wall mean {result['wall_ms_per_call']:.3f} ms, p50 {result['wall_p50_ms']:.3f}, "
          f"p99 {result['wall_p99_ms']:.3f}); strategies {strategies}; load {load_start} -> {result['loadavg_end']}")
    stored = json.loads(args.out.read_text()) if args.out.is_file() else {}
    stored[args.label] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(stored, indent=2))
    print(f"wrote {args.out} [{args.label}]")
    return result


if __name__ == "__main__":
    main()
