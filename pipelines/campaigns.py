"""Sending a campaign: an audience split into an experiment's arms, the holdout left out, treatments recorded.

``tenure export audience --experiment NAME`` runs :func:`export_campaign_audience`: the usual
audience (risk bands, or with ``--policy uplift --budget N`` the customers with the largest expected
saves), minus the global holdout; each remaining customer is assigned an arm by the experiment's
salted hash; one ``treatment`` event per customer (control arms too: assigned and held back) is
validated and stored in the events table (event id ``treatment-<experiment>-<customer>``, so a
second export of the same experiment does not re-assign anyone); the file holds only the customers
to contact, with their arm, offer and channel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tenure.experiments.assignment import HOLDOUT_ARM, Assigner, UnknownExperimentError

logger = logging.getLogger(__name__)


def experiment_definition(settings, name: str):
    """The definition of experiment ``name``; :class:`UnknownExperimentError` naming the defined ones."""
    for definition in settings.experiments.definitions:
        if definition.name == name:
            return definition
    known = ", ".join(d.name for d in settings.experiments.definitions) or "none (experiments.definitions)"
    raise UnknownExperimentError(f"unknown experiment {name!r}; defined: {known}")


def treatment_events(customer_ids: Sequence[str], arms: Sequence[str], definition, sent_at: datetime) -> pd.DataFrame:
    """One treatment event per customer (canonical column names, not yet validated)."""
    by_arm = {a.name: a for a in definition.arms}
    stamp = sent_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return pd.DataFrame({
        "event_id": [f"treatment-{definition.name}-{cid}" for cid in customer_ids],
        "customer_id": list(customer_ids),
        "event_at": stamp,
        "event_type": "treatment",
        "campaign": definition.name,
        "arm": list(arms),
        "offer": [by_arm[a].offer for a in arms],
        "channel": [by_arm[a].channel for a in arms],
    })


def record_treatments(settings, events: pd.DataFrame, source: str) -> dict:
    """Validate treatment events against the customers table and store them, all or nothing.

    Raises
    ------
    ValueError
        When any event is rejected (e.g. an unknown customer): the message gives the first
        reasons, and nothing is stored.
    """
    from tenure.features.contract import validate_frame
    from tenure.features.ingest import ingest_shop_frames
    from tenure.features.tables import read_customers

    if events.empty:
        return {"recorded": 0, "already_recorded": 0}
    customers = read_customers(settings)
    result = validate_frame(events, "events", source=source, known_customers=pd.Index(customers["customer_id"]),
                            known_items=pd.Index([]))
    if result.file_error or result.rejected_rows:
        sample = result.rejects.head(3)
        reasons = "; ".join(f"{row.get('value')!s}: {row.get('reason')}" for _, row in sample.iterrows()) \
            if len(sample) else str(result.file_error)
        raise ValueError(f"{result.rejected_rows or len(events)} treatment event(s) rejected, nothing recorded "
                         f"({reasons})")
    report = ingest_shop_frames(settings, source, events=result.valid)
    return {"recorded": int(report.accepted), "already_recorded": int(report.skipped_duplicates)}


def split_audience(settings, audience: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Assign an audience (``customer_id`` column) to experiment ``name``'s arms.

    Returns
    -------
    (assigned, contact, summary)
        ``assigned``: the audience without the holdout, with ``arm``, ``offer``, ``channel``;
        ``contact``: the rows of arms other than control (the customers to send to);
        ``summary``: ``experiment``, ``holdout_excluded``, ``customers_by_arm``.
    """
    definition = experiment_definition(settings, name)
    if definition.status != "active":
        raise ValueError(f"experiment {name!r} is {definition.status}, not active: set its status to active to send")
    assigner = Assigner.from_settings(settings)
    arms = assigner.assign(name, audience["customer_id"].astype(str))
    frame = audience.assign(arm=arms)
    held = frame["arm"] == HOLDOUT_ARM
    assigned = frame[~held].reset_index(drop=True)
    by_arm = {a.name: a for a in definition.arms}
    assigned["offer"] = assigned["arm"].map(lambda a: by_arm[a].offer)
    assigned["channel"] = assigned["arm"].map(lambda a: by_arm[a].channel)
    contact = assigned[assigned["arm"] != definition.control].reset_index(drop=True)
    summary = {"experiment": name, "holdout_excluded": int(held.sum()),
               "customers_by_arm": {a.name: int((assigned["arm"] == a.name).sum()) for a in definition.arms},
               "control_held_back": int((assigned["arm"] == definition.control).sum())}
    return assigned, contact, summary


def export_campaign_audience(settings, audience: pd.DataFrame, name: str, path: Path, file_format: str,
                             sent_at: datetime | None = None) -> tuple[pd.DataFrame, dict]:
    """Split ``audience`` into ``name``'s arms, record the treatments, write the customers to contact.

    The treatments are stored first (all or nothing); the file is written after, atomically.

    Returns
    -------
    (contact, summary)
        The rows written, and the summary (holdout left out, customers per arm, treatments recorded).
    """
    from tenure.pipelines.scoring import write_frame

    assigned, contact, summary = split_audience(settings, audience, name)
    definition = experiment_definition(settings, name)
    sent_at = sent_at or datetime.now(UTC)
    events = treatment_events(assigned["customer_id"].astype(str).tolist(), assigned["arm"].tolist(), definition,
                              sent_at)
    summary.update(record_treatments(settings, events, f"tenure export audience --experiment {name}"))
    write_frame(contact, path, file_format)
    logger.info("experiment %s: %d to contact, %d held back in control, %d in the global holdout left out",
                name, len(contact), summary["control_held_back"], summary["holdout_excluded"])
    return contact, summary


def campaign_export(settings, name: str, risk: Sequence[str], k: int, file_format: str, out: Path | None,
                    source: str) -> tuple[Path, pd.DataFrame, dict]:
    """``tenure export audience --experiment NAME``: the risk audience, sent as experiment ``name``'s campaign.

    Returns
    -------
    (path, contact, summary)
    """
    from tenure.pipelines.scoring import default_audience_path, export_audience

    experiment_definition(settings, name)  # an unknown name fails before any scoring
    final = Path(out) if out is not None else default_audience_path(settings, risk, file_format)
    scratch = final.with_name(f".{final.name}.audience.tmp")
    try:
        _, audience = export_audience(settings, risk=risk, k=k, file_format=file_format, out=scratch, source=source)
    finally:
        scratch.unlink(missing_ok=True)
    contact, summary = export_campaign_audience(settings, audience, name, final, file_format)
    return final, contact, summary


def uplift_audience(settings, budget: int, source: str = "auto") -> tuple[pd.DataFrame, dict]:
    """The ``budget`` customers with the largest expected saves by the uplift champion, global holdout left out.

    Expected saves = the predicted churn reduction (``uplift``); customers whose predicted uplift is
    not positive are never picked (contacting them is expected to lose or change nothing), so the
    audience may be smaller than ``budget``. Customers who withdrew marketing consent are left out.

    Returns
    -------
    (audience, summary)
        Rows ``customer_id``, ``uplift``, ``treatment``, ``uplift_model_version`` (largest first), and
        ``policy``, ``budget``, ``holdout_excluded``, ``not_positive``, ``scored``.
    """
    from tenure.pipelines.scoring import _consenting, read_feature_rows
    from tenure.registry.champion import load_champion

    if budget < 1:
        raise ValueError(f"--budget must be at least 1 customer, got {budget}")
    champion = load_champion(settings, "uplift")  # NoChampionError says to run tenure train uplift --promote
    ids, rows, _ = read_feature_rows(settings, None, source)
    known = [(cid, row) for cid, row in zip(ids, rows) if row is not None]
    uplift = champion.runtime.predict_rows([row for _, row in known])
    frame = pd.DataFrame({"customer_id": [cid for cid, _ in known], "uplift": uplift})
    assigner = Assigner.from_settings(settings)
    held = frame["customer_id"].map(assigner.in_holdout).to_numpy(dtype=bool)
    frame = _consenting(settings, frame[~held].reset_index(drop=True), ("marketing",))
    positive = frame[frame["uplift"] > 0]
    audience = positive.sort_values("uplift", ascending=False, kind="stable").head(budget).reset_index(drop=True)
    audience["treatment"] = champion.runtime.treatment
    audience["uplift_model_version"] = champion.version
    summary = {"policy": "uplift", "budget": budget, "scored": len(known), "holdout_excluded": int(held.sum()),
               "not_positive": int(len(frame) - len(positive)), "rows": len(audience),
               "expected_saves": float(audience["uplift"].sum())}
    return audience, summary


def uplift_export(settings, budget: int, file_format: str, out: Path | None, source: str,
                  experiment: str | None = None) -> tuple[Path, pd.DataFrame, dict]:
    """``tenure export audience --policy uplift --budget N [--experiment NAME]``: write the uplift audience.

    With ``experiment`` the audience is also split into that experiment's arms and the treatments are
    recorded (:func:`export_campaign_audience`), so that what the targeting earned is measured.
    """
    from tenure.pipelines.scoring import write_frame

    if experiment is not None:
        experiment_definition(settings, experiment)  # unknown: fail before scoring
    audience, summary = uplift_audience(settings, budget, source)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = Path(out) if out is not None else Path(settings.paths.exports_dir) / f"audience-uplift-{stamp}.{file_format}"
    if experiment is not None:
        audience, campaign = export_campaign_audience(settings, audience, experiment, path, file_format)
        summary["campaign"] = campaign
    else:
        write_frame(audience, path, file_format)
    logger.info("uplift audience: %d customers, expected saves %.1f, %d in the global holdout left out",
                summary["rows"], summary["expected_saves"], summary["holdout_excluded"])
    return path, audience, summary
