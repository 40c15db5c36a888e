"""ALS wrapper: known-answer checkerboard, exclusion of bought items, rebuy modes, sklearn contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tenure.training.recommender_model import ALSRecommender


def checkerboard(n: int) -> sp.csr_matrix:
    """implicit's test matrix: user u likes every item of its parity except item u itself."""
    m = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        m[i, i % 2::2] = 1.0
    return sp.csr_matrix(m - np.eye(n, dtype=np.float32))


def _als(**kw):
    params = {"factors": 3, "regularization": 0.0, "iterations": 15, "num_threads": 1, "use_gpu": "never",
              "random_state": 23}
    params.update(kw)
    return ALSRecommender(**params)


def test_checkerboard_held_out_item_comes_back_first():
    ui = sp.csr_matrix(checkerboard(50))
    ui.eliminate_zeros()
    model = _als().fit(ui)
    recs = model.recommend(np.arange(50), k=1)
    assert [int(r[0]) for r in recs] == list(range(50))


def test_als_mode_never_recommends_bought_items():
    ui = sp.csr_matrix(checkerboard(20))
    ui.eliminate_zeros()
    model = _als().fit(ui, purchases=ui)
    for row, cols in enumerate(model.recommend(np.arange(20), k=10)):
        assert not set(cols.tolist()) & set(ui[row].indices.tolist())
        assert len(cols) == 10  # every other item of any parity is still allowed


def test_rebuy_modes_put_bought_items_back():
    ui = sp.csr_matrix(checkerboard(20))
    ui.eliminate_zeros()
    buys = sp.csr_matrix(([3.0, 1.0], ([0, 0], [2, 4])), shape=ui.shape)
    again = _als(mode="buy_again").fit(ui, purchases=buys).recommend(np.array([0]), k=3)[0]
    assert again[:2].tolist() == [2, 4]  # most-bought first
    blend = _als(mode="blend", blend_weight=1.0).fit(ui, purchases=buys).recommend(np.array([0]), k=2)[0]
    assert blend.tolist() == [2, 4]
    zero = _als(mode="blend", blend_weight=0.0).fit(ui, purchases=buys)
    plain = zero.recommend(np.array([0]), k=5)[0]
    assert plain.tolist() == np.argsort(-zero.als_scores(np.array([0]))[0])[:5].tolist()  # plain ALS order


def test_sklearn_contract_and_errors():
    model = ALSRecommender(factors=8, mode="blend")
    assert model.get_params()["factors"] == 8 and not hasattr(model, "model_")
    assert model.set_params(factors=4).factors == 4
    with pytest.raises(ValueError, match="unknown parameter"):
        model.set_params(colour="red")
    with pytest.raises(ValueError, match="mode"):
        ALSRecommender(mode="magic").fit(checkerboard(4))
    with pytest.raises(ValueError, match="empty"):
        ALSRecommender().fit(sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        ALSRecommender().recommend(np.array([0]), k=1)
    fitted = _als()
    assert fitted.fit(checkerboard(10)) is fitted and fitted.used_gpu_ is False
    assert fitted.user_factors_.shape == (10, 3) and fitted.item_factors_.shape == (10, 3)
