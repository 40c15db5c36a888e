"""The promotion gate: a challenger replaces the champion only when it beats its own baselines and is
not worse than the champion on the same data.

Two model-specific checks live with each model: the baseline check (the churn model against
logistic regression and the recency rule on its test window,
``training.churn_pipeline.check_baselines``), which applies to the first model too, and the
comparison with the champion on the same held-out data
(``training.churn_pipeline.compare_for_gate``, ``training.recommender_pipeline.compare_for_gate``).
``force_reason`` overrides both, and is recorded.
The registry (``registry.models``) records each decision as tags on the versions involved.
With ``compute.engine: dask`` the churn comparison's test window is built on the cluster
(:func:`churn_test_window_on_cluster`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenure.registry.models import (
    CHALLENGER,
    CHAMPION,
    HISTORY_TAG,
    GateDecision,
    alias_version,
    champion_history,
    configure_mlflow,
    model_name_for,
    move_champion,
    record_decision,
)
from tenure.settings import Settings
from tenure.training.churn_pipeline import check_baselines as churn_baselines
from tenure.training.churn_pipeline import compare_for_gate as compare_churn
from tenure.training.recommender_pipeline import compare_for_gate as compare_recommender
from tenure.training.uplift_pipeline import check_baselines as uplift_baselines
from tenure.training.uplift_pipeline import compare_for_gate as compare_uplift

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

Comparator = Callable[[Settings, str, str], GateDecision]
BaselineCheck = Callable[[Settings, str], GateDecision]
_COMPARATORS: dict[str, Comparator] = {"churn": compare_churn, "recommender": compare_recommender,
                                       "uplift": compare_uplift}
_BASELINE_CHECKS: dict[str, BaselineCheck] = {"churn": churn_baselines, "uplift": uplift_baselines}


def promote(
    settings: Settings,
    kind: str,
    force_reason: str | None = None,
    compare: Comparator | None = None,
    baselines: BaselineCheck | None = None,
) -> GateDecision:
    """Run the promotion gate for the ``kind`` model's ``challenger``.

    The challenger becomes champion when it beats its own baselines (the model's baseline
    check, if it has one; the first model included) and then either there is no champion
    yet or the model's comparator (same held-out data for both) finds it not worse; or when
    ``force_reason`` is given (recorded, with what the gate would have said). The decision
    and its numbers are written as tags on both versions.

    Raises
    ------
    ValueError
        When the model has no ``challenger`` version to judge.
    """
    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    challenger = alias_version(client, name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no '{CHALLENGER}' version to promote; train one first")
    champion = alias_version(client, name, CHAMPION)
    base = {"model_name": name, "challenger_version": challenger, "champion_version": champion}

    if champion == challenger:
        return GateDecision(promoted=False, reason=f"version {challenger} is already the champion", **base)
    if force_reason is not None:
        if not force_reason.strip():
            raise ValueError("--force needs a non-empty reason")
        check = baselines or _BASELINE_CHECKS.get(kind)
        against = check(settings, challenger) if check is not None else None
        overridden = f" (overrides: {against.reason})" if against is not None and not against.promoted else ""
        decision = GateDecision(promoted=True, reason=f"forced: {force_reason.strip()}{overridden}", forced=True,
                                challenger_metrics=against.challenger_metrics if against else {}, **base)
    else:
        check = baselines or _BASELINE_CHECKS.get(kind)
        against = check(settings, challenger) if check is not None else None
        if against is not None and not against.promoted:
            decision = dataclasses.replace(against, **base)
        elif champion is None:
            beats = f"; {against.reason}" if against is not None else ""
            decision = GateDecision(promoted=True, reason=f"no champion yet{beats}",
                                    challenger_metrics=against.challenger_metrics if against else {}, **base)
        else:
            compared = (compare or _comparator(settings, kind))(settings, champion, challenger)
            if against is not None and compared.promoted:
                compared = dataclasses.replace(compared, reason=f"{compared.reason}; {against.reason}")
            decision = dataclasses.replace(compared, **base)

    if decision.promoted:
        move_champion(client, name, challenger, champion)
        client.delete_registered_model_alias(name, CHALLENGER)
        logger.info("%s: version %s promoted to champion (%s)", name, challenger, decision.reason)
    else:
        logger.warning("%s: version %s not promoted: %s", name, challenger, decision.reason)
    record_decision(client, name, challenger, decision, "challenger")
    record_decision(client, name, champion, decision, "champion")
    return decision


def _comparator(settings: Settings, kind: str) -> Comparator:
    """The ``kind`` model's comparison with the champion; with ``compute.engine: dask`` the churn test window
    is built on the cluster (:func:`compare_churn_on_cluster`)."""
    if kind == "churn" and settings.compute.engine == "dask":
        return compare_churn_on_cluster
    return _COMPARATORS[kind]


def churn_test_window_on_cluster(settings: Settings, client=None, store=None) -> pd.DataFrame:
    """The churn test window (the latest ``churn.test_cutoffs`` matured cut-offs) built on the cluster.

    The cut-offs are chosen as :func:`training.churn_dataset.split_by_time` chooses them; labels and the
    point-in-time join of the ``churn_v1`` views run per customer-hash partition (:mod:`compute.frames`) for
    those cut-offs only, and only those rows reach this machine: the rows of the local test window, in
    (cut-off, customer) order.

    Raises
    ------
    ValueError
        Without feature snapshots, with too few matured cut-offs, or when the window has a single class.
    """
    from tenure.training.churn_dataset import LABEL_COLUMN, split_cutoffs

    if client is None:
        from tenure.compute.cluster import dask_client

        with dask_client(settings.compute) as own:
            return churn_test_window_on_cluster(settings, own, store)
    from tenure.training.churn_distributed import build_training_frame_on_cluster

    c = settings.churn

    def test_cutoffs(cutoffs: list) -> list:
        return split_cutoffs(cutoffs, c.validation_cutoffs, c.test_cutoffs, c.horizon_days)[2]

    frame, test_times = build_training_frame_on_cluster(settings, store, select=test_cutoffs)
    test = frame.compute()
    test = test.sort_values(["event_timestamp", "customer_id"], kind="stable").reset_index(drop=True)
    if test[LABEL_COLUMN].nunique() < 2:
        raise ValueError(f"the test window has a single class ({len(test)} rows); churn cannot be judged there; "
                         "use more data or a different horizon")
    logger.info("gate: churn test window of %d rows at %s built on the cluster", len(test),
                ", ".join(f"{t:%Y-%m-%d}" for t in test_times))
    return test


def compare_churn_on_cluster(settings: Settings, champion_version: str, challenger_version: str) -> GateDecision:
    """:func:`training.churn_pipeline.compare_for_gate` on the test window built on the cluster
    (:func:`churn_test_window_on_cluster`), for models of this workspace's events; other sources are rebuilt
    locally as before."""
    from tenure.features.customer_features import CUSTOMER_CATEGORICAL_FEATURES
    from tenure.training.churn_dataset import TimeSplit
    from tenure.training.churn_pipeline import NON_FEATURES, ChurnData, _run_tags

    if _run_tags(settings, challenger_version).get("tenure.source", "generated") != "generated":
        return compare_churn(settings, champion_version, challenger_version)
    test = churn_test_window_on_cluster(settings)
    features = [col for col in test.columns if col not in NON_FEATURES]
    categorical = [col for col in features if col in CUSTOMER_CATEGORICAL_FEATURES]
    numeric = [col for col in features if col not in categorical]
    data = ChurnData(settings, "generated", TimeSplit(test.iloc[:0], test.iloc[:0], test), numeric, categorical)
    return compare_churn(settings, champion_version, challenger_version, data=data)


def rollback(settings: Settings, kind: str, reason: str = "manual rollback") -> GateDecision:
    """Point ``champion`` back at the version that held it before the current one.

    Raises
    ------
    ValueError
        When there is no earlier champion to return to.
    """
    client = configure_mlflow(settings)
    name = model_name_for(settings, kind)
    current = alias_version(client, name, CHAMPION)
    history = champion_history(client, name)
    if current is None:
        raise ValueError(f"{name} has no champion to roll back")
    # The history ends with the current champion; the one before it is the target.
    while history and history[-1] == current:
        history.pop()
    if not history:
        raise ValueError(f"{name} has no earlier champion than version {current}")
    target = history[-1]
    client.set_registered_model_alias(name, CHAMPION, target)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    decision = GateDecision(
        promoted=True,
        reason=f"rollback: {reason}",
        model_name=name,
        challenger_version=target,
        champion_version=current,
        forced=True,
    )
    record_decision(client, name, current, decision, "rolled_back_from")
    record_decision(client, name, target, decision, "rolled_back_to")
    logger.warning("%s: champion rolled back from %s to %s (%s)", name, current, target, reason)
    return decision


