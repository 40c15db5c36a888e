"""``tenure generate`` and ``tenure ingest``: the data contract's way in."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from tenure.pipelines.console import console, fail, note, out, progress

_TABLES = ("customers", "items", "events")
_SOURCES = ("telco", "movielens", "cdnow")


def register(app: typer.Typer) -> None:
    """Add ``tenure generate`` and ``tenure ingest`` to the root app."""
    app.command("generate")(generate)
    app.command("ingest")(ingest)


def generate(
    ctx: typer.Context,
    customers: int | None = typer.Option(None, "--customers", min=1, help="Customers (default: simulator.customers)."),
    items: int | None = typer.Option(None, "--items", min=4, help="Items (default: simulator.items)."),
    days: int | None = typer.Option(None, "--days", min=1, help="Simulated days (default: simulator.days)."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed; same seed, same data (default: simulator.seed)."),
    start: str | None = typer.Option(None, "--start", help="First day, UTC, e.g. 2026-01-01 (default: simulator.start)."),
    drift_at: int | None = typer.Option(
        None, "--drift-at", min=0,
        help="Day index from which the world changes (see --drift-kind; default channel_mix: prices rise 20%, "
             "a new low-engagement channel appears and the category mix shifts).",
    ),
    drift_kind: str | None = typer.Option(
        None, "--drift-kind",
        help="What changes at --drift-at: channel_mix, price_shock, engagement_decline, seasonality, concept "
             "(the world) or nulls, units, renamed_category, duplicate_events, timezone_shift (a broken pipeline); "
             "the ground truth goes to drift_truth.json next to the files.",
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for the files (default: paths.raw_dir)."),
    file_format: str = typer.Option("parquet", "--format", help="parquet or csv."),
    campaign_day: int | None = typer.Option(
        None, "--campaign-day", min=0, help="Day index of a simulated retention campaign 'winback' (control / offer, "
        "uneven true effect); its truth goes to campaign_truth.parquet next to the files (docs/experiments.md)."),
) -> None:
    """Simulate a shop and write customers, items and events files (then run `tenure ingest --from-dir`).

    Example: `tenure generate --customers 5000 --items 500 --days 180 --seed 7 --drift-at 150 --format csv`.
    """
    settings = ctx.obj
    sim = settings.simulator
    customers = customers or sim.customers
    items = items or sim.items
    days = days or sim.days
    seed = sim.seed if seed is None else seed
    start = start or sim.start
    if file_format not in ("parquet", "csv"):
        raise typer.BadParameter(f"--format must be parquet or csv, got {file_format!r}")
    if drift_at is not None and drift_at >= days:
        raise typer.BadParameter(f"--drift-at must be a day index below --days ({days}), got {drift_at}")
    if drift_kind is not None:
        from tenure.features.sim_drift import DRIFT_KINDS

        if drift_kind not in DRIFT_KINDS:
            raise typer.BadParameter(f"--drift-kind must be one of {', '.join(DRIFT_KINDS)}, got {drift_kind!r}")
        if drift_at is None:
            raise typer.BadParameter("--drift-kind needs --drift-at DAY (when the change starts)")
        if campaign_day is not None:
            raise typer.BadParameter("--campaign-day goes with the default world only, not with --drift-kind")
    try:
        import pandas as pd

        pd.Timestamp(start)
    except ValueError as exc:
        raise typer.BadParameter(f"--start must be a date like 2026-01-01, got {start!r}") from exc
    target = out_dir or settings.paths.raw_dir

    from tenure.features.simulator import simulate_shop, write_shop

    with progress() as bar:
        task = bar.add_task("simulating days", total=days)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done)

        truth = None
        if drift_kind is None:
            campaign = None
            if campaign_day is not None:  # features/sim_campaigns.py
                from tenure.features.sim_campaigns import CampaignSpec

                campaign = CampaignSpec(day=campaign_day, horizon_days=settings.churn.horizon_days)
            try:
                shop = simulate_shop(customers, items, days, seed, start=start, drift_at=drift_at, progress=tick,
                                     campaign=campaign)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--campaign-day") from exc
        else:
            from tenure.features.sim_drift import simulate_drifted_shop, write_truth

            shop, truth = simulate_drifted_shop(customers, items, days, seed, drift_kind, drift_at, start=start,
                                                progress=tick)
        write_task = bar.add_task(f"writing {file_format}", total=3)
        paths = write_shop(shop, target, file_format)
        bar.update(write_task, completed=3)
        from tenure.features.simulator_truth import write_rates  # true rates, for the KPI benchmark

        paths["rates truth"] = write_rates(shop, target, settings.churn.horizon_days)
        if truth is not None:
            paths["drift truth"] = write_truth(truth, Path(target) / "drift_truth.json")
        if not shop.campaign_truth.empty:
            from tenure.features.sim_campaigns import write_campaign_truth

            paths["campaign truth"] = write_campaign_truth(shop.campaign_truth, target)
    from rich.table import Table

    table = Table("table", "rows", "file", title=f"generated (seed {seed}, drift_at {drift_at})")
    for name, frame in (("customers", shop.customers), ("items", shop.items), ("events", shop.events)):
        table.add_row(name, f"{len(frame):,}", str(paths[name]))
    if truth is not None:
        table.add_row("drift truth", f"{truth.kind} from {truth.starts_at}", str(paths["drift truth"]))
    table.add_row("true rates", "", str(paths["rates truth"]))
    if "campaign truth" in paths:
        table.add_row("campaign truth", f"{len(shop.campaign_truth):,}", str(paths["campaign truth"]))
    out.print(table)
    note(f"next: tenure ingest --from-dir {target}")


def ingest(
    ctx: typer.Context,
    table: str | None = typer.Argument(None, help="customers, items or events (with FILE)."),
    file: Path | None = typer.Argument(None, help="CSV, Parquet or JSON-lines file of that table."),
    from_dir: Path | None = typer.Option(None, "--from-dir", help="Folder with customers.*, items.*, events*.* files."),
    event_log: bool = typer.Option(False, "--event-log", help="Ingest the service's event log (paths.event_log_dir/*.jsonl)."),
    source: str | None = typer.Option(None, "--source", help="A public dataset: telco, movielens or cdnow."),
    path: Path | None = typer.Option(None, "--path", help="Folder (or file) of the --source dataset."),
    label_column: str | None = typer.Option(
        None, "--label-column", help="Customers snapshot with a churn label column (yes/no), stored as churned."),
    allow_rejects: bool = typer.Option(False, "--allow-rejects", help="Exit 0 even when rows were rejected."),
) -> None:
    """Validate files against the data contract and store the good rows; bad rows go to a rejects CSV.

    Examples: `tenure ingest --from-dir data/raw`, `tenure ingest events events.csv`,
    `tenure ingest --event-log`, `tenure ingest --source telco --path ../shared/datasets`,
    `tenure ingest customers snapshot.csv --label-column Churn`.
    Exit codes: 0 all rows stored, 1 some rows rejected (unless --allow-rejects) or a failure, 2 usage error.
    """
    settings = ctx.obj
    modes = [m for m, on in (("FILE", table is not None), ("--from-dir", from_dir is not None),
                             ("--event-log", event_log), ("--source", source is not None)) if on]
    if not modes:
        raise typer.BadParameter("say what to ingest: TABLE FILE, --from-dir DIR, --event-log or --source NAME --path DIR")
    if len(modes) > 1:
        raise typer.BadParameter(f"give only one of TABLE FILE, --from-dir, --event-log, --source (got {', '.join(modes)})")
    if table is not None:
        if table not in _TABLES:
            raise typer.BadParameter(f"TABLE must be one of {', '.join(_TABLES)}, got {table!r}")
        if file is None:
            raise typer.BadParameter(f"give the file to ingest: tenure ingest {table} FILE")
        if not file.is_file():
            raise typer.BadParameter(f"{file} does not exist or is not a file")
    if label_column is not None and table != "customers":
        raise typer.BadParameter("--label-column applies to `tenure ingest customers FILE` only")
    if from_dir is not None and not from_dir.is_dir():
        raise typer.BadParameter(f"--from-dir {from_dir} is not a folder")
    if source is not None:
        if source not in _SOURCES:
            raise typer.BadParameter(f"--source must be one of {', '.join(_SOURCES)}, got {source!r}")
        if path is None:
            raise typer.BadParameter(f"--source {source} needs --path DIR (the dataset's folder)")
        if not path.exists():
            raise typer.BadParameter(f"--path {path} does not exist")
    elif path is not None:
        raise typer.BadParameter("--path goes with --source")

    from tenure.features.ingest import IngestRun

    try:
        with progress() as bar:
            task = bar.add_task("validating rows", total=None)
            run = IngestRun(settings, progress=lambda n: bar.advance(task, n))
            try:
                if table is not None:
                    run.ingest_file(table, file, label_column=label_column)
                elif from_dir is not None:
                    run.ingest_dir(from_dir)
                    _ingest_consent(settings, from_dir)
                elif event_log:
                    if not run.ingest_event_log():
                        console.print(f"no *.jsonl files under {settings.paths.event_log_dir}: nothing to ingest")
                else:
                    _ingest_source(run, source, path)
            finally:
                report = run.finish()
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    _print_report(report)
    _next_steps(report, table, label_column, from_dir is not None or source is not None)
    held = [f for f in report.files if getattr(f, "quarantined", None)]
    for f in held:
        found = "; ".join(x["message"] for x in f.quality["findings"])
        console.print(f"[red]pipeline break in {_short(f.source)}: {found}[/red]")
    if held:  # the pipeline alert goes out in the run that caught the break
        from tenure.monitoring.alerts import sinks_from_settings
        from tenure.monitoring.watch import pipeline_alerts

        pipeline_alerts(settings, sinks_from_settings(settings.monitoring.alert_sinks, settings.paths.reports_dir))
        ids = " ".join(f.quarantined for f in held)
        fail(f"{len(held)} batch(es) quarantined, not stored: {ids}. Inspect with `tenure data show BATCH`; "
             f"store with `tenure data accept BATCH` once the data is right, or `tenure data discard BATCH`")
    if not report.ok:
        where = f"; see {report.rejects_path}" if report.rejects_path else ""
        unreadable = [f.source for f in report.files if f.file_error]
        message = f"{report.rejected:,} row(s) rejected{where}" if not unreadable else \
            f"{len(unreadable)} file(s) not stored ({', '.join(unreadable)}), {report.rejected:,} row(s) rejected{where}"
        if allow_rejects:
            console.print(f"[yellow]{message} (allowed by --allow-rejects)[/yellow]")
        else:
            fail(f"{message}. Fix them and ingest again (stored rows are skipped), or pass --allow-rejects")


def _next_steps(report, table: str | None, label_column: str | None, whole_shop: bool) -> None:
    """Say what a user does after this ingest (on stderr, beside the progress lines)."""
    if not report.accepted:
        return
    if label_column is not None:
        note("next: `tenure train churn --promote` trains from this labelled snapshot (attributes above; "
             "events are optional), then `tenure features apply && tenure features materialize` and "
             "`tenure serve` to score customers")
    elif table == "customers":
        note("next: `tenure features materialize` puts these customers' attributes online, so a served model "
             "scores them (run `tenure features apply` first if the attributes are new)")
    elif table == "events" or whole_shop:
        note("next: `tenure features build --start ... --end ... --every 7d`, then `tenure train churn`")


def _ingest_source(run, source: str, path: Path) -> None:
    from tenure.features import adapters

    if source == "telco":
        customers = adapters.read_telco(path)
        run.ingest_frame("customers", customers, f"telco:{path}", apply_mapping=False)
        return
    reader = adapters.read_movielens if source == "movielens" else adapters.read_cdnow
    customers, items, events = reader(path)
    for name, frame in (("customers", customers), ("items", items), ("events", events)):
        run.ingest_frame(name, frame, f"{source}:{name}", apply_mapping=False)


def _short(source: str) -> str:
    """A file's name (sources like ``telco:/a/b`` keep their prefix)."""
    prefix, sep, rest = source.rpartition(":") if not Path(source).exists() else ("", "", source)
    return f"{prefix}{sep}{Path(rest).name}" if rest else source


def _ingest_consent(settings, folder: Path) -> None:
    """Record the folder's consent*.csv|jsonl|parquet files in the consent history (privacy/consent.py)."""
    from tenure.privacy.consent import consent_files, ingest_consent_file

    for path in consent_files(folder):
        result = ingest_consent_file(settings, path)  # ValueError (a bad row) stops the command with its reason
        console.print(f"consent: recorded {result['recorded']} change(s) of {result['customers']} customer(s) "
                      f"from {path.name}")


def _print_report(report) -> None:
    from rich.table import Column, Table

    numbers = [Column(name, justify="right", no_wrap=True)
               for name in ("read", "accepted", "rejected", "dup", "new/upd", "rows/s")]
    table = Table(Column("table", no_wrap=True), Column("file", overflow="fold"), *numbers,
                  title=f"ingest run {report.run_id}", caption="dup = already stored, skipped; new/upd = upsert")
    for f in report.files:
        rate = f.rows_per_second
        table.add_row(f.table, _short(f.source), f"{f.rows_read:,}", f"{f.accepted:,}", f"{f.rejected:,}",
                      f"{f.skipped_duplicates:,}", f"{f.inserted:,}/{f.updated:,}",
                      "-" if math.isnan(rate) else f"{rate:,.0f}")
    out.print(table)
    for f in report.files:
        if f.attribute_types:
            kinds = Table("column", "type", "why", title=f"attributes of {_short(f.source)}",
                          caption="override in settings: data.attribute_types: {column: numeric|boolean|category|ignore}")
            for column, (kind, why) in f.attribute_types.items():
                kinds.add_row(str(column), kind if kind != "ignore" else "ignore (not a feature)", why)
            out.print(kinds)
    reasons = report.reasons()
    if reasons:
        why = Table("reason", "problems", title="rejected, by reason")
        for reason, count in reasons.items():
            why.add_row(reason, f"{count:,}")
        out.print(why)
    for f in report.files:
        if f.file_error:
            console.print(f"[red]{f.source}: {f.file_error}[/red]")
