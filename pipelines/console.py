"""Rich console output for the CLI only (library code logs, it never prints)."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error that says what to fix and exit with ``code`` (1 = failure)."""
    console.print(f"[bold red]error:[/bold red] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def progress():
    """A progress bar for long work (rich), on stderr so stdout stays machine-readable."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
