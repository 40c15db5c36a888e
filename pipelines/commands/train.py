"""`tenure train ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="train commands.", no_args_is_help=True)


def register_recommend(root: typer.Typer) -> None:
    """Add ``tenure recommend CUSTOMER_ID`` (offline recommendations from the champion)."""
