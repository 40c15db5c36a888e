"""The runtime's request path (request-independent parts prepared at load) answers exactly what a
straightforward computation from the public scoring functions answers, customer by customer."""

from __future__ import annotations

import numpy as np
import pytest

from tenure.registry.recommender_runtime import (
    RecommenderRuntime,
    explain_contributions,
    learned_blend_scores,
    mode_scores,
    top_k,
)
from tenure.training.interactions import build_interactions
from tenure.training.recommender_model import ALSRecommender

WEIGHTS = {"view": 1.0, "add_to_cart": 3.0, "purchase": 5.0, "return": -5.0}
COEFFICIENTS = {"als": 2.4, "frequency": 3.9, "recency": -0.46, "timing": 2.1, "item_repeat": 3.9,
                "popularity": -0.095, "bought": -2.1}  # the signs and sizes the shop simulator's data learns
FACTORS = 20  # some customers have fewer own items than factors, some more: both ways of explaining run


def reference(rt: RecommenderRuntime, customer_id: str, k: int, exclude: bool, categories, available_only: bool,
              now: float) -> tuple[str, list[tuple[str, float, list[str]]]]:
    """(strategy, [(item, score, because)]) computed row by row with scipy indexing, no precomputation."""
    allowed = np.ones(len(rt.item_ids), bool)
    if available_only:
        allowed &= rt.item_available
    if categories:
        allowed &= np.isin(rt.item_category, categories)
    row = rt.customer_ids.index(customer_id) if customer_id in rt.customer_ids else None
    if row is None or rt.user_items[[row]].nnz == 0:
        order = np.argsort(-rt.popularity, kind="stable")
        order = order[allowed[order]]
        if row is not None and exclude:
            order = order[~np.isin(order, rt.purchases[[row]].indices)]
        share = rt.popularity / len(rt.customer_ids)
        return "popular", [(rt.item_ids[c], float(share[c]), []) for c in order[:k]]
    als = rt.user_factors[[row]] @ rt.item_factors.T
    buys = rt.purchases[[row]]
    scores, strategy = als, "als"
    if not exclude and rt.mode != "als":
        strategy = rt.mode
        if rt.mode == "blend" and rt.blend_coefficients:
            last, gap = rt.timing.rows([row])
            pop01 = rt.popularity / max(rt.popularity.max(), 1.0)
            scores = learned_blend_scores(als, buys, last, gap, rt.timing, now, pop01, rt.blend_coefficients)
        else:
            scores = mode_scores(als, buys, rt.mode, rt.blend_weight)
    (cols, vals), = top_k(scores, k, exclude=buys if exclude else None, allowed=allowed)
    why, = explain_contributions(rt.item_factors, rt._yty, rt.regularization, rt.alpha, rt.user_items[[row]], [cols])
    return strategy, [(rt.item_ids[c], float(v), [rt.item_ids[j] for j in w]) for c, v, w in zip(cols, vals, why)]


def assert_same(answer, expected) -> None:
    strategy, items = expected
    assert answer.strategy == strategy
    assert [it["item_id"] for it in answer.items] == [item for item, _, _ in items]
    assert np.allclose([it["score"] for it in answer.items], [score for _, score, _ in items], rtol=1e-6, atol=1e-7)
    assert [it["because"] for it in answer.items] == [because for _, _, because in items]


@pytest.fixture(scope="module")
def matrix(shop):
    customers, items, events = shop
    return build_interactions(events, customers, items, event_weights=WEIGHTS), items


@pytest.fixture(scope="module", params=["learned_blend", "fixed_blend", "als"])
def runtime(request, matrix, tmp_path_factory):
    """A saved and reloaded runtime (as the service loads it) of each scoring mode."""
    m, items = matrix
    mode = "als" if request.param == "als" else "blend"
    model = ALSRecommender(factors=FACTORS, iterations=3, num_threads=1, mode=mode, use_gpu="never").fit(
        m.user_items, m.purchases, timing=m.timing)
    if request.param == "learned_blend":
        model.set_blend(COEFFICIENTS)
    rt = model.to_runtime(m, items, params={"event_weights": WEIGHTS, "exclude_purchased_default": False})
    rt = RecommenderRuntime.from_model_dir(rt.save(tmp_path_factory.mktemp(request.param)))
    assert (rt.blend_coefficients is not None) == (request.param == "learned_blend")
    sizes = np.diff(rt.user_items.indptr)
    assert (sizes > FACTORS).sum() >= 20 and ((sizes > 0) & (sizes <= FACTORS)).sum() >= 20
    return rt


@pytest.mark.parametrize("exclude, categories, available_only, days_after", [
    (False, None, True, 0.0),   # the service's default request on a repeat-purchase shop
    (False, None, True, 9.5),   # later: recency and timing move
    (False, ["c1", "c4"], False, 3.0),
    (True, None, True, 0.0),
    (True, ["c2"], True, 30.0),
])
def test_every_customer_gets_the_reference_answer(runtime, exclude, categories, available_only, days_after):
    now = runtime.timing.as_of_days + days_after
    ids = runtime.customer_ids + ["never-seen"]
    blends = 0
    for cid in ids:
        answer = runtime.recommend(cid, k=12, exclude_purchased=exclude, categories=categories,
                                   available_only=available_only, now=now)
        assert_same(answer, reference(runtime, cid, 12, exclude, categories, available_only, now))
        blends += answer.strategy == "blend"
    assert blends == (0 if exclude or runtime.mode == "als" else len(runtime.customer_ids))


def test_batches_answer_as_single_requests(runtime):
    rng = np.random.default_rng(3)
    ids = [runtime.customer_ids[i] for i in rng.integers(0, len(runtime.customer_ids), 60)] + ["never-seen"]
    consent = rng.random(len(ids)) > 0.1
    now = runtime.timing.as_of_days + 2.0
    batch = runtime.recommend_batch(ids, k=8, exclude_purchased=False, consent=consent.tolist(), now=now)
    for cid, ok, answer in zip(ids, consent, batch):
        # one matrix product for the batch rounds ALS scores a float32 ulp away from a single row's
        single = runtime.recommend(cid, k=8, exclude_purchased=False, consent=bool(ok), now=now)
        assert_same(answer, (single.strategy, [(it["item_id"], it["score"], it["because"]) for it in single.items]))
        if ok:
            assert_same(answer, reference(runtime, cid, 8, False, None, True, now))
        else:
            assert answer.strategy == "no_consent_popular"


def test_the_default_filter_is_not_changed_by_requests(runtime):
    before = runtime.item_available.copy()
    runtime.recommend(runtime.customer_ids[0], k=5)
    runtime.recommend("never-seen", k=5)
    assert np.array_equal(runtime._allowed(None, True), before)
    with pytest.raises(ValueError):  # shared between requests: read-only
        runtime._allowed(None, True)[0] = not before[0]


def test_forgetting_a_customer_clears_what_was_prepared_from_their_rows(matrix):
    from tenure.registry.recommender_erasure import forget_in_runtime

    m, items = matrix
    model = ALSRecommender(factors=FACTORS, iterations=3, num_threads=1, mode="blend", use_gpu="never").fit(
        m.user_items, m.purchases, timing=m.timing).set_blend(COEFFICIENTS)
    rt = model.to_runtime(m, items, params={"exclude_purchased_default": False})
    gone, kept = rt.customer_ids[3], rt.customer_ids[4]
    assert rt._own_blend.indptr[4] > rt._own_blend.indptr[3]  # bought something: prepared entries
    before = rt.recommend(kept, k=10, now=rt.timing.as_of_days)
    assert forget_in_runtime(rt, [gone]) == 1
    assert rt._own_blend.indptr[4] == rt._own_blend.indptr[3] and rt.timing.last_bought[3].nnz == 0
    assert rt.recommend(gone, k=10).strategy == "popular"
    assert rt.recommend(kept, k=10, now=rt.timing.as_of_days).items == before.items
    assert_same(rt.recommend(kept, k=10, now=rt.timing.as_of_days + 5),
                reference(rt, kept, 10, False, None, True, rt.timing.as_of_days + 5))
