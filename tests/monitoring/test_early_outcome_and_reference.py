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
