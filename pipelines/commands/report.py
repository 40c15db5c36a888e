"""``tenure report ...``: reports on what the service logged (attribution, KPIs, ...).

Each subcommand reads logs and tables, prints a table (or one JSON document with ``--json``)
and never changes anything. Subcommands register themselves on :data:`app` below.
"""

from __future__ import annotations

import typer

from tenure.pipelines.commands import insight

app = typer.Typer(help="Reports on what the service logged: attribution, KPIs.", no_args_is_help=True)


@app.callback()
def _report() -> None:
    """Reports on what the service logged: attribution, KPIs."""


app.command("kpis")(insight.kpis)  # KPIs, cohorts, voice of the customer (insight room)


@app.command("attribution")
def attribution(
    ctx: typer.Context,
    start: str | None = typer.Option(None, "--from", help="First serving time, ISO 8601 (default: 7 days before --to)."),
    end: str | None = typer.Option(None, "--to", help="End of the serving period, excluded (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON document."),
) -> None:
    """Clicks, add-to-carts, conversions and revenue that recommendations led to, per strategy and per arm.

    Reads the prediction log's recommendations served in [--from, --to) and the events (event log
    and events table) up to attribution.window_hours later. JSON: period_from, period_to,
    window_hours, basis (exposures or served), match_without_id, complete, totals, by_strategy,
    by_arm (each: group, recommendations, exposed, impressions, clicks, add_to_carts, conversions,
    purchases, revenue, click_rate, add_to_cart_rate, conversion_rate, revenue_per_list, by_id,
    by_item), notes.
    """
    from tenure.monitoring.attribution import attribution_report
    from tenure.pipelines.console import fail, print_json

    try:
        report = attribution_report(ctx.obj, start, end)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(report.as_dict())
        return
    _print_attribution(report)


def _print_attribution(report) -> None:
    from rich.table import Table

    from tenure.pipelines.console import out

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    out.print(f"recommendations served {report.period_from} .. {report.period_to}, events up to "
              f"{report.window_hours:g} h later; rates per item shown ({report.basis})")
    table = Table(show_edge=False)
    for column in ("group", "lists", "shown", "clicks", "CTR", "carts", "cart rate", "conversions", "CVR",
                   "revenue"):
        table.add_column(column, justify="left" if column == "group" else "right")
    rows = [report.totals, *report.by_strategy, *report.by_arm]
    for n, g in enumerate(rows):
        if n in (1, 1 + len(report.by_strategy)) and n < len(rows):
            table.add_section()
        table.add_row(g.group, str(g.recommendations), str(g.impressions), str(g.clicks), rate(g.click_rate),
                      str(g.add_to_carts), rate(g.add_to_cart_rate), str(g.conversions), rate(g.conversion_rate),
                      f"{g.revenue:,.2f}")
    out.print(table)
    for note in report.notes:
        out.print(f"[yellow]note:[/yellow] {note}")
