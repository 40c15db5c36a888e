"""The dashboard's panels: what the service, monitoring and the insight room left on disk -> small JSON.

Each panel is a pure function of its sources (files, frames, registry answers) returning a JSON-able
dict, and :class:`DashboardData` keeps their answers ready: a background thread recomputes a panel
when its sources changed (cheap fingerprints: file sizes and times, served model versions), so a
request only copies bytes that are already there. Panels and their sources:

========================  ====================================================================
``kpis``                  ``tenure.insight.kpis.build_kpi_report(settings)`` (headline rates,
                          monthly churn/retention, cohort retention curves, per channel)
``risk_mix``              the churn prediction log (``prediction_log_dir/churn-*.jsonl``): share
                          of scores in each risk band per period, read incrementally
``value_at_risk``         ``tenure.insight.value.load_customer_values(settings)`` x each
                          customer's latest logged churn probability
``experiments``           ``tenure.experiments`` when that room exists, else "none yet"
``drift``                 monitoring's ``reports_dir/*/summary.json`` (one per pass)
``alerts``                monitoring's JSON-lines alert files (``monitoring.alert_sinks``)
``champions``             the registry's champions (``tenure.registry.champion``) and the
                          versions this service has loaded
========================  ====================================================================

Every answer is ``{"panel", "status", "message", "updated_at", "data"}``: ``status`` is ``ok``
(data to draw), ``empty`` (the source exists but has nothing yet: ``message`` says what fills
it), ``unavailable`` (the source is not installed or configured), ``computing`` (first
computation still running) or ``error`` (the computation failed; details in the service log).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tenure.jsonable import to_jsonable

logger = logging.getLogger(__name__)

PANELS: tuple[str, ...] = ("kpis", "risk_mix", "value_at_risk", "experiments", "drift", "alerts", "champions")
"""Every panel, in the page's order."""

BAND_ORDER: tuple[str, ...] = ("low", "medium", "high")

KEY_METRICS: dict[str, tuple[str, ...]] = {
    "churn": ("test_roc_auc", "test_pr_auc", "test_ece", "test_lift_top10"),
    "recommender": ("ndcg_at_k", "recall_at_k", "precision_at_k", "hit_rate_at_k"),
}
"""Metrics of each champion's run shown first (others follow in the panel's ``metrics``)."""

_MINUTE = 16  # "YYYY-MM-DDTHH:MM" of an ISO time
_HOUR = 13
_DAY = 10


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def panel(name: str, status: str, data: Any = None, message: str | None = None) -> dict[str, Any]:
    """One panel answer (see the module docstring)."""
    return {"panel": name, "status": status, "message": message, "updated_at": _now_iso(), "data": data}


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- the prediction log, read incrementally ------------------------------------------------------

_RE_LOGGED = re.compile(rb'"logged_at":"([^"]{16,40})"')
_RE_CUSTOMER = re.compile(rb'"customer_id":"((?:[^"\\]|\\.)*)"')
_RE_PROBA = re.compile(rb'"churn_probability":(-?[0-9.eE+-]+|null)')
_RE_BAND = re.compile(rb'"risk_band":"([^"\\]*)"')


def parse_churn_line(line: bytes) -> tuple[str, str, float | None, str] | None:
    """``(logged_at, customer_id, churn_probability, risk_band)`` of one churn prediction-log line.

    The log is written by :class:`serving.prediction_log.PredictionLog` with compact separators, so
    four regular expressions find the fields without decoding the feature values (about three times
    faster than ``json.loads`` on lines of 32 features); a line they do not match is decoded as JSON.
    None for a line that is not a churn record (or not JSON).
    """
    logged, customer, proba, band = (_RE_LOGGED.search(line), _RE_CUSTOMER.search(line),
                                     _RE_PROBA.search(line), _RE_BAND.search(line))
    if logged and customer and proba and band:
        customer_id = customer.group(1).decode()
        if "\\" in customer_id:
            customer_id = json.loads(b'"' + customer.group(1) + b'"')
        value = None if proba.group(1) == b"null" else _finite(proba.group(1))
        return logged.group(1).decode(), customer_id, value, band.group(1).decode()
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("kind") != "churn" or not record.get("logged_at"):
        return None
    return (str(record["logged_at"]), str(record.get("customer_id")), _finite(record.get("churn_probability")),
            str(record.get("risk_band")))


@dataclass
class ChurnLogTail:
    """Risk-band counts per period and each customer's latest score, kept up to date from the log files.

    Only the bytes appended since the last :meth:`update` are read (whole lines). A file that
    shrank or disappeared (rotation, erasure) makes the next update start over from every file,
    so nothing erased is kept. Counts are per minute for the last two days and per hour before.

    Parameters
    ----------
    folder: the prediction log folder (``paths.prediction_log_dir``).
    """

    folder: Path
    offsets: dict[str, int] = field(default_factory=dict)
    minutes: dict[str, dict[str, int]] = field(default_factory=dict)
    hours: dict[str, dict[str, int]] = field(default_factory=dict)
    latest: dict[str, tuple[str, float | None, str]] = field(default_factory=dict)
    lines_read: int = 0

    def files(self) -> list[Path]:
        """The churn log files, oldest name first."""
        if not Path(self.folder).exists():
            return []
        return sorted(Path(self.folder).glob("churn-*.jsonl"))

    def fingerprint(self) -> tuple:
        """Names and sizes of the log files (changes whenever a line is appended)."""
        out = []
        for path in self.files():
            try:
                out.append((path.name, path.stat().st_size))
            except FileNotFoundError:
                continue
        return tuple(out)

    def reset(self) -> None:
        """Forget everything read (the next update reads every file from the start)."""
        self.offsets.clear()
        self.minutes.clear()
        self.hours.clear()
        self.latest.clear()
        self.lines_read = 0

    def update(self) -> int:
        """Read what was appended since the last call; returns the number of records read."""
        files = self.files()
        names = {p.name for p in files}
        if any(name not in names for name in self.offsets) or any(
                _size(p) < self.offsets.get(p.name, 0) for p in files):
            logger.info("prediction log files shrank or disappeared; the dashboard reads them again")
            self.reset()
        read = 0
        for path in files:
            read += self._read_new(path)
        self._compact()
        self.lines_read += read
        return read

    def _read_new(self, path: Path) -> int:
        start = self.offsets.get(path.name, 0)
        try:
            with open(path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read()
        except FileNotFoundError:
            return 0
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0
        self.offsets[path.name] = start + end + 1
        n = 0
        for line in chunk[:end].split(b"\n"):
            parsed = parse_churn_line(line) if line else None
            if parsed is None:
                continue
            logged_at, customer_id, proba, band = parsed
            counts = self.minutes.setdefault(logged_at[:_MINUTE], {})
            counts[band] = counts.get(band, 0) + 1
            previous = self.latest.get(customer_id)
            if previous is None or previous[0] <= logged_at:
                self.latest[customer_id] = (logged_at, proba, band)
            n += 1
        return n

    def _compact(self, keep_minutes_s: float = 2 * 86_400) -> None:
        """Fold minute counts older than ``keep_minutes_s`` into hour counts."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=keep_minutes_s)).isoformat()[:_MINUTE]
        for minute in [m for m in self.minutes if m < cutoff]:
            hour = self.hours.setdefault(minute[:_HOUR], {})
            for band, n in self.minutes.pop(minute).items():
                hour[band] = hour.get(band, 0) + n


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _bands(names: Iterable[str]) -> list[str]:
    """Band names in risk order (low, medium, high), unknown names after them."""
    names = set(names)
    return [b for b in BAND_ORDER if b in names] + sorted(names - set(BAND_ORDER))


def risk_mix(tail: ChurnLogTail, days: int, now: datetime | None = None) -> dict[str, Any]:
    """The ``risk_mix`` panel: per period, the share and count of churn scores in each risk band.

    The period follows the span of the log: minutes when it covers at most six hours (a demo, a
    first day in service), hours up to seven days, days beyond. A customer scored twice counts
    twice (the mix of answers given, which is what marketing automation acted on).
    """
    now = now or datetime.now(UTC)
    since = (now - timedelta(days=days)).isoformat()
    counts: dict[str, dict[str, int]] = {}
    for key, bands in (*tail.hours.items(), *tail.minutes.items()):
        if key >= since[:len(key)]:
            counts[key] = bands
    if not counts:
        return panel("risk_mix", "empty", message="no churn scores logged yet: /churn-score answers fill this chart")
    keys = sorted(counts)
    span_h = (_parse_key(keys[-1]) - _parse_key(keys[0])).total_seconds() / 3600
    only_minutes = all(len(k) == _MINUTE for k in keys)
    width, unit = ((_MINUTE, "minute") if only_minutes and span_h <= 6 else
                   (_HOUR, "hour") if span_h <= 7 * 24 else (_DAY, "day"))
    merged: dict[str, dict[str, int]] = {}
    for key in keys:
        bucket = merged.setdefault(key[:width], {})
        for band, n in counts[key].items():
            bucket[band] = bucket.get(band, 0) + n
    periods = sorted(merged)
    bands = _bands(b for c in merged.values() for b in c)
    totals = [sum(merged[p].values()) for p in periods]
    series = {band: [merged[p].get(band, 0) for p in periods] for band in bands}
    shares = {band: [round(n / t, 4) if t else None for n, t in zip(values, totals)] for band, values in series.items()}
    latest = list(tail.latest.values())
    current = {band: sum(1 for _, _, b in latest if b == band) for band in bands}
    return panel("risk_mix", "ok", {
        "period": unit, "periods": [_period_label(p) for p in periods], "bands": bands,
        "share": shares, "count": series, "scores": sum(totals),
        "customers_scored": len(latest), "customers_by_band_now": current,
    })


def _parse_key(key: str) -> datetime:
    fmt = {_MINUTE: "%Y-%m-%dT%H:%M", _HOUR: "%Y-%m-%dT%H", _DAY: "%Y-%m-%d"}[len(key)]
    return datetime.strptime(key, fmt).replace(tzinfo=UTC)


def _period_label(key: str) -> str:
    """An ISO time Plotly reads as a date axis value (``2026-06-01T10:00``)."""
    return key if len(key) != _HOUR else key + ":00"


# --- customer value x churn risk ---------------------------------------------------------------------


def value_at_risk(values: Any, latest: dict[str, tuple[str, float | None, str]],
                  customer_ref: Callable[[str], str], top: int) -> dict[str, Any]:
    """The ``value_at_risk`` panel: expected value x latest churn probability, in total, per band, top customers.

    Parameters
    ----------
    values: DataFrame with ``customer_id``, ``expected_value`` (and optionally ``p_alive``), one row
        per customer (``tenure.insight.value.load_customer_values``).
    latest: ``{customer ref: (logged_at, churn_probability, risk_band)}`` from the prediction log.
    customer_ref: maps a customer id to its reference in the log (the service's pseudonymisation).
    top: how many customers to list.
    """
    import numpy as np

    if values is None or len(values) == 0:
        return panel("value_at_risk", "empty", message="no customer values yet: fit the value model (docs/insight.md)")
    ids = values["customer_id"].astype(str).tolist()
    expected = values["expected_value"].to_numpy(dtype=float)
    proba = np.full(len(ids), np.nan)
    bands: list[str | None] = [None] * len(ids)
    for i, cid in enumerate(ids):
        hit = latest.get(customer_ref(cid))
        if hit is not None and hit[1] is not None:
            proba[i], bands[i] = hit[1], hit[2]
    scored = ~np.isnan(proba) & ~np.isnan(expected)
    at_risk = np.where(scored, proba * np.nan_to_num(expected), 0.0)
    by_band: dict[str, dict[str, float]] = {}
    for band in _bands(b for b in bands if b):
        mask = np.array([b == band for b in bands])
        by_band[band] = {"customers": int(mask.sum()), "expected_value": float(np.nansum(expected[mask])),
                         "value_at_risk": float(at_risk[mask].sum())}
    order = np.argsort(-at_risk)[:top]
    p_alive = values["p_alive"].to_numpy(dtype=float) if "p_alive" in values.columns else None
    customers = [{"customer_id": ids[i], "expected_value": _finite(expected[i]), "churn_probability": _finite(proba[i]),
                  "risk_band": bands[i], "value_at_risk": float(at_risk[i]),
                  "p_alive": None if p_alive is None else _finite(p_alive[i])}
                 for i in order if scored[i] and at_risk[i] > 0]
    data = {"customers_valued": len(ids), "customers_scored": int(scored.sum()),
            "expected_value": float(np.nansum(expected)), "expected_value_scored": float(np.nansum(expected[scored])),
            "value_at_risk": float(at_risk.sum()), "by_band": by_band, "top_customers": customers}
    if not scored.any():
        return panel("value_at_risk", "empty", data, "customer values exist but none of these customers has a churn "
                     "score in the prediction log yet (score them through /churn-score)")
    return panel("value_at_risk", "ok", data)


# --- monitoring's files ------------------------------------------------------------------------------


def drift_status(reports_dir: Path, shown: int, cache: dict[str, dict] | None = None) -> dict[str, Any]:
    """The ``drift`` panel: the latest monitoring pass per model and the drift share of the last passes.

    Reads ``reports_dir/<UTC stamp>-<kind>/summary.json`` (written once per pass by monitoring);
    ``cache`` maps folder names to summaries already read (they never change).
    """
    cache = {} if cache is None else cache
    folders = sorted((p.parent for p in Path(reports_dir).glob("*/summary.json")), key=lambda p: p.name)[-shown:]
    passes = []
    for folder in folders:
        summary = cache.get(folder.name)
        if summary is None:
            try:
                summary = json.loads((folder / "summary.json").read_text())
            except (OSError, ValueError):
                continue
            cache[folder.name] = summary
        if isinstance(summary, dict):
            passes.append(_pass_row(folder, summary))
    if not passes:
        return panel("drift", "empty", message="no monitoring pass yet: `tenure monitor run` writes one")
    latest: dict[str, dict] = {}
    for row in passes:
        latest[row["kind"]] = row
    return panel("drift", "ok", {"latest": list(latest.values()), "passes": passes})


def _pass_row(folder: Path, s: dict[str, Any]) -> dict[str, Any]:
    drift = s.get("drift") if isinstance(s.get("drift"), dict) else {}
    perf = s.get("performance") if isinstance(s.get("performance"), dict) else {}
    retrain = s.get("retrain") if isinstance(s.get("retrain"), dict) else {}
    return {
        "report": folder.name, "checked_at": s.get("checked_at"), "kind": str(s.get("kind") or folder.name.split("-")[-1]),
        "model_version": s.get("model_version"), "data": s.get("mode"),
        "drift_share": _finite(drift.get("drift_share")), "drifted": list(drift.get("drifted") or [])[:10],
        "rows_current": drift.get("rows_current"), "roc_auc": _finite(perf.get("roc_auc")),
        "verdict": s.get("verdict"), "alerted": bool(s.get("alert") or s.get("alerts")),
        "retrain": retrain.get("summary"),
    }


def alert_files(settings: Any) -> list[Path]:
    """The JSON-lines alert files monitoring writes (``monitoring.alert_sinks`` of kind ``jsonl``)."""
    paths = []
    for sink in settings.monitoring.alert_sinks:
        if getattr(sink, "kind", None) == "jsonl":
            paths.append(Path(sink.path or Path(settings.paths.reports_dir) / "alerts.jsonl"))
    return paths


def last_alerts(paths: Iterable[Path], shown: int, tail_bytes: int = 256 * 1024) -> dict[str, Any]:
    """The ``alerts`` panel: the last ``shown`` alerts of the JSON-lines files, newest first.

    Only the last ``tail_bytes`` of each file are read (an alert is a few hundred bytes).
    """
    paths = list(paths)
    if not paths:
        return panel("alerts", "unavailable", message="no JSON-lines alert sink configured (monitoring.alert_sinks)")
    alerts = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - tail_bytes))
                chunk = handle.read()
        except FileNotFoundError:
            continue
        lines = chunk.split(b"\n")
        if size > tail_bytes:
            lines = lines[1:]  # the first line may be cut
        for line in lines:
            try:
                record = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            if isinstance(record, dict):
                alerts.append({"raised_at": record.get("raised_at"), "model": record.get("model"),
                               "model_version": record.get("model_version"), "title": record.get("title"),
                               "severity": record.get("severity"), "findings": list(record.get("findings") or [])[:5],
                               "next_action": record.get("next_action"), "route": record.get("route")})
    if not alerts:
        return panel("alerts", "empty", {"alerts": []}, "no alert raised yet")
    alerts.sort(key=lambda a: str(a.get("raised_at") or ""), reverse=True)
    return panel("alerts", "ok", {"alerts": alerts[:shown], "total_read": len(alerts)})


# --- the registry ------------------------------------------------------------------------------------


def champions(settings: Any, served: dict[str, str | None]) -> dict[str, Any]:
    """The ``champions`` panel: each model's champion (version, age, metrics, the gate's last verdict)
    beside the version this service has loaded."""
    from tenure.registry.champion import RUNTIME_LOADERS, ModelCache, NoChampionError
    from tenure.serving.model_store import RegistryUnavailable, check_registry_reachable

    try:  # as the service does: never create an empty SQLite registry (a first training may be creating it)
        check_registry_reachable(settings.mlflow.tracking_uri, settings.serving.registry_timeout_s)
    except RegistryUnavailable as exc:
        return panel("champions", "empty", {"models": []}, str(exc))
    cache = ModelCache.from_settings(settings)
    rows = []
    for kind in RUNTIME_LOADERS:  # every kind of model the registry loads (churn, recommender, ...)
        row: dict[str, Any] = {"kind": kind, "name": cache.name(kind), "served_version": served.get(kind)}
        try:
            champ = cache.describe(kind)
        except NoChampionError:
            rows.append({**row, "version": None, "message": f"no champion yet: tenure train {kind} --promote"})
            continue
        metrics = {k: _finite(v) for k, v in sorted(champ.metrics.items())}
        key = ([k for k in KEY_METRICS[kind] if metrics.get(k) is not None] if kind in KEY_METRICS else
               [k for k in metrics if "/" not in k and metrics[k] is not None][:4])
        tags = dict(cache.client().get_model_version(champ.name, champ.version).tags or {})
        rows.append({**row, "version": champ.version, "created_at": champ.created_at, "age_days": round(champ.age_days, 2),
                     "run_id": champ.run_id, "key_metrics": {k: metrics[k] for k in key},
                     "baselines": _baselines(metrics, key), "metrics": metrics,
                     "gate": tags.get("gate.challenger.reason") or tags.get("gate.champion.reason"),
                     "forced": tags.get("gate.challenger.forced") == "true"})
    if all(r.get("version") is None for r in rows):
        return panel("champions", "empty", {"models": rows}, "no champion yet: train and promote a model")
    return panel("champions", "ok", {"models": rows})


def _baselines(metrics: dict[str, float | None], key: list[str]) -> dict[str, dict[str, float]]:
    """For each key metric, the other candidates' and baselines' values logged on the same run.

    Churn runs log ``<candidate>_<metric>`` (``logistic_test_roc_auc``), recommender runs
    ``baseline/<name>/<metric>`` (``baseline/popular/ndcg_at_k``).
    """
    out: dict[str, dict[str, float]] = {}
    for metric in key:
        found = {}
        for name, value in metrics.items():
            if value is None or name == metric:
                continue
            if name.startswith("baseline/") and name.endswith("/" + metric) and name.count("/") == 2:
                found[name.split("/")[1]] = value
            elif "/" not in name and name.endswith("_" + metric):
                found[name[: -len(metric) - 1]] = value
        if found:
            out[metric] = found
    return out


# --- other rooms, when they exist --------------------------------------------------------------------


def room_available(module: str) -> bool:
    """Whether ``tenure.<room>...`` can be imported here (an optional room of another issue)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def kpis(settings: Any) -> dict[str, Any]:
    """The ``kpis`` panel: the insight room's KPI report of the stored tables (its shape: docs/insight.md)."""
    if not room_available("tenure.insight.kpis"):
        return panel("kpis", "unavailable", message="the insight room (tenure.insight) is not installed")
    from tenure.insight.kpis import build_kpi_report

    try:
        report = build_kpi_report(settings)
    except FileNotFoundError as exc:
        return panel("kpis", "empty", message=f"no tables to report on yet ({exc}): run tenure ingest")
    except ValueError as exc:
        return panel("kpis", "empty", message=str(exc))
    report = {k: v for k, v in report.items() if k != "segments"}
    return panel("kpis", "ok", report)


def load_values(settings: Any) -> tuple[Any, str | None]:
    """``(customer values, None)`` from the insight room, or ``(None, why not)`` (no room, no model fitted yet)."""
    if not room_available("tenure.insight.value"):
        return None, "the insight room's value model (tenure.insight.value) is not installed"
    from tenure.insight import value

    loader = getattr(value, "load_customer_values", None)
    if loader is None:
        return None, "this version of tenure.insight.value has no load_customer_values"
    try:
        return loader(settings), None
    except (FileNotFoundError, LookupError, ValueError) as exc:  # no value model fitted yet: its message says how
        return None, str(exc)


def values_fingerprint(settings: Any) -> tuple:
    """Modification time and size of the insight room's values file (``values_path``), when it says where that is."""
    if not room_available("tenure.insight.value"):
        return ()
    from tenure.insight import value

    where = getattr(value, "values_path", None)
    if where is None:
        return ()
    try:
        stat = Path(where(settings)).stat()
    except FileNotFoundError:
        return (None,)
    return stat.st_mtime, stat.st_size


def experiments(settings: Any, shown: int = 6) -> dict[str, Any]:
    """The ``experiments`` panel: per experiment, each arm's retention and its difference to control.

    Reads the experiments room (``tenure.experiments.workflow``: definitions in settings, treatment
    and outcome events in the tables); "none yet" without that room or without any experiment.
    An experiment whose outcome windows have not ended yet is listed with the reason.
    """
    if not room_available("tenure.experiments.workflow"):
        return panel("experiments", "empty", {"experiments": []}, "none yet")
    from tenure.experiments import workflow

    events = workflow.read_experiment_events(settings)
    found = workflow.list_experiments(settings, events)
    if not found:
        return panel("experiments", "empty", {"experiments": []}, "none yet: no experiment is defined "
                     "(experiments.definitions) and no treatment event was recorded")
    rows = []
    for exp in found[-shown:]:
        try:
            report = workflow.experiment_report(settings, exp["name"], events=events)
        except ValueError as exc:  # no matured outcome yet, or an unknown control arm: say so
            rows.append({"name": exp["name"], "status": exp.get("status"), "arms": [], "warning": str(exc)})
            continue
        rows.append(experiment_row(report))
    return panel("experiments", "ok" if any(r["arms"] for r in rows) else "empty", {"experiments": rows},
                 None if any(r["arms"] for r in rows) else "no experiment has matured outcomes yet")


def experiment_row(report: dict[str, Any], metric: str = "retention_rate") -> dict[str, Any]:
    """One experiment report (``tenure experiments report NAME --json``) -> the panel's row for ``metric``."""
    diffs = {d["arm"]: d for d in report.get("differences", []) if d.get("metric") == metric}
    truth = report.get("true_retention_effect") or {}
    arms = []
    for arm in report.get("arms", []):
        d = diffs.get(arm["arm"], {})
        arms.append({"arm": arm["arm"], "customers": arm.get("customers"), "rate": _finite(arm.get(metric)),
                     "control": arm["arm"] == report.get("control"), "difference": _finite(d.get("estimate")),
                     "difference_low": _finite(d.get("low")), "difference_high": _finite(d.get("high")),
                     "p_value": _finite(d.get("p_value")), "significant": d.get("significant"),
                     "true_difference": _finite(truth.get(arm["arm"])) if metric == "retention_rate" else None})
    srm = report.get("srm") or {}
    return {"name": report.get("experiment"), "status": report.get("status"), "metric": metric.replace("_", " "),
            "control": report.get("control"), "customers": report.get("matured"), "arms": arms,
            "srm_flagged": bool(srm.get("flagged")), "warning": "; ".join(report.get("warnings") or [])}


# --- the cache and its refresher -------------------------------------------------------------------


@dataclass
class _Slot:
    """The last answer of one panel: JSON bytes, when it was computed, from which sources."""

    body: bytes | None = None
    fingerprint: Any = None
    computed: float = 0.0
    ready: threading.Event = field(default_factory=threading.Event)


class DashboardData:
    """Every panel's answer, kept fresh by one background thread; requests read bytes only.

    Parameters
    ----------
    settings: the service's settings (paths, ``dashboard`` section).
    served_versions: returns ``{"churn": version | None, "recommender": ...}`` the service has loaded.
    customer_ref: the service's mapping of a customer id to its prediction-log reference.
    """

    def __init__(self, settings: Any, served_versions: Callable[[], dict[str, str | None]] | None = None,
                 customer_ref: Callable[[str], str] | None = None) -> None:
        self.settings = settings
        self.served_versions = served_versions or dict
        self.customer_ref = customer_ref or (lambda cid: cid)
        self.tail = ChurnLogTail(Path(settings.paths.prediction_log_dir))
        self._summaries: dict[str, dict] = {}
        self._values: Any = None
        self._values_reason: str | None = None
        self._values_mark: Any = None
        self._slots = {name: _Slot() for name in PANELS}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- sources and their fingerprints ---
    def _tables_fingerprint(self) -> tuple:
        """Newest modification time and count of the table files (changes on every ingestion)."""
        root = Path(self.settings.paths.tables_dir)
        newest, count = 0.0, 0
        for folder, _, files in os.walk(root):
            for name in files:
                try:
                    newest = max(newest, os.stat(os.path.join(folder, name)).st_mtime)
                except FileNotFoundError:
                    continue
                count += 1
        return newest, count

    def _reports_fingerprint(self) -> tuple:
        reports = Path(self.settings.paths.reports_dir)
        names = sorted(p.name for p in reports.iterdir()) if reports.exists() else []
        sizes = tuple((str(p), _size(p)) for p in alert_files(self.settings))
        return tuple(names), sizes

    def _plan(self) -> list[tuple[str, Callable[[], Any], Callable[[], dict], bool, float]]:
        """``(panel, fingerprint, compute, slow, min_interval_s)`` for every panel.

        A panel is recomputed when its fingerprint changed and its last computation is at least
        ``min_interval_s`` old; ``slow`` panels read tables or the registry.
        """
        d = self.settings.dashboard
        slow_tick = lambda: int(time.time() // d.slow_refresh_s)
        return [
            ("risk_mix", self.tail.fingerprint, self._risk_mix, False, 0.0),
            ("drift", self._reports_fingerprint, lambda: drift_status(self.settings.paths.reports_dir, d.reports_shown,
                                                                      self._summaries), False, 0.0),
            ("alerts", self._reports_fingerprint, lambda: last_alerts(alert_files(self.settings), d.alerts_shown),
             False, 0.0),
            ("champions", lambda: (tuple(sorted(self.served_versions().items())), slow_tick()),
             lambda: champions(self.settings, self.served_versions()), True, 0.0),
            ("experiments", self._tables_fingerprint, lambda: experiments(self.settings), True, d.slow_refresh_s),
            ("value_at_risk", lambda: (self.tail.fingerprint(), values_fingerprint(self.settings), slow_tick()),
             self._value_at_risk, True, d.refresh_s),
            ("kpis", self._tables_fingerprint, lambda: kpis(self.settings), True, d.slow_refresh_s),
        ]

    def _risk_mix(self) -> dict[str, Any]:
        self.tail.update()
        return risk_mix(self.tail, self.settings.dashboard.risk_mix_days)

    def _value_at_risk(self) -> dict[str, Any]:
        if not room_available("tenure.insight.value"):
            return panel("value_at_risk", "unavailable", message="the insight room's value model (tenure.insight.value) "
                         "is not installed")
        self.tail.update()
        mark = (values_fingerprint(self.settings), int(time.time() // self.settings.dashboard.slow_refresh_s))
        if self._values_mark != mark:  # values change when the value model is refitted: read them only then
            (self._values, self._values_reason), self._values_mark = load_values(self.settings), mark
        if self._values is None:
            return panel("value_at_risk", "empty", message=self._values_reason)
        return value_at_risk(self._values, self.tail.latest, self.customer_ref, self.settings.dashboard.top_customers)

    # --- refreshing ---
    def refresh(self, slow: bool = True, force: bool = False) -> list[str]:
        """Recompute the panels whose sources changed; returns the names recomputed.

        ``slow`` includes the panels computed from tables and the registry; ``force`` ignores
        the fingerprints. A panel that fails answers status ``error`` (the traceback is logged).
        """
        done = []
        for name, fingerprint, compute, is_slow, min_interval_s in self._plan():
            if is_slow and not slow:
                continue
            slot = self._slots[name]
            if not force and slot.body is not None and time.time() - slot.computed < min_interval_s:
                continue
            try:
                mark = fingerprint()
            except Exception:  # noqa: BLE001  a source that cannot be looked at: compute and report
                mark = object()
            if not force and slot.body is not None and mark == slot.fingerprint:
                continue
            started = time.perf_counter()
            try:
                answer = compute()
            except Exception as exc:
                logger.exception("dashboard panel %s failed", name)
                answer = panel(name, "error", message=f"{type(exc).__name__} while computing this panel "
                                                      "(details in the service log)")
            answer["compute_s"] = round(time.perf_counter() - started, 4)
            slot.body = json.dumps(answer, default=to_jsonable, allow_nan=False).encode()
            slot.fingerprint = mark
            slot.computed = time.time()
            slot.ready.set()
            done.append(name)
            if self._stop.is_set():
                break
        return done

    def start(self) -> None:
        """Compute every panel in a background thread now, then keep them fresh."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="tenure-dashboard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        d = self.settings.dashboard
        self.refresh(slow=False)  # the cheap panels first, so the page has something to draw at once
        self.refresh(slow=True)
        while not self._stop.is_set():
            self._wake.wait(d.refresh_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh(slow=True)
            except Exception:
                logger.exception("dashboard refresh failed")

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the background thread: it ends after the panel it is computing (a daemon; not waited for long)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- answers ---
    def panel_bytes(self, name: str, wait_s: float = 0.0) -> bytes:
        """The JSON answer of one panel; ``computing`` when it is not ready within ``wait_s``."""
        slot = self._slots[name]
        if slot.body is None and wait_s > 0:
            slot.ready.wait(wait_s)
        if slot.body is None:
            return json.dumps(panel(name, "computing", message="being computed for the first time; "
                                                                "asking again shortly")).encode()
        return slot.body

    def all_bytes(self, wait_s: float = 0.0) -> bytes:
        """Every panel in one JSON object ``{panel: answer}`` (the page's first request)."""
        deadline = time.monotonic() + wait_s
        parts = []
        for name in PANELS:
            parts.append(b'"' + name.encode() + b'":' + self.panel_bytes(name, max(0.0, deadline - time.monotonic())))
        return b"{" + b",".join(parts) + b"}"
