"""What erasure, verification and subject access work on: a named store with count / forget / export.

Each room that holds personal data provides its stores as :class:`Store` objects built from its
own functions; :mod:`tenure.privacy.erasure` composes them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Store:
    """One place personal data lives.

    Attributes
    ----------
    name: short name (receipts, ``--json`` output), e.g. ``tables.events``.
    where: what is searched, for people (a folder, a file pattern, a server).
    count: ``count(ids) -> {id: records}`` (only ids with records).
    forget: ``forget(ids) -> records removed``.
    export: ``export(id) -> list of records`` for a subject access request (None: nothing readable to export).
    """

    name: str
    where: str
    count: Callable[[list[str]], dict[str, int]]
    forget: Callable[[list[str]], int]
    export: Callable[[str], list[Any]] | None = None
