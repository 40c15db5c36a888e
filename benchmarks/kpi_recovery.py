"""Benchmark: does `tenure report kpis` recover the simulated shop's true rates, and how fast is it?

Simulates a shop, writes it with its true rates (``rates_truth.json``, as `tenure generate` does),
ingests it into a fresh workspace, then times ``build_kpi_report`` (what the CLI runs) and
compares its headline rates with the truth: the *realised* rates (conversion, order value,
repurchase, NPS, CSAT, CES, resolution time, per channel; computed independently with pandas)
and the *latent* monthly churn (of the customers who are customers at a month's first instant,
the share who really leave within 30 days), beside the report's activity-based churn rate and
its estimated lost rate (Pareto/NBD on activity days, ``tenure.insight.lost``: the comparable
quantity, the expected share of the customers alive at the month's start who die within 30 days).

    .venv/bin/python benchmarks/kpi_recovery.py                       # 100k customers x 180 days
    .venv/bin/python benchmarks/kpi_recovery.py --customers 20000
    .venv/bin/python benchmarks/kpi_recovery.py --workdir /tmp/kpis100k --reuse   # time the report again only

Writes benchmarks/results/kpi_recovery.json (with the load average: speed on a busy machine is
pessimistic).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "kpi_recovery.json"
POINT = 0.01  # one percentage point
#: rates compared in percentage points (fractions); the others relative (NPS in points of -100..100)
RATES = ("conversion_rate", "repurchase_rate", "csat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--workdir", type=Path, default=None, help="Keep the workspace here (default: a temp folder).")
    parser.add_argument("--reuse", action="store_true",
                        help="With --workdir: reuse the shop an earlier run generated and ingested there (same options).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the results (JSON).")
    args = parser.parse_args()

    from tenure.features.ingest import ingest
    from tenure.features.simulator import simulate_shop, write_shop
    from tenure.features.simulator_truth import TRUTH_FILE, write_rates
    from tenure.insight.kpis import build_kpi_report
    from tenure.settings import load_settings

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tenure-kpis-"))
    try:
        settings = load_settings(paths={"data_dir": str(workdir / "data"), "reports_dir": str(workdir / "reports")})
        stamp = workdir / "shop.json"
        wanted = {"customers": args.customers, "items": args.items, "days": args.days, "seed": args.seed}
        if args.reuse and stamp.exists() and json.loads(stamp.read_text()).get("shop") == wanted:
            # the same shop, already generated and ingested by an earlier run with this --workdir
            kept = json.loads(stamp.read_text())
            truth, n_events = json.loads((settings.paths.raw_dir / TRUTH_FILE).read_text()), kept["events"]
            generate_s = ingest_s = None
        else:
            t0 = time.perf_counter()
            shop = simulate_shop(args.customers, args.items, args.days, args.seed)
            write_shop(shop, settings.paths.raw_dir)
            truth = json.loads(write_rates(shop, settings.paths.raw_dir, settings.churn.horizon_days).read_text())
            n_events = len(shop.events)
            del shop
            generate_s = round(time.perf_counter() - t0, 1)
            t1 = time.perf_counter()
            ingest(settings, settings.paths.raw_dir)
            ingest_s = round(time.perf_counter() - t1, 1)
            if args.workdir is not None:
                stamp.write_text(json.dumps({"shop": wanted, "events": n_events}))
        t2 = time.perf_counter()
        report = build_kpi_report(settings)
        report_s = time.perf_counter() - t2
        t3 = time.perf_counter()
        build_kpi_report(settings, by="plan")
        report_by_s = time.perf_counter() - t3
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    totals = report["totals"]
    realised = {}
    for name, true in truth["realised"].items():
        got = totals[name]
        diff = None if got is None or true is None else got - true
        within = diff is not None and (abs(diff) <= POINT if name in RATES else abs(diff) <= POINT * max(abs(true), 1))
        realised[name] = {"true": true, "report": got, "difference": diff, "within_one_point": within}
    channels = {c["channel"]: c for c in report["channels"]}
    channel_ok = all(
        true is None or abs(channels[ch][name] - true) <= POINT * (1 if name in RATES else max(abs(true), 1))
        for ch, rates in truth["channels"].items() for name, true in rates.items())
    months = {m["month"]: m for m in report["monthly"]}
    churn = []
    for month in truth["true_churn"]["months"]:
        measured = months.get(month["month"], {}).get("churn_rate")
        lost = months.get(month["month"], {}).get("estimated_lost_rate")
        churn.append({"month": month["month"], "true_churn_rate": month["churn_rate"], "report_churn_rate": measured,
                      "difference": None if measured is None else measured - month["churn_rate"],
                      "estimated_lost_rate": lost,
                      "lost_difference": None if lost is None else lost - month["churn_rate"]})
    true_pooled, lost_pooled = truth["true_churn"]["churn_rate"], totals.get("estimated_lost_rate")
    result = {
        "benchmark": "kpi_recovery",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "shop": {"customers": args.customers, "items": args.items, "days": args.days, "seed": args.seed,
                 "events": n_events},
        "seconds": {"generate": generate_s, "ingest": ingest_s,
                    "report_kpis": round(report_s, 2), "report_kpis_by_plan": round(report_by_s, 2)},
        "target_report_s": 30,
        "realised_rates": realised,
        "all_realised_within_one_point": all(r["within_one_point"] for r in realised.values()),
        "channels_within_one_point": channel_ok,
        "churn": {"true_pooled": true_pooled, "report_pooled": totals["churn_rate"],
                  "estimated_lost_pooled": lost_pooled,
                  "estimated_lost_within_one_point": lost_pooled is not None and abs(lost_pooled - true_pooled) <= POINT,
                  "estimated_lost_months_within_one_point": sum(
                      m["lost_difference"] is not None and abs(m["lost_difference"]) <= POINT for m in churn),
                  "months": churn, "lost_model": report.get("lost_model")},
        "voice": {k: report.get("voice", {}).get(k) for k in ("texts", "sentiment_mean", "negative_share",
                                                               "negative_topics")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("load_average", "shop", "seconds", "all_realised_within_one_point",
                                             "channels_within_one_point", "churn")}, indent=2, default=str))
    for name, r in realised.items():
        print(f"{name:28s} true {r['true']!s:>22s}  report {r['report']!s:>22s}  ok {r['within_one_point']}")
    sys.exit(0)


if __name__ == "__main__":
    main()
