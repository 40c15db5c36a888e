"""`tenure demo`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add `tenure demo` to the root app."""
