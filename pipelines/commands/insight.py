"""``tenure report kpis``: the shop's business KPIs (registered on the ``report`` group in report.py)."""

from __future__ import annotations

from typing import Any

import typer

_BY = ("plan", "region", "channel", "cohort")


def kpis(
    ctx: typer.Context,
    start: str | None = typer.Option(None, "--from", help="First day of the window, e.g. 2026-02-01 (default: first event)."),
    end: str | None = typer.Option(None, "--to", help="Last instant of the window, e.g. 2026-06-30 (default: last event)."),
    by: str | None = typer.Option(None, "--by", help="Also per segment: plan, region, channel (acquisition) or cohort "
                                                     "(signup month)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document (shape: docs/insight.md)."),
) -> None:
    """Retention and churn, signup-cohort curves, repurchase, conversion, order value, NPS, CSAT, CES,
    support resolution time, per channel (web, app, email, chat, phone), and what customers write.

    Computed from the canonical tables; definitions in docs/insight.md. Example:
    `tenure report kpis --from 2026-02-01 --to 2026-06-30 --by plan`.
    """
    if by is not None and by not in _BY:
        raise typer.BadParameter(f"--by must be one of {', '.join(_BY)}, got {by!r}", param_hint="--by")
    from tenure.insight.kpis import build_kpi_report
    from tenure.pipelines.console import fail, print_json, status

    day_end = end
    if end is not None and len(end.strip()) == 10:  # a date: the whole day
        day_end = f"{end.strip()}T23:59:59.999999Z"
    try:
        with status("computing KPIs"):
            report = build_kpi_report(ctx.obj, start=start, end=day_end, by=by)
    except (ValueError, FileNotFoundError) as exc:
        fail(f"report kpis: {exc}")
    if as_json:
        print_json(report)
        return
    _print(report)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    from tenure.pipelines.console import out

    w, t = report["window"], report["totals"]
    out.print(f"KPIs {w['start'][:10]} .. {w['end'][:10]} ({w['days']:g} days), {report['customers']:,} customers, "
              f"churn horizon {report['horizon_days']} days")
    head = Table("KPI", "value", show_edge=False, title="headline")
    for label, value in (
        ("monthly churn rate", _pct(t["churn_rate"])), ("monthly retention rate", _pct(t["retention_rate"])),
        ("estimated lost customers, monthly (Pareto/NBD)", _pct(t.get("estimated_lost_rate"))),
        ("estimated lost customers, now", "-" if t.get("estimated_lost_customers") is None else
         f"{t['estimated_lost_customers']:,.0f} ({_pct(t.get('estimated_lost_share'))} of those signed up)"),
        ("active customers", f"{t['active_customers']:,}"), ("orders", f"{t['orders']:,}"),
        ("revenue", _num(t["revenue"], 2)), ("average order value", _num(t["average_order_value"], 2)),
        ("repurchase rate", _pct(t["repurchase_rate"])),
        ("days between orders (median / mean)",
         f"{_num(t['days_between_orders_median'])} / {_num(t['days_between_orders_mean'])}"),
        ("conversion (session day -> order)", _pct(t["conversion_rate"])),
        ("NPS", f"{_num(t['nps'])} ({t['nps_answers']:,} answers)"),
        ("CSAT (4-5 of 5)", f"{_pct(t['csat'])} ({t['csat_answers']:,} answers)"),
        ("CES (1-7, 7 = easy)", f"{_num(t['ces'], 2)} ({t['ces_answers']:,} answers)"),
        ("resolution hours (median / mean)",
         f"{_num(t['resolution_hours_median'])} / {_num(t['resolution_hours_mean'])} ({t['tickets']:,} tickets)"),
    ):
        head.add_row(label, value)
    out.print(head)

    monthly = Table("month", "alive", "churn", "est. lost", "orders", "AOV", "conversion", "NPS", "CSAT", "CES",
                    show_edge=False, title="by month (churn measured at the month's start)")
    for m in report["monthly"]:
        monthly.add_row(m["month"], "-" if m["alive_at_start"] is None else f"{m['alive_at_start']:,}",
                        _pct(m["churn_rate"]), _pct(m.get("estimated_lost_rate")), f"{m['orders']:,}",
                        _num(m["average_order_value"], 2),
                        _pct(m["conversion_rate"]), _num(m["nps"]), _pct(m["csat"]), _num(m["ces"], 2))
    out.print(monthly)

    if report["cohorts"]:
        width = max(len(c["retention"]) for c in report["cohorts"])
        cohorts = Table("cohort", "size", *[f"m{k}" for k in range(width)], show_edge=False,
                        title="signup cohorts: share active k months later")
        for c in report["cohorts"]:
            cells = [f"{r:.0%}" for r in c["retention"]] + [""] * (width - len(c["retention"]))
            cohorts.add_row(c["cohort"], f"{c['size']:,}", *cells)
        out.print(cohorts)

    channels = Table("channel", "events", "orders", "revenue", "conversion", "tickets", "resolution h", "NPS",
                     "CSAT", "CES", show_edge=False, title="by channel")
    for c in report["channels"]:
        channels.add_row(c["channel"], f"{c['events']:,}", f"{c['orders']:,}", _num(c["revenue"], 2),
                         _pct(c["conversion_rate"]), f"{c['tickets']:,}", _num(c["resolution_hours_median"]),
                         _num(c["nps"]), _pct(c["csat"]), _num(c["ces"], 2))
    out.print(channels)

    if "segments" in report:
        seg = report["segments"]
        table = Table(seg["by"], "customers", "churn", "repurchase", "AOV", "conversion", "NPS", "CSAT",
                      show_edge=False, title=f"by {seg['by']}")
        for r in seg["rows"]:
            table.add_row(r["segment"], f"{r['customers']:,}", _pct(r["churn_rate"]), _pct(r["repurchase_rate"]),
                          _num(r["average_order_value"], 2), _pct(r["conversion_rate"]), _num(r["nps"]), _pct(r["csat"]))
        out.print(table)

    voice = report.get("voice")
    if voice:
        out.print(f"voice of the customer: {voice['texts']:,} texts, mean sentiment {_num(voice['sentiment_mean'], 2)} "
                  f"(-1..1), {_pct(voice['negative_share'])} negative")
        topics = Table("negative topic", "texts", "share of negative texts", show_edge=False)
        for topic in voice["negative_topics"]:
            topics.add_row(topic["topic"], f"{topic['texts']:,}", _pct(topic["share"]))
        out.print(topics)


# ------------------------------------------------------------------------------- customer value


def train_value(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help="Fit on purchases up to this time (default: the last event)."),
    no_track: bool = typer.Option(False, "--no-track", help="Do not log the run to MLflow."),
    as_json: bool = typer.Option(False, "--json", help="Print the fit (path, run, parameters, holdout errors) as JSON."),
) -> None:
    """Fit the customer-value model (BG/NBD + Gamma-Gamma) on the stored purchases and write every
    customer's expected purchases, expected value and probability of being alive.

    The values go to features_dir/customer_values.parquet (read by /churn-score's expected_value,
    the dashboard and `tenure export audience --rank value_at_risk`); the run, with the holdout
    errors against the naive and recency rules, goes to MLflow (insight.value_experiment).
    """
    from tenure.insight.value import fit_customer_values
    from tenure.pipelines.console import fail, out, print_json, status

    try:
        with status("fitting the customer-value model"):
            fit = fit_customer_values(ctx.obj, as_of=as_of, track=not no_track)
    except (ValueError, FileNotFoundError) as exc:
        fail(f"train value: {exc}")
    if as_json:
        print_json(fit.as_dict())
        return
    m = fit.metrics
    out.print(f"customer values of {fit.customers:,} customers -> {fit.path} (MLflow run {fit.run_id or '-'})")
    out.print(f"{fit.purchase_model} + Gamma-Gamma: " + ", ".join(f"{k} {v:.3g}" for k, v in fit.params.items()))
    if m:
        out.print(f"last {ctx.obj.insight.value_holdout_days} days held out, orders per customer, mean absolute error: "
                  f"{fit.purchase_model} {m['mae_model']:.3f}, naive {m['mae_naive']:.3f}, recency rule {m['mae_recency']:.3f}")


def rank_export(settings: Any, path: Any, frame: Any, rank: str, file_format: str) -> Any:
    """Re-rank an exported audience file by ``rank`` (``value_at_risk``) and rewrite it in place, atomically."""
    from pathlib import Path

    from tenure.insight.value import load_customer_values, rank_by_value_at_risk

    ranked = rank_by_value_at_risk(frame, load_customer_values(settings))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if file_format == "parquet":
        ranked.to_parquet(tmp, index=False)
    else:
        ranked.to_csv(tmp, index=False)
    tmp.replace(path)
    return ranked
