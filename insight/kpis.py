"""Business KPIs from the canonical tables: retention, churn, repurchase, conversion, order value,
survey scores (NPS, CSAT, CES), support resolution time, per channel and per segment.

Everything here is a pure transformation of ``customers`` and ``events`` frames
(:func:`compute_kpis`) plus one thin reader (:func:`build_kpi_report`); the result is a
JSON-able dict that ``tenure report kpis`` prints and the dashboard draws. The definitions are
written down in ``docs/insight.md``; in short (all times UTC, H = ``churn.horizon_days``):

- *churn rate* of a month: the churn label (:mod:`tenure.features.labels`) at the month's first
  instant T, averaged over the customers alive at T (no qualifying activity in (T, T + H], or an
  explicit cancellation); only months whose label window has matured inside the data count.
  *Retention rate* = 1 - churn rate.
- *cohort retention*: customers grouped by signup month; the share of a cohort with qualifying
  activity in each calendar month after it (month 0 = the signup month).
- *order*: a customer's purchases on one day (UTC). *Average order value* = purchase amount /
  orders. *Repurchase rate*: share of the customers with an order in the window who have at
  least two. *Time between orders*: days between a customer's consecutive orders.
- *conversion*: customer-days with a purchase / customer-days with a session.
- *NPS*: % promoters (9-10) minus % detractors (0-6) of the NPS answers, -100..100.
  *CSAT*: share of CSAT answers 4 or 5. *CES*: mean customer-effort answer, 1 (very hard) ..
  7 (very easy), and the share of 5-7 answers.
- *resolution time*: median and mean ``resolution_hours`` of support tickets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from tenure.settings import Settings

logger = logging.getLogger(__name__)

SEGMENTS: dict[str, str] = {"plan": "plan", "region": "region", "channel": "acquisition_channel", "cohort": "cohort"}
"""``--by`` value -> customer column it groups by (``cohort`` = signup month, computed)."""

EVENT_COLUMNS: tuple[str, ...] = ("customer_id", "event_at", "event_type", "amount", "channel", "nps", "csat",
                                  "ces", "resolution_hours", "text")
"""Event columns the report reads (``ces`` and ``text`` may be absent from older tables)."""

_DAY_NS = 86_400 * 10**9
_CHANNELS = ("web", "app", "email", "chat", "phone")


def build_kpi_report(settings: Settings, start: object | None = None, end: object | None = None,
                     by: str | None = None) -> dict[str, Any]:
    """The KPI report of the stored tables (``tenure report kpis``, the dashboard).

    Parameters
    ----------
    settings: where the tables live; ``churn.horizon_days`` and ``churn.qualifying_event_types``
        define activity and churn.
    start, end: the reporting window (inclusive; str, datetime or Timestamp, naive = UTC;
        None = from the first / to the last stored event).
    by: ``plan``, ``region``, ``channel`` (acquisition channel) or ``cohort`` (signup month):
        add a ``segments`` table with the headline KPIs per group; None = no segments.

    Returns
    -------
    dict, JSON-able (see :func:`compute_kpis` and ``docs/insight.md`` for its shape).

    Raises
    ------
    ValueError: ``by`` unknown, ``end`` before ``start``, or the segment column is absent.
    FileNotFoundError: no customers were ingested.
    """
    from tenure.features.schema import EVENTS
    from tenure.features.tables import read_customers, read_events

    _check_by(by)
    start_ts, end_ts = _window(start, end)
    customers = read_customers(settings)
    horizon = pd.Timedelta(days=settings.churn.horizon_days)
    # activity before the window says who is alive at its first cut-off; after it, who left
    read_from = None if start_ts is None else start_ts - horizon
    columns = [c for c in EVENT_COLUMNS if c in EVENTS.names]
    events = read_events(settings, start=read_from, end=None, columns=columns)
    report = compute_kpis(customers, events, start=start_ts, end=end_ts, by=by,
                          horizon_days=settings.churn.horizon_days,
                          qualifying_event_types=settings.churn.qualifying_event_types)
    voice = _voice_hook(settings, events, report["window"])
    if voice is not None:
        report["voice"] = voice
    return report


def _voice_hook(settings: Settings, events: pd.DataFrame, window: dict[str, Any]) -> dict[str, Any] | None:
    """The voice-of-the-customer section when the events carry text (:mod:`tenure.insight.voice`)."""
    if "text" not in events.columns or events["text"].isna().all():
        return None
    from tenure.insight.voice import voice_summary

    inside = _in_window(events, pd.Timestamp(window["start"]), pd.Timestamp(window["end"]))
    return voice_summary(events.loc[inside])


def compute_kpis(customers: pd.DataFrame, events: pd.DataFrame, start: pd.Timestamp | None = None,
                 end: pd.Timestamp | None = None, by: str | None = None, horizon_days: int = 30,
                 qualifying_event_types: Sequence[str] = ("purchase", "session", "view", "add_to_cart"),
                 ) -> dict[str, Any]:
    """KPIs of ``customers`` and ``events`` over the window [start, end].

    Parameters
    ----------
    customers: canonical customers (``customer_id``, ``signup_at`` and the ``by`` column).
    events: canonical events (``customer_id``, ``event_at``, ``event_type``; optional
        ``amount``, ``channel``, ``nps``, ``csat``, ``ces``, ``resolution_hours``), sorted or not.
        Events before ``start`` are used only to know who is alive at the first cut-off.
    start, end: tz-aware UTC window bounds (None = first / last event).
    by: segment key (see :data:`SEGMENTS`) or None.
    horizon_days, qualifying_event_types: the churn definition (``settings.churn``).

    Returns
    -------
    dict with ``window`` {start, end, days}, ``definitions`` (short texts), ``totals`` (one dict
    of headline KPIs), ``monthly`` (one dict per calendar month), ``cohorts`` (one dict per
    signup month: ``cohort``, ``size``, ``retention`` list by month offset), ``channels`` (one
    dict per event channel) and, with ``by``, ``segments`` {by, rows}. Rates are fractions
    0..1, NPS is -100..100, money is in the shop's currency; a KPI without data is None.
    """
    _check_by(by)
    if horizon_days < 1:
        raise ValueError(f"churn horizon must be at least 1 day, got {horizon_days}")
    for column in ("customer_id", "event_at", "event_type"):
        if column not in events.columns:
            raise ValueError(f"events lack the column {column!r}")
    if by is not None and SEGMENTS[by] != "cohort" and SEGMENTS[by] not in customers.columns:
        raise ValueError(f"--by {by} needs the customers column {SEGMENTS[by]!r}, which the stored customers lack")
    if len(events):
        first, last = events["event_at"].min(), events["event_at"].max()
    else:
        first = last = pd.Timestamp.now(tz="UTC").floor("D")
    start = first.floor("D") if start is None else start
    end = last if end is None else end
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    frame = _Frame(customers, events, end)
    inside = frame.times >= start.value
    in_window = inside & (frame.times <= end.value)

    report: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat(),
                   "days": round((end - start) / pd.Timedelta(days=1), 2)},
        "customers": int(len(frame.ids)),
        "horizon_days": horizon_days,
        "totals": {},
        "monthly": [],
        "cohorts": [],
        "channels": [],
    }
    cutoffs = _month_starts(start, end, horizon_days, frame.data_start, frame.data_end)
    labels = _labels(events, customers, cutoffs, horizon_days, qualifying_event_types)
    report["totals"] = _headline(frame, in_window, labels)
    report["totals"]["active_customers"] = int(np.unique(frame.codes[in_window & frame.active(qualifying_event_types)
                                                                      & (frame.codes >= 0)]).size)
    report["monthly"] = _monthly(frame, in_window, labels, start, end)
    report["cohorts"] = _cohorts(frame, start, end, qualifying_event_types)
    report["channels"] = _channels(frame, in_window)
    if by is not None:
        report["segments"] = {"by": by, "column": SEGMENTS[by],
                              "rows": _segments(frame, in_window, labels, by)}
    return report


# --------------------------------------------------------------------------- pieces


class _Frame:
    """The columns the KPIs use, as numpy arrays aligned with the events (codes index customers)."""

    def __init__(self, customers: pd.DataFrame, events: pd.DataFrame, end: pd.Timestamp) -> None:
        self.ids = pd.Index(customers["customer_id"].astype(str).unique())
        cust = customers.drop_duplicates("customer_id").set_index("customer_id").reindex(self.ids)
        self.customers = cust
        self.signup = pd.to_datetime(cust["signup_at"], utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)
        self.codes = self.ids.get_indexer(events["customer_id"].astype(str)) if len(events) else np.zeros(0, np.int64)
        self.times = events["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        self.types = events["event_type"].to_numpy(dtype=object)
        self.data_end = self.times.max() if len(self.times) else end.value
        self.data_start = self.times.min() if len(self.times) else end.value
        self.events = events

    def column(self, name: str) -> np.ndarray:
        """A numeric event column as float64 (all NaN when absent)."""
        if name not in self.events.columns:
            return np.full(len(self.times), np.nan)
        return self.events[name].to_numpy(dtype=np.float64, na_value=np.nan)

    def strings(self, name: str) -> np.ndarray:
        """A string event column as an object array (None when absent)."""
        if name not in self.events.columns:
            return np.full(len(self.times), None, dtype=object)
        return self.events[name].to_numpy(dtype=object)

    def is_type(self, *names: str) -> np.ndarray:
        return np.isin(self.types, list(names))

    def active(self, qualifying: Sequence[str]) -> np.ndarray:
        return self.is_type(*qualifying)


def _check_by(by: str | None) -> None:
    if by is not None and by not in SEGMENTS:
        raise ValueError(f"by must be one of {', '.join(SEGMENTS)}, got {by!r}")


def _window(start: object | None, end: object | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    def utc(value: object | None, name: str) -> pd.Timestamp | None:
        if value is None:
            return None
        try:
            ts = pd.Timestamp(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be a date like 2026-03-01, got {value!r}") from exc
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")

    start_ts, end_ts = utc(start, "start"), utc(end, "end")
    if start_ts is not None and end_ts is not None and end_ts < start_ts:
        raise ValueError(f"end ({end_ts.date()}) is before start ({start_ts.date()})")
    return start_ts, end_ts


def _in_window(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    times = events["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return (times >= start.value) & (times <= end.value)


def _month_starts(start: pd.Timestamp, end: pd.Timestamp, horizon_days: int, data_start: int,
                  data_end: int) -> list[pd.Timestamp]:
    """First instants T of the calendar months in [start, end] whose look-back (T - H, T] lies inside the
    data (who is alive is known) and whose label window (T, T + H] has matured."""
    first = start.tz_convert("UTC").tz_localize(None).to_period("M").to_timestamp().tz_localize("UTC")
    if first < start:
        first = first + pd.offsets.MonthBegin(1)
    months = pd.date_range(first, end, freq="MS")
    horizon = pd.Timedelta(days=horizon_days).value
    return [m for m in months if m.value - horizon >= data_start and m.value + horizon <= data_end]


def _labels(events: pd.DataFrame, customers: pd.DataFrame, cutoffs: list[pd.Timestamp], horizon_days: int,
            qualifying: Sequence[str]) -> pd.DataFrame:
    from tenure.features.labels import label_churn

    return label_churn(events, customers, cutoffs, horizon_days, qualifying)


def _rate(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _orders(codes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (customer, day) pairs: customer codes and day numbers of each order, sorted."""
    days = times // _DAY_NS
    key = np.unique(codes.astype(np.int64) * (1 << 32) + (days - days.min() if len(days) else days))
    base = days.min() if len(days) else 0
    return key >> 32, (key & 0xFFFFFFFF) + base


def _purchase_kpis(codes: np.ndarray, times: np.ndarray, amounts: np.ndarray) -> dict[str, Any]:
    """Orders, revenue, AOV, repurchase rate, time between orders of the given purchases."""
    order_cust, order_day = _orders(codes, times)
    revenue = float(np.nansum(amounts))
    per_customer = np.bincount(order_cust) if len(order_cust) else np.zeros(0, np.int64)
    buyers = int((per_customer > 0).sum())
    repeaters = int((per_customer > 1).sum())
    same = order_cust[1:] == order_cust[:-1]
    gaps = (order_day[1:] - order_day[:-1])[same].astype(np.float64)
    return {
        "orders": int(len(order_cust)),
        "revenue": round(revenue, 2),
        "average_order_value": _rate(revenue, len(order_cust)),
        "buyers": buyers,
        "repurchase_rate": _rate(repeaters, buyers),
        "days_between_orders_mean": float(gaps.mean()) if len(gaps) else None,
        "days_between_orders_median": float(np.median(gaps)) if len(gaps) else None,
    }


def _conversion(codes: np.ndarray, times: np.ndarray, is_session: np.ndarray, is_purchase: np.ndarray
                ) -> tuple[int, int, float | None]:
    """(session days, session days with a purchase, conversion rate) of the given events."""
    days = times // _DAY_NS
    key = codes.astype(np.int64) * 1_000_000 + (days % 1_000_000)
    session_days = np.unique(key[is_session])
    purchase_days = np.unique(key[is_purchase])
    converted = int(np.isin(session_days, purchase_days, assume_unique=True).sum())
    return int(len(session_days)), converted, _rate(converted, len(session_days))


def _survey_kpis(nps: np.ndarray, csat: np.ndarray, ces: np.ndarray) -> dict[str, Any]:
    """NPS (-100..100), CSAT (share 4-5, mean), CES (mean 1..7, share 5-7) with answer counts."""
    nps, csat, ces = nps[~np.isnan(nps)], csat[~np.isnan(csat)], ces[~np.isnan(ces)]
    return {
        "nps": float(100.0 * ((nps >= 9).mean() - (nps <= 6).mean())) if len(nps) else None,
        "nps_answers": int(len(nps)),
        "csat": float((csat >= 4).mean()) if len(csat) else None,
        "csat_mean": float(csat.mean()) if len(csat) else None,
        "csat_answers": int(len(csat)),
        "ces": float(ces.mean()) if len(ces) else None,
        "ces_easy_share": float((ces >= 5).mean()) if len(ces) else None,
        "ces_answers": int(len(ces)),
    }


def _support_kpis(hours: np.ndarray) -> dict[str, Any]:
    hours = hours[~np.isnan(hours)]
    return {
        "resolution_hours_median": float(np.median(hours)) if len(hours) else None,
        "resolution_hours_mean": float(hours.mean()) if len(hours) else None,
    }


def _block(frame: _Frame, mask: np.ndarray) -> dict[str, Any]:
    """Every event-based KPI of the events under ``mask``."""
    codes, times = frame.codes[mask], frame.times[mask]
    types = frame.types[mask]
    is_purchase = types == "purchase"
    is_session = types == "session"
    out = _purchase_kpis(codes[is_purchase], times[is_purchase], frame.column("amount")[mask][is_purchase])
    sessions, converted, rate = _conversion(codes, times, is_session, is_purchase)
    out.update({"session_days": sessions, "converted_session_days": converted, "conversion_rate": rate})
    is_ticket = types == "support_ticket"
    out["tickets"] = int(is_ticket.sum())
    out.update(_support_kpis(frame.column("resolution_hours")[mask][is_ticket]))
    is_survey = types == "survey"
    out.update(_survey_kpis(frame.column("nps")[mask][is_survey], frame.column("csat")[mask][is_survey],
                            frame.column("ces")[mask][is_survey]))
    return out


def _churn(labels: pd.DataFrame) -> dict[str, Any]:
    n = len(labels)
    churned = int(labels["label"].sum()) if n else 0
    return {"customer_months": n, "churn_rate": _rate(churned, n),
            "retention_rate": None if not n else 1.0 - churned / n}


def _headline(frame: _Frame, in_window: np.ndarray, labels: pd.DataFrame) -> dict[str, Any]:
    out = _churn(labels)
    out.update(_block(frame, in_window & (frame.codes >= 0)))
    return out


def _monthly(frame: _Frame, in_window: np.ndarray, labels: pd.DataFrame, start: pd.Timestamp,
             end: pd.Timestamp) -> list[dict[str, Any]]:
    """One row per calendar month touching the window: churn at its start and its event KPIs."""
    rows = []
    months = pd.period_range(start.tz_localize(None), end.tz_localize(None), freq="M")
    by_cutoff = dict(tuple(labels.groupby("event_timestamp"))) if len(labels) else {}
    known = frame.codes >= 0
    for month in months:
        lo = max(month.start_time.tz_localize("UTC"), start)
        hi = min(month.end_time.tz_localize("UTC"), end)
        mask = in_window & known & (frame.times >= lo.value) & (frame.times <= hi.value)
        cut = by_cutoff.get(month.start_time.tz_localize("UTC"))
        row: dict[str, Any] = {"month": str(month), "alive_at_start": None if cut is None else int(len(cut))}
        row.update(_churn(cut) if cut is not None else {"customer_months": 0, "churn_rate": None,
                                                         "retention_rate": None})
        row.update(_block(frame, mask))
        rows.append(row)
    return rows


def _cohorts(frame: _Frame, start: pd.Timestamp, end: pd.Timestamp, qualifying: Sequence[str]) -> list[dict[str, Any]]:
    """Signup-month cohorts from the window's first month to its end: share with qualifying activity k months after."""
    signup = frame.signup
    first_month = start.tz_convert("UTC").tz_localize(None).to_period("M").to_timestamp().tz_localize("UTC")
    ok = (signup >= first_month.value) & (signup <= end.value)
    if not ok.any():
        return []
    month_of = _month_index(signup)
    last_month = int(_month_index(np.array([end.value]))[0])
    act = frame.active(qualifying) & (frame.codes >= 0) & (frame.times <= end.value)
    act_codes, act_month = frame.codes[act], _month_index(frame.times[act])
    offset = act_month - month_of[act_codes]
    keep = ok[act_codes] & (offset >= 0)
    pairs = np.unique(act_codes[keep].astype(np.int64) * 1024 + offset[keep])
    pair_cust, pair_off = pairs // 1024, pairs % 1024
    cohorts = []
    for m in np.unique(month_of[ok]):
        members = ok & (month_of == m)
        size = int(members.sum())
        horizon = last_month - int(m) + 1
        in_cohort = members[pair_cust]
        counts = np.bincount(pair_off[in_cohort], minlength=horizon)[:horizon]
        cohorts.append({"cohort": _month_name(int(m)), "size": size,
                        "retention": [round(float(c) / size, 4) for c in counts]})
    return cohorts


def _month_index(ns: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of UTC nanosecond times."""
    return ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _month_name(index: int) -> str:
    return str(np.datetime64(index, "M"))


def _channels(frame: _Frame, in_window: np.ndarray) -> list[dict[str, Any]]:
    """The omnichannel view: every event KPI per event channel (web, app, email, chat, phone, ...)."""
    channel = frame.strings("channel")
    mask = in_window & (frame.codes >= 0)
    present = pd.unique(channel[mask & pd.notna(channel)])
    order = [c for c in _CHANNELS if c in present] + sorted(c for c in present if c not in _CHANNELS)
    rows = []
    for name in order:
        row: dict[str, Any] = {"channel": str(name), "events": int((mask & (channel == name)).sum())}
        row.update(_block(frame, mask & (channel == name)))
        rows.append(row)
    return rows


def _segments(frame: _Frame, in_window: np.ndarray, labels: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    """Headline KPIs per customer segment (plan, region, acquisition channel or signup month)."""
    if SEGMENTS[by] == "cohort":
        values = np.array([_month_name(int(m)) for m in _month_index(frame.signup)], dtype=object)
    else:
        values = frame.customers[SEGMENTS[by]].to_numpy(dtype=object)
    values = np.where(pd.isna(values), "(missing)", values).astype(str)
    label_codes = frame.ids.get_indexer(labels["customer_id"].astype(str)) if len(labels) else np.zeros(0, np.int64)
    known = frame.codes >= 0
    event_segment = np.where(known, values[np.maximum(frame.codes, 0)], "")
    rows = []
    for name in sorted(set(values)):
        row: dict[str, Any] = {"segment": str(name), "customers": int((values == name).sum())}
        row.update(_churn(labels.loc[values[label_codes] == name] if len(labels) else labels))
        row.update(_block(frame, in_window & known & (event_segment == name)))
        rows.append(row)
    return rows
