"""``tenure train churn`` (owner: churn room)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``churn`` command to the ``train`` group."""
