"""``tenure models list|promote|rollback``: the registry, for both models."""

from __future__ import annotations

import typer

from pipelines.console import fail, out

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
) -> None:
    """Versions, aliases (champion/challenger), key metrics and the last gate verdict."""
    from rich.table import Table

    from registry.models import list_versions

    rows = list_versions(ctx.obj, model, _KEY_METRICS[model])
    if not rows:
        out.print(f"no {model} model registered yet: run `tenure train {model}`")
        return
    table = Table(title=f"{model} model versions")
    for column in ("version", "aliases", "created", *_KEY_METRICS[model], "gate"):
        table.add_column(column)
    for row in rows:
        gate = row["tags"].get("gate.challenger.reason", "")
        table.add_row(row["version"], ", ".join(row["aliases"]), f"{row['created_at']:%Y-%m-%d %H:%M}",
                      *(f"{row['metrics'][k]:.4f}" if k in row["metrics"] else "-" for k in _KEY_METRICS[model]),
                      gate[:70])
    out.print(table)


@app.command("promote")
def promote_model(
    ctx: typer.Context,
    model: str = typer.Argument(..., callback=_kind, help="churn or recommender."),
    force: bool = typer.Option(False, "--force", help="Promote even if the gate would refuse (needs --reason)."),
    reason: str = typer.Option("", "--reason", help="Why the gate is overridden (recorded on the versions)."),
) -> None:
    """Judge the challenger against the champion on the same held-out data; promote if not worse."""
    if force and not reason.strip():
        raise typer.BadParameter("--force needs --reason TEXT (it is recorded on the model versions)")
    from training.gate import promote

    try:
        decision = promote(ctx.obj, model, force_reason=reason if force else None)
    except ValueError as exc:
        fail(str(exc))
    verdict = "[green]promoted[/green]" if decision.promoted else "[yellow]not promoted[/yellow]"
    out.print(f"{decision.model_name} version {decision.challenger_version}: {verdict}: {decision.reason}")
    if decision.challenger_metrics:
        out.print(f"challenger {decision.challenger_metrics}\nchampion   {decision.champion_metrics}")


@app.command("rollback")
def rollback_model(
    ctx: typer.Context,
    model: str = typer.Argument(..., callback=_kind, help="churn or recommender."),
    reason: str = typer.Option("manual rollback", "--reason", help="Recorded on both versions."),
) -> None:
    """Point the champion alias back at the previous champion."""
    from training.gate import rollback

    try:
        decision = rollback(ctx.obj, model, reason=reason)
    except ValueError as exc:
        fail(str(exc))
    out.print(f"{decision.model_name}: champion rolled back from version {decision.champion_version} "
              f"to {decision.challenger_version}")
