"""``tenure monitor run|watch``: drift and performance reports, alerts, and retraining by policy."""

from __future__ import annotations

import signal
import threading

import typer

from tenure.pipelines.console import console, fail, format_metric, out, print_json

app = typer.Typer(help="Monitor the champions: drift and performance reports, alerts, retraining.", no_args_is_help=True)


def _pass(settings, window: str | None, dry_run: bool, mode: str, retrain: bool):
    from tenure.monitoring import run_monitoring_pass
    from tenure.pipelines.flows import make_retrain

    return run_monitoring_pass(settings, window=window, mode=mode, dry_run=dry_run or None,
                               retrain=make_retrain(settings) if retrain else None)


def _print(result) -> None:
    colour = "green" if result.verdict == "healthy" else "yellow"
    about = f" (churn model v{result.model_version}, data: {result.mode})" if result.model_version else ""
    out.print(f"[{colour}]{result.verdict}[/{colour}]{about}")
    if result.drift:
        out.print(f"drift share {result.drift['drift_share']:.0%}; drifted: {', '.join(result.drift['drifted']) or 'none'}")
    if result.performance:
        p = result.performance
        out.print(f"realised ROC-AUC {format_metric(p.get('roc_auc'))} on {p['window']} "
                  f"(promised {format_metric(p.get('promised_roc_auc'))})")
    estimated = getattr(result, "estimated", None)
    if estimated and estimated.get("estimated_roc_auc") is not None:
        out.print(f"estimated ROC-AUC now (CBPE, no labels) {format_metric(estimated['estimated_roc_auc'])} "
                  f"(promised {format_metric(estimated.get('promised_roc_auc'))})")
    for shift in getattr(result, "event_shifts", None) or []:
        if shift.get("alarm"):
            out.print(f"events: {shift['message']}")
    for alert in result.alerts:
        out.print(f"[bold yellow]alert:[/bold yellow] {alert}")
    if result.retrain:
        out.print(f"retraining: {result.retrain.get('summary')}")
    for path in result.report_paths:
        out.print(f"report: {path}")


@app.command("run")
def run(
    ctx: typer.Context,
    window: str | None = typer.Option(None, "--window", help="Current window of the prediction log, e.g. 7d or 36h."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide and alert, but never retrain."),
    mode: str = typer.Option("auto", "--mode", help="auto, log (prediction log) or snapshot (latest features)."),
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Report and alert only."),
    as_json: bool = typer.Option(False, "--json", help="Print the pass's result as one JSON document."),
) -> None:
    """One monitoring pass: reports under reports/, alerts to the configured sinks, maybe retraining.

    JSON: the pass's ``MonitoringResult`` (checked_at, mode, model_version, verdict, drift,
    performance, recommender, alerts, alert_delivery, report_paths, retrain, mlflow_run_id).
    """
    if mode not in ("auto", "log", "snapshot"):
        raise typer.BadParameter(f"--mode must be auto, log or snapshot, got {mode!r}")
    from tenure.monitoring import parse_window

    try:
        parse_window(window, 1)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        result = _pass(ctx.obj, window, dry_run, mode, not no_retrain)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(result.as_dict())
        return
    _print(result)


@app.command("watch")
def watch(
    ctx: typer.Context,
    every: str = typer.Option("6h", "--every", help="Time between passes, e.g. 6h or 30m."),
    window: str | None = typer.Option(None, "--window", help="Current window of the prediction log."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Never retrain."),
    mode: str = typer.Option("auto", "--mode", help="auto, log or snapshot."),
) -> None:
    """Repeat monitoring passes until SIGINT/SIGTERM (the pass in progress is finished first)."""
    from tenure.monitoring import parse_window

    try:
        interval = parse_window(every, 1).total_seconds()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    passes = 0
    while not stop.is_set():
        try:
            _print(_pass(ctx.obj, window, dry_run, mode, True))
        except ValueError as exc:
            console.print(f"[red]pass failed:[/red] {exc}")
        passes += 1
        stop.wait(interval)
    console.print(f"stopped after {passes} pass(es)")
