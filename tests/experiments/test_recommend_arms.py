"""/recommend A/B by arm: an arm with ``recommender: popular`` gets the most popular items, the others the model."""

from __future__ import annotations

import pytest

from tenure.experiments.assignment import Assigner
from tenure.features.simulator import simulate_shop
from tenure.serving.experiment_arms import ExperimentArms
from tenure.settings import load_settings
from tenure.training.interactions import build_interactions
from tenure.training.recommender_model import ALSRecommender

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "return": -5.0}


@pytest.fixture(scope="module")
def runtime_and_ids():
    shop = simulate_shop(300, 40, 40, seed=3)
    m = build_interactions(shop.events, shop.customers, shop.items, event_weights=WEIGHTS)
    model = ALSRecommender(factors=8, iterations=3, num_threads=1, mode="als", use_gpu="never").fit(
        m.user_items, m.purchases)
    return model.to_runtime(m, shop.items, params={"event_weights": WEIGHTS}), list(m.customer_ids)


def test_popular_arm_gets_popular_items_and_model_arm_the_model(runtime_and_ids):
    runtime, ids = runtime_and_ids
    settings = load_settings(experiments={"holdout_share": 0.0, "definitions": [{
        "name": "reco_ab", "applies_to": ["recommend"],
        "arms": [{"name": "control", "share": 0.5}, {"name": "popular", "share": 0.5, "recommender": "popular"}]}]})
    arms = ExperimentArms(Assigner.from_settings(settings))
    active = arms.active("recommend")
    assert arms.active("churn") == []
    strategies = {}
    for cid in ids[:80]:
        assigned = arms.of(cid, active)
        if arms.recommender_strategy(assigned) == "popular":
            recs = runtime.popular(5)
        else:
            recs = runtime.recommend(cid, k=5)
        strategies.setdefault(assigned["reco_ab"], []).append((recs.strategy, tuple(recs.item_ids())))
    assert {s for s, _ in strategies["popular"]} == {"popular"}
    assert len({items for _, items in strategies["popular"]}) == 1  # nothing personal
    assert "popular" not in {s for s, _ in strategies["control"]}
    assert runtime.popular(5).model_version == runtime.model_version
    with pytest.raises(ValueError, match="k must be between 1 and 1000"):
        runtime.popular(0)


def test_holdout_customers_get_the_model():
    settings = load_settings(experiments={"holdout_share": 0.5, "definitions": [{
        "name": "reco_ab", "arms": [{"name": "control", "share": 0.01}, {"name": "popular", "share": 0.99,
                                                                          "recommender": "popular"}]}]})
    arms = ExperimentArms(Assigner.from_settings(settings))
    held = next(c for c in (f"c{i}" for i in range(1000)) if arms.assigner.in_holdout(c))
    assert arms.of(held, arms.active("recommend")) == {"reco_ab": "holdout"}
    assert arms.recommender_strategy({"reco_ab": "holdout"}) == "model"
    assert ExperimentArms(Assigner(0.1, "s")).of("c1", []) == {}


def test_churn_score_uplift_field_from_an_uplift_runtime():
    import numpy as np
    import pandas as pd

    from tenure.serving.uplift_scores import uplift_by_customer
    from tenure.training.uplift import UpliftModel
    from tenure.training.uplift_dataset import FeatureEncoder

    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"days_since_last_activity": rng.random(600) * 60, "plan": rng.choice(["free", "annual"], 600)})
    encoder = FeatureEncoder(columns=("days_since_last_activity", "plan")).fit(frame)
    model = UpliftModel(params={"min_child_samples": 20}).fit(encoder.transform(frame), rng.random(600) < 0.5,
                                                              (rng.random(600) < 0.3).astype(float))
    runtime = model.to_runtime(encoder, {"campaign": "winback", "treatment_arm": "offer"})
    rows = [{"days_since_last_activity": 3.0, "plan": "free", "other": 1}, {"plan": None}]  # a row lacking features
    out = uplift_by_customer(runtime, rows)
    assert [list(d) for d in out] == [["winback/offer"], ["winback/offer"]]
    assert out[0]["winback/offer"] == pytest.approx(float(runtime.predict_rows(rows[:1])[0]), abs=1e-6)
    assert uplift_by_customer(None, rows) == [{}, {}]
