"""The demo's campaign: a retention offer on a simulated shop whose true effect is known.

On a shop of its own (the main story's data stays as it is): the simulator runs the ``winback``
campaign (features/sim_campaigns.py); the experiment report (the same code as ``tenure experiments
report``) measures the retention effect with its 95% interval and shows it beside the simulator's
truth (HTML under ``reports_dir/experiments/``); then an uplift model (X-learner) is fitted on 70% of
the campaign and, on the other 30%, an uplift-targeted audience is compared with a risk-targeted one
of the same size (10%), counting the customers each keeps with the simulator's truth.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tenure.pipelines.demo.config import DemoConfig, Say
from tenure.settings import Settings

CAMPAIGN_DAYS = 135
CAMPAIGN_DAY = 100


def campaign_tour(settings: Settings, config: DemoConfig, say: Say) -> dict[str, Any]:
    """Run the campaign story; returns its part of the demo summary."""
    import lightgbm as lgb

    from tenure.experiments.outcomes import experiment_outcomes
    from tenure.experiments.report import build_report
    from tenure.experiments.workflow import write_report
    from tenure.features.sim_campaigns import CampaignSpec
    from tenure.features.simulator import simulate_shop
    from tenure.training.uplift import UpliftModel, expected_saves
    from tenure.training.uplift_dataset import FeatureEncoder, uplift_frame
    from tenure.training.uplift_pipeline import split_by_arm

    customers = max(6000, 2 * config.customers)
    horizon = settings.churn.horizon_days
    spec = CampaignSpec(day=CAMPAIGN_DAY, horizon_days=horizon)
    shop = simulate_shop(customers, max(config.items, 80), CAMPAIGN_DAYS, config.seed + 1000, start=config.start,
                         campaign=spec)
    data = experiment_outcomes(shop.events, spec.name, horizon, settings.churn.qualifying_event_types)
    report = build_report(data, shares={"control": 1 - spec.treated_share, spec.arm: spec.treated_share}, cuped=True,
                          status="simulated")
    truth = data.matured.merge(shop.campaign_truth[["customer_id", "retention_effect"]], on="customer_id")
    true_effect = float(truth["retention_effect"].mean())
    report["true_retention_effect"] = {spec.arm: true_effect}
    html, _ = write_report(settings, report)
    d = next(x for x in report["differences"] if x["metric"] == "retention_rate")
    covers = d["low"] <= true_effect <= d["high"]
    say("ok" if covers else "warn",
        f"campaign '{spec.name}' on {report['matured']:,} customers: retention {d['estimate']:+.1%} "
        f"[{d['low']:+.1%}, {d['high']:+.1%}] measured, {true_effect:+.1%} true ({html})")

    frame = uplift_frame(shop.events, shop.customers, shop.items, spec.name, horizon,
                         settings.churn.qualifying_event_types)
    frame = frame.merge(shop.campaign_truth[["customer_id", "expected_retention_effect"]], on="customer_id")
    test = split_by_arm(frame["treated"].to_numpy(), 0.3, config.seed)
    train, held = frame[~test], frame[test]
    encoder = FeatureEncoder().fit(train)
    X, Xh = encoder.transform(train), encoder.transform(held)
    t, y = train["treated"].to_numpy(), train["churned"].to_numpy(dtype=float)
    uplift = UpliftModel(random_state=config.seed).fit(X, t, y).predict_uplift(Xh)
    risk = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=40, verbose=-1,
                              random_state=config.seed).fit(X[~t], y[~t]).predict_proba(Xh)[:, 1]
    effect = held["expected_retention_effect"].to_numpy()
    budget = max(round(0.10 * len(held)), 1)
    saves = {"uplift": expected_saves(uplift, effect, budget), "risk": expected_saves(risk, effect, budget),
             "random": expected_saves(np.random.default_rng(config.seed).random(len(held)), effect, budget)}
    say("ok" if saves["uplift"] > saves["risk"] else "warn",
        f"audiences of {budget} customers: the uplift-targeted one keeps {saves['uplift']:.1f} customers, the "
        f"risk-targeted one {saves['risk']:.1f} (random {saves['random']:.1f}; simulator truth)")
    return {"customers": report["matured"], "report": str(html), "retention_effect": d, "true_retention_effect":
            true_effect, "covers_truth": covers, "srm_flagged": bool(report["srm"] and report["srm"]["flagged"]),
            "audience_size": budget, "saves": saves}
