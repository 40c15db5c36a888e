"""``tenure experiments list|report|plan``: experiments and campaigns, their measured effect, their size."""

from __future__ import annotations

import typer

from tenure.pipelines.console import fail, out, print_json, status

app = typer.Typer(help="Experiments and campaigns: list them, report their effect, plan their size.",
                  no_args_is_help=True)


def _table(rows: list[dict], title: str):
    from rich.table import Table

    table = Table(*(rows[0].keys() if rows else ()), title=title)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    return table


@app.command("list")
def list_command(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
) -> None:
    """Defined experiments (experiments.definitions) and campaigns found in the treatment events.

    JSON: ``{"holdout_share", "experiments": [{"name", "status", "control", "arms": [{"arm", "share",
    "offer", "recommender"}], "start", "end", "treated_customers"}]}``; status ``observed`` = a
    campaign only found in the events.
    """
    from tenure.experiments.workflow import list_experiments

    settings = ctx.obj
    try:
        rows = list_experiments(settings)
    except (ValueError, OSError) as exc:
        fail(f"could not read the treatment events: {exc}")
    if as_json:
        print_json({"holdout_share": settings.experiments.holdout_share, "experiments": rows})
        return
    if not rows:
        out.print("no experiments: define them under experiments.definitions (docs/experiments.md) "
                  "or record treatments with tenure export audience --experiment NAME")
        return
    out.print(_table([{"name": r["name"], "status": r["status"],
                       "arms": ", ".join(a["arm"] + ("" if a["share"] is None else f" {a['share']:.0%}")
                                         for a in r["arms"]),
                       "start": r["start"] or "", "end": r["end"] or "", "treated": r["treated_customers"]}
                      for r in rows], f"experiments (global holdout {settings.experiments.holdout_share:.0%})"))


@app.command("report")
def report_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Experiment (campaign) name."),
    cuped: bool = typer.Option(False, "--cuped", help="Also CUPED-adjusted differences (pre-period activity), "
                                                      "with how much narrower the intervals get."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Interval confidence."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """Per arm: customers, churn, retention, repurchase, revenue per customer; differences to control
    with intervals; the sample-ratio check; an HTML page under reports_dir/experiments/."""
    from tenure.experiments.assignment import UnknownExperimentError
    from tenure.experiments.report import arms_table, differences_table
    from tenure.experiments.workflow import experiment_report, write_report

    settings = ctx.obj
    try:
        with status(f"measuring experiment {name}"):
            report = experiment_report(settings, name, cuped=cuped, confidence=confidence)
            html_path, json_path = write_report(settings, report)
    except UnknownExperimentError as exc:
        fail(str(exc))
    except (ValueError, OSError) as exc:
        fail(f"experiment {name!r}: {exc}")
    report = {**report, "html": str(html_path), "json": str(json_path)}
    if as_json:
        print_json(report)
        return
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    out.print(_table(arms_table(report), f"experiment {name}: {report['matured']:,} customers, "
                                         f"{report['horizon_days']}-day outcome"))
    out.print(_table(differences_table(report), f"differences to {report['control']} "
                                                f"({report['confidence']:.0%} intervals)"))
    truth = report.get("true_retention_effect")
    if truth:
        out.print("true retention effect (simulator): "
                  + ", ".join(f"{arm} {v:+.2%}" for arm, v in truth.items()), highlight=False)
    if report.get("cuped"):
        out.print(_table([{"arm": d["arm"], "metric": d["metric"],
                           "difference [interval]": f"{d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]",
                           "interval narrower by": f"{d['interval_shrink']:.1%}"} for d in report["cuped"]["differences"]],
                         "CUPED (covariate: pre-period activity)"))
    out.print(str(html_path), highlight=False, soft_wrap=True)


@app.command("plan")
def plan_command(
    ctx: typer.Context,
    baseline: float = typer.Option(..., "--baseline", help="The control's churn (or any) rate, e.g. 0.2."),
    mde: float = typer.Option(..., "--mde", help="Smallest absolute change worth detecting, e.g. 0.02."),
    power: float = typer.Option(0.8, "--power", help="Chance of detecting a true change of that size."),
    confidence: float = typer.Option(0.95, "--confidence", help="1 - significance level (two-sided)."),
    arms: int = typer.Option(2, "--arms", min=2, max=20, help="Arms, control included (equal shares)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Customers needed per arm (and in total, with the global holdout on top) for a minimum detectable effect."""
    from tenure.experiments.analysis import sample_size_per_arm

    settings = ctx.obj
    try:
        per_arm = sample_size_per_arm(baseline, mde, confidence=confidence, power=power)
    except ValueError as exc:
        fail(str(exc))
    total = per_arm * arms
    holdout = settings.experiments.holdout_share
    document = {"baseline_rate": baseline, "minimum_detectable_effect": mde, "power": power,
                "confidence": confidence, "arms": arms, "customers_per_arm": per_arm,
                "customers_in_experiment": total, "holdout_share": holdout,
                "eligible_customers_needed": int(-(-total // (1 - holdout)))}
    if as_json:
        print_json(document)
        return
    out.print(f"{per_arm:,} customers per arm, {total:,} in the experiment ({arms} arms); "
              f"{document['eligible_customers_needed']:,} eligible customers with the {holdout:.0%} global holdout "
              f"(baseline {baseline:.1%}, change {mde:+.1%}, power {power:.0%}, {confidence:.0%} confidence)",
              highlight=False)
