"""``tenure models list|promote|rollback``: the registry, for both models."""

from __future__ import annotations

import typer

from tenure.pipelines.console import fail, format_metric, out, print_json

app = typer.Typer(help="List, promote and roll back registered model versions.", no_args_is_help=True)
_KINDS = ("churn", "recommender")
_KEY_METRICS = {
    "churn": ("test_roc_auc", "test_ece", "test_lift_top10"),
    "recommender": ("ndcg_at_k", "recall_at_k", "hit_rate_at_k"),
}


def _kind(value: str) -> str:
    if value not in _KINDS:
        raise typer.BadParameter(f"model must be churn or recommender, got {value!r}")
    return value


@app.command("list")
def list_models(
    ctx: typer.Context,
    model: str = typer.Argument("churn", callback=_kind, help="churn or recommender."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
) -> None:
    """Versions, aliases (champion/challenger), key metrics and the last gate verdict.

    JSON: ``{"model", "name", "versions": [{"version", "aliases", "created_at", "run_id",
    "metrics", "gate", "candidate", "segments"}]}``, newest version first; for churn ``segments``
    holds the worst segment, the largest gap and each segment column's worst ROC-AUC and gap.
    """
    from rich.table import Column, Table

    from tenure.registry.models import list_versions, model_name_for

    settings = ctx.obj
    rows = list_versions(settings, model, _KEY_METRICS[model])
    if as_json:
        runs = _run_details(settings, rows) if model == "churn" else {}
        print_json({"model": model, "name": model_name_for(settings, model),
                    "versions": [{**_version_document(row), **runs.get(row.get("run_id"), {})} for row in rows]})
        return
    if not rows:
        out.print(f"no {model} model registered yet: run `tenure train {model}`")
        return
    table = Table(Column("version", justify="right"), "aliases", Column("created", no_wrap=True),
                  *(Column(k, justify="right") for k in _KEY_METRICS[model]), Column("gate", overflow="fold"),
                  title=f"{model} model versions")
    for row in rows:
        table.add_row(row["version"], ", ".join(row["aliases"]), f"{row['created_at']:%Y-%m-%d %H:%M}",
                      *(format_metric(row["metrics"].get(k)) for k in _KEY_METRICS[model]),
                      row["tags"].get("gate.challenger.reason", ""))
    out.print(table)


def _version_document(row: dict) -> dict:
    """One version of ``list_versions`` for ``--json`` (every metric read, the gate's last verdict)."""
    return {"version": row["version"], "aliases": list(row["aliases"]), "created_at": row["created_at"],
            "run_id": row.get("run_id"), "metrics": row["metrics"],
            "gate": row["tags"].get("gate.challenger.reason") or None}


def _run_details(settings, rows: list[dict]) -> dict[str, dict]:
    """Per churn run: the chosen candidate and its segment metrics (worst, largest gap, per column)."""
    from tenure.registry.models import configure_mlflow

    client = configure_mlflow(settings)
    details = {}
    for row in rows:
        if not row.get("run_id"):
            continue
        run = client.get_run(row["run_id"]).data
        by_column: dict[str, dict] = {}
        for key, value in run.metrics.items():
            for part in ("worst", "gap"):
                suffix = f"_{part}_roc_auc"
                if key.startswith("segment_") and key.endswith(suffix) and key not in (
                        "segment_worst_roc_auc", "segment_largest_gap_roc_auc"):
                    by_column.setdefault(key[len("segment_"):-len(suffix)], {})[part] = value
        details[row["run_id"]] = {
            "candidate": run.tags.get("tenure.candidate"),
            "segments": {"worst": run.tags.get("tenure.segment_worst") or None,
                         "worst_roc_auc": run.metrics.get("segment_worst_roc_auc"),
                         "largest_gap_roc_auc": run.metrics.get("segment_largest_gap_roc_auc"),
                         "by_segment": by_column},
        }
    return details


@app.command("promote")
def promote_model(
    ctx: typer.Context,
    model: str = typer.Argument(..., callback=_kind, help="churn or recommender."),
    force: bool = typer.Option(False, "--force", help="Promote even if the gate would refuse (needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why the gate is overridden (recorded on the versions)."),
    as_json: bool = typer.Option(False, "--json", help="Print the gate's decision as one JSON document."),
) -> None:
    """Judge the challenger against the champion on the same held-out data; promote if not worse."""
    if force and not reason.strip():
        raise typer.BadParameter("--force needs --reason TEXT (it is recorded on the model versions)")
    from tenure.training.gate import promote

    try:
        decision = promote(ctx.obj, model, force_reason=reason if force else None)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(decision.as_dict())
        return
    verdict = "[green]promoted[/green]" if decision.promoted else "[yellow]not promoted[/yellow]"
    out.print(f"{decision.model_name} version {decision.challenger_version}: {verdict}: {decision.reason}")
    if decision.challenger_metrics:
        out.print(gate_metrics_table(decision))


@app.command("rollback")
def rollback_model(
    ctx: typer.Context,
    model: str = typer.Argument(..., callback=_kind, help="churn or recommender."),
    reason: str = typer.Option("manual rollback", "--reason", help="Recorded on both versions."),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as one JSON document."),
) -> None:
    """Point the champion alias back at the previous champion."""
    from tenure.training.gate import rollback

    try:
        decision = rollback(ctx.obj, model, reason=reason)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        print_json(decision.as_dict())
        return
    out.print(f"{decision.model_name}: champion rolled back from version {decision.champion_version} "
              f"to {decision.challenger_version}")


def gate_metrics_table(decision):
    """Rich table of a gate decision: one row per metric, challenger and champion side by side."""
    from rich.table import Column, Table

    table = Table("metric", Column(f"challenger v{decision.challenger_version}", justify="right"),
                  Column(f"champion v{decision.champion_version}", justify="right"))
    for name in dict.fromkeys([*decision.challenger_metrics, *decision.champion_metrics]):
        table.add_row(name, format_metric(decision.challenger_metrics.get(name)),
                      format_metric(decision.champion_metrics.get(name)))
    return table
