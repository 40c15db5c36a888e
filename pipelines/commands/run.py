"""``tenure run STEP|all`` (idempotent pipeline steps) and ``tenure schedule`` (Prefect 3)."""

from __future__ import annotations

import typer

from tenure.pipelines.console import console, fail, out

_STEP_NAMES = ("ingest", "features", "train", "score", "monitor")


def register(app: typer.Typer) -> None:
    """Add ``tenure run`` and ``tenure schedule`` to the root app."""

    @app.command("run")
    def run_command(
        ctx: typer.Context,
        steps: list[str] = typer.Argument(
            None, help="Steps in order: ingest, features, train, score, monitor, or 'all'.", show_default=False
        ),
        force: bool = typer.Option(False, "--force", "-f", help="Re-run the steps even when done for the same inputs."),
        status: bool = typer.Option(False, "--status", help="Show the finished steps and recent attempts, run nothing."),
    ) -> None:
        """Run pipeline steps; each is skipped when it already finished for the same inputs.

        A failed run resumes where it stopped: run the same command again. Markers live under
        the state folder (data/state/steps), with a history of every attempt.
        """
        settings = ctx.obj
        if status:
            _show_status(settings)
            return
        if not steps:
            raise typer.BadParameter("name the steps to run, or 'all'", param_hint="STEPS")
        names = list(_STEP_NAMES) if steps == ["all"] else steps
        bad = [s for s in names if s not in _STEP_NAMES]
        if bad:
            raise typer.BadParameter(f"unknown step(s) {bad}; choose from {list(_STEP_NAMES)} or 'all'",
                                     param_hint="STEPS")
        import logging
        import os

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        logging.getLogger("feast").setLevel(max(logging.getLogger().level, logging.WARNING))
        from tenure.pipelines.flows import run_steps
        from tenure.pipelines.steps import StepFailed, StepLocked

        def show(result) -> None:
            rows = ", ".join(f"{k}={v}" for k, v in result.rows.items())
            colour = "green" if result.status == "done" else "cyan"
            console.print(f"[{colour}]{result.status:>7}[/{colour}] {result.step:<9} {result.duration_s:7.1f} s  {rows}",
                          highlight=False)

        try:
            run_steps(settings, names, force=force, on_result=show)
        except StepFailed as exc:
            fail(f"{exc}; fix it and run the same command again: finished steps are skipped")
        except StepLocked as exc:
            fail(str(exc))

    @app.command("schedule")
    def schedule_command(
        ctx: typer.Context,
        daily_cron: str = typer.Option("0 2 * * *", "--daily-cron", help="Cron of ingest -> features -> score."),
        monitor_every_hours: float = typer.Option(6.0, "--monitor-every-hours", min=0.01,
                                                  help="Interval of the monitoring run."),
        timezone: str = typer.Option("UTC", "--timezone", help="Time zone of the cron schedule."),
        config: str | None = typer.Option(None, "--config-for-runs",
                                             help="Settings file the scheduled runs read (default: the --config given)."),
        work_pool: str | None = typer.Option(None, "--work-pool",
                                                help="Register the deployments with this Prefect work pool instead "
                                                     "of serving them here (workers run them)."),
        source: str | None = typer.Option(None, "--source",
                                             help="With --work-pool: where workers get the code (git URL or folder)."),
    ) -> None:
        """Serve tenure's scheduled Prefect 3 deployments in this process (Ctrl-C stops), or register them with a work pool.

        Daily ingest -> features -> score, monitoring every 6 hours (retraining when the
        policy says so), and an on-demand 'tenure-train'. Uses PREFECT_API_URL when set,
        else a temporary local Prefect server.
        """
        import os

        try:
            from tenure.pipelines.orchestration import deploy_to_work_pool, serve_schedules
        except ImportError as exc:  # Prefect is optional at run time
            fail(f"Prefect is not installed ({exc}); install it (uv sync) to use `tenure schedule`")
        if source and not work_pool:
            raise typer.BadParameter("--source only applies with --work-pool")
        config_file = config or os.environ.get("TENURE_CONFIG")
        try:
            if work_pool:
                ids = deploy_to_work_pool(work_pool, source, config_file, daily_cron, monitor_every_hours, timezone)
                out.print(f"registered {len(ids)} deployments with work pool {work_pool!r}; "
                          f"start a worker: prefect worker start --pool {work_pool}")
            else:
                serve_schedules(config_file, daily_cron, monitor_every_hours, timezone)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc


def _show_status(settings) -> None:
    from rich.table import Table

    from tenure.pipelines.steps import StepRunner

    runner = StepRunner(settings.paths.state_dir)
    table = Table(title=f"finished steps ({runner.marker_dir})")
    for column in ("step", "inputs", "finished at", "seconds", "rows"):
        table.add_column(column)
    for marker in runner.markers():
        table.add_row(marker["step"], marker["fingerprint"][:12], marker["finished_at"], f"{marker['duration_s']:.1f}",
                      ", ".join(f"{k}={v}" for k, v in marker.get("rows", {}).items()))
    out.print(table)
    failed = [h for h in runner.history() if h["status"] == "failed"][-5:]
    for row in failed:
        console.print(f"[red]failed[/red] {row['step']} at {row['finished_at']}: {row['error']}", highlight=False)
