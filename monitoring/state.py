"""Small JSON state files of monitoring (open episodes, last retrain): tolerant reads, atomic writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def load_json_state(path: Path) -> dict[str, Any]:
    """The mapping stored at ``path``; empty when the file is missing or unreadable (logged)."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        logger.warning("ignoring unreadable state file %s", path)
        return {}


def save_json_state(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
