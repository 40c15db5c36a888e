"""Size and shape of the demo shop, the progress callback, and the demo's error."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Size and shape of the demo shop and its replay."""

    customers: int = 3000
    items: int = 300
    days: int = 180
    seed: int = 42
    start: str = "2026-01-01"
    replay_days: int = 8
    drift_days_before_end: int = 7  # a full week of the changed shop: what monitoring is tuned to catch
    live_customers: int = 300
    customers_per_request: int = 20
    port: int | None = None
    keep_serving: bool = False  # read by the CLI: it keeps the service until Ctrl-C
    ready_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.customers < 50:
            raise ValueError(f"the demo needs at least 50 customers, got {self.customers}")
        if self.items < 10:
            raise ValueError(f"the demo needs at least 10 items, got {self.items}")
        if not 1 <= self.replay_days < self.days // 2:
            raise ValueError(f"replay_days must be between 1 and half the simulated days ({self.days // 2}), "
                             f"got {self.replay_days}")
        if not 1 <= self.drift_days_before_end <= self.replay_days:
            raise ValueError(f"the drift must start inside the replayed days (1..{self.replay_days} days before "
                             f"the end), got {self.drift_days_before_end}")


SMALL = DemoConfig(customers=1000, items=80, days=150, live_customers=100)
DEFAULT = DemoConfig()

Say = Callable[[str, str], None]
"""``say(kind, text)``: kind is ``stage``, ``info``, ``ok``, ``warn`` or ``result``."""


def log_say(kind: str, text: str) -> None:
    """The default :data:`Say`: progress as INFO log lines."""
    logger.info("[%s] %s", kind, text)


class DemoError(RuntimeError):
    """A demo stage failed; ``stage`` names it (the summary records it too)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"demo stage '{stage}' failed: {message}")
        self.stage = stage
