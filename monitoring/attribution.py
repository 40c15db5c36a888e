"""Attribution: which views, add-to-carts and purchases did the recommendations lead to?

Inputs are what the service logged, nothing else:

- **recommendations**: the prediction log's ``recommend`` records (``recommendation_id``,
  ``logged_at``, ``customer_id``, ``strategy``, ``items``, and ``arms`` -- ``{experiment: arm}``
  -- when an experiment assigned the customer);
- **events**: the event log (``POST /events``) and the events table (ingested files),
  de-duplicated on ``event_id``. ``exposure`` events say which recommended items were shown
  (``recommendation_id`` + ``impressions``); ``view`` / ``add_to_cart`` / ``purchase`` events
  may carry the ``recommendation_id`` they came from.

Rules (``settings.attribution``):

1. An interaction (view, add_to_cart, purchase) with an item counts for a recommendation when
   the item was in the recommendation's list (and shown, when the period has exposures: see
   below) and the event comes within ``window_hours`` after
   the recommendation was served (``clock_skew_s`` earlier is tolerated: client and server clocks
   differ).
2. An event that names its ``recommendation_id`` counts for that recommendation only.
3. An event without one counts (with ``match_without_id``) for the same customer's latest
   recommendation that satisfies rule 1 (last touch, view-through). When the prediction log
   holds pseudonyms (:func:`tenure.pseudonym.log_key`), the events' customer ids are hashed with
   the same key before they are matched.
4. Each interaction counts once. Clicks, add-to-carts and conversions are counted once per
   (recommendation, item); revenue sums every attributed purchase's ``amount``.

Rates use the items *shown* as their denominator: the impressions of the exposure events when
the period has any (``basis: exposures``; only exposed lists count then), else every item served
(``basis: served``: the client sends no exposures, so a served list is taken as shown).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

INTERACTIONS: tuple[str, ...] = ("view", "add_to_cart", "purchase")
"""Event types that can be attributed; a view of a recommended item is a click."""
METRIC_OF = {"view": "clicks", "add_to_cart": "add_to_carts", "purchase": "conversions"}
_EVENT_COLUMNS = ["event_id", "customer_id", "event_at", "event_type", "item_id", "quantity", "amount",
                  "recommendation_id", "impressions"]


@dataclass
class GroupFigures:
    """Attribution figures of one strategy or one experiment arm.

    Attributes
    ----------
    group: the strategy (``als``, ``blend``, ...) or ``experiment=arm``.
    recommendations: lists served in the period.
    exposed: of those, lists with at least one exposure event.
    impressions: items shown (the rates' denominator; see the module docstring).
    clicks, add_to_carts, conversions: distinct (recommendation, item) pairs viewed, carted, bought.
    purchases: attributed purchase events; revenue: the sum of their ``amount``.
    click_rate, add_to_cart_rate, conversion_rate: per impression (None without impressions).
    revenue_per_list: revenue per list in the denominator (exposed lists, or served lists).
    by_id, by_item: attributed interaction events that named the recommendation_id / matched by item.
    """

    group: str
    recommendations: int = 0
    exposed: int = 0
    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    conversions: int = 0
    purchases: int = 0
    revenue: float = 0.0
    click_rate: float | None = None
    add_to_cart_rate: float | None = None
    conversion_rate: float | None = None
    revenue_per_list: float | None = None
    by_id: int = 0
    by_item: int = 0


@dataclass
class AttributionReport:
    """``tenure report attribution``'s result (``as_dict`` is its JSON)."""

    period_from: str
    period_to: str
    window_hours: float
    basis: str
    match_without_id: bool
    complete: bool
    totals: GroupFigures
    by_strategy: list[GroupFigures] = field(default_factory=list)
    by_arm: list[GroupFigures] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


# --- reading --------------------------------------------------------------------------------------


def read_recommendations(folder: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """``recommend`` records of the prediction log served in ``[start, end)``.

    Returns
    -------
    DataFrame with ``recommendation_id``, ``customer_id``, ``served_at`` (UTC), ``strategy``,
    ``items`` (list of item ids) and ``arms`` (dict or None), one row per recommendation.
    Records written before recommendation ids existed use their ``request_id``.
    """
    rows = []
    first, last = (start - pd.Timedelta(days=1)).strftime("%Y%m%d"), (end + pd.Timedelta(days=1)).strftime("%Y%m%d")
    for path in sorted(Path(folder).glob("recommend-*.jsonl")):
        day = path.stem.split("-")[1] if path.stem.count("-") >= 1 else ""
        if day.isdigit() and not first <= day <= last:
            continue  # recommend-YYYYMMDD-<pid>.jsonl: written on the UTC day it was served
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn line: monitoring's reader counts these
                if not isinstance(record, dict) or record.get("kind", "recommend") != "recommend":
                    continue
                rid = record.get("recommendation_id") or record.get("request_id")
                if not rid or "logged_at" not in record:
                    continue
                arms = record.get("arms")
                rows.append((str(rid), str(record.get("customer_id")), record["logged_at"],
                             str(record.get("strategy") or "unknown"), [str(i) for i in record.get("items") or []],
                             arms if isinstance(arms, dict) and arms else None))
    frame = pd.DataFrame(rows, columns=["recommendation_id", "customer_id", "served_at", "strategy", "items", "arms"])
    frame["served_at"] = pd.to_datetime(frame["served_at"], utc=True, format="ISO8601")
    frame = frame[(frame["served_at"] >= start) & (frame["served_at"] < end)]
    return frame.drop_duplicates("recommendation_id", keep="first").reset_index(drop=True)


def read_logged_events(folder: Path, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Events of the service's event log (``events-*.jsonl``) with ``start <= event_at <= end``.

    Day files are named by the day they were logged; files logged before ``start`` - 1 day
    are skipped (an event is logged at most ``events.max_future_hours`` early, and late events
    in later files are read).
    """
    first_day = (start - pd.Timedelta(days=2)).strftime("%Y%m%d")
    records = []
    for path in sorted(Path(folder).glob("events-*.jsonl")):
        if path.stem.removeprefix("events-") < first_day:
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a write cut short by a crash: never acknowledged
                if isinstance(record, dict) and record.get("event_id"):
                    records.append({c: record.get(c) for c in _EVENT_COLUMNS})
    return _in_period(pd.DataFrame(records, columns=_EVENT_COLUMNS), start, end)


def _in_period(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    events = events.copy()
    events["event_at"] = pd.to_datetime(events["event_at"], utc=True, format="ISO8601")
    return events[(events["event_at"] >= start) & (events["event_at"] <= end)].reset_index(drop=True)


def gather_events(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Events from several sources, one row per ``event_id`` (the first source wins)."""
    parts = [f[[c for c in _EVENT_COLUMNS if c in f.columns]] for f in frames if len(f)]
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in _EVENT_COLUMNS})
    events = pd.concat(parts, ignore_index=True)
    for column in _EVENT_COLUMNS:
        if column not in events.columns:
            events[column] = None
    return events.drop_duplicates("event_id", keep="first").reset_index(drop=True)


# --- the rules --------------------------------------------------------------------------------------


def shown_items(recommendations: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Items shown per recommendation: exposures' impressions when the period has any, else the items served.

    Returns
    -------
    (DataFrame with ``recommendation_id`` and ``item_id``, one row per distinct item shown;
    True when the basis is exposures)
    """
    from tenure.features.schema import EXPOSURE_EVENT, IMPRESSION_SEPARATOR

    exposures = events[(events["event_type"] == EXPOSURE_EVENT)
                       & events["recommendation_id"].isin(recommendations["recommendation_id"])]
    if len(exposures):
        shown = exposures[["recommendation_id"]].assign(
            item_id=exposures["impressions"].fillna("").astype(str).str.split(IMPRESSION_SEPARATOR, regex=False))
        basis = True
    else:
        shown = recommendations[["recommendation_id"]].assign(item_id=recommendations["items"])
        basis = False
    shown = shown.explode("item_id")
    shown = shown[shown["item_id"].notna() & (shown["item_id"] != "")]
    return shown.drop_duplicates().reset_index(drop=True), basis


def attribute_events(recommendations: pd.DataFrame, events: pd.DataFrame, window: timedelta, skew: timedelta,
                     match_without_id: bool = True, shown: pd.DataFrame | None = None) -> pd.DataFrame:
    """The interactions that count, each with the one recommendation it counts for (rules 1-3).

    Parameters
    ----------
    recommendations: :func:`read_recommendations`' frame.
    events: canonical events (``event_id``, ``customer_id``, ``event_at``, ``event_type``,
        ``item_id``, ``amount``, ``recommendation_id``).
    window: how long after serving an event still counts.
    skew: how much earlier than serving a client's event time may be.
    match_without_id: apply rule 3 to events without a recommendation_id.
    shown: when given (``recommendation_id``, ``item_id``), only these items of each list count:
        the items the exposures say were shown (a list never shown led to nothing).

    Returns
    -------
    DataFrame, one row per attributed event: ``event_id``, ``event_type``, ``item_id``,
    ``amount``, ``recommendation_id``, ``matched`` (``id`` or ``item``).
    """
    columns = ["event_id", "event_type", "item_id", "amount", "recommendation_id", "matched"]
    served = recommendations[["recommendation_id", "customer_id", "served_at", "items"]].explode("items")
    served = served.rename(columns={"items": "item_id"}).dropna(subset=["item_id"])
    if shown is not None:
        served = served.merge(shown[["recommendation_id", "item_id"]].drop_duplicates(),
                              on=["recommendation_id", "item_id"])
    acts = events[events["event_type"].isin(INTERACTIONS) & events["item_id"].notna()]
    if served.empty or acts.empty:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})

    def in_window(frame: pd.DataFrame) -> pd.DataFrame:
        delay = frame["event_at"] - frame["served_at"]
        return frame[(delay >= -skew) & (delay <= window)]

    named = acts[acts["recommendation_id"].notna()]
    by_id = in_window(named.merge(served.drop(columns="customer_id"), on=["recommendation_id", "item_id"]))
    parts = [by_id.assign(matched="id")]
    if match_without_id:
        anonymous = acts[acts["recommendation_id"].isna()].drop(columns="recommendation_id")
        candidates = in_window(anonymous.merge(served, on=["customer_id", "item_id"]))
        latest = candidates.sort_values(["served_at", "recommendation_id"]).drop_duplicates("event_id", keep="last")
        parts.append(latest.assign(matched="item"))
    out = pd.concat([p for p in parts if len(p)] or [parts[0]], ignore_index=True)
    out["amount"] = pd.to_numeric(out["amount"], errors="coerce")
    return out[columns].reset_index(drop=True)


def _arm_labels(arms: Any) -> list[str]:
    """``experiment=arm`` labels of a record's ``arms`` (``{experiment: arm}`` or ``{experiment: {"arm": ...}}``)."""
    if not isinstance(arms, dict):
        return []
    labels = []
    for experiment, arm in arms.items():
        if isinstance(arm, dict):
            arm = arm.get("arm", arm.get("name"))
        if arm is not None:
            labels.append(f"{experiment}={arm}")
    return labels


def figures(group: str, recommendations: pd.DataFrame, shown: pd.DataFrame, attributed: pd.DataFrame,
            exposures_basis: bool) -> GroupFigures:
    """The figures of one group of recommendations (rule 4 and the rates)."""
    ids = set(recommendations["recommendation_id"])
    shown = shown[shown["recommendation_id"].isin(ids)]
    hits = attributed[attributed["recommendation_id"].isin(ids)]
    out = GroupFigures(group=group, recommendations=len(ids))
    out.exposed = int(shown["recommendation_id"].nunique()) if exposures_basis else 0
    out.impressions = len(shown)
    for event_type, name in METRIC_OF.items():
        pairs = hits.loc[hits["event_type"] == event_type, ["recommendation_id", "item_id"]].drop_duplicates()
        setattr(out, name, len(pairs))
    buys = hits[hits["event_type"] == "purchase"]
    out.purchases = len(buys)
    out.revenue = round(float(buys["amount"].fillna(0.0).sum()), 2)
    out.by_id = int((hits["matched"] == "id").sum())
    out.by_item = int((hits["matched"] == "item").sum())
    if out.impressions:
        out.click_rate = round(out.clicks / out.impressions, 4)
        out.add_to_cart_rate = round(out.add_to_carts / out.impressions, 4)
        out.conversion_rate = round(out.conversions / out.impressions, 4)
    lists = out.exposed if exposures_basis else out.recommendations
    if lists:
        out.revenue_per_list = round(out.revenue / lists, 4)
    return out


def attribution_from_frames(recommendations: pd.DataFrame, events: pd.DataFrame, start: pd.Timestamp,
                            end: pd.Timestamp, window: timedelta, skew: timedelta = timedelta(0),
                            match_without_id: bool = True, now: pd.Timestamp | None = None) -> AttributionReport:
    """The attribution report of recommendations served in ``[start, end)`` (pure: frames in, figures out)."""
    notes = []
    shown, exposures_basis = shown_items(recommendations, events)
    attributed = attribute_events(recommendations, events, window, skew, match_without_id,
                                  shown if exposures_basis else None)
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    complete = end + window <= now
    if not complete:
        notes.append(f"the attribution window of the latest recommendations is still open until "
                     f"{(end + window):%Y-%m-%dT%H:%MZ}: later events may still count")
    if recommendations.empty:
        notes.append("no recommendations were logged in the period")
    totals = figures("all", recommendations, shown, attributed, exposures_basis)
    by_strategy = [figures(strategy, group, shown, attributed, exposures_basis)
                   for strategy, group in recommendations.groupby("strategy", sort=True)]
    labels = recommendations["arms"].map(_arm_labels) if len(recommendations) else pd.Series([], dtype=object)
    by_arm = []
    exploded = recommendations.assign(arm=labels).explode("arm").dropna(subset=["arm"])
    for label, group in exploded.groupby("arm", sort=True):
        by_arm.append(figures(str(label), group, shown, attributed, exposures_basis))
    return AttributionReport(
        period_from=start.isoformat(timespec="seconds"), period_to=end.isoformat(timespec="seconds"), window_hours=window / timedelta(hours=1),
        basis="exposures" if exposures_basis else "served", match_without_id=match_without_id, complete=complete,
        totals=totals, by_strategy=by_strategy, by_arm=by_arm, notes=notes)


def attribution_report(settings, start: datetime | str | None = None, end: datetime | str | None = None,
                       now: datetime | None = None) -> AttributionReport:
    """``tenure report attribution``: recommendations served in ``[start, end)`` and what they led to.

    Parameters
    ----------
    settings: the workspace (prediction log, event log, events table, ``settings.attribution``).
    start, end: the period of serving (default: the 7 days up to now). Events up to ``end`` +
        ``attribution.window_hours`` are read.
    now: the clock (tests); default the current time.

    Raises
    ------
    ValueError: ``end`` not after ``start``, or a time that is not ISO 8601.
    SettingsError: logs are pseudonymised and ``privacy.log_hmac_secret`` is not set.
    """
    from tenure.features.tables import read_events
    from tenure.pseudonym import customer_ref, log_key

    clock = pd.Timestamp(now or datetime.now(UTC))
    clock = clock.tz_localize("UTC") if clock.tzinfo is None else clock.tz_convert("UTC")
    end_ts = _timestamp(end, "--to") if end is not None else clock
    start_ts = _timestamp(start, "--from") if start is not None else end_ts - pd.Timedelta(days=7)
    if end_ts <= start_ts:
        raise ValueError(f"--to ({end_ts.isoformat()}) must be after --from ({start_ts.isoformat()})")
    config = settings.attribution
    window, skew = timedelta(hours=config.window_hours), timedelta(seconds=config.clock_skew_s)
    recs = read_recommendations(settings.paths.prediction_log_dir, start_ts, end_ts)
    first, last = start_ts - skew, end_ts + window
    stored = read_events(settings, first, last, columns=[c for c in _EVENT_COLUMNS if c != "event_at"])
    events = gather_events([read_logged_events(settings.paths.event_log_dir, first, last), stored])
    key = log_key(settings)  # the prediction log's customer ids are pseudonyms: hash the events' the same way
    if key is not None and len(events):
        events["customer_id"] = [customer_ref(key, str(c)) for c in events["customer_id"]]
    report = attribution_from_frames(recs, events, start_ts, end_ts, window, skew, config.match_without_id,
                                     now=clock)
    logger.debug("attribution: %d recommendation(s), %d event(s) read", len(recs), len(events))
    return report


def _timestamp(value: datetime | str, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an ISO 8601 date or time like 2026-06-01 or 2026-06-01T10:00Z, "
                         f"got {value!r}") from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
