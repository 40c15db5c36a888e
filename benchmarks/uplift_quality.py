"""Does the uplift model target better than the churn score? Qini AUC and saves, counted with the truth.

For each held-out seed the simulator runs a retention campaign (features/sim_campaigns.py) whose
per-customer effect it knows. The campaign's customers (features at the treatment, outcome in the
horizon after it: training/uplift_dataset.py) are split 70/30, stratified by arm. On the 30%:

- Qini AUC (training/uplift.py: area between the Qini curve and the random line, per customer) of
  the T- and X-learner, of ranking by churn probability (a LightGBM churn classifier on the same
  features, trained on the control arm: the risk policy's score) and of a random ranking;
- saves at a budget of 10% of the held-out customers: the sum of the simulator's
  ``expected_retention_effect`` over the customers each policy would treat (uplift: the largest
  predicted churn reduction; risk: the largest churn probability).

Targets (issue 14): Qini AUC of the uplift model above churn ranking and random on every seed; the
uplift policy saves at least 30% more customers than the risk policy. Seeds 7001.. are not the ones
the campaign was built on (1, 21).

    .venv/bin/python benchmarks/uplift_quality.py            # 5 seeds, 20,000 customers (~15 min on 2 busy cores)
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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="*", default=[7001, 7002, 7003, 7004, 7005])
    p.add_argument("--customers", type=int, default=20000)
    p.add_argument("--items", type=int, default=150)
    p.add_argument("--days", type=int, default=135)
    p.add_argument("--campaign-day", type=int, default=100)
    p.add_argument("--horizon", type=int, default=30)
    p.add_argument("--budget", type=float, default=0.10, help="share of held-out customers treated by each policy")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "uplift_quality.json")
    return p.parse_args(argv)


def one_seed(seed: int, args) -> dict:
    import lightgbm as lgb
    import numpy as np

    from tenure.features.sim_campaigns import CampaignSpec
    from tenure.features.simulator import simulate_shop
    from tenure.settings import ChurnSettings
    from tenure.training.uplift import UpliftModel, expected_saves, qini_auc
    from tenure.training.uplift_dataset import FeatureEncoder, uplift_frame

    spec = CampaignSpec(day=args.campaign_day, horizon_days=args.horizon)
    shop = simulate_shop(args.customers, args.items, args.days, seed, campaign=spec)
    frame = uplift_frame(shop.events, shop.customers, shop.items, spec.name, args.horizon,
                         ChurnSettings().qualifying_event_types)
    frame = frame.merge(shop.campaign_truth[["customer_id", "expected_retention_effect", "segment"]], on="customer_id")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(frame), dtype=bool)
    for arm in (True, False):  # stratified by arm
        idx = np.flatnonzero(frame["treated"].to_numpy() == arm)
        test[rng.choice(idx, round(0.3 * len(idx)), replace=False)] = True
    train, held = frame[~test], frame[test]
    encoder = FeatureEncoder().fit(train)
    X, Xh = encoder.transform(train), encoder.transform(held)
    t, th = train["treated"].to_numpy(), held["treated"].to_numpy()
    y, retained = train["churned"].to_numpy(dtype=float), held["retained"].to_numpy(dtype=float)
    truth = held["expected_retention_effect"].to_numpy()
    budget = max(round(args.budget * len(held)), 1)
    scores = {}
    for learner in ("t_learner", "x_learner"):
        scores[learner] = UpliftModel(learner=learner, random_state=seed).fit(X, t, y).predict_uplift(Xh)
    churn_model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=40,
                                     verbose=-1, random_state=seed).fit(X[~t], y[~t])
    scores["churn_probability"] = churn_model.predict_proba(Xh)[:, 1]
    scores["random"] = rng.random(len(held))
    result = {"seed": seed, "customers": len(frame), "held_out": len(held), "budget": budget,
              "true_mean_effect": float(truth.mean()),
              "segments_held_out": held["segment"].value_counts().to_dict(),
              "qini_auc": {k: qini_auc(v, th, retained) for k, v in scores.items()},
              "saves": {k: expected_saves(v, truth, budget) for k, v in scores.items()},
              "oracle_saves": expected_saves(truth, truth, budget)}
    best = max(("t_learner", "x_learner"), key=lambda k: result["qini_auc"][k])
    result["chosen"] = "x_learner"
    result["x_beats_churn_and_random"] = (result["qini_auc"]["x_learner"] > result["qini_auc"]["churn_probability"]
                                          and result["qini_auc"]["x_learner"] > result["qini_auc"]["random"])
    result["best_learner_on_this_seed"] = best
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    from tenure.logging_setup import quiet_third_party

    quiet_third_party(0)
    started = time.time()
    rows = []
    for seed in args.seeds:
        r = one_seed(seed, args)
        rows.append(r)
        q, s = r["qini_auc"], r["saves"]
        print(f"seed {seed}: Qini AUC X {q['x_learner']:.4f} T {q['t_learner']:.4f} churn {q['churn_probability']:.4f} "
              f"random {q['random']:.4f}; saves at {r['budget']} treated: X {s['x_learner']:.1f} T {s['t_learner']:.1f} "
              f"risk {s['churn_probability']:.1f} random {s['random']:.1f} (oracle {r['oracle_saves']:.1f})", flush=True)
    saves_x = sum(r["saves"]["x_learner"] for r in rows)
    saves_risk = sum(r["saves"]["churn_probability"] for r in rows)
    result = {
        "benchmark": "uplift_quality", "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(), "seconds": round(time.time() - started, 1),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "qini_beats_churn_and_random_every_seed": all(r["x_beats_churn_and_random"] for r in rows),
        "saves_uplift_vs_risk": saves_x / saves_risk if saves_risk > 0 else None,
        "saves_target": "uplift policy saves >= 1.3 x the risk policy",
        "per_seed": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"X-learner Qini AUC above churn ranking and random on every seed: "
          f"{result['qini_beats_churn_and_random_every_seed']}; saves uplift / risk = "
          f"{result['saves_uplift_vs_risk']:.2f} (target >= 1.3); load average {os.getloadavg()}; written {args.out}")
    return result


if __name__ == "__main__":
    main()
