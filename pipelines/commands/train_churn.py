"""``tenure train churn``: build the point-in-time training set, fit, compare, log, register."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.console import fail, out, progress

_SOURCES = ("generated", "telco", "cdnow")


def churn_metrics_table(metrics: dict[str, dict[str, float]], title: str):
    """Rich table: one column per model (tenure first, then the baselines), one row per metric."""
    import pandas as pd
    from rich.table import Table

    from training.churn_pipeline import metrics_table

    frame = metrics_table(metrics)
    table = Table(title=title, caption="test window; lift/capture in the top 10% / 20% of scores; "
                  "ece = expected calibration error (10 equal-frequency bins)")
    table.add_column("metric")
    for name in frame.columns:
        table.add_column(name, justify="right")
    for metric, row in frame.iterrows():
        table.add_row(metric, *("-" if pd.isna(v) else f"{v:.3f}" for v in row))
    return table


def register(app: typer.Typer) -> None:
    """Add the ``churn`` command to the ``train`` group."""

    @app.command("churn")
    def churn(
        ctx: typer.Context,
        tune: int = typer.Option(0, "--tune", min=0, help="Optuna trials on the validation window (0 = none)."),
        source: str = typer.Option("generated", "--source", help="generated (ingested tables), telco or cdnow."),
        path: Path | None = typer.Option(None, "--path", help="Dataset folder for --source telco|cdnow."),
        promote: bool = typer.Option(False, "--promote", help="Run the promotion gate after registering."),
    ) -> None:
        """Train the churn model, compare it with the baselines, log it to MLflow, register it as challenger.

        Examples: `tenure train churn --promote`, `tenure train churn --tune 30`,
        `tenure train churn --source telco --path ../shared/datasets/telco_churn`.
        """
        if source not in _SOURCES:
            raise typer.BadParameter(f"--source must be one of {', '.join(_SOURCES)}, got {source!r}")
        if source != "generated" and path is None:
            raise typer.BadParameter(f"--source {source} needs --path DIR")
        if path is not None and not path.exists():
            raise typer.BadParameter(f"--path {path} does not exist")
        from training.churn_pipeline import train_churn

        settings = ctx.obj
        stages = 5 + (1 if tune else 0) + (1 if promote else 0)
        try:
            with progress() as bar:
                task = bar.add_task("churn", total=stages)

                def step(message: str) -> None:
                    bar.update(task, advance=1, description=message)

                result = train_churn(settings, source=source, path=path, tune=tune, promote=promote, progress=step)
                bar.update(task, completed=stages)
        except (ValueError, FileNotFoundError) as exc:
            fail(str(exc))
        rows = result.split_rows
        out.print(churn_metrics_table(
            result.metrics, f"churn ({source}): train {rows['train']}, valid {rows['valid']}, test {rows['test']} rows"))
        if result.tuning is not None:
            t = result.tuning
            best = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.best_params.items())
            out.print(f"tuning: {len(t.trials)} trials; best validation ROC-AUC {t.best_value:.4f} "
                      f"(trial {t.best_trial}): {best}")
        out.print(f"run [bold]{result.run_id}[/bold]; registered {settings.mlflow.churn_model_name} "
                  f"version [bold]{result.version}[/bold] as challenger")
        if result.decision is not None:
            verdict = "[green]promoted[/green]" if result.decision.promoted else "[yellow]not promoted[/yellow]"
            out.print(f"gate: {verdict}: {result.decision.reason}")
