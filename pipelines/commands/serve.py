"""`tenure serve`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `tenure serve` to the root app."""
