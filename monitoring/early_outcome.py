"""Early outcome / concept: the first days of the outcome, long before the churn labels mature.

Churn labels need the whole horizon (30 days without qualifying activity), so the realised ROC-AUC
of customers scored today is known a month later, and the CBPE estimate cannot see a change in the
relation of inputs to churn (concept drift): the inputs and the scores look as before. But part of
the outcome arrives early: customers scored on day *t* who have had no qualifying activity in the
``k`` days after it (the *early outcome*, :func:`tenure.features.labels.label_churn` with a
``k``-day horizon) are on their way out, and a model that still ranks churners must rank them high.

:func:`early_outcome_check` compares a scored cohort whose ``k`` days have passed with reference
cohorts of the weeks before (their ``k``-day outcomes complete before the cohort was scored):

- **ROC-AUC against the early outcome**, current vs reference, with DeLong's variance of each
  (independent samples): alarm when the drop is larger than ``min_auc_drop`` and its one-sided
  p-value below ``max_p_value``;
- **calibration against the early outcome**: the reference's relation score -> early outcome
  (isotonic) gives every current customer an expected probability of going quiet; the residual
  (observed - expected) of the cohort is compared with the reference's. Overall, a whole week can be
  quieter than another (holidays, weather, a campaign ending), so the z-test adds the spread between
  the reference cohorts' mean residuals (``cohort`` column) to the sampling error. Per value of each
  categorical feature (``plan=annual``) the segment's residual *relative to its cohort's* is compared
  (a difference in differences, so a week-wide swing cancels), with a Welch z-test. A finding alarms
  when the quiet share is above what the scores implied by more than ``min_rate_increase``
  (absolute) and the p-value (segments: Bonferroni-corrected over the segments tested) is below
  ``max_p_value``.

**Sequential (CUSUM) per segment** (:func:`update_cusum`): one cohort of a small shop rarely holds
enough customers of a segment for p < 0.001 (:func:`detectable_excess` says how large a rise a
segment of ``n`` customers can show), but a change that lasts shows in every cohort after it. Each
segment's standardised excess ``z`` (the Welch z above, before the correction) is summed over cohorts
whose outcome windows do not overlap, a one-sided CUSUM ``S = max(0, S + z - allowance)`` that alarms
at ``S >= h``; ``h`` is set by :func:`cusum_threshold` so that the segments together raise a false alarm
in at most ``CUSUM_FALSE_ALARM_RATE`` of the passes (Siegmund's in-control run length, union bound
over the segments). The sums live with the champion's version in a state file (a new champion starts
from zero) and restart at zero after an alarm.

Both are *performance* findings (the model is wrong for some customers, whatever the inputs look
like); a segment alarm names the column and value, which is where a concept change shows first.
The baseline trails the cohort, as the event-level signals do: an abrupt change alarms, a slow
season mostly does not, and a change that lasts stops alarming once the baseline holds it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MIN_ROWS = 100
"""Fewest rows (and a segment's fewest rows in both periods) for a test."""
CUSUM_ALLOWANCE = 1.0
"""The CUSUM's allowance ``k`` (standard errors per cohort): half the shift it is quickest for, two standard errors
per cohort (a +6 point rise among ~220 customers at a 15 % base rate is 2.3)."""
CUSUM_FALSE_ALARM_RATE = 0.005
"""At most this share of passes raises a false sequential alarm, over all segments together (1 in 200)."""


@dataclasses.dataclass
class EarlyOutcomeFinding:
    """One early-outcome signal: what, the effect, its threshold, p-value, whether it alarms, in words."""

    signal: str
    column: str
    score: float
    threshold: float
    p_value: float
    alarm: bool
    message: str
    z: float = float("nan")
    """The standardised excess before the multiplicity correction (segments; for the sequential test)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def delong_variance(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """ROC-AUC and its DeLong variance (DeLong, DeLong and Clarke-Pearson 1988) for one sample.

    Parameters
    ----------
    labels: 0/1 array (n,); both classes must be present.
    scores: array (n,).
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=float)
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        raise ValueError(f"need at least two rows of each class, got {m} positives and {n} negatives")
    from scipy.stats import rankdata

    all_ranks = rankdata(np.r_[pos, neg])
    pos_ranks, neg_ranks = rankdata(pos), rankdata(neg)
    v10 = (all_ranks[:m] - pos_ranks) / n          # per positive: share of negatives scored below (ties half)
    v01 = 1.0 - (all_ranks[m:] - neg_ranks) / m    # per negative: share of positives scored above
    auc = float(v10.mean())
    var = float(np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n)
    return auc, var


def expected_outcome(reference_scores: np.ndarray, reference_outcomes: np.ndarray):
    """Map score -> probability of the early outcome, fitted on the reference (isotonic, clipped)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing="auto")
    iso.fit(np.asarray(reference_scores, dtype=float), np.asarray(reference_outcomes, dtype=float))
    return iso.predict


def _welch(current: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Difference of means (current - reference) and its one-sided p-value (current larger), Welch z."""
    from scipy.stats import norm

    diff = float(current.mean() - reference.mean())
    se = math.sqrt(np.var(current, ddof=1) / len(current) + np.var(reference, ddof=1) / len(reference))
    if se == 0:
        return diff, 1.0 if diff <= 0 else 0.0
    return diff, float(norm.sf(diff / se))


def early_outcome_check(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    categorical: Sequence[str] = (),
    *,
    days: int,
    max_p_value: float = 1e-3,
    min_auc_drop: float = 0.02,
    min_rate_increase: float = 0.03,
    min_rows: int = MIN_ROWS,
) -> dict[str, Any]:
    """Early-outcome ROC-AUC and calibration of a scored cohort against reference cohorts.

    Parameters
    ----------
    current: the cohort whose ``days`` have passed: ``prediction`` (churn probability), ``outcome``
        (1 = no qualifying activity in the ``days`` after scoring) and the ``categorical`` columns.
    reference: the same columns for cohorts scored before (their outcome windows ended before the
        current cohort was scored), with ``cohort`` (the scoring cut-off) when it pools several.
    categorical: columns whose values are tested as segments (``plan``, ``acquisition_channel``).
    days: the early-outcome window ``k`` (for the messages).
    max_p_value: a finding alarms only below this p-value (segments: after Bonferroni).
    min_auc_drop: smallest ROC-AUC drop (reference - current) that alarms.
    min_rate_increase: smallest rise of the quiet share beyond what the scores imply (absolute) that alarms.
    min_rows: fewest rows of the cohort, the reference, and a segment in each.

    Returns
    -------
    dict: ``rows``, ``reference_rows``, ``days``, ``roc_auc``, ``reference_roc_auc``, ``auc_drop``,
    ``outcome_rate``, ``expected_rate``, ``findings`` (list of :class:`EarlyOutcomeFinding`
    as dicts) and ``alarm`` (any finding alarms). ``note`` instead of findings when too few rows.
    """
    for name, frame in (("current", current), ("reference", reference)):
        missing = {"prediction", "outcome"} - set(frame.columns)
        if missing:
            raise ValueError(f"early outcome: the {name} cohort lacks columns {sorted(missing)}")
    if days < 1:
        raise ValueError(f"early outcome window must be at least 1 day, got {days}")
    cur = current.dropna(subset=["prediction", "outcome"])
    ref = reference.dropna(subset=["prediction", "outcome"])
    out: dict[str, Any] = {"days": int(days), "rows": len(cur), "reference_rows": len(ref), "findings": [],
                           "alarm": False}
    y_c, y_r = cur["outcome"].to_numpy(dtype=float), ref["outcome"].to_numpy(dtype=float)
    if len(cur) < min_rows or len(ref) < min_rows or len(np.unique(y_r)) < 2 or len(np.unique(y_c)) < 2:
        out["note"] = (f"too few rows or a single class for the early outcome ({len(cur)} current, {len(ref)} "
                       f"reference rows; at least {min_rows} of each with both outcomes)")
        return out
    p_c, p_r = cur["prediction"].to_numpy(dtype=float), ref["prediction"].to_numpy(dtype=float)
    findings: list[EarlyOutcomeFinding] = []

    # ranking: ROC-AUC against the early outcome, DeLong variance per sample
    from scipy.stats import norm

    auc_c, var_c = delong_variance(y_c, p_c)
    auc_r, var_r = delong_variance(y_r, p_r)
    drop = auc_r - auc_c
    p_auc = float(norm.sf(drop / math.sqrt(var_c + var_r))) if var_c + var_r > 0 else 1.0
    findings.append(EarlyOutcomeFinding(
        "auc", "prediction", drop, min_auc_drop, p_auc, bool(drop > min_auc_drop and p_auc < max_p_value),
        f"early outcome / concept: ROC-AUC against going quiet within {days} days {auc_c:.3f} vs {auc_r:.3f} in the "
        f"weeks before (drop {drop:+.3f}, threshold {min_auc_drop}; DeLong p={p_auc:.1g})"))

    # calibration: residual against the reference's score -> early outcome relation
    expect = expected_outcome(p_r, y_r)
    res_c, res_r = y_c - expect(p_c), y_r - expect(p_r)
    diff, _ = _welch(res_c, res_r)
    se2 = np.var(res_c, ddof=1) / len(res_c) + np.var(res_r, ddof=1) / len(res_r)
    tau2 = 0.0
    if "cohort" in ref.columns and ref["cohort"].nunique() >= 2:
        groups = pd.Series(res_r, index=ref.index).groupby(ref["cohort"].to_numpy())
        means, sizes = groups.mean(), groups.size()
        within = float(np.mean([np.var(g, ddof=1) / len(g) for _, g in groups if len(g) > 1]))
        tau2 = max(0.0, float(np.var(means.to_numpy(), ddof=1)) - within)
        tau2 *= 1 + 1 / len(sizes)  # the current cohort's own swing, and the reference mean's
    p_all = float(norm.sf(diff / math.sqrt(se2 + tau2))) if se2 + tau2 > 0 else 1.0
    findings.append(EarlyOutcomeFinding(
        "calibration", "prediction", diff, min_rate_increase, p_all, bool(diff > min_rate_increase and p_all < max_p_value),
        f"early outcome / concept: {y_c.mean():.1%} went quiet within {days} days vs {expect(p_c).mean():.1%} expected "
        f"from the scores (excess {diff:+.1%} against the weeks before, week-to-week spread included; threshold "
        f"{min_rate_increase:.0%}, p={p_all:.1g})"))

    # segments: where the relation changed (a concept change shows in a segment first)
    segments = []
    for column in categorical:
        if column not in cur.columns or column not in ref.columns:
            continue
        c_values, r_values = cur[column].astype(str).to_numpy(), ref[column].astype(str).to_numpy()
        for value in sorted(set(c_values) & set(r_values)):
            in_c, in_r = c_values == value, r_values == value
            if in_c.sum() >= min_rows and in_r.sum() >= min_rows:
                segments.append((column, value, in_c, in_r))
    centre_c, centre_r = res_c.mean(), res_r.mean()
    for column, value, in_c, in_r in segments:
        d, p = _welch(res_c[in_c] - centre_c, res_r[in_r] - centre_r)
        p_adj = min(1.0, p * len(segments))
        z = float(norm.isf(min(max(p, 1e-300), 1.0)))
        findings.append(EarlyOutcomeFinding(
            f"segment:{column}={value}", column, d, min_rate_increase, p_adj,
            bool(d > min_rate_increase and p_adj < max_p_value),
            f"early outcome / concept: {column}={value}: {y_c[in_c].mean():.1%} went quiet within {days} days vs "
            f"{expect(p_c[in_c]).mean():.1%} expected from the scores (excess {d:+.1%} beyond the whole cohort's, against "
            f"the weeks before, "
            f"{int(in_c.sum())} customers; threshold {min_rate_increase:.0%}, p={p_adj:.1g} over {len(segments)} segments)",
            z))
    out.update({"cohort_spread": math.sqrt(tau2), "roc_auc": auc_c, "reference_roc_auc": auc_r, "auc_drop": drop, "outcome_rate": float(y_c.mean()),
                "expected_rate": float(expect(p_c).mean()), "segments_tested": len(segments),
                "findings": [f.as_dict() for f in findings], "alarm": any(f.alarm for f in findings)})
    return out


def alarms(result: dict[str, Any] | None) -> list[EarlyOutcomeFinding]:
    """The alarming findings of :func:`early_outcome_check`'s result (for the retrain policy)."""
    return [EarlyOutcomeFinding(**f) for f in (result or {}).get("findings", []) if f.get("alarm")]


def detectable_excess(rows: int, base_rate: float, alpha: float = 1e-3, segments: int = 1, power: float = 0.8,
                      reference_ratio: float = 3.0) -> float:
    """Smallest rise of a segment's quiet share that one cohort detects with ``power`` (normal approximation).

    Parameters
    ----------
    rows: the segment's customers in the cohort.
    base_rate: the share going quiet that the scores expect (binomial variance ``p(1-p)``).
    alpha: the p-value that alarms, Bonferroni-corrected over ``segments`` (one-sided).
    reference_ratio: the reference holds this many times the cohort's rows (its error adds
        ``1/reference_ratio`` of the cohort's variance); 0 treats the expected share as known.
    """
    from scipy.stats import norm

    if rows < 1 or not 0 < base_rate < 1 or not 0 < alpha < 1 or segments < 1 or not 0 < power < 1:
        raise ValueError(f"need rows >= 1, 0 < base_rate < 1, 0 < alpha < 1, segments >= 1, 0 < power < 1; got "
                         f"{rows}, {base_rate}, {alpha}, {segments}, {power}")
    inflate = 1 + (1 / reference_ratio if reference_ratio > 0 else 0.0)
    se = math.sqrt(base_rate * (1 - base_rate) * inflate / rows)
    return float((norm.isf(alpha / segments) + norm.isf(1 - power)) * se)


def rows_needed(excess: float, base_rate: float, alpha: float = 1e-3, segments: int = 1, power: float = 0.8,
                reference_ratio: float = 3.0) -> int:
    """Customers a segment needs in one cohort for :func:`detectable_excess` to reach ``excess``."""
    if excess <= 0:
        raise ValueError(f"excess must be positive, got {excess}")
    per_row = detectable_excess(1, base_rate, alpha, segments, power, reference_ratio)
    return math.ceil((per_row / excess) ** 2)


def cusum_run_length(threshold: float, allowance: float = CUSUM_ALLOWANCE) -> float:
    """In-control average run length of a one-sided CUSUM on N(0, 1) increments (Siegmund's approximation)."""
    if threshold <= 0 or allowance <= 0:
        raise ValueError(f"threshold and allowance must be positive, got {threshold}, {allowance}")
    b = threshold + 1.166
    return float((math.exp(2 * allowance * b) - 2 * allowance * b - 1) / (2 * allowance ** 2))


def cusum_threshold(segments: int, false_alarm_rate: float = CUSUM_FALSE_ALARM_RATE,
                    allowance: float = CUSUM_ALLOWANCE) -> float:
    """The CUSUM threshold ``h`` whose run length keeps ``segments`` CUSUMs' false alarms under ``false_alarm_rate``
    per pass (union bound: ``segments / run_length(h) <= rate``)."""
    if segments < 1 or not 0 < false_alarm_rate < 1:
        raise ValueError(f"need segments >= 1 and 0 < false_alarm_rate < 1, got {segments}, {false_alarm_rate}")
    target = segments / false_alarm_rate
    lo, hi = 0.01, 50.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cusum_run_length(mid, allowance) < target else (lo, mid)
    return hi


def update_cusum(state: dict[str, Any], result: dict[str, Any] | None, cohort: str, *, model_version: str | None = None,
                 allowance: float = CUSUM_ALLOWANCE, false_alarm_rate: float = CUSUM_FALSE_ALARM_RATE,
                 min_rate_increase: float = 0.0) -> tuple[dict[str, Any], list[EarlyOutcomeFinding]]:
    """Add one cohort's segment excesses to the per-segment CUSUMs: ``(new state, findings)``.

    Parameters
    ----------
    state: the previous state (``{}`` at first): ``model_version``, ``last_cohort``, ``sums``, ``cohorts``.
    result: :func:`early_outcome_check`'s result for the cohort scored at ``cohort`` (ISO time).
    model_version: a different champion than the state's starts the sums from zero (its scores are new).
    min_rate_increase: a segment whose excess this cohort is below it adds at most ``allowance`` (0 = any).

    A cohort whose ``days`` outcome window overlaps the last one used is not added (the increments must
    be independent for the run length to hold); the findings then repeat nothing. A finding per segment
    at or above the threshold, which alarms and restarts that segment's sum.
    """
    if result is None or not result.get("findings"):
        return state, []
    at = pd.Timestamp(cohort)
    days = pd.Timedelta(days=int(result.get("days", 1)))
    if state.get("model_version") != model_version:
        state = {}
    last = state.get("last_cohort")
    if last is not None and at < pd.Timestamp(last) + days:
        return state, []
    segments = [f for f in result["findings"] if str(f["signal"]).startswith("segment:") and math.isfinite(f.get("z", math.nan))]
    if not segments:
        return state, []
    h = cusum_threshold(len(segments), false_alarm_rate, allowance)
    sums, counts = dict(state.get("sums", {})), dict(state.get("cohorts", {}))
    findings = []
    for f in segments:
        key = str(f["signal"]).removeprefix("segment:")
        z = float(f["z"]) if f["score"] >= min_rate_increase else min(float(f["z"]), allowance)
        sums[key] = max(0.0, sums.get(key, 0.0) + z - allowance)
        counts[key] = counts.get(key, 0) + 1 if sums[key] > 0 else 0
        if sums[key] >= h:
            findings.append(EarlyOutcomeFinding(
                f"cusum:{key}", f["column"], sums[key], h, false_alarm_rate, True,
                f"early outcome / concept (sequential): {key}: more customers went quiet within {result.get('days')} days "
                f"than the scores implied in {counts[key]} cohort(s) in a row (CUSUM {sums[key]:.1f} >= {h:.1f}; at most "
                f"{false_alarm_rate:.1%} of passes alarm falsely over {len(segments)} segments; this cohort's excess "
                f"{f['score']:+.1%})", float(f["z"])))
            sums[key], counts[key] = 0.0, 0
    new = {"model_version": model_version, "last_cohort": at.isoformat(), "sums": sums, "cohorts": counts,
           "threshold": h}
    return new, findings
