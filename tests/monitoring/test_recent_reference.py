"""The recent reference that confirms drift (monitoring/reference.py: recent_cutoff, confirm_drift) and the runner's hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tenure.monitoring.alerts import EpisodeTracker
from tenure.monitoring.drift import drift_report
from tenure.monitoring.policy import decide_retrain
from tenure.monitoring.reference import (
    confirm_drift,
    describe_confirmation,
    recent_cutoff,
    recent_reference,
)
from tenure.settings import MonitoringSettings

NUMERICAL, CATEGORICAL = ["tenure_days", "sessions_30d"], ["acquisition_channel"]
WEEKLY = [pd.Timestamp("2025-01-05", tz="UTC") + pd.Timedelta(days=7 * i) for i in range(60)]


def _frame(seed: int, n: int = 2000, age: float = 0.0, paid_ads: float = 0.0) -> pd.DataFrame:
    """Customers; ``age`` days added to tenure (the base ages), ``paid_ads`` share from a new channel."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(["organic", "email", "social"], n)
    channel = np.where(rng.random(n) < paid_ads, "paid_ads", channel)
    return pd.DataFrame({"tenure_days": rng.gamma(2.0, 300.0, n) + age, "sessions_30d": rng.poisson(6, n).astype(float),
                         "acquisition_channel": channel})


def _decide(summary):
    from datetime import UTC, datetime

    return decide_retrain(drift_share=summary.drift_share, drifted=summary.drifted, auc_drop=None, model_age_days=None,
                          settings=MonitoringSettings(), last_retrain_at=None, now=datetime.now(UTC), dry_run=True)


def test_recent_cutoff_is_the_snapshot_four_weeks_back_or_the_held_one():
    now = WEEKLY[40]
    assert recent_cutoff(WEEKLY, now, 28) == WEEKLY[36]
    # a held cut-off (an open episode) wins while it is still a snapshot before the window
    assert recent_cutoff(WEEKLY, now, 28, frozen=WEEKLY[30]) == WEEKLY[30]
    assert recent_cutoff(WEEKLY, now, 28, frozen=WEEKLY[45]) == WEEKLY[36]
    # nothing within +/- 7 days of four weeks back (history too short), or the rule switched off
    assert recent_cutoff(WEEKLY[:2], WEEKLY[2], 28) is None
    assert recent_cutoff(WEEKLY, now, 0) is None
    with pytest.raises(ValueError, match="recent_reference_days"):
        recent_cutoff(WEEKLY, now, -1)


def test_ageing_against_a_year_old_reference_is_set_aside_when_the_recent_reference_shows_no_change():
    settings = MonitoringSettings()
    year_ago, four_weeks_ago, now = _frame(1), _frame(2, age=337), _frame(3, age=365)
    primary, _ = drift_report(year_ago, now, NUMERICAL, CATEGORICAL, settings)
    assert "tenure_days" in primary.drifted and _decide(primary).triggered  # a year of ageing alone alarms
    recent, _ = drift_report(four_weeks_ago, now, NUMERICAL, CATEGORICAL, settings)
    both, detail = confirm_drift(primary, recent)
    assert both.drifted == [] and not _decide(both).triggered
    assert detail["set_aside"] == primary.drifted and detail["drifted_primary"] == primary.drifted
    line = describe_confirmation(detail, "same season", "recent: snapshot 2026-05-01, 28 days before the window")
    assert "set aside as slow change" in line and "tenure_days" in line


def test_a_sudden_change_drifts_against_both_and_still_alarms():
    settings = MonitoringSettings()
    year_ago, four_weeks_ago, now = _frame(1), _frame(2, age=337), _frame(3, age=365, paid_ads=0.3)
    primary, _ = drift_report(year_ago, now, NUMERICAL, CATEGORICAL, settings)
    recent, _ = drift_report(four_weeks_ago, now, NUMERICAL, CATEGORICAL, settings)
    both, detail = confirm_drift(primary, recent)
    assert both.drifted == ["acquisition_channel"] and "tenure_days" in detail["set_aside"]
    decision = _decide(both)
    assert decision.triggered and "key:acquisition_channel" in decision.kinds
    # no recent reference (too little history): the primary decides alone
    alone, detail = confirm_drift(primary, None)
    assert alone is primary and detail == {"applied": False}


def test_recent_reference_reads_the_snapshot_and_the_episode_keeps_it(tmp_path):
    rows = [_frame(i, n=300).assign(event_timestamp=cut, customer_id=np.arange(300)) for i, cut in enumerate(WEEKLY)]
    table = pd.concat(rows, ignore_index=True)
    frame, why, cut = recent_reference(table, WEEKLY[40], 28, lambda r: r, ["tenure_days", "acquisition_channel"])
    assert cut == WEEKLY[36] and len(frame) == 300 and "28 days before" in why
    assert list(frame.columns) == ["tenure_days", "acquisition_channel"]
    frame, why, cut = recent_reference(table, WEEKLY[42], 28, lambda r: r, ["tenure_days"], frozen=WEEKLY[36])
    assert cut == WEEKLY[36] and "held since the open drift episode began" in why
    none, why, cut = recent_reference(table, WEEKLY[2], 28, lambda r: r, ["tenure_days"])
    assert none is None and cut is None and "primary reference alone" in why
    # the episode state keeps the recent cut-off it opened with, across repeated alerts, until it closes
    tracker = EpisodeTracker(tmp_path / "episodes.json")
    assert tracker.should_alert("churn:drift", 0.1, ["key:acquisition_channel"])
    tracker.note("churn:drift", recent_reference_cutoff=WEEKLY[36].isoformat())
    assert tracker.should_alert("churn:drift", 0.5, ["drift_share"])
    assert tracker.episode("churn:drift")["recent_reference_cutoff"] == WEEKLY[36].isoformat()
    assert tracker.close("churn:drift") and tracker.episode("churn:drift") is None
