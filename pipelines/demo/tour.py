"""The first calls to the running service: a churn score with reasons, recommendations, and an
event sent to ``/events`` that changes that customer's score."""

from __future__ import annotations

import math
import secrets
from typing import Any

from tenure.pipelines.console import format_reason
from tenure.pipelines.demo.config import Say
from tenure.pipelines.demo.data import DemoData
from tenure.pipelines.service_client import ServiceClient
from tenure.settings import Settings


def reason_text(reasons: list[dict[str, Any]], n: int = 3) -> str:
    """``days since last activity: 13 (+0.46); ...`` from a score's ``top_reasons``."""
    return "; ".join(format_reason(r, contribution=True) for r in reasons[:n])


def latest_customers(settings: Settings, limit: int = 200) -> list[str]:
    """Up to ``limit`` customer ids of the newest feature snapshot (sorted)."""
    import pandas as pd

    snapshot = pd.read_parquet(settings.paths.features_dir / "customer_features.parquet",
                               columns=["customer_id", "event_timestamp"])
    latest = snapshot[snapshot["event_timestamp"] == snapshot["event_timestamp"].max()]
    return sorted(latest["customer_id"].astype(str).unique())[:limit]


def tour(client: ServiceClient, settings: Settings, data: DemoData, say: Say) -> dict[str, Any]:
    """Score known customers, recommend to the riskiest, send them a visit and a purchase, score again.

    Returns the JSON-ready record of the calls (``example_score``, ``example_recommendation``,
    ``events_ack``, ``score_after_event``, ``event_changed_score``, ``answered``).
    """
    import pandas as pd

    ids = latest_customers(settings)
    answered = client.churn_score(ids, settings.serving.max_batch_size)
    scored = sorted((r for r in answered if r.get("churn_probability") is not None),
                    key=lambda r: r["churn_probability"], reverse=True)
    if not scored:
        raise RuntimeError(f"/churn-score gave no probabilities for {len(ids)} known customers: {answered[:2]}")
    top = scored[0]
    customer = top["customer_id"]
    say("result", f"/churn-score {customer}: p={top['churn_probability']:.3f} ({top.get('risk_band')}), "
                  f"model v{top.get('model_version')}; reasons: {reason_text(top.get('top_reasons', []))}")

    rec = client.recommend(customer, k=5, exclude_purchased=True)
    say("result", f"/recommend {customer}: {[it['item_id'] for it in rec['items']]} "
                  f"({rec['strategy']}, model v{rec['model_version']})")

    # an event changes the score: the at-risk customer comes back and buys
    when = pd.Timestamp(data.replay_start) - pd.Timedelta(minutes=5)
    item = rec["items"][0]["item_id"] if rec["items"] else None
    events = [
        {"event_id": f"demo-{secrets.token_hex(6)}", "customer_id": customer, "event_at": when.isoformat(),
         "event_type": "session", "channel": "web"},
        {"event_id": f"demo-{secrets.token_hex(6)}", "customer_id": customer,
         "event_at": (when + pd.Timedelta(minutes=2)).isoformat(), "event_type": "purchase",
         "item_id": item, "quantity": 1, "amount": 30.0, "channel": "web"},
    ]
    # acknowledged once durable; wait_for_features also waits for the online update (about a second at most)
    ack = client.send_events([{k: v for k, v in e.items() if v is not None} for e in events], wait_for_features=True)
    after = client.churn_score([customer])[0]
    change = (after.get("churn_probability") or math.nan) - top["churn_probability"]
    say("result", f"after a session + purchase via /events: p={after.get('churn_probability'):.3f} "
                  f"({after.get('risk_band')}), change {change:+.3f}")
    return {"churn_score_customers": len(ids), "churn_scored": len(scored), "example_score": top,
            "example_recommendation": rec, "events_ack": ack, "score_after_event": after,
            "event_changed_score": bool(abs(change) > 1e-9), "answered": True}
