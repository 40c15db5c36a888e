"""Assignment of customers to the global holdout and to experiment arms: pure, salted hashing.

A customer's place is a function of ``(salt, customer_id)`` only: no state, no table, the same
answer in every process, replica and restart, and a new salt re-randomises. The hash is
BLAKE2b (8-byte digest) of ``"<salt>\\x1f<customer_id>"`` read as an unsigned integer and
scaled to ``[0, 1)``; an arm owns a contiguous slice of that interval (its share).

The global holdout (``experiments.holdout_share``, default 10%) is drawn first with its own
salt: holdout customers are in no experiment, are never contacted, and carry the arm
``"holdout"`` for every active experiment so that answers and logs say why.

Imported by serving on the hot path: only the standard library here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

HOLDOUT_ARM = "holdout"
"""The arm reported for a customer in the global holdout."""

_SCALE = float(1 << 64)


class UnknownExperimentError(ValueError):
    """An experiment name that is neither defined in settings nor found in the treatment events."""

_SEP = "\x1f"


def bucket(salt: str, customer_id: str) -> float:
    """The customer's position in ``[0, 1)`` for this salt (uniform over customers, stable forever).

    Parameters
    ----------
    salt:
        The experiment's salt (or the holdout's).
    customer_id:
        The customer.

    Returns
    -------
    float in ``[0, 1)``.
    """
    digest = hashlib.blake2b(f"{salt}{_SEP}{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def pick_arm(position: float, cumulative: Sequence[float], names: Sequence[str]) -> str:
    """The arm whose slice of ``[0, 1)`` holds ``position`` (``cumulative`` ends at 1)."""
    for bound, name in zip(cumulative, names):
        if position < bound:
            return name
    return names[-1]  # rounding of the last bound


def _as_utc(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass(frozen=True)
class CompiledExperiment:
    """An experiment definition prepared for fast assignment.

    Attributes
    ----------
    name: experiment name.
    salt: hash salt (the name when the definition has none).
    arms: arm names, in definition order.
    cumulative: cumulative shares, same order (the last is 1).
    control: the control arm.
    surfaces: answers that carry the arm (``churn``, ``recommend``).
    status: ``draft``, ``active``, ``paused`` or ``finished``.
    start_s, end_s: window in epoch seconds (None = open).
    recommender: arm -> ``model`` or ``popular`` (the /recommend strategy of that arm).
    """

    name: str
    salt: str
    arms: tuple[str, ...]
    cumulative: tuple[float, ...]
    control: str
    surfaces: frozenset[str]
    status: str
    start_s: float | None
    end_s: float | None
    recommender: dict[str, str]

    @classmethod
    def from_definition(cls, definition) -> CompiledExperiment:
        """From an :class:`tenure.settings.ExperimentDefinition` (validated: shares sum to 1, unique arms)."""
        total = 0.0
        cumulative = []
        for arm in definition.arms:
            total += arm.share
            cumulative.append(total)
        cumulative[-1] = 1.0
        return cls(name=definition.name, salt=definition.salt or definition.name,
                   arms=tuple(a.name for a in definition.arms), cumulative=tuple(cumulative),
                   control=definition.control, surfaces=frozenset(definition.applies_to), status=definition.status,
                   start_s=_as_utc(definition.start), end_s=_as_utc(definition.end),
                   recommender={a.name: a.recommender for a in definition.arms})

    def is_active(self, now_s: float) -> bool:
        """Active status and ``now_s`` (epoch seconds) inside the window."""
        return (self.status == "active" and (self.start_s is None or now_s >= self.start_s)
                and (self.end_s is None or now_s <= self.end_s))

    def arm_of(self, customer_id: str) -> str:
        """The arm of a customer outside the holdout (ignores status and window)."""
        return pick_arm(bucket(self.salt, customer_id), self.cumulative, self.arms)


class Assigner:
    """The holdout and the arms of every experiment, for one customer at a time or many.

    Parameters
    ----------
    holdout_share:
        Share of all customers in the global holdout (0 = none).
    holdout_salt:
        Salt of the holdout hash.
    experiments:
        Experiment definitions (:class:`tenure.settings.ExperimentDefinition`).
    """

    def __init__(self, holdout_share: float, holdout_salt: str, experiments: Iterable = ()) -> None:
        if not 0 <= holdout_share < 1:
            raise ValueError(f"holdout_share must be in [0, 1), got {holdout_share}")
        self.holdout_share = float(holdout_share)
        self.holdout_salt = holdout_salt
        self.experiments = {e.name: CompiledExperiment.from_definition(e) for e in experiments}

    @classmethod
    def from_settings(cls, settings) -> Assigner:
        """From ``settings.experiments``."""
        x = settings.experiments
        return cls(x.holdout_share, x.holdout_salt, x.definitions)

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def in_holdout(self, customer_id: str) -> bool:
        """Whether the customer is in the global holdout (never contacted)."""
        return self.holdout_share > 0 and bucket(self.holdout_salt, customer_id) < self.holdout_share

    def active(self, surface: str | None = None, now_s: float | None = None) -> list[CompiledExperiment]:
        """Experiments active at ``now_s`` (default: now) that apply to ``surface`` (None: any)."""
        now_s = datetime.now(UTC).timestamp() if now_s is None else now_s
        return [e for e in self.experiments.values()
                if e.is_active(now_s) and (surface is None or surface in e.surfaces)]

    def arms(self, customer_id: str, experiments: Sequence[CompiledExperiment]) -> dict[str, str]:
        """Experiment name -> arm for ``experiments`` (``"holdout"`` for each when the customer is held out)."""
        if not experiments:
            return {}
        if self.in_holdout(customer_id):
            return {e.name: HOLDOUT_ARM for e in experiments}
        return {e.name: e.arm_of(customer_id) for e in experiments}

    def assign(self, name: str, customer_ids: Iterable[str]) -> list[str]:
        """Arm (or ``"holdout"``) of each customer in experiment ``name``, whatever its status.

        Raises
        ------
        UnknownExperimentError
            When ``name`` is not a defined experiment (the message lists the known ones).
        """
        experiment = self.experiment(name)
        return [HOLDOUT_ARM if self.in_holdout(cid) else experiment.arm_of(cid) for cid in customer_ids]

    def experiment(self, name: str) -> CompiledExperiment:
        """The compiled experiment ``name``; :class:`UnknownExperimentError` naming the known ones otherwise."""
        try:
            return self.experiments[name]
        except KeyError:
            known = ", ".join(sorted(self.experiments)) or "none defined (experiments.definitions)"
            raise UnknownExperimentError(f"unknown experiment {name!r}; known: {known}") from None
