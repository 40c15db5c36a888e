"""What the simulated customers write, and how easy they found it: ``text`` and ``ces`` of the shop.

Called once by :func:`tenure.features.simulator.simulate_shop` on its finished events. Support
tickets carry a text (90%), post-ticket CSAT surveys a customer-effort answer (``ces``, 1..7)
and sometimes a comment, NPS surveys sometimes a comment. The tone of a text follows the
customer's propensity to leave: the static part of the simulator's churn hazard (plan,
acquisition channel, engagement, satisfaction) and, above all, whether the customer has already
decided to leave (the fading weeks before the last activity). So the words carry signal the
other features only partly have, and the gain of the text features can be measured.

Draws use their own random streams (``[seed, crc32(name)]``): the rest of the shop is
unchanged by this module.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

_DAY_NS = 86_400 * 10**9

NEGATIVE_TOPICS: dict[str, tuple[str, ...]] = {
    "late delivery": (
        "My delivery is late again, this is really frustrating.",
        "The parcel still has not arrived, terrible delivery service.",
        "Late delivery for the third time, I am disappointed.",
    ),
    "refund": (
        "Still waiting for my refund, this is unacceptable.",
        "Nobody processed my refund, very annoyed.",
    ),
    "damaged item": (
        "My order arrived broken and damaged, very disappointed.",
        "The item was damaged in the box, awful packaging.",
    ),
    "double charge": (
        "I was charged twice, a terrible billing mistake.",
        "Double charge on my card again, this is a joke.",
    ),
    "app crash": (
        "The app keeps crashing at checkout, very frustrating.",
        "The app crashed and lost my basket, horrible experience.",
    ),
    "no answer from support": (
        "Nobody answers my emails, the worst support ever.",
        "Waited hours on the phone and no answer, useless support.",
    ),
    "prices": (
        "Prices went up again, too expensive, I am thinking of leaving.",
        "Too expensive now, I will cancel my plan.",
    ),
}
"""Complaint topics and their texts (VADER reads each as negative)."""

NEUTRAL_TEXTS: tuple[str, ...] = (
    "Where is my parcel?",
    "How do I change my delivery address?",
    "Can you update my billing details?",
    "Please send me the invoice for my last order.",
    "I would like to swap the size of my order.",
)
POSITIVE_TEXTS: tuple[str, ...] = (
    "Thanks, the agent was helpful and friendly.",
    "Great service, problem solved quickly!",
    "Love the products, fast delivery, thank you.",
    "Very happy with the quality, keep it up.",
)
_PREFIXES = ("", "Hello, ", "Hi team, ")


def add_voice(events: pd.DataFrame, customer_ids: np.ndarray, propensity: np.ndarray, decided_day: np.ndarray,
              start_ns: int, seed: int) -> pd.DataFrame:
    """Fill ``text`` and ``ces`` of the simulated events (in place, returned for chaining).

    Parameters
    ----------
    events: the simulator's canonical events (``text`` and ``ces`` columns present, empty).
    customer_ids: array of shape (n_customers,), the ids in the simulator's order.
    propensity: array of shape (n_customers,), the static log-hazard of leaving (higher = more
        likely to leave).
    decided_day: array of shape (n_customers,), day index when the customer decided to leave
        (-1 = never).
    start_ns: the first simulated day (int ns, UTC).
    seed: the shop's seed.

    Returns
    -------
    The same DataFrame, ``text`` (str or None) and ``ces`` (float, NaN where not asked) filled.
    """
    def stream(name: str) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(f"voice-{name}".encode())])

    types = events["event_type"].to_numpy(dtype=object)
    rows = np.flatnonzero((types == "support_ticket") | (types == "survey"))
    text = np.full(len(events), None, dtype=object)
    ces = np.full(len(events), np.nan)
    if len(rows):
        cust = pd.Index(customer_ids).get_indexer(events["customer_id"].to_numpy(dtype=object)[rows])
        day = (events["event_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64)[rows] - start_ns) // _DAY_NS
        sd = float(np.std(propensity)) or 1.0
        prop = (propensity - float(np.mean(propensity))) / sd
        fading = (decided_day[cust] >= 0) & (day >= decided_day[cust])
        is_ticket = types[rows] == "support_ticket"
        csat = events["csat"].to_numpy(dtype=np.float64)[rows]
        resolution = events["resolution_hours"].to_numpy(dtype=np.float64)[rows]
        slow = np.nan_to_num(resolution, nan=0.0) > 48
        written = stream("written").random(len(rows)) < np.where(is_ticket, 0.9, np.where(np.isnan(csat), 0.3, 0.5))
        z = -1.3 + 0.9 * prop[cust] + 2.2 * fading + 0.6 * slow
        p_negative = 1.0 / (1.0 + np.exp(-z))
        u = stream("tone").random(len(rows))
        tone = np.where(u < p_negative, -1, np.where(u < p_negative + (1 - p_negative) * 0.5, 1, 0))
        text[rows] = np.where(written, _texts(tone, stream), None)
        # customer effort, asked with the CSAT survey after a ticket: effort follows satisfaction
        asked = ~np.isnan(csat)
        effort = 1.3 * csat + 0.3 - 0.8 * fading + stream("ces").normal(0.0, 0.7, len(rows))
        ces[rows[asked]] = np.clip(np.round(effort[asked]), 1, 7)
    events["text"] = text
    events["ces"] = ces
    return events


def _texts(tone: np.ndarray, stream) -> np.ndarray:
    """One text per tone (-1 negative, 0 neutral, 1 positive), drawn from the templates."""
    negative = np.array([t for texts in NEGATIVE_TOPICS.values() for t in texts], dtype=object)
    pools = {-1: negative, 0: np.array(NEUTRAL_TEXTS, dtype=object), 1: np.array(POSITIVE_TEXTS, dtype=object)}
    pick = stream("text").random(len(tone))
    prefix = np.array(_PREFIXES, dtype=object)[stream("prefix").integers(0, len(_PREFIXES), len(tone))]
    out = np.empty(len(tone), dtype=object)
    for value, pool in pools.items():
        mask = tone == value
        out[mask] = prefix[mask] + pool[(pick[mask] * len(pool)).astype(np.int64)]
    return out
