"""Interval maths on known cases, the SRM check, the planner and CUPED."""

from __future__ import annotations

import numpy as np
import pytest

from tenure.experiments.analysis import (
    fit_cuped,
    mean_difference,
    rate_difference,
    sample_ratio_check,
    sample_size_per_arm,
)


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 vs 48/80, method 10
    d = rate_difference(56, 70, 48, 80, "retention_rate")
    assert d.estimate == pytest.approx(0.2)
    assert (round(d.low, 4), round(d.high, 4)) == (0.0524, 0.3339)
    assert d.significant and d.method == "newcombe"


def test_welch_interval_matches_the_textbook_formula():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 2.0, 300), rng.normal(0.5, 1.0, 200)
    d = mean_difference(a, b, "revenue_per_customer")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.stats import t

    half = t.ppf(0.975, dof) * np.sqrt(va + vb)
    assert (d.low, d.high) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))


def test_intervals_cover_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(400):
        x1, x0 = rng.binomial(2000, 0.12), rng.binomial(2000, 0.15)
        d = rate_difference(x1, 2000, x0, 2000)
        covered += d.low <= -0.03 <= d.high
    assert 0.92 <= covered / 400 <= 0.98


def test_srm_flags_52_48_of_20k_and_not_a_fair_split():
    assert sample_ratio_check({"control": 10_400, "offer": 9_600}, {"control": 0.5, "offer": 0.5}).flagged
    fair = sample_ratio_check({"control": 10_050, "offer": 9_950}, {"control": 0.5, "offer": 0.5})
    assert not fair.flagged and fair.p_value > 0.4
    uneven = sample_ratio_check({"control": 2_000, "a": 5_000, "b": 3_000}, {"control": 0.2, "a": 0.5, "b": 0.3})
    assert uneven.chi2 == pytest.approx(0.0) and not uneven.flagged


def test_srm_rejects_arms_without_a_share():
    with pytest.raises(ValueError, match=r"arms \['stray'\] were observed but have no configured share"):
        sample_ratio_check({"control": 10, "stray": 3}, {"control": 0.5, "offer": 0.5})
    with pytest.raises(ValueError, match="no customers"):
        sample_ratio_check({}, {"control": 0.5, "offer": 0.5})


def test_planner_matches_the_normal_approximation_and_refuses_nonsense():
    n = sample_size_per_arm(0.20, -0.02)
    h = abs(2 * np.arcsin(np.sqrt(0.18)) - 2 * np.arcsin(np.sqrt(0.20)))
    # arcsine-transformed rates have variance 1/n per arm, so their difference 2/n
    assert n == int(np.ceil(2 * ((1.959964 + 0.841621) / h) ** 2))
    assert sample_size_per_arm(0.20, -0.04) < n / 3  # a twice larger effect needs about a quarter
    for args, message in (((0.0, 0.02), "baseline rate"), ((0.2, 0.0), "non-zero"), ((0.2, 0.9), "keep the rate")):
        with pytest.raises(ValueError, match=message):
            sample_size_per_arm(*args)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="retention_rate: arm count 12 is outside 0..10"):
        rate_difference(12, 10, 1, 10, "retention_rate")
    with pytest.raises(ValueError, match="the control has no customers"):
        rate_difference(1, 10, 0, 0)


def test_cuped_keeps_the_effect_and_narrows_the_interval():
    rng = np.random.default_rng(5)
    n = 4000
    x = rng.poisson(5, n).astype(float)
    treated = rng.random(n) < 0.5
    y = 0.8 * x + rng.normal(0, 1.5, n) + 0.3 * treated
    fit = fit_cuped(y, x)
    adjusted = fit.adjust(y, x)
    plain = mean_difference(y[treated], y[~treated])
    cuped = mean_difference(adjusted[treated], adjusted[~treated], method="welch_cuped")
    assert fit.variance_reduction == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, abs=1e-9)
    assert cuped.high - cuped.low < 0.7 * (plain.high - plain.low)
    assert cuped.low <= 0.3 <= cuped.high
