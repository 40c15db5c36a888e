"""The experiment commands' work: list experiments, build and write a report, plan a sample size.

Thin I/O around the pure parts: definitions come from ``settings.experiments``, treatments and
outcomes from the events table (``tenure.features.tables.read_events``), the simulator's ground
truth (when the shop was generated) from ``raw_dir/campaign_truth.parquet``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from tenure.experiments.assignment import UnknownExperimentError
from tenure.experiments.outcomes import campaigns_in, experiment_outcomes
from tenure.experiments.report import build_report, render_html

logger = logging.getLogger(__name__)

from tenure.features.sim_campaigns import (
    TRUTH_FILE,  # the simulator's true effects, beside its raw files
)

_EVENT_COLUMNS = ["customer_id", "event_at", "event_type", "amount", "campaign", "arm", "offer", "channel"]


def read_experiment_events(settings) -> pd.DataFrame:
    """The events the experiment analysis needs (treatments and outcomes), canonical dtypes."""
    from tenure.features.tables import read_events

    return read_events(settings, columns=_EVENT_COLUMNS)


def list_experiments(settings, events: pd.DataFrame | None = None) -> list[dict]:
    """Defined experiments and campaigns found in the treatment events, one dict each.

    Keys: ``name``, ``status`` (the definition's, or ``observed`` for a campaign only found in
    the events), ``arms`` (list of ``{arm, share}``; share None when not defined), ``control``,
    ``start``, ``end``, ``treated_customers`` (customers with a treatment event, 0 if none).
    """
    events = read_experiment_events(settings) if events is None else events
    observed = campaigns_in(events).set_index("campaign") if len(events) else pd.DataFrame()
    rows = []
    for d in settings.experiments.definitions:
        rows.append({"name": d.name, "status": d.status, "control": d.control,
                     "arms": [{"arm": a.name, "share": a.share, "offer": a.offer, "recommender": a.recommender}
                              for a in d.arms],
                     "start": None if d.start is None else d.start.isoformat(),
                     "end": None if d.end is None else d.end.isoformat(),
                     "treated_customers": int(observed.loc[d.name, "customers"]) if d.name in observed.index else 0})
    defined = {d.name for d in settings.experiments.definitions}
    for name, row in observed.iterrows():
        if name in defined:
            continue
        rows.append({"name": name, "status": "observed", "control": "control",
                     "arms": [{"arm": a, "share": None, "offer": None, "recommender": None} for a in row["arms"]],
                     "start": pd.Timestamp(row["first_at"]).isoformat(), "end": pd.Timestamp(row["last_at"]).isoformat(),
                     "treated_customers": int(row["customers"])})
    return rows


def true_effects(settings, name: str, customers: pd.DataFrame) -> dict[str, float] | None:
    """Treated arm -> the simulator's true retention effect over the report's customers, if known.

    The truth file holds, per customer of a simulated campaign, ``retention_effect``: retention
    with the offer minus retention without it, for that customer (features/sim_campaigns.py).
    What the difference of the arms estimates is its mean over all the experiment's customers
    (both arms); None when there is no truth file or it has no such campaign.
    """
    path = Path(settings.paths.raw_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    truth = pd.read_parquet(path)
    truth = truth[truth["campaign"] == name]
    if truth.empty:
        return None
    joined = customers.merge(truth[["customer_id", "retention_effect"]], on="customer_id", how="inner")
    if joined.empty:
        return None
    effect = float(joined["retention_effect"].mean())
    return {arm: effect for arm in sorted(truth["arm"].unique()) if arm != "control"}


def experiment_report(settings, name: str, cuped: bool = False, confidence: float = 0.95,
                      events: pd.DataFrame | None = None) -> dict:
    """The report of experiment ``name`` (see :func:`tenure.experiments.report.build_report`).

    Raises
    ------
    UnknownExperimentError
        When ``name`` is neither defined nor found in the treatment events.
    ValueError
        When no customer's outcome window has ended, or the control arm has none.
    """
    definition = next((d for d in settings.experiments.definitions if d.name == name), None)
    events = read_experiment_events(settings) if events is None else events
    horizon = (definition.horizon_days if definition is not None and definition.horizon_days
               else settings.churn.horizon_days)
    try:
        data = experiment_outcomes(events, name, horizon, settings.churn.qualifying_event_types)
    except UnknownExperimentError:
        if definition is None:
            known = [d.name for d in settings.experiments.definitions]
            found = campaigns_in(events)["campaign"].tolist() if len(events) else []
            raise UnknownExperimentError(
                f"unknown experiment {name!r}: not in experiments.definitions ({', '.join(known) or 'none'}) and "
                f"no treatment events name it (campaigns found: {', '.join(found) or 'none'})") from None
        raise
    shares = {a.name: a.share for a in definition.arms} if definition is not None else None
    control = definition.control if definition is not None else "control"
    report = build_report(data, control=control, shares=shares, cuped=cuped, confidence=confidence,
                          status=definition.status if definition is not None else "observed")
    truth = true_effects(settings, name, data.matured)
    if truth is not None:
        report["true_retention_effect"] = {arm: v for arm, v in truth.items() if arm != control}
    return report


def write_report(settings, report: dict) -> tuple[Path, Path]:
    """Write ``reports_dir/experiments/<name>.html`` and ``.json``; returns both paths."""
    from tenure.jsonable import to_jsonable

    folder = Path(settings.paths.reports_dir) / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / f"{report['experiment']}.html"
    json_path = folder / f"{report['experiment']}.json"
    html_path.write_text(render_html(report, report.get("true_retention_effect")), encoding="utf-8")
    json_path.write_text(json.dumps(report, indent=2, default=to_jsonable), encoding="utf-8")
    logger.info("experiment report written to %s", html_path)
    return html_path, json_path
