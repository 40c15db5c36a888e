"""``tenure forget``, ``tenure export customer`` and ``tenure consent``: erasure, subject access, consent."""

from __future__ import annotations

from pathlib import Path

import typer

from tenure.pipelines.console import fail, note, out, print_json, status

consent_app = typer.Typer(help="Consent per scope (personalization, profiling, marketing) and its history.",
                          no_args_is_help=True)


def _stores(settings):
    """Every store of the workspace: this room's and the service's files."""
    from tenure.privacy.erasure import workspace_stores
    from tenure.pseudonym import log_key
    from tenure.serving.erasure import serving_stores
    from tenure.settings import SettingsError

    try:
        key = log_key(settings)  # prediction logs hold pseudonyms under this key
    except SettingsError as exc:
        fail(f"{exc} (erasure needs it to find the person's pseudonymous log lines)")
    return [*workspace_stores(settings), *serving_stores(settings, key)]


def _ids(customer_ids: list[str], from_file: Path | None) -> list[str]:
    ids = list(customer_ids)
    if from_file is not None:
        if not from_file.is_file():
            fail(f"--from-file {from_file} does not exist")
        ids += [line.strip() for line in from_file.read_text().splitlines() if line.strip()]
    if not ids:
        raise typer.BadParameter("give customer ids (arguments or --from-file)", param_hint="CUSTOMER_ID")
    return ids


def register(app: typer.Typer) -> None:
    """Add ``tenure forget`` and the ``tenure consent`` group to the root app, ``customer`` to ``tenure export``."""
    from tenure.pipelines.commands import export

    @app.command("forget")
    def forget(
        ctx: typer.Context,
        customer_ids: list[str] = typer.Argument(None, help="Customer ids to erase (or to check with --verify)."),
        from_file: Path | None = typer.Option(None, "--from-file", help="More ids, one a line."),
        verify: bool = typer.Option(False, "--verify", help="Erase nothing: re-scan every store and every workspace "
                                                           "file's bytes for the ids and report 0 hits or what remains."),
        byte_search: bool = typer.Option(True, "--byte-search/--no-byte-search",
                                         help="With --verify: also search every workspace file's raw bytes."),
        as_json: bool = typer.Option(False, "--json", help="Print the receipt (or the verification) as JSON."),
    ) -> None:
        """Erase customers from every store, tombstone them and write a receipt (docs/privacy.md).

        Stores: canonical tables, raw and rejected files, feature tables, the Feast online store
        (SQLite or Redis), consent history, recommender models (cache and MLflow artifacts) and
        reference samples, exports, reports, the event log and its id index, the feature updater's
        checkpoint, prediction logs, trigger state and dead letters. While `tenure serve` runs, use
        DELETE /customers/{id} instead (it also clears the service's memory), or restart it after.
        Exit code 1 when something remains (the receipt or the verification says where).
        """
        from tenure.privacy.erasure import forget_customers, verify_customers

        settings = ctx.obj
        ids = _ids(customer_ids or [], from_file)
        stores = _stores(settings)
        if verify:
            with status(f"searching every store for {len(ids)} id(s)"):
                result = verify_customers(settings, ids, stores, byte_search=byte_search)
            if as_json:
                print_json(result)
            else:
                for name, n in result["stores"].items():
                    out.print(f"{name:<24} {n:>8} record(s)")
                for path, hits in result["files"].items():
                    out.print(f"file {path}: {sum(hits.values())} raw id hit(s)")
                out.print("clean: 0 hits" if result["clean"] else "NOT clean: see above")
            if not result["clean"]:
                raise typer.Exit(1)
            return
        try:
            with status(f"erasing {len(ids)} customer(s)"):
                receipt = forget_customers(settings, ids, stores)
        except ValueError as exc:
            fail(str(exc))
        if as_json:
            print_json(receipt)
        else:
            for name, r in receipt["stores"].items():
                out.print(f"{name:<24} found {r['found']:>8}  removed {r['removed']:>8}  {r['seconds']:.2f} s")
            out.print(f"{len(ids)} customer(s) erased in {receipt['seconds']:.2f} s; receipt {receipt['path']}")
            note(receipt["models"])
        if not receipt["verification"]["clean"]:
            fail(f"records remain after erasure: {receipt['verification']['remaining']}")

    @export.app.command("customer")
    def export_customer(
        ctx: typer.Context,
        customer_id: str = typer.Argument(..., help="The customer whose data to export."),
        out_path: Path | None = typer.Option(None, "--out", "-o", help="Write the JSON document here instead of stdout."),
    ) -> None:
        """Everything held on one customer, per store, as one JSON document (a subject access request)."""
        import json

        from tenure.jsonable import to_jsonable
        from tenure.privacy.erasure import export_customer as export_one

        document = export_one(ctx.obj, customer_id, _stores(ctx.obj))
        if out_path is None:
            print_json(document)
            return
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(to_jsonable(document), indent=2))
        out.print(str(out_path))

    app.add_typer(consent_app, name="consent")


@consent_app.command("set")
def consent_set(
    ctx: typer.Context,
    customer_id: str = typer.Argument(..., help="The customer."),
    scope: list[str] = typer.Option(..., "--scope", "-s", help="personalization, profiling, marketing or all (repeatable)."),
    withdraw: bool = typer.Option(False, "--withdraw/--grant", help="Withdraw (default: grant)."),
    channel: str | None = typer.Option(None, "--channel", help="Where the customer decided (web, app, call centre...)."),
    at: str | None = typer.Option(None, "--at", help="When (ISO 8601 with offset); default now."),
    as_json: bool = typer.Option(False, "--json", help="Print the customer's consent as JSON."),
) -> None:
    """Record a consent decision (appended to the history; the service sees it on its next request)."""
    from datetime import UTC, datetime

    from tenure.privacy.consent import ConsentStore, changes_from_records

    records = [{"customer_id": customer_id, "scope": s, "granted": not withdraw, "channel": channel,
                "at": at or datetime.now(UTC).isoformat()} for s in scope]
    changes, problems = changes_from_records(records, "cli")
    if problems:
        fail("; ".join(p.split(": ", 1)[1] for p in problems))
    store = ConsentStore.from_settings(ctx.obj)
    try:
        store.record(changes)
        state = store.current([customer_id]).get(customer_id, {})
    finally:
        store.close()
    if as_json:
        print_json({"customer_id": customer_id, "consent": state, "recorded": len(changes)})
    else:
        out.print(f"{customer_id}: " + ", ".join(f"{k} {'given' if v else 'withdrawn'}" for k, v in sorted(state.items())))


@consent_app.command("show")
def consent_show(
    ctx: typer.Context,
    customer_id: str = typer.Argument(..., help="The customer."),
    as_json: bool = typer.Option(False, "--json", help="Print state and history as JSON."),
) -> None:
    """A customer's current consent per scope and the history of changes (oldest first)."""
    from tenure.privacy.consent import ConsentStore

    store = ConsentStore.from_settings(ctx.obj)
    try:
        state, history = store.current([customer_id]).get(customer_id, {}), store.history(customer_id)
    finally:
        store.close()
    if as_json:
        print_json({"customer_id": customer_id, "consent": state, "history": history})
        return
    out.print(f"{customer_id}: " + (", ".join(f"{k} {'given' if v else 'withdrawn'}" for k, v in sorted(state.items()))
                                    or "no change recorded (defaults apply)"))
    for h in history:
        out.print(f"  {h['at']}  {h['scope']:<16} {'given' if h['granted'] else 'withdrawn':<10} "
                  f"{h['channel'] or '-':<10} {h['source']}")


@consent_app.command("ingest")
def consent_ingest(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="CSV, JSON lines or Parquet of consent events."),
    as_json: bool = typer.Option(False, "--json", help="Print counts as JSON."),
) -> None:
    """Append consent events from a file: customer_id, scope (or all), granted (or status), at or event_at,
    optional channel and event_type (= consent). A bad row stops the file: nothing is recorded.
    (`tenure ingest --from-dir DIR` records the folder's consent*.csv|jsonl|parquet files the same way.)"""
    from tenure.privacy.consent import ingest_consent_file

    try:
        result = ingest_consent_file(ctx.obj, path)
    except ValueError as exc:
        fail(str(exc))
    n = result["recorded"]
    if as_json:
        print_json(result)
    else:
        out.print(f"recorded {n} consent change(s) of {result['customers']} customer(s) from {path}")
