"""The experiment report: per-arm outcomes, differences to control with intervals, SRM, CUPED.

:func:`build_report` turns an :class:`~tenure.experiments.outcomes.ExperimentData` into one
JSON-able document (what ``tenure experiments report NAME --json`` prints);
:func:`render_html` draws it as a self-contained HTML page (no scripts, no external files).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import numpy as np

from tenure.experiments.analysis import (
    fit_cuped,
    mean_difference,
    rate_difference,
    sample_ratio_check,
)
from tenure.experiments.outcomes import ExperimentData

RATE_METRICS = (("retention_rate", "retained"), ("churn_rate", "churned"), ("repurchase_rate", "repurchased"))
CUPED_COVARIATE = "pre_activity"
"""Qualifying events in the ``horizon`` days before the treatment; CUPED uses ``log(1 + count)`` (heavy-tailed
counts: on the simulator the log explains about twice the variance the raw count does)."""


def build_report(data: ExperimentData, control: str = "control", shares: Mapping[str, float] | None = None,
                 cuped: bool = False, confidence: float = 0.95, status: str | None = None) -> dict:
    """The report of one experiment as a JSON-able dict.

    Parameters
    ----------
    data:
        The experiment's customers and outcomes.
    control:
        The arm the others are compared with.
    shares:
        Configured arm shares (for the sample-ratio check); None skips the check, with a note.
    cuped:
        Also give CUPED-adjusted differences (covariate: qualifying activity in the pre-period).
    confidence:
        Two-sided confidence of the intervals.
    status:
        The definition's status (``observed`` for an experiment only found in the events).

    Raises
    ------
    ValueError
        When the control arm has no matured customers, or no customer has matured.
    """
    frame = data.matured
    warnings: list[str] = []
    if frame.empty:
        raise ValueError(f"experiment {data.name!r}: no customer's {data.horizon_days}-day outcome window has ended "
                         f"yet (data ends {data.data_end}); report again later")
    arms_seen = sorted(frame["arm"].unique())
    if control not in arms_seen:
        raise ValueError(f"experiment {data.name!r}: control arm {control!r} has no matured customers; arms with "
                         f"outcomes: {arms_seen}")
    order = [control] + [a for a in (list(shares) if shares else arms_seen) if a != control and a in arms_seen]
    order += [a for a in arms_seen if a not in order]
    groups = {arm: frame[frame["arm"] == arm] for arm in order}
    arms = []
    for arm, g in groups.items():
        arms.append({"arm": arm, "customers": len(g), "churn_rate": float(g["churned"].mean()),
                     "retention_rate": float(g["retained"].mean()), "repurchase_rate": float(g["repurchased"].mean()),
                     "revenue_per_customer": float(g["revenue"].mean())})
    ctrl = groups[control]
    differences = []
    for arm, g in groups.items():
        if arm == control:
            continue
        for metric, column in RATE_METRICS:
            d = rate_difference(int(g[column].sum()), len(g), int(ctrl[column].sum()), len(ctrl), metric, confidence)
            differences.append({"arm": arm, **d.to_dict()})
        if len(g) >= 2 and len(ctrl) >= 2:
            d = mean_difference(g["revenue"].to_numpy(), ctrl["revenue"].to_numpy(), "revenue_per_customer",
                                confidence)
            differences.append({"arm": arm, **d.to_dict()})
    srm = None
    if shares:
        all_counts = data.customers["arm"].value_counts().to_dict()  # the split is about assignment, matured or not
        unexpected = sorted(set(all_counts) - set(shares))
        if unexpected:
            warnings.append(f"arms {unexpected} are in the treatment events but not in the definition")
        else:
            srm = sample_ratio_check({a: int(all_counts.get(a, 0)) for a in shares}, shares).to_dict()
            if srm["flagged"]:
                warnings.append(
                    f"sample-ratio mismatch: arm counts {srm['observed']} differ from the configured shares "
                    f"(chi-square p = {srm['p_value']:.2g} < {srm['threshold']}); assignment or logging is broken "
                    "and the differences below are not to be trusted")
    else:
        warnings.append("no definition in settings: the sample-ratio check needs the configured shares (skipped)")
    cuped_part = _cuped(frame, groups, control, confidence) if cuped else None
    not_matured = int((~data.customers["matured"]).sum())
    if not_matured:
        warnings.append(f"{not_matured} customer(s) whose {data.horizon_days}-day window has not ended are left out")
    if data.conflicting:
        warnings.append(f"{data.conflicting} customer(s) recorded in more than one arm are left out")
    return {
        "experiment": data.name, "status": status, "control": control, "horizon_days": data.horizon_days,
        "confidence": confidence, "data_end": None if data.data_end is None else data.data_end.isoformat(),
        "customers": len(data.customers), "matured": len(frame), "not_matured": not_matured,
        "conflicting": data.conflicting, "arms": arms, "differences": differences, "srm": srm,
        "cuped": cuped_part, "warnings": warnings,
    }


def _cuped(frame, groups, control: str, confidence: float) -> dict:
    """CUPED-adjusted rate and revenue differences, with the variance removed and the interval shrink."""
    out = {"covariate": f"log1p({CUPED_COVARIATE})", "metrics": {}, "differences": []}
    x_all = np.log1p(frame[CUPED_COVARIATE].to_numpy(dtype=float))
    for metric, column in (*RATE_METRICS, ("revenue_per_customer", "revenue")):
        fit = fit_cuped(frame[column].to_numpy(dtype=float), x_all)
        out["metrics"][metric] = {"theta": fit.theta, "variance_reduction": fit.variance_reduction}
        ctrl = groups[control]
        yc = fit.adjust(ctrl[column].to_numpy(dtype=float), np.log1p(ctrl[CUPED_COVARIATE].to_numpy(dtype=float)))
        for arm, g in groups.items():
            if arm == control or len(g) < 2 or len(ctrl) < 2:
                continue
            y = fit.adjust(g[column].to_numpy(dtype=float), np.log1p(g[CUPED_COVARIATE].to_numpy(dtype=float)))
            adjusted = mean_difference(y, yc, metric, confidence, method="welch_cuped")
            plain = mean_difference(g[column].to_numpy(dtype=float), ctrl[column].to_numpy(dtype=float), metric,
                                    confidence)
            width, plain_width = adjusted.high - adjusted.low, plain.high - plain.low
            out["differences"].append({
                "arm": arm, **adjusted.to_dict(),
                "interval_width": width, "interval_width_without_cuped": plain_width,
                "interval_shrink": 0.0 if plain_width == 0 else float(1 - width / plain_width)})
    return out


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def _diff_text(d: dict) -> str:
    fmt = _num if d["metric"] == "revenue_per_customer" else (lambda v: _pct(v, 2))
    return f"{fmt(d['estimate'])} [{fmt(d['low'])}, {fmt(d['high'])}]"


def render_html(report: dict, truth: Mapping[str, float] | None = None) -> str:
    """The report as a self-contained HTML page.

    Parameters
    ----------
    report:
        A document from :func:`build_report`.
    truth:
        Optional arm -> true retention difference (the simulator's ground truth), shown beside
        the measured one.
    """
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(a['arm'])}</td><td>{a['customers']:,}</td><td>{_pct(a['churn_rate'])}</td>"
        f"<td>{_pct(a['retention_rate'])}</td><td>{_pct(a['repurchase_rate'])}</td>"
        f"<td>{_num(a['revenue_per_customer'])}</td></tr>" for a in report["arms"])
    diffs = "".join(
        f"<tr><td>{e(d['arm'])}</td><td>{e(d['metric'])}</td><td>{_diff_text(d)}</td><td>{d['p_value']:.3g}</td>"
        f"<td>{'yes' if d['significant'] else 'no'}</td>"
        + (f"<td>{_pct(truth.get(d['arm']), 2)}</td>" if truth is not None and d["metric"] == "retention_rate"
           else ("<td></td>" if truth is not None else "")) + "</tr>"
        for d in report["differences"])
    truth_head = "<th>true effect (simulator)</th>" if truth is not None else ""
    srm = report.get("srm")
    srm_html = ("<p>Sample-ratio check skipped (no configured shares).</p>" if srm is None else
                f"<p>Sample-ratio check: observed {e(str(srm['observed']))}, chi-square {srm['chi2']:.2f}, "
                f"p = {srm['p_value']:.3g} &rarr; <b>{'MISMATCH' if srm['flagged'] else 'ok'}</b></p>")
    cuped_html = ""
    if report.get("cuped"):
        c = report["cuped"]
        crow = "".join(
            f"<tr><td>{e(d['arm'])}</td><td>{e(d['metric'])}</td><td>{_diff_text(d)}</td>"
            f"<td>{_pct(d['interval_shrink'])}</td></tr>" for d in c["differences"])
        cuped_html = (f"<h2>CUPED (covariate: {e(c['covariate'])})</h2><table><tr><th>arm</th><th>metric</th>"
                      f"<th>difference [interval]</th><th>interval narrower by</th></tr>{crow}</table>")
    warn = "".join(f"<li>{e(w)}</li>" for w in report.get("warnings", []))
    conf = _pct(report["confidence"], 0)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>experiment {e(report['experiment'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.warn{{color:#a40}}</style></head><body>
<h1>Experiment {e(report['experiment'])}</h1>
<p>Status {e(str(report.get('status')))}; control arm <b>{e(report['control'])}</b>; outcome window
{report['horizon_days']} days after each customer's treatment; {report['matured']:,} of {report['customers']:,}
customers with a finished window (data until {e(str(report.get('data_end')))}).</p>
<ul class="warn">{warn}</ul>
<h2>Arms</h2><table><tr><th>arm</th><th>customers</th><th>churn</th><th>retention</th><th>repurchase</th>
<th>revenue per customer</th></tr>{rows}</table>
<h2>Differences to control ({conf} intervals)</h2><table><tr><th>arm</th><th>metric</th>
<th>difference [interval]</th><th>p</th><th>interval excludes 0</th>{truth_head}</tr>{diffs}</table>
{srm_html}{cuped_html}
<p>Rates: Newcombe's interval for a difference of proportions; revenue: Welch's t interval (statsmodels).</p>
</body></html>"""


def arms_table(report: dict) -> list[dict]:
    """Rows for a terminal table: the arms with their rates (rounded for people)."""
    return [{"arm": a["arm"], "customers": a["customers"], "churn": _pct(a["churn_rate"]),
             "retention": _pct(a["retention_rate"]), "repurchase": _pct(a["repurchase_rate"]),
             "revenue/customer": _num(a["revenue_per_customer"])} for a in report["arms"]]


def differences_table(report: dict) -> list[dict]:
    """Rows for a terminal table: each difference to control with its interval."""
    return [{"arm": d["arm"], "metric": d["metric"], "difference [interval]": _diff_text(d),
             "p": f"{d['p_value']:.3g}", "excludes 0": "yes" if d["significant"] else "no"}
            for d in report["differences"]]

