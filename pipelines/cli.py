"""The ``tenure`` command line: a thin layer that reads settings and calls pipeline steps.

Start-up stays light: each command imports the heavy stack (pandas, Feast, MLflow,
BentoML, ...) inside its own function, so ``tenure --help`` answers at once.
Exit codes: 0 ok, 1 failure (the message says what to fix), 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tenure.pipelines.commands import (
    data,
    demo,
    experiments,
    export,
    features,
    models,
    monitor,
    privacy,
    quarantine,
    report,
    run,
    serve,
    train,
)
from tenure.pipelines.console import configure_output, console, fail, quiet_third_party

app = typer.Typer(
    name="tenure",
    help="Churn prediction and personalisation with its own MLOps loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML settings file (else TENURE_CONFIG, else defaults).",
        envvar="TENURE_CONFIG",
    ),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True,
        help="-v: also third-party INFO logs and Python warnings; -vv: everything at DEBUG.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only results (stdout), warnings and errors."),
) -> None:
    """Churn prediction and personalisation with its own MLOps loop.

    Results go to stdout (tables, or JSON with a command's --json); progress and logs to stderr.
    """
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet exclude each other")
    verbosity = -1 if quiet else verbose
    quiet_third_party(verbosity)  # before settings: pydantic and friends may warn on import
    from tenure.settings import SettingsError, load_settings  # not needed for --help

    try:
        settings = load_settings(config)
    except SettingsError as exc:
        fail(str(exc))
    configure_output(verbosity, settings.log_level)
    ctx.obj = settings


data.register(app)
app.add_typer(quarantine.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(train.app, name="train")
app.add_typer(models.app, name="models")
train.register_recommend(app)
serve.register(app)
app.add_typer(monitor.app, name="monitor")
app.add_typer(export.app, name="export")
app.add_typer(experiments.app, name="experiments")
app.add_typer(report.app, name="report")
demo.register(app)
run.register(app)
privacy.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
