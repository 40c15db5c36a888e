"""The experiment arms a service answer carries (``arms``: experiment -> arm), and the arm's /recommend strategy.

A thin, cheap wrapper over :class:`tenure.experiments.assignment.Assigner` for the hot path: with no
experiments defined it does nothing at all; otherwise one BLAKE2b hash per customer for the holdout
and one per active experiment (about a microsecond each).
"""

from __future__ import annotations

from tenure.experiments.assignment import HOLDOUT_ARM, Assigner, CompiledExperiment


class ExperimentArms:
    """Arms of the active experiments for answers and the prediction log.

    Parameters
    ----------
    assigner:
        The holdout and experiment definitions.
    """

    def __init__(self, assigner: Assigner) -> None:
        self.assigner = assigner
        self._any = bool(assigner)

    @classmethod
    def from_settings(cls, settings) -> ExperimentArms:
        """From ``settings.experiments`` (read once, when the service starts)."""
        return cls(Assigner.from_settings(settings))

    def active(self, surface: str, now_s: float | None = None) -> list[CompiledExperiment]:
        """Experiments active now that apply to ``surface`` (``churn`` or ``recommend``)."""
        return self.assigner.active(surface, now_s) if self._any else []

    def of(self, customer_id: str, active: list[CompiledExperiment]) -> dict[str, str]:
        """Experiment -> arm of one customer (``holdout`` in each for a held-out customer); {} without experiments."""
        return self.assigner.arms(customer_id, active) if active else {}

    def recommender_strategy(self, arms: dict[str, str]) -> str:
        """``popular`` when an arm of the customer serves the most popular items, else ``model``."""
        for name, arm in arms.items():
            if arm != HOLDOUT_ARM and self.assigner.experiments[name].recommender.get(arm) == "popular":
                return "popular"
        return "model"
