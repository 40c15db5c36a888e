"""`tenure monitor ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="monitor commands.", no_args_is_help=True)
