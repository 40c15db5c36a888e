"""`tenure features ...` commands: build feature tables, apply Feast definitions, materialize, inspect."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from tenure.pipelines.console import fail, note, out, status

app = typer.Typer(help="Feature tables and the Feast feature store.", no_args_is_help=True)


def _days(value: str) -> int:
    """``7d``, ``7`` or ``2w`` as a number of days."""
    match = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", value or "")
    if not match:
        raise typer.BadParameter(f"--every must look like 7d, 14d or 2w, got {value!r}")
    days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
    if days < 1:
        raise typer.BadParameter(f"--every must be at least 1d, got {value!r}")
    return days


def _time(value: str, option: str):
    from tenure.features.customer_features import to_utc_timestamp

    try:
        return to_utc_timestamp(value, option)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


@app.command("build")
def build(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help="One as-of time, e.g. 2026-06-30 (UTC)."),
    start: str | None = typer.Option(None, "--start", help="First as-of time of a series."),
    end: str | None = typer.Option(None, "--end", help="Last as-of time of a series (included)."),
    every: str | None = typer.Option(
        None, "--every", help="Spacing of the series, e.g. 7d (default: feast.snapshot_every_days)."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Drop snapshots already in the tables (default: keep other as-of times)."
    ),
) -> None:
    """Compute customer and item feature snapshots and write them under features_dir.

    Examples: `tenure features build --as-of 2026-06-30` or
    `tenure features build --start 2026-02-01 --end 2026-06-30 --every 7d`.
    """
    settings = ctx.obj
    if as_of and (start or end):
        raise typer.BadParameter("give either --as-of or --start/--end, not both")
    if not as_of and not (start and end):
        raise typer.BadParameter("give --as-of TIME, or --start TIME --end TIME [--every 7d]")
    if every and as_of:
        raise typer.BadParameter("--every only applies to --start/--end")
    from tenure.features.snapshots import build_feature_tables, snapshot_times

    if as_of:
        times = [_time(as_of, "--as-of")]
    else:
        step = _days(every) if every else settings.feast.snapshot_every_days
        try:
            times = snapshot_times(_time(start, "--start"), _time(end, "--end"), step)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    note(f"building features at {len(times)} as-of time(s): {times[0]} .. {times[-1]}")
    try:
        with status("computing feature snapshots"):
            result = build_feature_tables(settings, times, replace=replace)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    from rich.table import Table

    table = Table("table", "rows", "path")
    table.add_row("customer features", f"{result.customer_rows:,}", str(result.customer_path))
    table.add_row("item features", f"{result.item_rows:,}", str(result.item_path))
    out.print(table)
    note(f"done in {result.seconds:.1f} s")


@app.command("apply")
def apply(ctx: typer.Context) -> None:
    """Register entities, feature views, push sources and feature services (feast apply)."""
    settings = ctx.obj
    from tenure.feature_repo.store import apply_definitions

    try:
        with status(f"applying definitions ({settings.feast.profile} profile)"):
            names = apply_definitions(settings)
    except Exception as exc:  # noqa: BLE001 - registry or store unreachable, bad definitions
        fail(f"feast apply failed: {exc}")
    out.print(f"applied {len(names)} objects to project {settings.feast.project!r} "
              f"({settings.feast.profile} profile): {', '.join(names)}")


@app.command("materialize")
def materialize_command(
    ctx: typer.Context,
    start: str | None = typer.Option(None, "--start", help="Earliest event_timestamp to load (default: first snapshot)."),
    end: str | None = typer.Option(None, "--end", help="Latest event_timestamp to load (default: now)."),
    incremental: bool = typer.Option(False, "--incremental", help="Only what is newer than the last run."),
) -> None:
    """Load the latest feature values per customer and item into the online store."""
    settings = ctx.obj
    if incremental and start:
        raise typer.BadParameter("--incremental starts where the last run ended; drop --start")
    start_ts = _time(start, "--start").to_pydatetime() if start else None
    end_ts = _time(end, "--end").to_pydatetime() if end else None
    from tenure.feature_repo.store import materialize

    try:
        with status("materializing"):
            lo, hi = materialize(settings, start=start_ts, end=end_ts, incremental=incremental)
    except ValueError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - store unreachable, source unreadable
        fail(f"materialization failed: {exc}")
    out.print(f"materialized {'incrementally ' if incremental else ''}{lo} .. {hi} "
              f"into the {settings.feast.profile} online store")


@app.command("show")
def show(
    ctx: typer.Context,
    customer_id: str = typer.Argument(..., help="The customer whose online feature vector to show."),
    service: str = typer.Option("churn_v1", "--service", help="Feature service to read."),
) -> None:
    """Print a customer's feature vector from the online store."""
    settings = ctx.obj
    from tenure.feature_repo.online import OnlineFeatureReader
    from tenure.feature_repo.store import open_store

    try:
        reader = OnlineFeatureReader(open_store(settings), service)
        row = reader.read([customer_id])[0]
    except (ValueError, RuntimeError) as exc:
        fail(str(exc))
    if row is None:
        fail(f"customer {customer_id!r} has no features in the online store; "
             "run `tenure features materialize` (or check the id)")
    from rich.table import Table

    table = Table("feature", "value", title=f"{customer_id} ({service})")
    for name in reader.feature_names:
        table.add_row(name, repr(row.get(name)))
    out.print(table)


@app.command("training-frame")
def training_frame(
    ctx: typer.Context,
    entity_file: Annotated[Path, typer.Option(
        "--entity-file", help="CSV or Parquet with customer_id, event_timestamp (and labels).")],
    output: Annotated[Path, typer.Option("--out", help="Where to write the frame (.parquet or .csv).")],
    service: str = typer.Option("churn_v1", "--service", help="Feature service to join."),
    engine: str = typer.Option(
        "feast", "--engine", help="feast (get_historical_features) or pandas (same rules, faster on big frames)."
    ),
) -> None:
    """Join point-in-time-correct features onto an entity file (Feast get_historical_features)."""
    settings = ctx.obj
    if not entity_file.is_file():
        raise typer.BadParameter(f"entity file {entity_file} does not exist")
    if engine not in ("feast", "pandas"):
        raise typer.BadParameter(f"--engine must be feast or pandas, got {engine!r}")
    if output.suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(f"--out must end in .parquet or .csv, got {output.name}")
    import pandas as pd

    from tenure.feature_repo.store import get_training_frame

    entities = pd.read_parquet(entity_file) if entity_file.suffix == ".parquet" else pd.read_csv(entity_file)
    if "event_timestamp" in entities.columns:
        entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
    if "customer_id" in entities.columns:
        entities["customer_id"] = entities["customer_id"].astype(str)
    try:
        with status("joining features"):
            frame = get_training_frame(settings, entities, feature_service=service, engine=engine)
    except ValueError as exc:
        fail(str(exc))
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        frame.to_parquet(output, index=False)
    else:
        frame.to_csv(output, index=False)
    out.print(f"wrote {len(frame):,} rows x {frame.shape[1]} columns to {output}")
