"""Serving runtime: strategies and fallbacks, filters, explanations, similar items, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from tenure.registry.recommender_runtime import RecommenderRuntime, explain_contributions
from tenure.training.interactions import build_interactions
from tenure.training.recommender_model import ALSRecommender

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "return": -5.0}


@pytest.fixture(scope="module")
def fitted(shop):
    customers, items, events = shop
    m = build_interactions(events, customers, items, event_weights=WEIGHTS)
    model = ALSRecommender(factors=8, iterations=5, num_threads=1, mode="blend", use_gpu="never").fit(
        m.user_items, m.purchases)
    runtime = model.to_runtime(m, items, params={"event_weights": WEIGHTS})
    return m, model, runtime, items


def test_known_customer_gets_als_without_bought_items(fitted):
    m, _, rt, _ = fitted
    cid = m.customer_ids[0]
    ans = rt.recommend(cid, k=10)
    assert ans.strategy == "als" and len(ans.items) == 10 and rt.knows_customer(cid)
    bought = {m.item_ids[j] for j in m.purchases[0].indices}
    assert bought and not bought & set(ans.item_ids())
    scores = [it["score"] for it in ans.items]
    assert scores == sorted(scores, reverse=True)


def test_blend_mode_may_return_bought_items_when_allowed(fitted):
    m, _, rt, _ = fitted
    ans = rt.recommend(m.customer_ids[0], k=10, exclude_purchased=False, available_only=False)
    bought = {m.item_ids[j] for j in m.purchases[0].indices}
    assert ans.strategy == "blend" and bought & set(ans.item_ids())


def test_filters_by_category_and_availability(fitted):
    m, _, rt, items = fitted
    meta = items.set_index("item_id")
    ans = rt.recommend(m.customer_ids[1], k=5, categories=["c2"])
    assert ans.items and all(meta.loc[i, "category"] == "c2" for i in ans.item_ids())
    for cid in m.customer_ids[:30]:
        assert all(meta.loc[i, "available"] for i in rt.recommend(cid, k=10).item_ids())
    unavailable = set(items.loc[~items["available"], "item_id"])
    assert unavailable
    seen = set()
    for cid in m.customer_ids[:60]:
        seen |= set(rt.recommend(cid, k=20, available_only=False).item_ids())
    assert seen & unavailable  # the filter is what removed them


def test_cold_start_and_consent_fallbacks(fitted):
    m, _, rt, _ = fitted
    assert rt.recommend("never-seen", k=5).strategy == "popular"
    assert rt.recommend(m.customer_ids[0], k=5, consent=False).strategy == "no_consent_popular"
    fresh = rt.recommend("never-seen", k=5, recent_items=[(m.item_ids[3], 5.0), (m.item_ids[9], 1.0)])
    assert fresh.strategy == "als_fresh"
    assert m.item_ids[3] not in fresh.item_ids()  # a purchase-weight recent item counts as bought
    assert all(set(it["because"]) <= {m.item_ids[3], m.item_ids[9]} for it in fresh.items)
    assert rt.recommend("never-seen", k=5, recent_items=[("no-such-item", 5.0)]).strategy == "popular"
    popular = rt.recommend("never-seen", k=5)
    assert popular.item_ids() == rt.recommend(m.customer_ids[0], k=5, consent=False).item_ids()


def test_fresh_vector_equals_stored_one_without_new_events(fitted):
    m, model, rt, _ = fitted
    # implicit's recalculate_user on the customer's own row lands next to the stored factor
    row = 5
    vec = rt._recalculate(m.user_items[row])[0]
    assert np.allclose(vec, model.model_.recalculate_user(row, m.user_items[row]), atol=1e-5)
    stored = rt.user_factors[row]
    assert vec @ stored / (np.linalg.norm(vec) * np.linalg.norm(stored)) > 0.9


def test_because_lists_the_customers_own_items_like_implicit_explain(fitted):
    m, model, rt, _ = fitted
    row = 7
    ans = rt.recommend(m.customer_ids[row], k=5)
    own = {m.item_ids[j] for j in m.user_items[row].indices}
    for item in ans.items:
        assert item["because"] and set(item["because"]) <= own
        col = rt._item_index[item["item_id"]]
        _, top, _ = model.model_.explain(row, m.user_items, col, N=3)
        assert item["because"] == [m.item_ids[j] for j, s in top if s > 0]
    assert explain_contributions(rt.item_factors, rt._yty, rt.regularization, rt.alpha,
                                 m.user_items[[row]], [np.array([], dtype=int)]) == [[]]


def test_batch_matches_single_calls(fitted):
    m, _, rt, _ = fitted
    ids = list(m.customer_ids[:20]) + ["never-seen"]
    batch = rt.recommend_batch(ids, k=7, consent=[True] * 20 + [True])
    for cid, ans in zip(ids, batch):
        single = rt.recommend(cid, k=7)
        assert ans.strategy == single.strategy and ans.item_ids() == single.item_ids()


def test_similar_items(fitted):
    m, _, rt, _ = fitted
    sims = rt.similar_items(m.item_ids[0], k=5)
    assert len(sims) == 5 and m.item_ids[0] not in [s["item_id"] for s in sims]
    assert [s["score"] for s in sims] == sorted((s["score"] for s in sims), reverse=True)
    with pytest.raises(KeyError, match="not in the recommender"):
        rt.similar_items("nope")


def test_save_and_load_round_trip(fitted, tmp_path):
    m, _, rt, _ = fitted
    rt.save(tmp_path / "model")
    loaded = RecommenderRuntime.from_model_dir(tmp_path / "model")
    for cid in m.customer_ids[:10]:
        assert loaded.recommend(cid, k=5).items == rt.recommend(cid, k=5).items
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        RecommenderRuntime.from_model_dir(tmp_path / "empty")
    with pytest.raises(ValueError, match="k must be"):
        rt.recommend(m.customer_ids[0], k=0)


def test_short_and_long_histories_explain_like_implicit(fitted):
    """Both routes (Woodbury for short histories, the full system for long ones) match implicit."""
    import scipy.sparse as sp

    m, model, rt, _ = fitted
    n_items = len(m.item_ids)
    short = sp.csr_matrix(([5.0, 1.0, 3.0], ([0, 0, 0], [1, 4, 9])), shape=(1, n_items), dtype=np.float32)
    long_row = m.user_items[[int(np.argmax(np.diff(m.user_items.indptr)))]]
    assert long_row.nnz > rt.item_factors.shape[1] >= short.nnz
    for row in (short, long_row):
        recs = np.array([0, 2, 3, 5, 7])
        got = explain_contributions(rt.item_factors, rt._yty, rt.regularization, rt.alpha, row, [recs])[0]
        for col, because in zip(recs, got):
            _, top, _ = model.model_.explain(0, row, int(col), N=3)
            assert because == [j for j, s in top if s > 0]
