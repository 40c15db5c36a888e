"""Outcome analysis of a randomised experiment: intervals, sample-ratio mismatch, power, CUPED.

Pure functions over counts and arrays (numpy, scipy, statsmodels); the caller reads the data
and stores the results. Definitions:

- **Rate difference** (churn, retention, repurchase): arm minus control, with Newcombe's hybrid
  score interval (statsmodels ``confint_proportions_2indep(method="newcomb")``), which keeps its
  coverage for small counts and rates near 0 or 1; the p-value is the Wald test of the same
  difference.
- **Mean difference** (revenue per customer, CUPED-adjusted outcomes): Welch's t interval
  (unequal variances; statsmodels ``CompareMeans.tconfint_diff(usevar="unequal")``).
- **Sample-ratio mismatch**: Pearson's chi-square of the arm counts against the configured
  shares (scipy ``chisquare``); flagged below ``p < 0.001`` (the usual SRM threshold: a real
  split is flagged about once in a thousand experiments).
- **Sample size**: per arm, for a two-sided test of two proportions (Cohen's h with
  statsmodels ``NormalIndPower``), for a given minimum detectable effect (absolute).
- **CUPED** (Deng et al. 2013): ``y - theta * (x - mean(x))`` with ``theta = cov(x, y) / var(x)``
  over all customers of the experiment, ``x`` a pre-period covariate; the arms' difference is
  unchanged in expectation and its variance shrinks by ``corr(x, y)^2``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

SRM_P_THRESHOLD = 0.001
"""p-value below which the arm counts are flagged as a sample-ratio mismatch."""


@dataclass(frozen=True)
class Difference:
    """An arm's difference to control in one metric.

    Attributes
    ----------
    metric: e.g. ``retention_rate``, ``revenue_per_customer``.
    estimate: arm minus control.
    low, high: the confidence interval (``confidence``, two-sided).
    p_value: two-sided p-value of "no difference".
    method: ``newcombe``, ``welch`` or ``welch_cuped``.
    confidence: e.g. 0.95.
    """

    metric: str
    estimate: float
    low: float
    high: float
    p_value: float
    method: str
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict:
        """Plain dict (JSON), with ``significant``."""
        return {**asdict(self), "significant": self.significant}


def _check_confidence(confidence: float) -> float:
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    return 1 - confidence


def rate_difference(successes: int, n: int, control_successes: int, control_n: int, metric: str = "rate",
                    confidence: float = 0.95) -> Difference:
    """Difference of two proportions (arm minus control) with Newcombe's interval.

    Parameters
    ----------
    successes, n:
        Customers with the outcome, and customers, in the arm.
    control_successes, control_n:
        The same in the control arm.
    metric:
        Name recorded in the result.
    confidence:
        Two-sided confidence level.

    Raises
    ------
    ValueError
        When a count is negative, or above its arm size, or an arm is empty.
    """
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    alpha = _check_confidence(confidence)
    for label, x, size in (("arm", successes, n), ("control", control_successes, control_n)):
        if size <= 0:
            raise ValueError(f"{metric}: the {label} has no customers")
        if not 0 <= x <= size:
            raise ValueError(f"{metric}: {label} count {x} is outside 0..{size}")
    low, high = confint_proportions_2indep(successes, n, control_successes, control_n, method="newcomb",
                                           compare="diff", alpha=alpha)
    estimate = successes / n - control_successes / control_n
    if 0 < successes + control_successes < n + control_n:
        p_value = float(test_proportions_2indep(successes, n, control_successes, control_n, method="wald",
                                                compare="diff").pvalue)
    else:  # both arms all 0 or all 1: nothing differs
        p_value = 1.0
    return Difference(metric, float(estimate), float(low), float(high), p_value, "newcombe", confidence)


def mean_difference(values: np.ndarray, control_values: np.ndarray, metric: str = "mean",
                    confidence: float = 0.95, method: str = "welch") -> Difference:
    """Difference of two means (arm minus control) with Welch's t interval.

    Parameters
    ----------
    values, control_values:
        Arrays of shape (n_arm,) and (n_control,), one value per customer.
    metric, confidence:
        As in :func:`rate_difference`.
    method:
        Label recorded in the result (``welch`` or ``welch_cuped``).

    Raises
    ------
    ValueError
        When an arm has fewer than two customers or holds NaN.
    """
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    alpha = _check_confidence(confidence)
    a = np.asarray(values, dtype=float)
    b = np.asarray(control_values, dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"{metric}: each arm needs at least two customers, got {len(a)} and {len(b)}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(f"{metric}: values hold NaN")
    estimate = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:  # no spread at all: the difference is exact
        return Difference(metric, estimate, estimate, estimate, 1.0 if estimate == 0 else 0.0, method, confidence)
    compare = CompareMeans(DescrStatsW(a), DescrStatsW(b))
    low, high = compare.tconfint_diff(alpha=alpha, usevar="unequal")
    p_value = float(compare.ttest_ind(usevar="unequal")[1])
    return Difference(metric, estimate, float(low), float(high), p_value, method, confidence)


@dataclass(frozen=True)
class SampleRatioCheck:
    """Observed arm counts against the configured shares.

    Attributes
    ----------
    observed: arm -> customers.
    expected: arm -> expected customers (shares x total).
    chi2, p_value: Pearson's chi-square and its p-value.
    flagged: p below ``threshold``: the split is not what was configured (a bug in assignment
        or in logging); the differences are not to be trusted.
    threshold: the p-value threshold.
    """

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    flagged: bool
    threshold: float = SRM_P_THRESHOLD

    def to_dict(self) -> dict:
        """Plain dict (JSON)."""
        return asdict(self)


def sample_ratio_check(counts: Mapping[str, int], shares: Mapping[str, float],
                       threshold: float = SRM_P_THRESHOLD) -> SampleRatioCheck:
    """Chi-square test of the arm counts against the configured shares.

    Parameters
    ----------
    counts:
        Arm -> customers observed. Arms missing here count as 0.
    shares:
        Arm -> configured share (summing to 1).
    threshold:
        Flag when the p-value is below it.

    Raises
    ------
    ValueError
        When shares do not sum to 1, an observed arm has no share, or there are no customers.
    """
    from scipy.stats import chisquare

    unknown = sorted(set(counts) - set(shares))
    if unknown:
        raise ValueError(f"arms {unknown} were observed but have no configured share (configured: {sorted(shares)})")
    total_share = sum(shares.values())
    if abs(total_share - 1) > 1e-6 or any(s <= 0 for s in shares.values()):
        raise ValueError(f"shares must be positive and sum to 1, got {dict(shares)}")
    arms = list(shares)
    observed = np.array([int(counts.get(a, 0)) for a in arms], dtype=float)
    total = observed.sum()
    if total <= 0:
        raise ValueError("no customers to check the split of")
    expected = np.array([shares[a] for a in arms]) * total
    chi2, p_value = chisquare(observed, expected)
    return SampleRatioCheck({a: int(o) for a, o in zip(arms, observed)}, {a: float(e) for a, e in zip(arms, expected)},
                            float(chi2), float(p_value), bool(p_value < threshold), threshold)


def sample_size_per_arm(baseline_rate: float, minimum_effect: float, confidence: float = 0.95,
                        power: float = 0.8) -> int:
    """Customers needed per arm to detect an absolute change of a rate, two-sided.

    Parameters
    ----------
    baseline_rate:
        The control's rate, e.g. 0.20 (a churn rate of 20%).
    minimum_effect:
        The smallest absolute change worth detecting, e.g. 0.02 (20% -> 18% or 22%).
    confidence:
        1 - the test's significance level.
    power:
        Chance of detecting a true change of that size.

    Raises
    ------
    ValueError
        When the rate is not in (0, 1), the effect is 0 or moves the rate outside (0, 1), or
        power is not in (0, 1).
    """
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    alpha = _check_confidence(confidence)
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline rate must be in (0, 1), got {baseline_rate}")
    if minimum_effect == 0 or not 0 < baseline_rate + minimum_effect < 1:
        raise ValueError(f"minimum effect must be non-zero and keep the rate in (0, 1): "
                         f"{baseline_rate} + {minimum_effect} = {baseline_rate + minimum_effect:g}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
    h = abs(proportion_effectsize(baseline_rate + minimum_effect, baseline_rate))
    n = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=1.0, alternative="two-sided")
    return math.ceil(n)


@dataclass(frozen=True)
class Cuped:
    """A CUPED adjustment.

    Attributes
    ----------
    theta: the regression coefficient ``cov(x, y) / var(x)``.
    covariate_mean: mean of the covariate over all customers.
    variance_reduction: ``1 - var(y_adjusted) / var(y)`` over all customers (the share of the
        variance removed; an interval shrinks by ``1 - sqrt(1 - variance_reduction)``).
    """

    theta: float
    covariate_mean: float
    variance_reduction: float

    def adjust(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``y - theta * (x - covariate_mean)``, arrays of shape (n,)."""
        return np.asarray(y, dtype=float) - self.theta * (np.asarray(x, dtype=float) - self.covariate_mean)


def fit_cuped(y: np.ndarray, x: np.ndarray) -> Cuped:
    """The CUPED coefficient of outcome ``y`` on pre-period covariate ``x`` (arrays of shape (n,), all arms).

    Raises
    ------
    ValueError
        When the arrays differ in length, hold NaN, or have fewer than two values.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if y.shape != x.shape or y.ndim != 1:
        raise ValueError(f"outcome and covariate must be 1-d arrays of one length, got {y.shape} and {x.shape}")
    if len(y) < 2 or np.isnan(y).any() or np.isnan(x).any():
        raise ValueError("CUPED needs at least two customers and no missing values")
    var_x = x.var()
    if var_x == 0:
        return Cuped(0.0, float(x.mean()), 0.0)
    theta = float(np.cov(x, y, ddof=0)[0, 1] / var_x)
    adjusted = y - theta * (x - x.mean())
    var_y = y.var()
    reduction = 0.0 if var_y == 0 else float(1 - adjusted.var() / var_y)
    return Cuped(theta, float(x.mean()), reduction)
