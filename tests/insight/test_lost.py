"""Customers really lost: the Pareto/NBD equals lifetimes', recovers a shop drawn from it, and reads the simulated
shop's latent churn better than the activity label does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.features.simulator import simulate_shop
from tenure.features.simulator_truth import true_rates
from tenure.insight.kpis import compute_kpis
from tenure.insight.lost import (
    LostModel,
    _log_likelihood,
    activity_summary,
    estimate_lost,
    fit_lost_model,
)

PARAMS = ([2.06, 13.5, 35.4, 11174.0], [0.5, 3.0, 0.8, 40.0], [1.2, 20.0, 1.5, 100.0], [0.25, 4.76, 0.75, 2.2])


def _histories(n: int, seed: int):
    rng = np.random.default_rng(seed)
    age = rng.integers(1, 300, n).astype(float)
    x = rng.poisson(rng.gamma(2.0, 0.2, n) * age).astype(float)
    t_x = np.clip(np.where(x > 0, np.floor(rng.random(n) * age), 0.0), 0.0, age - 1)
    return x, t_x, age


@pytest.mark.parametrize("params", PARAMS)
def test_p_alive_and_likelihood_equal_lifetimes(params):
    from lifetimes import ParetoNBDFitter

    x, t_x, age = _histories(3000, seed=1)
    reference = ParetoNBDFitter()
    reference.params_ = pd.Series(params, index=["r", "alpha", "s", "beta"])
    with np.errstate(all="ignore"):
        expected = reference.conditional_probability_alive(x, t_x, age)
        expected_ll = ParetoNBDFitter._conditional_log_likelihood(params, x, t_x, age)
    got = LostModel(*params, fit_customers=0).p_alive(x, t_x, age)
    ok = np.isfinite(expected)
    assert ok.mean() > 0.9 and np.isfinite(got).all()  # lifetimes' 2F1 fails for a few long histories; ours does not
    assert np.abs(got[ok] - expected[ok]).max() < 1e-4
    ok_ll = np.isfinite(expected_ll)
    assert np.abs(_log_likelihood(np.array(params), x, t_x, age)[ok_ll] - expected_ll[ok_ll]).max() < 1e-3


def _pareto_shop(n: int, days: int, seed: int, r=2.0, alpha=20.0, s=3.0, beta=600.0):
    """Customers born over ``days`` with Pareto/NBD activity days; returns codes, days, birth, death time."""
    rng = np.random.default_rng(seed)
    birth = rng.integers(0, days // 2, n)
    rate = rng.gamma(r, 1.0 / alpha, n)
    death = birth + rng.exponential(1.0 / rng.gamma(s, 1.0 / beta, n))
    codes, act = [], []
    for c in range(n):
        stop = min(death[c], days)
        k = rng.poisson(rate[c] * max(stop - birth[c], 0.0))
        times = birth[c] + rng.random(k) * (stop - birth[c])
        act.append(np.unique(np.floor(times).astype(np.int64)))
        codes.append(np.full(len(act[-1]), c))
    return np.concatenate(codes), np.concatenate(act), birth, death


def test_fit_and_lost_rate_recover_a_shop_drawn_from_the_model():
    n, days, horizon = 4000, 240, 30
    codes, act_days, birth, death = _pareto_shop(n, days, seed=7)
    x, t_x, age, born = activity_summary(codes, act_days, birth, days)
    model = fit_lost_model(x[born], t_x[born], age[born])
    assert model is not None
    assert model.r == pytest.approx(2.0, rel=0.3)
    assert model.s / model.beta == pytest.approx(3.0 / 600.0, rel=0.3)  # the mean death rate a day
    months = [150, 180]
    lost = estimate_lost(codes, act_days, birth, months, days - 1, horizon)
    for t in months:
        alive = (birth < t) & (death > t)
        truth = ((death <= t + horizon) & alive).sum() / alive.sum()
        assert lost["months"][t]["estimated_lost_rate"] == pytest.approx(truth, abs=0.02)
        assert lost["months"][t]["expected_alive_at_start"] == pytest.approx(alive.sum(), rel=0.05)
    gone = ((birth < days) & (death <= days)).sum()
    assert lost["estimated_lost_customers"] == pytest.approx(gone, rel=0.1)
    assert lost == estimate_lost(codes, act_days, birth, months, days - 1, horizon)  # deterministic


def test_too_little_activity_gives_no_estimate_and_no_error():
    codes, act_days = np.array([0, 1]), np.array([3, 4])
    lost = estimate_lost(codes, act_days, np.array([0, 0]), [10], 20, 30)
    assert lost["model"] is None and lost["estimated_lost_rate"] is None and lost["customers_signed_up"] == 2
    with pytest.raises(ValueError, match="horizon"):
        estimate_lost(codes, act_days, np.array([0, 0]), [10], 20, 0)


@pytest.fixture(scope="module")
def shop():
    return simulate_shop(1500, 120, 150, seed=6)


def test_report_estimates_the_simulated_shops_latent_churn(shop):
    truth = true_rates(shop)["true_churn"]
    report = compute_kpis(shop.customers, shop.events)
    totals = report["totals"]
    assert report["lost_model"]["name"] == "pareto_nbd" and report["lost_model"]["fit_customers"] == 1500
    # the activity label counts quiet-but-alive customers as churned; the model does not
    assert totals["churn_rate"] - truth["churn_rate"] > 0.03
    assert totals["estimated_lost_rate"] == pytest.approx(truth["churn_rate"], abs=0.01)
    assert 0 < totals["estimated_lost_share"] < 1 and totals["estimated_lost_customers"] > 0
    by_month = {m["month"]: m for m in report["monthly"]}
    for month in truth["months"]:
        row = by_month[month["month"]]
        assert row["estimated_lost_rate"] is not None and row["expected_alive_at_start"] > 0
    assert by_month["2026-01"]["estimated_lost_rate"] is None  # no churn month: no estimate either
    assert "estimated_lost_rate" not in compute_kpis(shop.customers, shop.events, estimate_lost=False)["totals"]
