"""``tenure train recommender`` and ``tenure recommend`` (owner: recommender room)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``recommender`` command to the ``train`` group."""


def register_recommend(root: typer.Typer) -> None:
    """Add ``tenure recommend CUSTOMER_ID`` to the root app."""
