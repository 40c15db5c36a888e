"""The retrain policy: when drift, a realised performance drop or model age sets off retraining.

Pure decision (:func:`decide_retrain`) plus a tiny state file for the cool-down.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tenure.monitoring.state import load_json_state, save_json_state


@dataclasses.dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain now, why, and what (if anything) holds it back."""

    triggered: bool
    reasons: list[str]
    blocked_by: str | None = None
    kinds: list[str] = dataclasses.field(default_factory=list)

    @property
    def fire(self) -> bool:
        """Triggered and not blocked."""
        return self.triggered and self.blocked_by is None

    def describe(self) -> str:
        """One line for alerts."""
        if not self.triggered:
            return "no retraining: the policy's conditions are not met"
        if self.blocked_by:
            return f"retraining held back ({self.blocked_by}); triggers: {'; '.join(self.reasons)}"
        return f"retraining started; triggers: {'; '.join(self.reasons)}"


def decide_retrain(
    *,
    drift_share: float | None,
    drifted: list[str],
    auc_drop: float | None,
    model_age_days: float | None,
    settings,
    last_retrain_at: datetime | None,
    now: datetime,
    dry_run: bool,
    can_retrain: bool = True,
    estimated_auc_drop: float | None = None,
    prediction_drifted: bool = False,
    event_shifts: list[Any] | None = None,
    early_outcome: list[Any] | None = None,
) -> RetrainDecision:
    """Apply the policy of ``settings`` (the ``monitoring`` section).

    Triggers: share of drifted features above ``drift_share_threshold``; any of
    ``key_features`` drifted; realised ROC-AUC below the promised one by more than
    ``auc_drop_tolerance``; the CBPE-estimated ROC-AUC of the current window below the promised
    one by more than ``estimated_auc_drop_tolerance`` (before the labels mature); the churn score
    distribution drifted, when ``prediction_drift_triggers``; an event-level shift
    (``event_shifts``: :class:`~tenure.monitoring.event_drift.EventShift` with ``alarm``); an early-outcome
    finding (``early_outcome``: :class:`~tenure.monitoring.early_outcome.EarlyOutcomeFinding` with ``alarm``:
    ROC-AUC or calibration against customers gone quiet within ``early_outcome_days``); model older than
    ``max_model_age_days``. Held back by the
    cool-down (``retrain_cooldown_hours`` since the last retrain), dry-run mode, or no
    retrain action being available.
    """
    reasons, kinds = [], []
    if drift_share is not None and drift_share > settings.drift_share_threshold:
        reasons.append(f"{drift_share:.0%} of features drifted (threshold {settings.drift_share_threshold:.0%})")
        kinds.append("drift_share")
    key = sorted(set(drifted) & set(settings.key_features))
    if key:
        reasons.append(f"key features drifted: {', '.join(key)}")
        kinds.extend(f"key:{k}" for k in key)
    if auc_drop is not None and auc_drop > settings.auc_drop_tolerance:
        reasons.append(f"realised ROC-AUC {auc_drop:.3f} below the promised (tolerance {settings.auc_drop_tolerance})")
        kinds.append("auc_drop")
    if estimated_auc_drop is not None and estimated_auc_drop > settings.estimated_auc_drop_tolerance:
        reasons.append(f"estimated ROC-AUC {estimated_auc_drop:.3f} below the promised before labels "
                       f"(CBPE; tolerance {settings.estimated_auc_drop_tolerance})")
        kinds.append("estimated_auc_drop")
    for shift in event_shifts or []:
        if shift.alarm:
            reasons.append(shift.message)
            kinds.append(f"event:{shift.signal}")
    for finding in early_outcome or []:
        if finding.alarm:
            reasons.append(finding.message)
            kinds.append(f"early_outcome:{finding.signal}")
    if prediction_drifted and settings.prediction_drift_triggers:
        reasons.append("churn score distribution drifted")
        kinds.append("prediction_drift")
    if model_age_days is not None and model_age_days > settings.max_model_age_days:
        reasons.append(f"model is {model_age_days:.0f} days old (maximum {settings.max_model_age_days})")
        kinds.append("model_age")
    return retrain_decision(reasons, kinds, dry_run=dry_run, can_retrain=can_retrain,
                            last_retrain_at=last_retrain_at, now=now, cooldown_hours=settings.retrain_cooldown_hours)


def retrain_decision(reasons: list[str], kinds: list[str], *, dry_run: bool, can_retrain: bool,
                     last_retrain_at: datetime | None, now: datetime, cooldown_hours: float) -> RetrainDecision:
    """Retrain when there are reasons, unless a dry run, no retrain action or the cool-down blocks it.

    One rule for every model's triggers (churn here, the recommender in :mod:`monitoring.watch`).
    """
    if not reasons:
        return RetrainDecision(False, [])
    blocked = None
    if dry_run:
        blocked = "dry run"
    elif not can_retrain:
        blocked = "no retrain action configured"
    elif last_retrain_at is not None and now - last_retrain_at < timedelta(hours=cooldown_hours):
        until = last_retrain_at + timedelta(hours=cooldown_hours)
        blocked = f"cool-down until {until.isoformat(timespec='minutes')}"
    return RetrainDecision(True, reasons, blocked, kinds)


class RetrainState:
    """Last retrain time and outcome, in ``state_dir/retrain_state.json``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def last_retrain_at(self, model: str) -> datetime | None:
        """When ``model`` was last retrained by monitoring, or None."""
        data = self._load().get(model)
        return datetime.fromisoformat(data["at"]) if data else None

    def record(self, model: str, outcome: dict[str, Any], at: datetime | None = None) -> None:
        """Remember a retrain of ``model`` and its outcome."""
        data = self._load()
        data[model] = {"at": (at or datetime.now(UTC)).isoformat(), "outcome": outcome}
        save_json_state(self.path, data)

    def _load(self) -> dict[str, Any]:
        return load_json_state(self.path)
