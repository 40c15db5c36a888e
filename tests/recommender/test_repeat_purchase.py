"""Repeat-purchase shops: the exclude_purchased "auto" decision, repurchase timing, the learned
blend, next-basket evaluation (definitions on hand-made data) and the runtime's three answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tenure.registry.recommender_runtime import RepurchaseTiming, blend_features
from tenure.training import interactions
from tenure.training.recommender_evaluate import baseline_scorers, ranking_metrics
from tenure.training.recommender_model import ALSRecommender

START = pd.Timestamp("2026-01-01", tz="UTC")
WEIGHTS = {"view": 1.0, "purchase": 5.0}


def _events(rows: list[tuple[str, str, float]], event_type: str = "purchase") -> pd.DataFrame:
    """(customer, item, day) -> canonical events."""
    return pd.DataFrame({
        "event_id": [f"e{n}" for n in range(len(rows))],
        "customer_id": [r[0] for r in rows],
        "event_at": [START + pd.Timedelta(days=r[2]) for r in rows],
        "event_type": event_type,
        "item_id": [r[1] for r in rows],
    })


def _synthetic(repeat: bool, seed: int = 3) -> pd.DataFrame:
    """40 customers x 12 purchases: rebuying their 3 staples (repeat) or always a new item (novelty)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(40):
        staples = rng.choice(200, 3, replace=False)
        fresh = rng.permutation(200)
        for n in range(12):
            item = staples[n % 3] if repeat else fresh[n]
            rows.append((f"u{u}", f"i{item}", float(n * 5 + rng.uniform(0, 1))))
    return _events(rows)


def test_auto_decision_keeps_bought_items_for_repeat_heavy_data_only():
    repeat_heavy, novelty = _synthetic(True), _synthetic(False)
    assert interactions.repeat_purchase_share(repeat_heavy) == pytest.approx(1 - 3 / 12)
    assert interactions.repeat_purchase_share(novelty) == 0.0
    assert interactions.decide_exclude_purchased(interactions.repeat_purchase_share(repeat_heavy), 0.2) is False
    assert interactions.decide_exclude_purchased(interactions.repeat_purchase_share(novelty), 0.2) is True
    # the same item twice in one order is one line, not a repeat
    assert interactions.repeat_purchase_share(_events([("a", "x", 1.0), ("a", "x", 1.0), ("a", "y", 1.0)])) == 0.0
    with pytest.raises(ValueError, match="within"):
        interactions.decide_exclude_purchased(0.5, 1.5)


def test_timing_known_answer_due_item_ranks_above_just_bought_item():
    # u bought "due" and "fresh" every 10 days; "due" last 10 days ago, "fresh" half a day ago
    rows = [("u", "due", d) for d in (0.0, 10.0, 20.0)] + [("u", "fresh", d) for d in (9.5, 19.5, 29.5)]
    rows += [("v", "due", 3.0), ("v", "fresh", 4.0), ("v", "other", 5.0)]
    m = interactions.build_interactions(_events(rows), event_weights=WEIGHTS)
    t = m.timing
    col = m.item_index
    assert t.item_interval[col["due"]] == pytest.approx(10.0)
    assert t.item_interval[col["other"]] != t.item_interval[col["other"]]  # NaN: never rebought
    assert t.item_repeat_rate[col["due"]] == pytest.approx(0.5)  # u rebought it, v did not
    now = float(interactions.day_numbers(pd.DatetimeIndex([START + pd.Timedelta(days=30)]))[0])
    u = m.customer_index["u"]
    last, gap = t.rows([u])
    feats = dict(blend_features(np.zeros((1, m.shape[1])), m.purchases[[u]], last, gap, t, now,
                                np.zeros(m.shape[1])))
    timing, recency = feats["timing"][0], feats["recency"][0]
    assert timing[col["due"]] == pytest.approx(1.0)  # exactly one interval since the last purchase
    assert timing[col["fresh"]] < 0.01 and timing[col["other"]] == 0.0
    assert recency[col["fresh"]] > recency[col["due"]]  # recency alone would rank the wrong one first
    # a blend that weighs timing (same frequency for both) recommends the due item first
    model = ALSRecommender(factors=2, iterations=2, num_threads=1, use_gpu="never", mode="blend").fit(
        m.user_items, m.purchases, timing=t).set_blend({"timing": 1.0, "frequency": 0.5})
    assert model.recommend(np.array([u]), k=2, now=now)[0].tolist() == [col["due"], col["fresh"]]
    runtime = model.to_runtime(m, params={"exclude_purchased_default": False})
    assert runtime.recommend("u", k=2, now=now).item_ids() == ["due", "fresh"]
    # ... and on day 39.5 the other one is due (and "due" long overdue)
    assert runtime.recommend("u", k=2, now=now + 9.5).item_ids() == ["fresh", "due"]


def test_timing_survives_save_and_load(tmp_path):
    m = interactions.build_interactions(_synthetic(True), event_weights=WEIGHTS)
    m.timing.save(tmp_path / "timing.npz")
    back = RepurchaseTiming.load(tmp_path / "timing.npz")
    assert (back.last_bought != m.timing.last_bought).nnz == 0
    assert (back.pair_interval != m.timing.pair_interval).nnz == 0
    assert np.array_equal(back.item_interval, m.timing.item_interval, equal_nan=True)
    assert back.recency_scale_days == m.timing.recency_scale_days and back.as_of_days == m.timing.as_of_days


def test_next_basket_split_and_metrics_on_a_hand_made_example():
    rows = [
        ("a", "x", 1.0), ("a", "y", 2.0), ("a", "x", 5.0),  # a's history: x twice, y once
        ("a", "x", 9.0), ("a", "z", 9.01),  # a's last order (within the 1-hour window): x, z
        ("b", "y", 3.0),  # b: one order only -> no history, not evaluated
    ]
    events = pd.concat([_events(rows), _events([("a", "w", 8.0)], "view")], ignore_index=True)
    history, last, order_at = interactions.last_order_split(events, order_window_hours=1.0)
    assert sorted(last["item_id"]) == ["x", "z"] and set(last["customer_id"]) == {"a"}
    assert len(history[history["customer_id"] == "a"]) == 4  # 3 purchases + the view before the order
    assert order_at["a"] == START + pd.Timedelta(days=9.01)
    # exactly-the-same-moment orders: with a 0-hour window only z is the last order
    assert list(interactions.last_order_split(events, order_window_hours=0)[1]["item_id"]) == ["z"]

    train = interactions.build_interactions(history, event_weights=WEIGHTS)
    targets = interactions.holdout_targets(last, train)
    a = train.customer_index["a"]
    assert list(targets) == [a] and [train.item_ids[c] for c in targets[a]] == ["x"]  # z unknown to training
    scorers = baseline_scorers(train, None, ["buy_again", "own_recent"])
    k = 2
    ranked = {}
    for name, (fn, _) in scorers.items():
        scores = fn(np.array([a]))[0]
        ranked[name] = [train.item_ids[c] for c in np.argsort(-scores, kind="stable")[:k]]
    assert ranked["buy_again"] == ["x", "y"]  # most bought first
    assert ranked["own_recent"][0] == "x"  # bought on day 5, after y on day 2
    recs = {a: np.array([train.item_index["y"], train.item_index["x"]])}
    got = ranking_metrics(recs, targets, k=k, n_items=train.shape[1])
    assert got["precision_at_k"] == pytest.approx(1 / 2)  # 1 hit of k = 2
    assert got["recall_at_k"] == pytest.approx(1.0)  # the one known target found
    assert got["ndcg_at_k"] == pytest.approx(1 / np.log2(3))  # hit at rank 2, ideal at rank 1
    assert got["hit_rate_at_k"] == 1.0


@pytest.fixture(scope="module")
def blended(shop):
    customers, items, events = shop
    m = interactions.build_interactions(events, customers, items, event_weights={"view": 1.0, "add_to_cart": 3.0,
                                                                     "purchase": 5.0, "return": -5.0})
    model = ALSRecommender(factors=8, iterations=3, num_threads=1, mode="blend", use_gpu="never").fit(
        m.user_items, m.purchases, timing=m.timing).set_blend(
        {"als": 1.0, "frequency": 2.0, "timing": 1.0, "bought": 0.5})
    return m, model, items


@pytest.mark.parametrize("default", [True, False])
def test_runtime_exclude_purchased_auto_true_false(blended, default, tmp_path):
    m, model, items = blended
    rt = model.to_runtime(m, items, params={"exclude_purchased_default": default})
    rt = type(rt).from_model_dir(rt.save(tmp_path / "model"))  # the decision travels in the bundle
    assert rt.exclude_purchased_default is default and rt.timing is not None and rt.blend_coefficients
    cid = m.customer_ids[0]
    bought = {m.item_ids[j] for j in m.purchases[0].indices}
    excluded = rt.recommend(cid, k=10, exclude_purchased=True, available_only=False)
    included = rt.recommend(cid, k=10, exclude_purchased=False, available_only=False)
    auto = rt.recommend(cid, k=10, available_only=False)
    assert excluded.strategy == "als" and not bought & set(excluded.item_ids())
    assert included.strategy == "blend" and bought & set(included.item_ids())
    assert auto.items == (excluded if default else included).items
    assert rt.recommend(cid, k=10, exclude_purchased="auto", available_only=False).items == auto.items
    with pytest.raises(ValueError, match="'auto'"):
        rt.recommend(cid, k=3, exclude_purchased="sometimes")


def test_runtime_clock_falls_back_to_the_data_for_old_or_future_data(blended):
    m, model, items = blended
    rt = model.to_runtime(m, items)
    end = rt.timing.as_of_days * 86400.0
    assert rt.now_days(end + 86400.0) == pytest.approx(rt.timing.as_of_days + 1)  # a day later: the clock
    assert rt.now_days(end + 5 * 365 * 86400.0) == rt.timing.as_of_days  # historical data: its own end
    assert rt.now_days(end - 86400.0) == rt.timing.as_of_days  # simulated future data: its own end


def test_bundle_without_timing_still_loads_and_uses_the_fixed_blend(blended, tmp_path):
    m, model, items = blended
    rt = model.to_runtime(m, items)
    folder = rt.save(tmp_path / "old")
    (folder / "timing.npz").unlink()
    old = type(rt).from_model_dir(folder)
    assert old.timing is None and old.blend_coefficients is None and old.exclude_purchased_default is True
    ans = old.recommend(m.customer_ids[0], k=5, exclude_purchased=False)
    assert ans.strategy == "blend" and len(ans.items) == 5
    assert isinstance(old.purchases, sp.csr_matrix)


def test_serving_blend_equals_the_dense_features_training_learns_from(blended):
    from tenure.registry.recommender_runtime import BLEND_FEATURES, learned_blend_scores

    m, model, _ = blended
    rows = np.arange(25)
    coefs = dict(zip(BLEND_FEATURES, [0.7, 2.0, -0.4, 1.3, 0.9, -0.2, -1.1]))
    last, gap = m.timing.rows(rows)
    now = m.timing.as_of_days - np.linspace(0, 20, len(rows))
    als = model.als_scores(rows)
    dense = sum(coefs[name] * values for name, values in
                blend_features(als, m.purchases[rows], last, gap, m.timing, now, model.popularity01_))
    fast = learned_blend_scores(als, m.purchases[rows], last, gap, m.timing, now, model.popularity01_, coefs)
    assert np.allclose(fast, dense, atol=1e-5)


def test_api_request_accepts_auto_true_false_and_defaults_to_auto():
    from pydantic import ValidationError

    from tenure.serving.schemas import RecommendRequest

    assert RecommendRequest.model_validate({"customer_id": "c1"}).exclude_purchased == "auto"
    for value in ("auto", True, False):
        assert RecommendRequest.model_validate({"customer_id": "c1", "exclude_purchased": value}).exclude_purchased \
            == value
    with pytest.raises(ValidationError):
        RecommendRequest.model_validate({"customer_id": "c1", "exclude_purchased": "sometimes"})
