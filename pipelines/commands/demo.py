"""``tenure demo``: the whole loop on a generated shop, with a drift episode that retraining repairs."""

from __future__ import annotations

import typer

from tenure.pipelines.console import OUR_PACKAGES, console, fail, out, print_json

_STYLE = {"stage": "bold cyan", "info": "white", "ok": "green", "warn": "yellow", "result": "magenta"}


def register(app: typer.Typer) -> None:
    """Add ``tenure demo`` to the root app."""

    @app.command("demo")
    def demo(
        ctx: typer.Context,
        small: bool = typer.Option(False, "--small", help="A smaller shop (1,000 customers): two to three minutes."),
        customers: int | None = typer.Option(None, "--customers", min=50, help="Customers in the shop."),
        items: int | None = typer.Option(None, "--items", min=10, help="Items in the catalogue."),
        days: int | None = typer.Option(None, "--days", min=30, help="Simulated days."),
        seed: int | None = typer.Option(None, "--seed", help="Random seed of the simulator."),
        replay_days: int | None = typer.Option(None, "--replay-days", min=1,
                                                  help="Last days held back and replayed through the service."),
        port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Service port (default: a free one)."),
        keep_serving: bool = typer.Option(False, "--keep-serving",
                                          help="Leave the service running at the end (stop it with Ctrl-C)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON document (the story stays on stderr)."),
    ) -> None:
        """Run the whole story: generate, ingest, features, train, serve, replay with drift, alert, retrain, reload.

        Writes reports_dir/demo_summary.json. Stores left by an earlier demo are replaced;
        a data folder the demo did not create is never touched.
        """
        import dataclasses
        import logging
        import time

        # third-party warnings and logs were quieted by the root callback; the story is told by
        # the demo's own lines, so our libraries' INFO lines show only with -v
        if not ctx.find_root().params.get("verbose"):
            for name in OUR_PACKAGES:
                logging.getLogger(name).setLevel(max(logging.getLogger(name).getEffectiveLevel(), logging.WARNING))

        from tenure.pipelines.demo import DEFAULT, SMALL, DemoError, run_demo, summary_path
        from tenure.pipelines.service_process import Stopped, raise_on_stop_signals

        base = SMALL if small else DEFAULT
        changes = {name: value for name, value in (("customers", customers), ("items", items), ("days", days),
                                                   ("seed", seed), ("replay_days", replay_days), ("port", port))
                   if value is not None}
        if keep_serving:
            changes["keep_serving"] = True
        try:
            config = dataclasses.replace(base, **changes)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        settings = ctx.obj

        def say(kind: str, text: str) -> None:
            prefix = "\n==> " if kind == "stage" else "    "
            console.print(f"{prefix}{text}", style=_STYLE.get(kind, "white"), highlight=False, markup=False)

        t0 = time.perf_counter()

        def show(summary: dict) -> None:
            if as_json:
                print_json(summary)
            else:
                _print_summary(summary, summary_path(settings), time.perf_counter() - t0)

        def keep(summary: dict) -> None:  # --keep-serving: the service runs until Ctrl-C or SIGTERM
            show(summary)
            console.print(f"service still running at {summary['service']['url']}, dashboard at "
                          f"{summary['service']['url']}/dashboard (Ctrl-C to stop)")
            try:
                while True:
                    time.sleep(3600)
            except Stopped:
                console.print("stopping the service")

        # SIGTERM and SIGINT raise Stopped: run_demo's clean-up stops the service it started
        with raise_on_stop_signals():
            try:
                summary = run_demo(settings, config, say=say, hold=keep if config.keep_serving else None)
            except DemoError as exc:
                cause = exc.__cause__
                fail(f"{exc}\n(partial summary in {summary_path(settings)})" + (f"\ncaused by: {cause!r}" if cause else ""))
            except Stopped as exc:
                console.print(f"[yellow]demo stopped by {exc}; its service was stopped[/yellow] "
                              f"(partial summary in {summary_path(settings)})")
                raise typer.Exit(128 + exc.signum) from None
        if not config.keep_serving:
            show(summary)


def _print_summary(summary: dict, path, seconds: float) -> None:
    from rich.table import Table

    claims = summary.get("claims", {})
    table = Table(title=f"tenure demo: done in {seconds:.0f} s", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("where / result")
    champions = summary.get("champions", {})
    table.add_row("champions (initial -> final)",
                  f"{champions.get('initial')} -> {champions.get('final')}")
    table.add_row("service answered", str(claims.get("service_answered")))
    table.add_row("drift alert raised", str(claims.get("alert_raised")))
    retrain = claims.get("retrain_decision") or {}
    table.add_row("retrain decision", f"{'triggered' if retrain.get('triggered') else 'not triggered'}: "
                                      f"{retrain.get('outcome') or retrain.get('blocked_by') or ''}")
    table.add_row("new champion served", str(claims.get("served_new_champion")))
    table.add_row("event changed a score", str(claims.get("event_changed_score")))
    explore = summary.get("explore", {})
    table.add_row("MLflow UI", explore.get("mlflow_ui", ""))
    table.add_row("reports index", explore.get("reports_index", ""))
    if explore.get("dashboard"):
        table.add_row("dashboard", f"{explore['dashboard']} (while the service runs: --keep-serving, or `tenure serve` "
                                   "and /dashboard on its address)")
    table.add_row("audience file", summary.get("audience", {}).get("path", ""))
    table.add_row("batch scores", str(summary.get("scores", {}).get("paths", {}).get("csv", "")))
    table.add_row("service log", summary.get("service", {}).get("log", ""))
    table.add_row("explore", "; ".join(explore.get(k, "") for k in ("serve_again", "steps", "audience")))
    table.add_row("summary (JSON)", str(path))
    timings = summary.get("timings_s", {})
    table.add_row("timings (s)", ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    out.print(table)
