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

from tenure.features.labels import CANCEL_EVENT

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
    if "text" not in events.columns:
        return None
    has_text = events["text"].notna().to_numpy()
    if not has_text.any():
        return None
    from tenure.insight.voice import voice_summary

    rows = np.flatnonzero(has_text)
    texts = events.iloc[rows]
    times = texts["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    inside = (times >= pd.Timestamp(window["start"]).value) & (times <= pd.Timestamp(window["end"]).value)
    return voice_summary(texts.loc[inside])


def compute_kpis(customers: pd.DataFrame, events: pd.DataFrame, start: pd.Timestamp | None = None,
                 end: pd.Timestamp | None = None, by: str | None = None, horizon_days: int = 30,
                 qualifying_event_types: Sequence[str] = ("purchase", "session", "view", "add_to_cart"),
                 estimate_lost: bool = True) -> dict[str, Any]:
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
    estimate_lost: add the buy-till-you-die estimate of customers really lost
        (:mod:`tenure.insight.lost`): ``estimated_lost_rate`` (pooled over the churn months, beside
        ``churn_rate``), ``estimated_lost_customers`` and ``estimated_lost_share`` (at the window's
        end) in ``totals``, ``estimated_lost_rate`` per month and the fitted ``lost_model``.

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
    frame = _Frame(customers, events, end, qualifying_event_types)
    lo, hi = start.value, end.value

    report: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat(),
                   "days": round((end - start) / pd.Timedelta(days=1), 2)},
        "customers": len(frame.ids),
        "horizon_days": horizon_days,
        "totals": {},
        "monthly": [],
        "cohorts": [],
        "channels": [],
    }
    cutoffs = _month_starts(start, end, horizon_days, frame.data_start, frame.data_end)
    labels = _labels(frame, cutoffs, horizon_days)
    report["totals"] = {**_churn(labels), **_block(frame, _Filter(lo, hi))}
    active = frame.active
    inside = (active.times >= lo) & (active.times <= hi)
    report["totals"]["active_customers"] = int(_distinct(active.codes[inside]).size)
    lost = _lost(frame, cutoffs, end, horizon_days) if estimate_lost else None
    if lost is not None:
        report["totals"].update({k: lost[k] for k in ("estimated_lost_rate", "estimated_lost_customers",
                                                      "estimated_lost_share")})
        report["lost_model"] = lost["model"]
    report["monthly"] = _monthly(frame, labels, start, end, lost)
    report["cohorts"] = _cohorts(frame, start, end)
    report["channels"] = _channels(frame, lo, hi)
    if by is not None:
        report["segments"] = {"by": by, "column": SEGMENTS[by], "rows": _segments(frame, lo, hi, labels, by)}
    return report


# --------------------------------------------------------------------------- pieces


class _Events:
    """Events of some types as parallel numpy arrays: customer code, time (int ns), day, channel code, values."""

    def __init__(self, rows: np.ndarray, codes: np.ndarray, times: np.ndarray, channels: np.ndarray,
                 values: dict[str, np.ndarray]) -> None:
        self.codes = codes[rows]
        self.times = times[rows]
        self.days = self.times // _DAY_NS
        self.channels = channels[rows]
        self.values = {name: v[rows] for name, v in values.items()}


class _Filter:
    """Which events a block counts: a time range, optionally one channel code and a customer mask."""

    def __init__(self, lo: int, hi: int, channel: int | None = None, customers: np.ndarray | None = None) -> None:
        self.lo, self.hi, self.channel, self.customers = lo, hi, channel, customers

    def mask(self, ev: _Events) -> np.ndarray:
        keep = (ev.times >= self.lo) & (ev.times <= self.hi)
        if self.channel is not None:
            keep &= ev.channels == self.channel
        if self.customers is not None:
            keep &= self.customers[ev.codes]
        return keep


class _Frame:
    """The events the KPIs use, split once by type into compact arrays (codes index ``ids``)."""

    def __init__(self, customers: pd.DataFrame, events: pd.DataFrame, end: pd.Timestamp,
                 qualifying: Sequence[str]) -> None:
        self.ids = pd.Index(customers["customer_id"].astype(str).unique())
        cust = customers.drop_duplicates("customer_id").set_index("customer_id").reindex(self.ids)
        self.customers = cust
        self.signup = pd.to_datetime(cust["signup_at"], utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)
        codes = _codes(events["customer_id"], self.ids) if len(events) else np.zeros(0, np.int64)
        times = events["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
        self.data_end = int(times.max()) if len(times) else end.value
        self.data_start = int(times.min()) if len(times) else end.value
        type_codes, type_names = pd.factorize(events["event_type"], use_na_sentinel=True)
        if "channel" in events.columns:
            channel_codes, channel_names = pd.factorize(events["channel"], use_na_sentinel=True)
        else:
            channel_codes, channel_names = np.full(len(events), -1, dtype=np.int64), pd.Index([])
        self.channel_names = [str(c) for c in channel_names]
        self.event_times, self.event_channels = times, channel_codes
        known = codes >= 0

        def of_type(*names: str) -> np.ndarray:
            wanted = np.zeros(len(type_names) + 1, dtype=bool)  # a look-up by code; the last slot is NA (-1)
            wanted[[i for i, n in enumerate(type_names) if n in names]] = True
            return np.flatnonzero(wanted[type_codes] & known)

        def column(name: str) -> np.ndarray:
            if name not in events.columns:
                return np.full(len(events), np.nan)
            return events[name].to_numpy(dtype=np.float64, na_value=np.nan)

        def part(rows: np.ndarray, **values: np.ndarray) -> _Events:
            return _Events(rows, codes, times, channel_codes, values)

        self.purchases = part(of_type("purchase"), amount=column("amount"))
        self.sessions = part(of_type("session"))
        self.tickets = part(of_type("support_ticket"), resolution_hours=column("resolution_hours"))
        self.surveys = part(of_type("survey"), nps=column("nps"), csat=column("csat"), ces=column("ces"))
        self.active = part(of_type(*qualifying))
        self.cancels = part(of_type(CANCEL_EVENT))
        self.day0 = min((int(e.days.min()) for e in (self.purchases, self.sessions) if len(e.days)), default=0)


def _codes(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Positions of ``ids`` in ``index`` (-1 when absent), through the distinct ids (fast for repeats)."""
    distinct_codes, distinct = pd.factorize(ids, use_na_sentinel=True)
    pos = index.get_indexer(pd.Index(distinct).astype(str))
    return np.where(distinct_codes >= 0, pos[np.maximum(distinct_codes, 0)], -1).astype(np.int64)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (a sort, faster than hashing for large arrays)."""
    if not len(values):
        return values
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


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


def _labels(frame: _Frame, cutoffs: list[pd.Timestamp], horizon_days: int) -> pd.DataFrame:
    """The churn labels of :func:`tenure.features.labels.label_churn` at ``cutoffs``, computed on the report's
    integer customer codes (no second pass over the customer ids; a test holds the two equal).

    Returns the same frame (``customer_id``, ``event_timestamp``, ``label``) plus ``code`` (index in ``frame.ids``).
    """
    from tenure.features.labels import LABEL_COLUMN

    horizon = pd.Timedelta(days=horizon_days).value
    n = len(frame.ids)
    act_codes, act_times = frame.active.codes, frame.active.times
    never = np.iinfo(np.int64).max
    first_cancel = np.full(n, never, dtype=np.int64)
    np.minimum.at(first_cancel, frame.cancels.codes, frame.cancels.times)
    signup = frame.signup

    def active_in(lo: int, hi: int) -> np.ndarray:
        flag = np.zeros(n, dtype=bool)
        flag[act_codes[(act_times > lo) & (act_times <= hi)]] = True
        return flag

    parts = []
    for cutoff in cutoffs:
        t = cutoff.value
        recent_signup = (signup <= t) & (signup > t - horizon)
        alive = (signup <= t) & (first_cancel > t) & (active_in(t - horizon, t) | recent_signup)
        cancels = (first_cancel > t) & (first_cancel <= t + horizon)
        label = (~active_in(t, t + horizon) | cancels).astype(np.int64)
        codes = np.flatnonzero(alive)
        parts.append(pd.DataFrame({"customer_id": frame.ids[codes], "event_timestamp": cutoff,
                                   LABEL_COLUMN: label[codes], "code": codes}))
    if not parts:
        return pd.DataFrame({"customer_id": pd.Series(dtype=str),
                             "event_timestamp": pd.Series(dtype="datetime64[ns, UTC]"),
                             LABEL_COLUMN: pd.Series(dtype=np.int64), "code": pd.Series(dtype=np.int64)})
    return pd.concat(parts, ignore_index=True)


def _rate(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _purchase_kpis(frame: _Frame, keep: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Orders, revenue, AOV, repurchase rate, time between orders; and the sorted order keys."""
    p = frame.purchases
    n_days = _N_DAYS
    keys = _distinct(p.codes[keep] * n_days + (p.days[keep] - frame.day0))
    order_cust, order_day = keys // n_days, keys % n_days
    revenue = float(np.nansum(p.values["amount"][keep]))
    per_customer = np.bincount(order_cust) if len(order_cust) else np.zeros(0, np.int64)
    buyers = int((per_customer > 0).sum())
    repeaters = int((per_customer > 1).sum())
    same = order_cust[1:] == order_cust[:-1]
    gaps = (order_day[1:] - order_day[:-1])[same].astype(np.float64)
    return {
        "orders": len(keys),
        "revenue": round(revenue, 2),
        "average_order_value": _rate(revenue, len(keys)),
        "buyers": buyers,
        "repurchase_rate": _rate(repeaters, buyers),
        "days_between_orders_mean": float(gaps.mean()) if len(gaps) else None,
        "days_between_orders_median": float(np.median(gaps)) if len(gaps) else None,
    }, keys


_N_DAYS = 1 << 20  # day slots per customer in (customer, day) keys: far more days than any data holds


def _survey_kpis(nps: np.ndarray, csat: np.ndarray, ces: np.ndarray) -> dict[str, Any]:
    """NPS (-100..100), CSAT (share 4-5, mean), CES (mean 1..7, share 5-7) with answer counts."""
    nps, csat, ces = nps[~np.isnan(nps)], csat[~np.isnan(csat)], ces[~np.isnan(ces)]
    return {
        "nps": float(100.0 * ((nps >= 9).mean() - (nps <= 6).mean())) if len(nps) else None,
        "nps_answers": len(nps),
        "csat": float((csat >= 4).mean()) if len(csat) else None,
        "csat_mean": float(csat.mean()) if len(csat) else None,
        "csat_answers": len(csat),
        "ces": float(ces.mean()) if len(ces) else None,
        "ces_easy_share": float((ces >= 5).mean()) if len(ces) else None,
        "ces_answers": len(ces),
    }


def _block(frame: _Frame, where: _Filter) -> dict[str, Any]:
    """Every event-based KPI of the events ``where`` selects."""
    out, order_keys = _purchase_kpis(frame, where.mask(frame.purchases))
    s = frame.sessions
    keep = where.mask(s)
    session_keys = _distinct(s.codes[keep] * _N_DAYS + (s.days[keep] - frame.day0))
    pos = np.searchsorted(order_keys, session_keys)
    converted = int((order_keys[np.minimum(pos, len(order_keys) - 1)] == session_keys).sum()) if len(order_keys) else 0
    out.update({"session_days": len(session_keys), "converted_session_days": converted,
                "conversion_rate": _rate(converted, len(session_keys))})
    t = frame.tickets
    keep = where.mask(t)
    hours = t.values["resolution_hours"][keep]
    hours = hours[~np.isnan(hours)]
    out["tickets"] = int(keep.sum())
    out["resolution_hours_median"] = float(np.median(hours)) if len(hours) else None
    out["resolution_hours_mean"] = float(hours.mean()) if len(hours) else None
    v = frame.surveys
    keep = where.mask(v)
    out.update(_survey_kpis(v.values["nps"][keep], v.values["csat"][keep], v.values["ces"][keep]))
    return out


def _churn(labels: pd.DataFrame) -> dict[str, Any]:
    n = len(labels)
    churned = int(labels["label"].sum()) if n else 0
    return {"customer_months": n, "churn_rate": _rate(churned, n),
            "retention_rate": None if not n else 1.0 - churned / n}


def _lost(frame: _Frame, cutoffs: list[pd.Timestamp], end: pd.Timestamp, horizon_days: int) -> dict[str, Any]:
    """Customers really lost (Pareto/NBD on activity days, :func:`tenure.insight.lost.estimate_lost`)."""
    from tenure.insight.lost import estimate_lost

    act = frame.active
    keys = _distinct(act.codes * _N_DAYS + act.days)  # sorted by customer, then day
    data_start_day = frame.data_start // _DAY_NS
    signup_day = np.where(frame.signup == np.iinfo(np.int64).min, data_start_day, frame.signup // _DAY_NS)
    birth = np.maximum(signup_day, data_start_day)
    lost = estimate_lost(keys // _N_DAYS, keys % _N_DAYS, birth, [c.value // _DAY_NS for c in cutoffs],
                         end.value // _DAY_NS, horizon_days)
    lost["months"] = {str(np.datetime64(day, "D").astype("datetime64[M]")): v for day, v in lost["months"].items()}
    return lost


def _monthly(frame: _Frame, labels: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
             lost: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per calendar month touching the window: churn at its start and its event KPIs."""
    rows = []
    lost_months = lost["months"] if lost is not None else {}
    months = pd.period_range(start.tz_localize(None), end.tz_localize(None), freq="M")
    by_cutoff = dict(tuple(labels.groupby("event_timestamp"))) if len(labels) else {}
    for month in months:
        lo = max(month.start_time.tz_localize("UTC"), start)
        hi = min(month.end_time.tz_localize("UTC"), end)
        cut = by_cutoff.get(month.start_time.tz_localize("UTC"))
        row: dict[str, Any] = {"month": str(month), "alive_at_start": None if cut is None else len(cut)}
        row.update(_churn(cut) if cut is not None else {"customer_months": 0, "churn_rate": None,
                                                         "retention_rate": None})
        if lost is not None:
            row.update(lost_months.get(str(month), {"expected_alive_at_start": None, "estimated_lost_rate": None}))
        row.update(_block(frame, _Filter(lo.value, hi.value)))
        rows.append(row)
    return rows


def _cohorts(frame: _Frame, start: pd.Timestamp, end: pd.Timestamp) -> list[dict[str, Any]]:
    """Signup-month cohorts from the window's first month to its end: share with qualifying activity k months after."""
    signup = frame.signup
    first_month = start.tz_convert("UTC").tz_localize(None).to_period("M").to_timestamp().tz_localize("UTC")
    ok = (signup >= first_month.value) & (signup <= end.value)
    if not ok.any():
        return []
    month_of = _month_index(signup)
    last_month = int(_month_index(np.array([end.value]))[0])
    act = frame.active
    upto = act.times <= end.value
    act_codes = act.codes[upto]
    act_month = _month_index(act.times[upto])
    offset = act_month - month_of[act_codes]
    keep = ok[act_codes] & (offset >= 0)
    pairs = _distinct(act_codes[keep].astype(np.int64) * 1024 + offset[keep])
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


def _channels(frame: _Frame, lo: int, hi: int) -> list[dict[str, Any]]:
    """The omnichannel view: every event KPI per event channel (web, app, email, chat, phone, ...)."""
    names = frame.channel_names
    order = [c for c in _CHANNELS if c in names] + sorted(c for c in names if c not in _CHANNELS)
    inside = (frame.event_times >= lo) & (frame.event_times <= hi) & (frame.event_channels >= 0)
    per_channel = np.bincount(frame.event_channels[inside], minlength=len(names))
    rows = []
    for name in order:
        code = names.index(name)
        row: dict[str, Any] = {"channel": name, "events": int(per_channel[code])}
        row.update(_block(frame, _Filter(lo, hi, channel=code)))
        if row["orders"] or row["session_days"] or row["tickets"] or row["nps_answers"] or row["csat_answers"] \
                or row["ces_answers"]:
            rows.append(row)
    return rows


def _segments(frame: _Frame, lo: int, hi: int, labels: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    """Headline KPIs per customer segment (plan, region, acquisition channel or signup month)."""
    if SEGMENTS[by] == "cohort":
        values = np.array([_month_name(int(m)) for m in _month_index(frame.signup)], dtype=object)
    else:
        values = frame.customers[SEGMENTS[by]].to_numpy(dtype=object)
    values = np.where(pd.isna(values), "(missing)", values).astype(str)
    label_codes = labels["code"].to_numpy() if len(labels) else np.zeros(0, np.int64)
    rows = []
    for name in sorted(set(values)):
        members = values == name
        row: dict[str, Any] = {"segment": str(name), "customers": int(members.sum())}
        row.update(_churn(labels.loc[members[label_codes]] if len(labels) else labels))
        row.update(_block(frame, _Filter(lo, hi, customers=members)))
        rows.append(row)
    return rows
