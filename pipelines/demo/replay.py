"""Replay the held-back days through the running service, day by day."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tenure.pipelines.demo.config import DemoConfig, Say
from tenure.pipelines.demo.data import DemoData, event_records
from tenure.pipelines.service_client import ServiceClient
from tenure.settings import Settings


def _file_day(settings: Settings, day: Any, events: Any) -> None:
    """Write one day's events as ``raw_dir/events-replay-YYYYMMDD.parquet`` (atomically), as a nightly export would."""
    import pandas as pd

    path = settings.paths.raw_dir / f"events-replay-{pd.Timestamp(day):%Y%m%d}.parquet"
    tmp = path.with_name(f".{path.name}.tmp")
    events.to_parquet(tmp, index=False)
    tmp.replace(path)


def replay(client: ServiceClient, settings: Settings, config: DemoConfig, data: DemoData, say: Say) -> dict[str, Any]:
    """Replay the held-back days and return what was sent (JSON-ready).

    A panel of ``config.live_customers`` customers active in the replayed days is live: each
    day their events go through ``POST /events`` (their online features refresh) and those
    active that day are scored (the prediction log fills). The other customers' events of
    each day arrive as a file, and are ingested with the service's event log by the nightly job.
    """
    import pandas as pd

    events = data.replay_events
    days = pd.to_datetime(events["event_at"], utc=True).dt.floor("D")
    batch = min(settings.serving.max_events_per_request, 1000)
    score_batch = min(settings.serving.max_batch_size, 100)
    sent = filed = score_calls = scored = 0
    events_s = score_s = 0.0
    marks: dict[str, str] = {}
    everyone = events["customer_id"].astype(str).drop_duplicates()
    panel = set(everyone.sample(min(len(everyone), config.live_customers), random_state=config.seed))
    for day in sorted(days.unique()):
        if day >= data.drift_at.floor("D") and "drift_first_logged_at" not in marks:
            marks["drift_first_logged_at"] = datetime.now(UTC).isoformat()
        todays = events[days == day]
        is_live = todays["customer_id"].astype(str).isin(panel)
        if (~is_live).any():
            _file_day(settings, day, todays[~is_live])
            filed += int((~is_live).sum())
        t0 = time.perf_counter()
        sent += client.post_events(event_records(todays[is_live]), batch, config.customers_per_request)
        events_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = sorted(set(todays.loc[is_live, "customer_id"].astype(str)))
        client.churn_score(ids, score_batch)
        score_calls += -(-len(ids) // score_batch)
        scored += len(ids)
        for cid in ids[:5]:
            client.recommend(cid, k=5)
        score_s += time.perf_counter() - t0
    say("info", f"{sent:,} events of {scored:,} customers sent to /events ({events_s:.0f} s), "
                f"{filed:,} more as daily files; {score_calls} /churn-score calls ({score_s:.0f} s, "
                f"with 5 /recommend calls a day) over {config.replay_days} days")
    return {"days": config.replay_days, "live_customers": len(panel), "events_via_service": sent,
            "events_via_files": filed, "customers_scored": scored, "score_calls": score_calls,
            "events_s": round(events_s, 1), "scoring_s": round(score_s, 1), **marks}
