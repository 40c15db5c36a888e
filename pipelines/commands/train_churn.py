"""``tenure train churn``: build the point-in-time training set, fit, compare, log, register."""

from __future__ import annotations

from pathlib import Path

import typer

from tenure.pipelines.console import fail, format_metric, note, out, print_json, progress

_SOURCES = ("generated", "snapshot", "telco", "cdnow")


def churn_metrics_table(metrics: dict[str, dict[str, float]], title: str):
    """Rich table: one column per model (tenure first, then the baselines), one row per metric."""
    import pandas as pd
    from rich.table import Table

    from tenure.training.churn_pipeline import metrics_table

    frame = metrics_table(metrics)
    table = Table(title=title, caption="test window; tenure = the candidate chosen on validation, calibrated; "
                  "lift/capture in the top 10% / 20% of scores; "
                  "ece = expected calibration error (10 equal-frequency bins)")
    table.add_column("metric")
    for name in frame.columns:
        table.add_column(name, justify="right")
    for metric, row in frame.iterrows():
        table.add_row(metric, *(format_metric(None if pd.isna(v) else float(v)) for v in row))
    return table


def register(app: typer.Typer) -> None:
    """Add the ``churn`` command to the ``train`` group."""

    @app.command("churn")
    def churn(
        ctx: typer.Context,
        tune: int = typer.Option(0, "--tune", min=0, help="Optuna trials on the validation window (0 = none)."),
        source: str | None = typer.Option(
            None, "--source",
            help="generated (ingested events + feature snapshots), snapshot (ingested labelled customers), "
                 "telco or cdnow; default: detected from the workspace."),
        path: Path | None = typer.Option(None, "--path", help="Dataset folder for --source telco|cdnow."),
        promote: bool = typer.Option(False, "--promote", help="Run the promotion gate after registering."),
        as_json: bool = typer.Option(False, "--json", help="Print the run's result as one JSON document."),
    ) -> None:
        """Train the churn model, compare it with the baselines, log it to MLflow, register it as challenger.

        Examples: `tenure train churn --promote`, `tenure train churn --tune 30`,
        `tenure train churn --source telco --path ../shared/datasets/telco_churn`.
        Without --source: `snapshot` when the customers table holds labels (`tenure ingest customers FILE
        --label-column COL`) and no feature table was built, else `generated`.
        JSON: model, source, name, run_id, version, split_rows, metrics (per model), tuning, gate.
        """
        if source is not None and source not in _SOURCES:
            raise typer.BadParameter(f"--source must be one of {', '.join(_SOURCES)}, got {source!r}")
        if source in ("telco", "cdnow") and path is None:
            raise typer.BadParameter(f"--source {source} needs --path DIR")
        if path is not None and not path.exists():
            raise typer.BadParameter(f"--path {path} does not exist")
        from tenure.pipelines.flows import prepare_source
        from tenure.pipelines.steps import StepFailed
        from tenure.training.churn_pipeline import train_churn
        from tenure.training.gate import promote as run_gate

        settings = ctx.obj
        if source is None:
            from tenure.training.sources import detect_churn_source

            try:
                source = detect_churn_source(settings)
            except ValueError as exc:
                fail(str(exc))
            if source == "snapshot":
                note("training from the labelled customer snapshot (attributes; split at random, stratified)")
        prepare = 0 if source in ("generated", "snapshot") else 1
        stages = prepare + 5 + (1 if tune else 0) + (1 if promote else 0)
        decision = None
        try:
            with progress() as bar:
                task = bar.add_task("churn", total=stages)

                def step(message: str) -> None:
                    bar.update(task, advance=1, description=message)

                if prepare:
                    step(f"preparing the {source} workspace (ingest, features)")
                    prepare_source(settings, source, path)
                result = train_churn(settings, source=source, tune=tune, progress=step)
                if promote:
                    step("promotion gate")
                    decision = run_gate(settings, "churn")
                bar.update(task, completed=stages)
        except (ValueError, FileNotFoundError, StepFailed) as exc:
            fail(str(exc))
        if as_json:
            print_json(churn_result_document(result, decision, source, settings.mlflow.churn_model_name))
        else:
            print_churn_result(result, decision, source, settings.mlflow.churn_model_name)
        _next_steps(source, decision)


def _next_steps(source: str, decision) -> None:
    """What a user does after training (stderr)."""
    if decision is None:
        note("next: `tenure models promote churn` (or train with --promote) to let the gate decide")
    elif decision.promoted and source in ("generated", "snapshot"):
        online = "`tenure features apply && tenure features materialize`"
        note(f"next: {online} (again after every customers ingest), then `tenure serve` scores customers")


def churn_result_document(result, decision, source: str, name: str) -> dict:
    """The ``--json`` document of ``tenure train churn``: what was trained, how it scored, the gate."""
    tuning = None
    if result.tuning is not None:
        t = result.tuning
        tuning = {"trials": len(t.trials), "best_trial": t.best_trial, "best_valid_roc_auc": t.best_value,
                  "best_params": t.best_params}
    return {"model": "churn", "source": source, "name": name, "run_id": result.run_id,
            "version": result.version, "split_rows": result.split_rows, "chosen": result.chosen,
            "validation": result.valid, "metrics": result.metrics, "calibration": result.calibration,
            "segments": result.segment_summary, "tuning": tuning,
            "gate": decision.as_dict() if decision is not None else None}


def print_churn_result(result, decision, source: str, name: str) -> None:
    """The people's view of a churn training run: metrics table, tuning, registered version, gate."""
    rows = result.split_rows
    out.print(churn_metrics_table(
        result.metrics, f"churn ({source}): train {rows['train']:,}, valid {rows['valid']:,}, "
                        f"test {rows['test']:,} rows"))
    picked = ", ".join(f"{'[bold]' if n == result.chosen else ''}{n} {format_metric(v['roc_auc'])}"
                       f"{'[/bold]' if n == result.chosen else ''}" for n, v in result.valid.items())
    out.print(f"chosen on validation ROC-AUC: [bold]{result.chosen}[/bold] ({picked})")
    cal = result.calibration
    if cal:
        b, a = cal["before"], cal["after"]
        out.print(f"calibration {cal['why']}; test Brier {format_metric(b['brier'])} -> {format_metric(a['brier'])}, "
                  f"log loss {format_metric(b['log_loss'])} -> {format_metric(a['log_loss'])}, "
                  f"ECE {format_metric(b['ece'])} -> {format_metric(a['ece'])}, "
                  f"ROC-AUC {format_metric(b['roc_auc'])} -> {format_metric(a['roc_auc'])}")
    segments = result.segment_summary or {}
    if segments.get("worst"):
        worst, gap = segments["worst"], segments["largest_gap"]
        out.print(f"segments: worst {worst['segment']}={worst['value']} ROC-AUC {format_metric(worst['roc_auc'])}; "
                  f"largest gap {format_metric(gap['gap'])} across {gap['segment']}")
    if result.tuning is not None:
        t = result.tuning
        best = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.best_params.items())
        out.print(f"tuning: {len(t.trials)} trials; best validation ROC-AUC {format_metric(t.best_value)} "
                  f"(trial {t.best_trial}): {best}")
    out.print(f"run [bold]{result.run_id}[/bold]; registered {name} version [bold]{result.version}[/bold] "
              "as challenger")
    if decision is not None:
        verdict = "[green]promoted[/green]" if decision.promoted else "[yellow]not promoted[/yellow]"
        out.print(f"gate: {verdict}: {decision.reason}")
