"""A retention campaign in the simulated shop, with a known and uneven effect, and its ground truth.

On the campaign's day every customer who is still a customer (signed up, not gone) is put in an
arm at random (its own random stream: the campaign tool's randomisation) and gets a
``treatment`` event (the control arm too, with no offer: assigned and deliberately not
contacted). For ``horizon_days`` from then on, the daily hazard of deciding to leave of a
treated customer is multiplied by ``exp(delta)``, where ``delta`` depends on the customer's
segment on the campaign day (times ``effect_scale``; 0 = a campaign without effect):

- ``persuadable``: price-sensitive (free plan or the cheapest price tier) and at risk (hazard at or
  above the eligible customers' ``risk_quantile``): the offer keeps many of them (``delta = -1.6``);
- ``sleeping_dog``: at risk and not price-sensitive: the contact reminds them to leave (``+0.9``);
- ``sure_thing``: not at risk: they stay anyway (``-0.2``, a tiny absolute change);
- ``lost_cause``: already decided to leave before the campaign (fading): no effect.

So that the outcome at the horizon can be read from events, a customer who decides to leave
inside a campaign's window leaves at once and sends ``subscription_cancel``. The campaign's
outcome ``churned`` is the data contract's label as of the treatment: a cancellation, or no
qualifying activity (sessions, views, carts, purchases, rebuys) within the horizon.

The truth, per customer (:attr:`CampaignRun.truth`): the arm and segment, both potential
outcomes ``churn_if_control`` / ``churn_if_treated`` and ``retention_effect`` (their
difference, control minus treated). Both worlds share every random number of the customer
until the customer decides to leave in one of them, so the other arm's decision is known
exactly (same daily draw against the other arm's hazard); only the activity after a real
departure is not, and enters as its probability (the customer's Poisson sessions and rebuys).
``expected_retention_effect`` is the same without any realised draw: what a policy can expect
(used to count the saves of an audience).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SEGMENT_DELTAS = {"persuadable": -1.6, "sleeping_dog": 0.9, "sure_thing": -0.2, "lost_cause": 0.0}
"""Log-hazard change of a treated customer, by segment (times ``effect_scale``)."""
_DAY_S = 86_400


@dataclass(frozen=True)
class CampaignSpec:
    """A simulated retention campaign.

    Attributes
    ----------
    name: campaign (experiment) name in the treatment events.
    day: day index (0-based) of the send.
    treated_share: share of eligible customers in the treated arm (the rest is control).
    arm: the treated arm's name; control is ``control``.
    offer, channel: what the treated arm gets, and how.
    horizon_days: how long the offer acts (and the outcome window).
    effect_scale: multiplies every segment's effect (0 = no true effect).
    risk_quantile: hazard quantile from which a customer is at risk.
    """

    name: str = "winback"
    day: int = 100
    treated_share: float = 0.5
    arm: str = "offer"
    offer: str = "10% off the next order"
    channel: str = "email"
    horizon_days: int = 30
    effect_scale: float = 1.0
    risk_quantile: float = 0.6

    def check(self, days: int) -> None:
        """Raise ValueError naming the bad field."""
        if not 0 <= self.day < days:
            raise ValueError(f"campaign day must be within the simulated 0..{days - 1}, got {self.day}")
        if not 0 < self.treated_share < 1:
            raise ValueError(f"campaign treated_share must be in (0, 1), got {self.treated_share}")
        if self.horizon_days < 1:
            raise ValueError(f"campaign horizon_days must be at least 1, got {self.horizon_days}")
        if self.arm == "control" or not self.arm:
            raise ValueError(f"campaign arm must be a name other than 'control', got {self.arm!r}")
        if not 0 < self.risk_quantile < 1:
            raise ValueError(f"campaign risk_quantile must be in (0, 1), got {self.risk_quantile}")


class CampaignRun:
    """One campaign inside :func:`tenure.features.simulator.simulate_shop`'s daily loop.

    Parameters
    ----------
    spec: the campaign.
    seed: the shop's seed (the arm draw has its own stream from it).
    engagement0, decay, first_day: per-customer arrays of shape (n,) of the simulator (the
        engagement path of a customer who does not leave).
    has_staple, period, phase: the rebuy rhythm, arrays of shape (n,).
    """

    def __init__(self, spec: CampaignSpec, seed: int, engagement0: np.ndarray, decay: np.ndarray,
                 first_day: np.ndarray, has_staple: np.ndarray, period: np.ndarray, phase: np.ndarray) -> None:
        self.spec = spec
        self.seed = seed
        self.engagement0, self.decay, self.first_day = engagement0, decay, first_day
        self.has_staple, self.period, self.phase = has_staple, period, phase
        n = len(engagement0)
        self.end = spec.day + spec.horizon_days  # days spec.day .. end-1 are in the window
        self.eligible = np.zeros(n, dtype=bool)
        self.open = np.zeros(n, dtype=bool)  # status 0 on the day: the campaign may change their decision
        self.treated = np.zeros(n, dtype=bool)
        self.segment_names = np.full(n, "lost_cause", dtype=object)
        self.delta = np.zeros(n)
        self.decided_real = np.zeros(n, dtype=bool)
        self.decided_shadow = np.zeros(n, dtype=bool)
        self.active = np.zeros(n, dtype=bool)
        self.cancelled = np.zeros(n, dtype=bool)  # sent subscription_cancel inside the window
        self.log_quiet_after = np.zeros(n)  # log P(no activity) after a real departure, had the customer stayed
        self.log_quiet_all = np.zeros(n)  # log P(no activity in the window) of a customer who stays
        self.cum_h = {"control": np.zeros(n), "treated": np.zeros(n)}
        self._base_log_h = None

    # --- hooks of the daily loop ---------------------------------------------------------------
    def adjust_hazard(self, t: int, log_h: np.ndarray, alive: np.ndarray, status: np.ndarray, plan: np.ndarray,
                      tier_pref: np.ndarray, sessions: np.ndarray, rebuy: np.ndarray) -> np.ndarray:
        """The day's log-hazard with the campaign's effect on treated customers (arrays of shape (n,))."""
        if t == self.spec.day:
            self._start(log_h, alive, status, plan, tier_pref)
        if not self.spec.day <= t < self.end:
            return log_h
        self.active |= self.eligible & ((sessions > 0) | rebuy)
        age = np.maximum(t - self.first_day, 0)
        stay_eng = self.engagement0 * np.exp(-self.decay * age)
        due = self.has_staple & ((t - self.phase) % self.period == 0)
        log_quiet = -stay_eng + np.log1p(-0.85 * np.exp(-self.decay * age) * due)
        self.log_quiet_all += log_quiet
        self.log_quiet_after += np.where(self.decided_real, log_quiet, 0.0)
        self._base_log_h = log_h
        for name, shift in (("control", 0.0), ("treated", self.delta)):
            self.cum_h[name] += np.where(self.open, np.exp(log_h + shift), 0.0)
        return log_h + np.where(self.treated, self.delta, 0.0)

    def after_draw(self, t: int, u_leave: np.ndarray, leave: np.ndarray, abrupt: np.ndarray) -> np.ndarray:
        """Record the day's decisions (real arm, and the other arm with the same draw); window leavers go at once."""
        if not self.spec.day <= t < self.end:
            return abrupt
        other = np.where(self.treated, 0.0, self.delta)  # the arm the customer is not in
        p_other = -np.expm1(-np.exp(self._base_log_h + other))
        self.decided_shadow |= self.open & ~self.decided_shadow & (u_leave < p_other)
        in_window = self.open & leave
        self.decided_real |= in_window
        return abrupt | in_window

    def force_cancel(self, t: int, gone: np.ndarray, cancel: np.ndarray) -> np.ndarray:
        """A customer who leaves inside the window cancels (the outcome is then visible in the events)."""
        if not self.spec.day <= t < self.end:
            return cancel
        cancel = cancel | (gone & self.open & self.decided_real)
        self.cancelled |= cancel & self.eligible
        return cancel

    def _start(self, log_h, alive, status, plan, tier_pref) -> None:
        spec = self.spec
        n = len(log_h)
        self.eligible = alive & (status < 2)
        self.open = alive & (status == 0)
        rng = np.random.default_rng([self.seed, zlib.crc32(f"campaign:{spec.name}".encode())])
        self.treated = self.eligible & (rng.random(n) < spec.treated_share)
        cut = np.quantile(log_h[self.open], spec.risk_quantile) if self.open.any() else np.inf
        at_risk = log_h >= cut
        price_sensitive = (plan == 0) | (tier_pref == 0)
        seg = np.where(~self.open, "lost_cause",
                       np.where(~at_risk, "sure_thing", np.where(price_sensitive, "persuadable", "sleeping_dog")))
        self.segment_names = seg
        self.delta = np.where(self.open, np.array([SEGMENT_DELTAS[s] for s in seg]) * spec.effect_scale, 0.0)

    # --- results -------------------------------------------------------------------------------
    def treatment_events(self, customer_ids: np.ndarray, start_ns: int, seed: int) -> pd.DataFrame:
        """One ``treatment`` event per eligible customer, at the start of the campaign's day (canonical shape)."""
        from tenure.features.schema import conform

        idx = np.flatnonzero(self.eligible)
        treated = self.treated[idx]
        at = pd.to_datetime(np.full(len(idx), start_ns + self.spec.day * _DAY_S * 10**9), unit="ns", utc=True)
        frame = pd.DataFrame({
            "event_id": [f"t{seed}-{self.spec.name}-{cid}" for cid in customer_ids[idx]],
            "customer_id": customer_ids[idx].astype(object),
            "event_at": at,
            "event_type": "treatment",
            "channel": np.where(treated, self.spec.channel, None).astype(object),
            "campaign": self.spec.name,
            "arm": np.where(treated, self.spec.arm, "control").astype(object),
            "offer": np.where(treated, self.spec.offer, None).astype(object),
        })
        return conform(frame, "events")

    def truth(self, customer_ids: np.ndarray) -> pd.DataFrame:
        """The campaign's ground truth, one row per eligible customer (see the module docstring)."""
        idx = np.flatnonzero(self.eligible)
        quiet_all = np.exp(self.log_quiet_all)
        # realised: the real arm's outcome is what happened; the other arm's follows from its decision
        real = (self.decided_real | self.cancelled | ~self.active).astype(float)
        shadow_stay = np.where(self.decided_real, (~self.active) * np.exp(self.log_quiet_after),
                               (~self.active).astype(float))
        shadow = np.where(self.decided_shadow, 1.0, shadow_stay)
        churn_t = np.where(self.treated, real, shadow)
        churn_c = np.where(self.treated, shadow, real)
        # lost causes: the same in both worlds (what happened)
        churn_t = np.where(self.open, churn_t, real)
        churn_c = np.where(self.open, churn_c, real)
        p_t = 1 - np.exp(-self.cum_h["treated"])
        p_c = 1 - np.exp(-self.cum_h["control"])
        expected = np.where(self.open, (p_c - p_t) * (1 - quiet_all), 0.0)
        return pd.DataFrame({
            "customer_id": customer_ids[idx].astype(object),
            "campaign": self.spec.name,
            "arm": np.where(self.treated[idx], self.spec.arm, "control").astype(object),
            "segment": self.segment_names[idx].astype(object),
            "churn_if_control": churn_c[idx],
            "churn_if_treated": churn_t[idx],
            "retention_effect": (churn_c - churn_t)[idx],
            "expected_retention_effect": expected[idx],
            "effect_scale": self.spec.effect_scale,
        })


TRUTH_FILE = "campaign_truth.parquet"
"""The campaign's ground truth, written beside the generated raw files."""


def write_campaign_truth(truth: pd.DataFrame, out_dir) -> Path:
    """Write a campaign's truth (:meth:`CampaignRun.truth`) as ``out_dir/campaign_truth.parquet`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / TRUTH_FILE
    tmp = out / f".{TRUTH_FILE}.tmp"
    truth.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
