"""Benchmark: does `tenure report kpis` recover the simulated shop's true rates, and how fast is it?

Simulates a shop, writes it with its true rates (``rates_truth.json``, as `tenure generate` does),
ingests it into a fresh workspace, then times ``build_kpi_report`` (what the CLI runs) and
compares its headline rates with the truth: the *realised* rates (conversion, order value,
repurchase, NPS, CSAT, CES, resolution time, per channel; computed independently with pandas)
and the *latent* monthly churn (who really left within 30 days, which the report can only
estimate from activity).

    .venv/bin/python benchmarks/kpi_recovery.py                       # 100k customers x 180 days
    .venv/bin/python benchmarks/kpi_recovery.py --customers 20000

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
    args = parser.parse_args()

    from tenure.features.ingest import ingest
    from tenure.features.simulator import simulate_shop, write_shop
    from tenure.features.simulator_truth import write_rates
    from tenure.insight.kpis import build_kpi_report
    from tenure.settings import load_settings

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tenure-kpis-"))
    try:
        settings = load_settings(paths={"data_dir": str(workdir / "data"), "reports_dir": str(workdir / "reports")})
        t0 = time.perf_counter()
        shop = simulate_shop(args.customers, args.items, args.days, args.seed)
        write_shop(shop, settings.paths.raw_dir)
        truth = json.loads(write_rates(shop, settings.paths.raw_dir, settings.churn.horizon_days).read_text())
        n_events = len(shop.events)
        del shop
        generate_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        ingest(settings, settings.paths.raw_dir)
        ingest_s = time.perf_counter() - t1
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
        churn.append({"month": month["month"], "true_churn_rate": month["churn_rate"], "report_churn_rate": measured,
                      "difference": None if measured is None else measured - month["churn_rate"]})
    result = {
        "benchmark": "kpi_recovery",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
        "shop": {"customers": args.customers, "items": args.items, "days": args.days, "seed": args.seed,
                 "events": n_events},
        "seconds": {"generate": round(generate_s, 1), "ingest": round(ingest_s, 1),
                    "report_kpis": round(report_s, 2), "report_kpis_by_plan": round(report_by_s, 2)},
        "target_report_s": 30,
        "realised_rates": realised,
        "all_realised_within_one_point": all(r["within_one_point"] for r in realised.values()),
        "channels_within_one_point": channel_ok,
        "churn": {"true_pooled": truth["true_churn"]["churn_rate"], "report_pooled": totals["churn_rate"],
                  "months": churn},
        "voice": {k: report.get("voice", {}).get(k) for k in ("texts", "sentiment_mean", "negative_share",
                                                               "negative_topics")},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("load_average", "shop", "seconds", "all_realised_within_one_point",
                                             "channels_within_one_point", "churn")}, indent=2, default=str))
    for name, r in realised.items():
        print(f"{name:28s} true {r['true']!s:>22s}  report {r['report']!s:>22s}  ok {r['within_one_point']}")
    sys.exit(0)


if __name__ == "__main__":
    main()
