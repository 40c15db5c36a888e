"""``tenure generate`` and ``tenure ingest``: the data contract's way in."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the data commands to the root app (owned by the data room; filled in by issue 2)."""
