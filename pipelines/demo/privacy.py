"""The demo's privacy stage: one consent withdrawal seen by the next request, one erasure with its receipt."""

from __future__ import annotations

from typing import Any

from tenure.pipelines.demo.config import Say
from tenure.pipelines.demo.tour import latest_customers
from tenure.pipelines.service_client import ServiceClient
from tenure.settings import Settings


def privacy_tour(client: ServiceClient, settings: Settings, say: Say) -> dict[str, Any]:
    """Withdraw one customer's personalization consent through ``POST /consent`` and show ``/recommend``
    before and after; erase another through ``DELETE /customers/{id}`` and show the receipt.

    Returns the stage's summary: the strategies before and after, and the receipt's counts.
    """
    customers = latest_customers(settings, 400)
    personal = next((c for c in customers[::-1]
                     if client.recommend(c, k=3)["strategy"] not in ("popular", "no_consent_popular")), customers[-1])
    before = client.recommend(personal, k=3)["strategy"]
    client.consent(personal, {"personalization": False}, channel="demo")
    after = client.recommend(personal, k=3)["strategy"]
    say("result", f"/consent {personal}: personalization withdrawn; /recommend strategy {before} -> {after} "
                  "(the next request, no restart)")
    erased = next(c for c in customers[len(customers) // 2:] if c != personal)
    receipt = client.forget(erased)
    removed = ", ".join(f"{k} {v:,}" for k, v in receipt["removed"].items())
    say("result", f"DELETE /customers/{erased}: removed {removed} in {receipt['seconds']:.2f} s; "
                  f"remaining {receipt['remaining'] or 'none'}; receipt {receipt['receipt_path']} "
                  f"(names the person only as {receipt['subject'][:12]}...)")
    after_erasure = client.churn_score([erased])[0]["status"]
    say("info", f"/churn-score {erased} after erasure: {after_erasure}")
    return {"withdrawal": {"customer_id": personal, "strategy_before": before, "strategy_after": after},
            "erasure": {"removed": receipt["removed"], "remaining": receipt["remaining"], "seconds": receipt["seconds"],
                        "receipt": receipt["receipt_path"], "status_after": after_erasure,
                        "clean": not receipt["remaining"]}}
