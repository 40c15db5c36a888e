"""Does drift monitoring stay quiet while the shop only ages, and catch a real change at once?

For each seed the simulator runs twice, without drift and with ``drift_at`` (the days before
``drift_at`` are identical). The reference is the alive population (as the churn model scores it,
``monitoring.runner.alive_population``) at one pre-drift cut-off, as a champion's reference sample
is; quiet windows are weekly cut-offs of the no-drift run after it (the population ages: tenure
grows, recency and counts move); drift windows are weekly cut-offs of the drift run from
``drift_at`` on. Every window goes through ``monitoring.drift.drift_report`` and the policy's
drift-share rule (``monitoring.policy.decide_retrain``).

Reported: the false-alarm rate over quiet windows and the detection delay in windows (1 = the
first full window after ``drift_at``). ``--tune`` prints a threshold grid on separate tuning seeds
(per-feature scores read once, the rule re-applied offline) so defaults are chosen on data the
reported figures do not use.

    .venv/bin/python benchmarks/monitoring_detection.py                 # reported figures
    .venv/bin/python benchmarks/monitoring_detection.py --tune          # grid on tuning seeds
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPORT_SEEDS = (101, 102, 103, 104)
TUNE_SEEDS = (201, 202, 203)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=4000, help="customers per simulated shop")
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--days", type=int, default=180)
    p.add_argument("--reference-day", type=int, default=90, help="day of the reference (test) cut-off")
    p.add_argument("--drift-at", type=int, default=120, help="day the world changes in the drift runs")
    p.add_argument("--window-days", type=int, default=7, help="spacing of the monitoring windows")
    p.add_argument("--drift-windows", type=int, default=5, help="windows per seed from drift_at on")
    p.add_argument("--seeds", type=int, nargs="*", default=None,
                   help=f"seeds (default {REPORT_SEEDS}; with --tune {TUNE_SEEDS})")
    p.add_argument("--tune", action="store_true", help="threshold grid on the tuning seeds; writes no result")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "monitoring_detection.json")
    return p.parse_args(argv)


def windows_for_seed(seed: int, args) -> list[dict]:
    """Reference and all windows of one seed: list of dicts with kind, day, frame."""
    import pandas as pd

    from tenure.features.customer_features import (
        CUSTOMER_CATEGORICAL_FEATURES,
        CUSTOMER_NUMERIC_FEATURES,
        compute_customer_feature_snapshots,
    )
    from tenure.features.simulator import simulate_shop
    from tenure.monitoring.runner import alive_population
    from tenure.settings import ChurnSettings

    horizon = ChurnSettings().horizon_days
    start = pd.Timestamp("2026-01-01", tz="UTC")
    cols = [*CUSTOMER_NUMERIC_FEATURES, *CUSTOMER_CATEGORICAL_FEATURES]

    def frames(shop, days):
        snaps = compute_customer_feature_snapshots(shop.events, shop.customers, shop.items,
                                                   [start + pd.Timedelta(days=d) for d in days])
        out = {}
        for d in days:
            rows = snaps[snaps["event_timestamp"] == start + pd.Timedelta(days=d)]
            out[d] = alive_population(rows.reset_index(drop=True), horizon)[cols]
        return out

    last_quiet = args.drift_at + args.window_days * args.drift_windows
    quiet_days = list(range(args.reference_day + args.window_days, min(last_quiet, args.days - 1) + 1,
                            args.window_days))
    drift_days = [args.drift_at + k * args.window_days for k in range(1, args.drift_windows + 1)]
    drift_days = [d for d in drift_days if d < args.days]
    calm = simulate_shop(args.customers, args.items, args.days, seed)
    calm_frames = frames(calm, [args.reference_day, *quiet_days])
    shifted = simulate_shop(args.customers, args.items, args.days, seed, drift_at=args.drift_at)
    drift_frames = frames(shifted, drift_days)
    out = [{"kind": "reference", "day": args.reference_day, "frame": calm_frames[args.reference_day]}]
    out += [{"kind": "quiet", "day": d, "frame": calm_frames[d]} for d in quiet_days]
    out += [{"kind": "drift", "day": d, "window": (d - args.drift_at) // args.window_days, "frame": drift_frames[d]}
            for d in drift_days]
    return out


def evaluate(seeds, args, monitoring) -> list[dict]:
    """drift_report + decide_retrain on every window of every seed; one record per window."""
    from tenure.features.customer_features import (
        CUSTOMER_CATEGORICAL_FEATURES,
        CUSTOMER_NUMERIC_FEATURES,
    )
    from tenure.monitoring.drift import drift_report
    from tenure.monitoring.policy import decide_retrain

    records = []
    for seed in seeds:
        t0 = time.perf_counter()
        windows = windows_for_seed(seed, args)
        reference = windows[0]["frame"]
        for w in windows[1:]:
            summary, _ = drift_report(reference, w["frame"], list(CUSTOMER_NUMERIC_FEATURES),
                                      list(CUSTOMER_CATEGORICAL_FEATURES), monitoring)
            decision = decide_retrain(drift_share=summary.drift_share, drifted=summary.drifted, auc_drop=None,
                                      model_age_days=None, settings=monitoring, last_retrain_at=None,
                                      now=datetime.now(UTC), dry_run=True)
            records.append({
                "seed": seed, "kind": w["kind"], "day": w["day"], "window": w.get("window"),
                "rows_reference": len(reference), "rows_current": len(w["frame"]),
                "drift_share": summary.drift_share, "drifted": summary.drifted, "alarm": decision.triggered,
                "scores": {f.column: (f.kind, f.score) for f in summary.features},
            })
        print(f"seed {seed}: {len(windows) - 1} windows in {time.perf_counter() - t0:.1f} s", flush=True)
    return records


def summarise(records, args) -> dict:
    quiet = [r for r in records if r["kind"] == "quiet"]
    drift = [r for r in records if r["kind"] == "drift"]
    delays = {}
    for seed in sorted({r["seed"] for r in drift}):
        hits = [r["window"] for r in drift if r["seed"] == seed and r["alarm"]]
        delays[seed] = min(hits) if hits else None
    ages = sorted({r["day"] - args.reference_day for r in quiet})
    return {
        "quiet_windows": len(quiet),
        "false_alarms": sum(r["alarm"] for r in quiet),
        "false_alarm_rate": sum(r["alarm"] for r in quiet) / len(quiet) if quiet else None,
        "quiet_drift_share_max": max((r["drift_share"] for r in quiet), default=None),
        "quiet_drift_share_mean": sum(r["drift_share"] for r in quiet) / len(quiet) if quiet else None,
        "quiet_false_alarms_by_age_days": {a: sum(r["alarm"] for r in quiet if r["day"] - args.reference_day == a)
                                           for a in ages},
        "drift_windows": len(drift),
        "detected_windows": sum(r["alarm"] for r in drift),
        "detection_rate": sum(r["alarm"] for r in drift) / len(drift) if drift else None,
        "detection_delay_windows_by_seed": delays,
        "detected_in_first_full_window": sum(1 for d in delays.values() if d == 1),
        "drift_share_by_window": {k: [round(r["drift_share"], 3) for r in drift if r["window"] == k]
                                  for k in sorted({r["window"] for r in drift})},
        "features_drifting_in_quiet_windows": _counts([c for r in quiet for c in r["drifted"]]),
        "features_drifting_in_first_drift_window": _counts([c for r in drift if r["window"] == 1 for c in r["drifted"]]),
    }


VARIANT = {"categorical_threshold": 0.05, "key_features": ["acquisition_channel"]}


def variant_figures(records, monitoring) -> dict:
    """The same windows under VARIANT (offline: the read scores against its thresholds)."""
    def alarm(r):
        flags = {c: s > (VARIANT["categorical_threshold"] if k == "categorical" else monitoring.numerical_threshold)
                 for c, (k, s) in r["scores"].items() if not math.isnan(s)}
        share = sum(flags.values()) / len(flags)
        return share > monitoring.drift_share_threshold or any(flags.get(c) for c in VARIANT["key_features"])
    quiet = [alarm(r) for r in records if r["kind"] == "quiet"]
    delays = {}
    for seed in sorted({r["seed"] for r in records if r["kind"] == "drift"}):
        hits = [r["window"] for r in records if r["kind"] == "drift" and r["seed"] == seed and alarm(r)]
        delays[seed] = min(hits) if hits else None
    return {"variant": VARIANT, "false_alarms": sum(quiet), "false_alarm_rate": sum(quiet) / len(quiet),
            "detection_delay_windows_by_seed": delays,
            "detected_in_first_full_window": sum(1 for d in delays.values() if d == 1)}


def per_feature_scores(records) -> dict:
    """Max score over quiet windows and min/median over first drift windows, per feature."""
    import numpy as np

    out = {}
    for c in records[0]["scores"]:
        q = [r["scores"][c][1] for r in records if r["kind"] == "quiet"]
        w1 = [r["scores"][c][1] for r in records if r["kind"] == "drift" and r["window"] == 1]
        out[c] = {"quiet_max": round(float(np.nanmax(q)), 4), "quiet_median": round(float(np.nanmedian(q)), 4),
                  "first_window_min": round(float(np.nanmin(w1)), 4) if w1 else None,
                  "first_window_median": round(float(np.nanmedian(w1)), 4) if w1 else None}
    return out


def _counts(names) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def tune(records) -> list[dict]:
    """Re-apply the share rule offline for a grid of thresholds (scores as read, same methods)."""
    import numpy as np

    rows = []
    for num_t in (0.1, 0.15, 0.2, 0.25, 0.3):
        for cat_t in (0.1, 0.15, 0.2):
            for share_t in (0.2, 0.3, 0.4, 0.5):
                def alarm(r, num_t=num_t, cat_t=cat_t, share_t=share_t):
                    flags = [s > (cat_t if k == "categorical" else num_t) for k, s in r["scores"].values()
                             if not np.isnan(s)]
                    return sum(flags) / len(flags) > share_t
                quiet = [alarm(r) for r in records if r["kind"] == "quiet"]
                first = [alarm(r) for r in records if r["kind"] == "drift" and r["window"] == 1]
                drift = [alarm(r) for r in records if r["kind"] == "drift"]
                rows.append({"numerical_threshold": num_t, "categorical_threshold": cat_t,
                             "drift_share_threshold": share_t, "false_alarm_rate": float(np.mean(quiet)),
                             "first_window_detection": float(np.mean(first)), "detection_rate": float(np.mean(drift))})
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    from tenure.settings import MonitoringSettings

    monitoring = MonitoringSettings()
    seeds = args.seeds or (TUNE_SEEDS if args.tune else REPORT_SEEDS)
    t0 = time.perf_counter()
    records = evaluate(seeds, args, monitoring)
    elapsed = time.perf_counter() - t0
    if args.tune:
        grid = tune(records)
        print(f"{'num_t':>6} {'cat_t':>6} {'share':>6} {'false':>7} {'first':>7} {'detect':>7}")
        for g in grid:
            print(f"{g['numerical_threshold']:>6} {g['categorical_threshold']:>6} {g['drift_share_threshold']:>6} "
                  f"{g['false_alarm_rate']:>7.3f} {g['first_window_detection']:>7.3f} {g['detection_rate']:>7.3f}")
        Path("/tmp/monitoring_detection_tune.json").write_text(json.dumps(records, default=str))
        s = summarise(records, args)
        print(json.dumps({k: s[k] for k in ("quiet_drift_share_max", "drift_share_by_window",
                                             "features_drifting_in_quiet_windows",
                                             "features_drifting_in_first_drift_window")}, indent=1))
        return 0
    s = summarise(records, args)
    print()
    print(f"{'figure':<44} {'value':>12}")
    print(f"{'quiet windows':<44} {s['quiet_windows']:>12}")
    print(f"{'false alarms':<44} {s['false_alarms']:>12}")
    print(f"{'false-alarm rate (target <= 0.05)':<44} {s['false_alarm_rate']:>12.3f}")
    print(f"{'max drift share in a quiet window':<44} {s['quiet_drift_share_max']:>12.3f}")
    print(f"{'drift windows':<44} {s['drift_windows']:>12}")
    print(f"{'detected drift windows':<44} {s['detected_windows']:>12}")
    print(f"{'seeds detected in the first full window':<44} "
          f"{s['detected_in_first_full_window']:>9}/{len(s['detection_delay_windows_by_seed'])}")
    print(f"{'detection delay (windows) by seed':<44} {json.dumps(s['detection_delay_windows_by_seed']):>12}")
    variant = variant_figures(records, monitoring)
    print(f"variant {json.dumps(VARIANT)}: false alarms {variant['false_alarms']}/{s['quiet_windows']}, "
          f"first-window detections {variant['detected_in_first_full_window']}/"
          f"{len(variant['detection_delay_windows_by_seed'])}, delays {variant['detection_delay_windows_by_seed']}")
    print(f"elapsed {elapsed:.0f} s")
    result = {
        "benchmark": "monitoring_detection",
        "command": "benchmarks/monitoring_detection.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "elapsed_s": round(elapsed, 1),
        "setup": {"customers": args.customers, "items": args.items, "days": args.days,
                  "reference_day": args.reference_day, "drift_at": args.drift_at, "window_days": args.window_days,
                  "seeds": list(seeds), "tuning_seeds": list(TUNE_SEEDS),
                  "population": "alive customers (monitoring.runner.alive_population)",
                  "quiet": "weekly cut-offs of the no-drift run after the reference",
                  "drift": "weekly cut-offs of the drift_at run; window k ends k weeks after drift_at"},
        "monitoring_settings": monitoring.model_dump(include={"numerical_stattest", "numerical_threshold",
                                                              "categorical_stattest", "categorical_threshold",
                                                              "drift_share_threshold"}),
        "figures": s,
        "variant_offline": variant,
        "per_feature_scores": per_feature_scores(records),
        "windows": [{k: v for k, v in r.items() if k != "scores"} for r in records],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
