"""Churn reasons in plain language: one template per feature, in one place (the service and the CLI use it).

A reason is a feature that moved a customer's score, with its value and signed contribution
(log-odds, positive raises the risk). :func:`reason_text` turns it into words a marketing team
reads, with units and rounded numbers: ``no activity for 48 days``, ``last NPS 2 of 10``,
``3 support tickets in 30 days``. Features without a template (a shop's own customer
attributes) get a generic ``monthly charges: 70.5`` / ``contract: month-to-month``.
:func:`reason_direction` says whether the feature raises or lowers the risk.

Pure Python, no numpy: the scorer calls it per reason on the serving hot path.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class ReasonTemplate:
    """How one feature reads.

    ``text`` is formatted with ``n`` (the rounded value), ``s`` (``"s"`` unless ``n`` is 1) and,
    for ``trend`` features, ``way`` (``rising``/``falling``/``flat``); ``missing`` is the text
    when the customer has no value; ``percent`` multiplies a 0..1 share by 100 first.
    """

    text: str
    missing: str
    kind: str = "number"  # number | percent | trend | flag


TEMPLATES: dict[str, ReasonTemplate] = {
    "days_since_last_activity": ReasonTemplate("no activity for {n} day{s}", "no activity on record"),
    "days_since_last_purchase": ReasonTemplate("no purchase for {n} day{s}", "never purchased"),
    "days_since_last_session": ReasonTemplate("no visit for {n} day{s}", "no visit on record"),
    "purchases_7d": ReasonTemplate("{n} purchase{s} in 7 days", "no purchases in 7 days"),
    "purchases_30d": ReasonTemplate("{n} purchase{s} in 30 days", "no purchases in 30 days"),
    "purchases_90d": ReasonTemplate("{n} purchase{s} in 90 days", "no purchases in 90 days"),
    "revenue_7d": ReasonTemplate("spent {n} in 7 days", "no spending in 7 days"),
    "revenue_30d": ReasonTemplate("spent {n} in 30 days", "no spending in 30 days"),
    "revenue_90d": ReasonTemplate("spent {n} in 90 days", "no spending in 90 days"),
    "purchase_trend_30d": ReasonTemplate("purchases {way} vs the 30 days before (trend {n})", "no purchase trend",
                                         "trend"),
    "revenue_trend_30d": ReasonTemplate("spending {way} vs the 30 days before (trend {n})", "no spending trend",
                                        "trend"),
    "session_trend_30d": ReasonTemplate("visits {way} vs the 30 days before (trend {n})", "no visit trend", "trend"),
    "tenure_days": ReasonTemplate("customer for {n} day{s}", "signup date unknown"),
    "distinct_categories_365d": ReasonTemplate("bought from {n} categor{ies} in a year", "no purchases in a year"),
    "returns_90d": ReasonTemplate("{n} return{s} in 90 days", "no returns in 90 days"),
    "return_rate_90d": ReasonTemplate("{n}% of purchases returned in 90 days", "no purchases to return in 90 days",
                                      "percent"),
    "avg_basket_90d": ReasonTemplate("average basket {n} in 90 days", "no baskets in 90 days"),
    "sessions_30d": ReasonTemplate("{n} visit{s} in 30 days", "no visits in 30 days"),
    "views_30d": ReasonTemplate("{n} product view{s} in 30 days", "no product views in 30 days"),
    "add_to_carts_30d": ReasonTemplate("{n} add-to-cart{s} in 30 days", "no add-to-carts in 30 days"),
    "tickets_30d": ReasonTemplate("{n} support ticket{s} in 30 days", "no support tickets in 30 days"),
    "tickets_90d": ReasonTemplate("{n} support ticket{s} in 90 days", "no support tickets in 90 days"),
    "resolution_hours_30d": ReasonTemplate("support tickets took {n} hour{s} to resolve (30 days)",
                                           "no support tickets in 30 days"),
    "resolution_hours_90d": ReasonTemplate("support tickets took {n} hour{s} to resolve (90 days)",
                                           "no support tickets in 90 days"),
    "last_nps": ReasonTemplate("last NPS {n} of 10", "no NPS answer"),
    "last_csat": ReasonTemplate("last CSAT {n} of 5", "no CSAT answer"),
    "sentiment_30d": ReasonTemplate("what they wrote in 30 days reads {n} (-1 negative .. 1 positive)",
                                    "wrote nothing in 30 days"),
    "negative_tickets_30d": ReasonTemplate("{n} negative support ticket{s} in 30 days",
                                           "no negative support tickets in 30 days"),
    "consent_personalization": ReasonTemplate("agreed to personalised offers", "consent unknown", "flag"),
    "plan": ReasonTemplate("plan: {n}", "plan unknown"),
    "region": ReasonTemplate("region: {n}", "region unknown"),
    "acquisition_channel": ReasonTemplate("acquired through {n}", "acquisition channel unknown"),
}
"""Templates of the features the event pipeline computes; anything else reads generically."""

_FLAG_OFF = {"consent_personalization": "did not agree to personalised offers"}


def round_for_people(value: float) -> str:
    """A number rounded for reading: whole numbers from 10 up, one decimal below (``48``, ``2.5``, ``0.3``)."""
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 10 or float(value).is_integer():
        return f"{value:,.0f}"
    text = f"{value:.1f}" if abs(value) >= 0.1 else f"{value:.2f}"
    return "0" if float(text) == 0 else text


def reason_text(feature: str, value: Any) -> str:
    """Plain-language text of one reason (see the module docstring); ``value`` None = missing."""
    template = TEMPLATES.get(feature)
    if template is None:
        label = feature.replace("_", " ")
        if value is None:
            return f"{label}: unknown"
        return f"{label}: {round_for_people(float(value)) if _is_number(value) else value}"
    if value is None:
        return template.missing
    if template.kind == "flag":
        return template.text if _is_number(value) and float(value) >= 0.5 else _FLAG_OFF.get(feature, f"not {feature}")
    if not _is_number(value):
        return template.text.format(n=value, s="s", ies="ies", way="")
    number = float(value) * (100 if template.kind == "percent" else 1)
    n = round_for_people(number)
    plural = n not in ("1", "-1")
    way = "rising" if number > 0.05 else "falling" if number < -0.05 else "flat"
    if template.kind == "trend":
        n = f"{number:+.2f}"
    return template.text.format(n=n, s="s" if plural else "", ies="ies" if plural else "y", way=way)


def reason_direction(contribution: float) -> str:
    """``raises risk`` for a positive contribution, ``lowers risk`` otherwise."""
    return "raises risk" if contribution > 0 else "lowers risk"


def _is_number(value: Any) -> bool:
    return not isinstance(value, str) and hasattr(value, "__float__")
