"""The ``tenure`` command line: a thin layer that reads settings and calls pipeline steps.

Start-up stays light: each command imports the heavy stack (pandas, Feast, MLflow,
BentoML, ...) inside its own function, so ``tenure --help`` answers at once.
Exit codes: 0 ok, 1 failure (the message says what to fix), 2 usage error.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from pipelines.commands import data, demo, export, features, models, monitor, run, serve, train
from pipelines.console import console, fail

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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    """Churn prediction and personalisation with its own MLOps loop."""
    if verbose and quiet:
        raise typer.BadParameter("--verbose and --quiet exclude each other")
    from tenure.settings import SettingsError, load_settings  # not needed for --help

    try:
        settings = load_settings(config)
    except SettingsError as exc:
        fail(str(exc))
    level = logging.DEBUG if verbose else logging.WARNING if quiet else getattr(logging, settings.log_level)
    _configure_logging(level)
    ctx.obj = settings


def _configure_logging(level: int) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(name)s: %(message)s", force=True)
    for noisy in ("alembic", "urllib3", "httpx", "numexpr", "matplotlib", "PIL", "git"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


data.register(app)
app.add_typer(features.app, name="features")
app.add_typer(train.app, name="train")
app.add_typer(models.app, name="models")
train.register_recommend(app)
serve.register(app)
app.add_typer(monitor.app, name="monitor")
app.add_typer(export.app, name="export")
demo.register(app)
run.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


if __name__ == "__main__":
    main()
