"""``tenure data ...``: the quarantine of broken event batches (list, show, accept, discard).

A batch that fails the data-quality checks at ingestion (``features/quality.py``) is held under
``<paths.data_dir>/quarantine/<batch>`` and never reaches the tables, features or training until
``tenure data accept BATCH``.
"""

from __future__ import annotations

import typer

from tenure.pipelines.console import fail, out, print_json

app = typer.Typer(help="Quarantined event batches: list, show, accept, discard.", no_args_is_help=True)


@app.callback()
def _data() -> None:
    """Quarantined event batches: list, show, accept, discard."""


@app.command("quarantine")
def quarantine(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help="quarantined, accepted or discarded (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as one JSON document."),
) -> None:
    """List batches held back at ingestion, newest first, with the columns and breaks found."""
    from tenure.features.quarantine import list_batches

    try:
        batches = list_batches(ctx.obj, status)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        print_json({"batches": batches})
        return
    from rich.table import Table

    table = Table("batch", "status", "source", "rows", "breaks", title="quarantine")
    for m in batches:
        breaks = "; ".join(f"{f['column']}: {f['check']}" for f in m["quality"]["findings"])
        table.add_row(m["batch"], m["status"], str(m["source"]), f"{m['rows']:,}", breaks)
    out.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    batch: str = typer.Argument(..., help="Batch id (see `tenure data quarantine`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as one JSON document."),
) -> None:
    """The findings of one quarantined batch and a few of its rows."""
    from tenure.features.quarantine import read_batch

    try:
        manifest, frame = read_batch(ctx.obj, batch)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(manifest)
        return
    out.print(f"batch {batch}: {manifest['status']}, {manifest['rows']:,} rows from {manifest['source']}")
    for f in manifest["quality"]["findings"]:
        out.print(f"- {f['message']}")
    if len(frame):
        out.print(frame.head(5).to_string(index=False))


@app.command("accept")
def accept(
    ctx: typer.Context,
    batch: str = typer.Argument(..., help="Batch id (see `tenure data quarantine`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the updated manifest as JSON."),
) -> None:
    """Store a quarantined batch in the tables (it is used for features and training from now on)."""
    from tenure.features.quarantine import accept_batch

    try:
        manifest = accept_batch(ctx.obj, batch)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(manifest)
        return
    out.print(f"batch {batch} accepted: {manifest['written']:,} events stored "
              f"({manifest['skipped_duplicates']:,} already stored)")


@app.command("discard")
def discard(
    ctx: typer.Context,
    batch: str = typer.Argument(..., help="Batch id (see `tenure data quarantine`)."),
    as_json: bool = typer.Option(False, "--json", help="Print the updated manifest as JSON."),
) -> None:
    """Drop a quarantined batch's rows; the manifest stays as the record."""
    from tenure.features.quarantine import discard_batch

    try:
        manifest = discard_batch(ctx.obj, batch)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print_json(manifest)
        return
    out.print(f"batch {batch} discarded ({manifest['rows']:,} rows dropped)")
