"""The demo's shop: simulated with a drift episode, split into history (raw files) and replay days."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from tenure.pipelines.demo.config import DemoConfig
from tenure.settings import Settings


@dataclasses.dataclass
class DemoData:
    """The generated shop split into history (ingested) and replay (sent to the service).

    ``replay_events`` is a DataFrame of canonical events of the held-back days, in time
    order; the three times are UTC ``pd.Timestamp``.
    """

    replay_events: Any
    replay_start: Any
    drift_at: Any
    end: Any
    counts: dict[str, int]

    def as_dict(self, settings: Settings) -> dict[str, Any]:
        """JSON-ready description for the summary."""
        return {**self.counts, "replay_start": str(self.replay_start), "drift_at": str(self.drift_at),
                "end": str(self.end), "raw_dir": str(settings.paths.raw_dir)}


def generate_demo_data(settings: Settings, config: DemoConfig) -> DemoData:
    """Simulate the shop with a drift episode and write everything but the replay days under ``raw_dir``."""
    import pandas as pd

    from tenure.features.simulator import simulate_shop

    start = pd.Timestamp(config.start, tz="UTC")
    end = start + pd.Timedelta(days=config.days)
    drift_at = end - pd.Timedelta(days=config.drift_days_before_end)
    replay_start = end - pd.Timedelta(days=config.replay_days)
    shop = simulate_shop(config.customers, config.items, config.days, config.seed, config.start,
                         drift_at=config.days - config.drift_days_before_end)
    events = shop.events
    at = pd.to_datetime(events["event_at"], utc=True)
    history, replay = events[at < replay_start], events[at >= replay_start]
    write_raw(settings, shop.customers, shop.items, history)
    return DemoData(
        replay_events=replay.sort_values("event_at", kind="stable").reset_index(drop=True),
        replay_start=replay_start,
        drift_at=drift_at,
        end=end,
        counts={"customers": len(shop.customers), "items": len(shop.items), "history_events": len(history),
                "replay_events": len(replay)},
    )


def write_raw(settings: Settings, customers: Any, items: Any, events: Any) -> None:
    """Write canonical customers, items and events (DataFrames) as the raw files ``tenure ingest`` reads."""
    from tenure.features.simulator import Shop, write_shop

    write_shop(Shop(customers=customers, items=items, events=events), settings.paths.raw_dir)


def event_records(frame: Any) -> list[dict[str, Any]]:
    """Canonical events (DataFrame) as JSON-ready dicts: timestamps ISO 8601, missing values left out."""
    import pandas as pd

    records = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
                continue
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif hasattr(value, "item"):  # numpy scalars
                value = value.item()
            clean[key] = value
        records.append(clean)
    return records
