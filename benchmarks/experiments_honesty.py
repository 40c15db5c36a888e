"""Are the experiment report's intervals and its sample-ratio check honest?

1. **Interval coverage.** For each held-out seed the simulator runs a retention campaign
   (features/sim_campaigns.py: control / offer, half each, uneven true effect) and the report's
   own code (``experiments.outcomes`` + ``experiments.report.build_report``) measures the
   retention difference with its 95% interval; the truth is the mean of the simulator's
   per-customer effect over the experiment's customers. Counted: seeds whose interval covers the
   truth (target: at least 37 of 40). The same seeds with ``effect_scale = 0`` (no true effect):
   seeds whose interval excludes zero (target: at most 3 of 40).
2. **SRM.** 100 correctly split experiments (20,000 customer ids, 50/50 arms by the salted hash,
   a new salt each run) go through the chi-square check: false warnings (target 0); and a 52/48
   split of 20,000 customers must be flagged.

The seeds used while building the campaign (1, 21) are not among the reported ones.

    .venv/bin/python benchmarks/experiments_honesty.py            # 40 seeds, ~5 min on 2 busy cores
    .venv/bin/python benchmarks/experiments_honesty.py --seeds 5  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST_SEED = 5000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=40, help="held-out seeds (from 5000 on)")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--items", type=int, default=100)
    p.add_argument("--days", type=int, default=135)
    p.add_argument("--campaign-day", type=int, default=100)
    p.add_argument("--horizon", type=int, default=30)
    p.add_argument("--srm-runs", type=int, default=100)
    p.add_argument("--srm-customers", type=int, default=20_000)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "experiments_honesty.json")
    return p.parse_args(argv)


def one_seed(seed: int, effect_scale: float, args) -> dict:
    """Simulate one campaign and measure it as the report does."""
    from tenure.experiments.outcomes import experiment_outcomes
    from tenure.experiments.report import build_report
    from tenure.features.sim_campaigns import CampaignSpec
    from tenure.features.simulator import simulate_shop
    from tenure.settings import ChurnSettings

    spec = CampaignSpec(day=args.campaign_day, horizon_days=args.horizon, effect_scale=effect_scale)
    shop = simulate_shop(args.customers, args.items, args.days, seed, campaign=spec)
    data = experiment_outcomes(shop.events, spec.name, args.horizon, ChurnSettings().qualifying_event_types)
    report = build_report(data, shares={"control": 0.5, spec.arm: 0.5})
    d = next(x for x in report["differences"] if x["metric"] == "retention_rate")
    truth = data.matured.merge(shop.campaign_truth[["customer_id", "retention_effect"]], on="customer_id")
    true_effect = float(truth["retention_effect"].mean())
    return {"seed": seed, "effect_scale": effect_scale, "customers": report["matured"], "estimate": d["estimate"],
            "low": d["low"], "high": d["high"], "true_effect": true_effect,
            "covers_truth": d["low"] <= true_effect <= d["high"], "excludes_zero": d["significant"]}


def srm_runs(args) -> dict:
    """False SRM warnings over correctly split runs, and the 52/48 check."""
    from tenure.experiments.analysis import sample_ratio_check
    from tenure.experiments.assignment import Assigner
    from tenure.settings import ExperimentDefinition

    ids = [f"c{i:07d}" for i in range(args.srm_customers)]
    flagged, p_values = 0, []
    for run in range(args.srm_runs):
        definition = ExperimentDefinition(name="srm", salt=f"srm-run-{run}",
                                          arms=[{"name": "control", "share": 0.5}, {"name": "offer", "share": 0.5}])
        arms = Assigner(0.0, "none", [definition]).assign("srm", ids)
        counts = {"control": arms.count("control"), "offer": arms.count("offer")}
        check = sample_ratio_check(counts, {"control": 0.5, "offer": 0.5})
        flagged += check.flagged
        p_values.append(check.p_value)
    n = args.srm_customers
    skewed = sample_ratio_check({"control": round(0.52 * n), "offer": n - round(0.52 * n)}, {"control": 0.5, "offer": 0.5})
    return {"runs": args.srm_runs, "customers": n, "false_warnings": flagged, "min_p_value": min(p_values),
            "split_52_48": {"chi2": skewed.chi2, "p_value": skewed.p_value, "flagged": skewed.flagged}}


def main(argv=None) -> dict:
    args = parse_args(argv)
    from tenure.logging_setup import quiet_third_party

    quiet_third_party(0)
    started = time.time()
    seeds = range(FIRST_SEED, FIRST_SEED + args.seeds)
    with_effect, without = [], []
    for seed in seeds:
        with_effect.append(one_seed(seed, 1.0, args))
        without.append(one_seed(seed, 0.0, args))
        w, z = with_effect[-1], without[-1]
        print(f"seed {seed}: effect {w['estimate']:+.4f} [{w['low']:+.4f}, {w['high']:+.4f}] truth {w['true_effect']:+.4f}"
              f" {'covered' if w['covers_truth'] else 'MISSED'}; null [{z['low']:+.4f}, {z['high']:+.4f}]"
              f" {'excludes 0' if z['excludes_zero'] else 'ok'}", flush=True)
    srm = srm_runs(args)
    covered = sum(r["covers_truth"] for r in with_effect)
    false_effects = sum(r["excludes_zero"] for r in without)
    null_truth = max(abs(r["true_effect"]) for r in without)
    result = {
        "benchmark": "experiments_honesty", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(), "seconds": round(time.time() - started, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "coverage": {"seeds": len(with_effect), "covered": covered, "target": "at least 37 of 40",
                     "met": covered >= round(0.925 * len(with_effect)),
                     "mean_true_effect": sum(r["true_effect"] for r in with_effect) / len(with_effect)},
        "null": {"seeds": len(without), "excludes_zero": false_effects, "target": "at most 3 of 40",
                 "met": false_effects <= round(0.075 * len(without)), "largest_true_effect": null_truth},
        "srm": {**srm, "met": srm["false_warnings"] == 0 and srm["split_52_48"]["flagged"]},
        "per_seed": {"with_effect": with_effect, "without_effect": without},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"coverage: {covered}/{len(with_effect)} intervals cover the true effect (target >= 37/40)")
    print(f"null: {false_effects}/{len(without)} intervals exclude zero (target <= 3/40)")
    print(f"SRM: {srm['false_warnings']} false warnings in {srm['runs']} runs; 52/48 of {srm['customers']:,} "
          f"p = {srm['split_52_48']['p_value']:.2g} flagged = {srm['split_52_48']['flagged']}")
    print(f"load average {os.getloadavg()}; written {args.out}")
    return result


if __name__ == "__main__":
    main()
