"""Early outcome / concept check (monitoring/early_outcome.py) and the same-season drift reference (monitoring/reference.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tenure.monitoring.early_outcome import alarms, delong_variance, early_outcome_check
from tenure.monitoring.policy import decide_retrain
from tenure.monitoring.reference import choose_reference, same_season_cutoffs, seasonal_reference
from tenure.settings import Settings


def _cohort(seed: int, n: int = 3000, annual_extra: float = 0.0) -> pd.DataFrame:
    """Scores and a 14-day 'went quiet' outcome that follows them; ``annual_extra`` more annual customers go quiet."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["free", "monthly", "annual"], n, p=[0.5, 0.3, 0.2])
    score = rng.beta(1.2, 5, n) * np.where(plan == "annual", 0.5, 1.0)
    quiet = np.clip(0.15 + 0.8 * score + np.where(plan == "annual", annual_extra, 0.0), 0, 1)
    return pd.DataFrame({"prediction": score, "outcome": (rng.random(n) < quiet).astype(int), "plan": plan,
                         "region": rng.choice(["north", "south"], n)})


def test_delong_auc_equals_sklearn_and_its_variance_matches_a_bootstrap():
    frame = _cohort(1)
    auc, var = delong_variance(frame["outcome"].to_numpy(), frame["prediction"].to_numpy())
    assert auc == pytest.approx(roc_auc_score(frame["outcome"], frame["prediction"]))
    rng = np.random.default_rng(0)
    boot = []
    for _ in range(200):
        i = rng.integers(0, len(frame), len(frame))
        boot.append(roc_auc_score(frame["outcome"].to_numpy()[i], frame["prediction"].to_numpy()[i]))
    assert np.sqrt(var) == pytest.approx(np.std(boot), rel=0.25)


def test_quiet_cohort_does_not_alarm():
    result = early_outcome_check(_cohort(2), _cohort(3), ["plan", "region"], days=14)
    assert not result["alarm"], [f["message"] for f in result["findings"] if f["alarm"]]
    assert result["segments_tested"] == 5
    assert abs(result["auc_drop"]) < 0.03


def test_concept_change_in_a_segment_alarms_and_names_it():
    result = early_outcome_check(_cohort(4, annual_extra=0.15), _cohort(5), ["plan", "region"], days=14)
    assert result["alarm"]
    fired = [f["signal"] for f in result["findings"] if f["alarm"]]
    assert "segment:plan=annual" in fired
    assert not any("region" in s for s in fired)
    message = next(f["message"] for f in result["findings"] if f["signal"] == "segment:plan=annual")
    assert message.startswith("early outcome / concept: plan=annual")
    # the policy turns it into a trigger with its own kind
    decision = decide_retrain(drift_share=0.0, drifted=[], auc_drop=None, model_age_days=None,
                              settings=Settings().monitoring, last_retrain_at=None, now=datetime.now(UTC),
                              dry_run=True, early_outcome=alarms(result))
    assert decision.triggered and "early_outcome:segment:plan=annual" in decision.kinds
    assert decision.blocked_by == "dry run"


def test_too_few_rows_or_missing_columns():
    small = early_outcome_check(_cohort(6, n=50), _cohort(7), ["plan"], days=7)
    assert not small["alarm"] and "too few rows" in small["note"]
    with pytest.raises(ValueError, match="current cohort lacks columns"):
        early_outcome_check(_cohort(6).drop(columns="outcome"), _cohort(7), days=7)


WEEKLY = [pd.Timestamp("2025-01-05", tz="UTC") + pd.Timedelta(days=7 * i) for i in range(80)]


def test_reference_selection_picks_the_same_season_when_history_covers_it():
    now = pd.Timestamp("2026-06-20", tz="UTC")
    cuts = same_season_cutoffs(WEEKLY, now, 365, 14)
    assert cuts and all(abs(c - (now - pd.Timedelta(days=365))) <= pd.Timedelta(days=14) for c in cuts)
    kind, chosen, why = choose_reference("auto", WEEKLY, now, 365, 14)
    assert kind == "same_season" and chosen == cuts and "same season" in why
    # history shorter than a season: auto (and same_season) fall back to the champion's sample; latest never looks
    short = WEEKLY[-20:]
    assert choose_reference("auto", short, now, 365, 14)[0] == "latest"
    assert choose_reference("same_season", short, now, 365, 14)[0] == "latest"
    assert choose_reference("latest", WEEKLY, now, 365, 14)[:2] == ("latest", [])
    with pytest.raises(ValueError, match="monitoring.reference"):
        choose_reference("yearly", WEEKLY, now, 365, 14)


def test_seasonal_reference_pools_the_snapshots_a_season_ago():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"event_timestamp": np.repeat(WEEKLY, 150), "customer_id": np.tile(np.arange(150), 80),
                          "sessions_30d": rng.poisson(3, 150 * 80), "plan": "free"})
    now = pd.Timestamp("2026-06-20", tz="UTC")

    def prepare(rows):
        return rows.assign(prediction=0.1, risk_band="low")

    frame, why = seasonal_reference(table, now, "auto", 365, 14, prepare, ["sessions_30d", "plan"])
    assert frame is not None and "same season" in why
    assert list(frame.columns) == ["sessions_30d", "plan", "prediction", "risk_band"]
    assert len(frame) == 150 * len(same_season_cutoffs(WEEKLY, now, 365, 14))
    frame, why = seasonal_reference(table, now, "latest", 365, 14, prepare, ["sessions_30d"])
    assert frame is None and "latest" in why


def test_power_of_one_cohort_says_why_a_small_shop_misses_a_segment_change():
    from tenure.monitoring.early_outcome import detectable_excess, rows_needed

    # ~220 annual customers at 2,500 customers, 15 % going quiet in 14 days, 12 segments, p < 0.001
    small = detectable_excess(220, 0.15, 1e-3, 12)
    assert 0.11 < small < 0.14  # the simulated 4-8 point rise is below it
    assert detectable_excess(1760, 0.15, 1e-3, 12) < 0.05  # eight times the customers (20,000): caught
    assert detectable_excess(220, 0.15, 1e-2, 12) < small < detectable_excess(220, 0.15, 1e-3, 24)
    need = rows_needed(0.06, 0.15, 1e-3, 12)
    assert detectable_excess(need, 0.15, 1e-3, 12) <= 0.06 < detectable_excess(need - 5, 0.15, 1e-3, 12)
    with pytest.raises(ValueError):
        detectable_excess(0, 0.15)


def _segment_result(rng, shift: float, days: int = 7, segments: int = 10) -> dict:
    """One cohort's segment findings: z ~ N(shift, 1) for the first segment, N(0, 1) for the others."""
    z = rng.normal(0.0, 1.0, segments)
    z[0] += shift
    return {"days": days, "findings": [{"signal": f"segment:plan=s{i}", "column": "plan", "score": 0.05 * v, "z": float(v)}
                                       for i, v in enumerate(z)]}


def test_cusum_threshold_keeps_the_false_alarm_rate_and_a_lasting_shift_alarms():
    from tenure.monitoring.early_outcome import cusum_run_length, cusum_threshold, update_cusum

    h = cusum_threshold(10, 0.005)
    assert 10 / cusum_run_length(h) == pytest.approx(0.005, rel=1e-3)
    start = pd.Timestamp("2026-01-05", tz="UTC")
    rng = np.random.default_rng(7)
    # null: 10 segments over 400 weekly cohorts, each an independent N(0, 1) excess
    state, alarmed = {}, 0
    for week in range(400):
        state, found = update_cusum(state, _segment_result(rng, 0.0), (start + pd.Timedelta(weeks=week)).isoformat(),
                                    min_rate_increase=0.0)
        alarmed += bool(found)
    assert alarmed / 400 <= 0.015  # the 0.5 % bound (Siegmund, union over segments), with sampling slack
    # a lasting shift of 2.3 standard errors (220 annual customers, +6 points): alarms within six cohorts, mostly
    # within three, and names the segment
    first = []
    for seed in range(5):
        rng, state = np.random.default_rng(100 + seed), {}
        hits = []
        for week in range(6):
            state, found = update_cusum(state, _segment_result(rng, 2.3), (start + pd.Timedelta(weeks=week)).isoformat(),
                                        model_version="3", min_rate_increase=0.0)
            hits += [(week, f.signal) for f in found]
        assert hits and hits[0][1] == "cusum:plan=s0", hits
        first.append(hits[0][0])
    assert max(first) <= 5 and sorted(first)[2] <= 2, first
    # overlapping outcome windows are not added twice; a new champion starts from zero
    before = dict(state)
    again, found = update_cusum(state, _segment_result(rng, 5.0, days=14), state["last_cohort"], model_version="3")
    assert again == before and found == []
    fresh, _ = update_cusum(state, _segment_result(rng, 0.0), (start + pd.Timedelta(weeks=10)).isoformat(),
                            model_version="4", min_rate_increase=0.0)
    assert fresh["model_version"] == "4" and max(fresh["sums"].values()) < state["threshold"]
