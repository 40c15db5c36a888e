"""Sentiment of what customers write (support tickets, survey comments), for features and reports.

The default scorer is VADER (``vaderSentiment``): rule-based, English, its lexicon ships inside
the package, so nothing is downloaded at run time. A text's score is VADER's ``compound`` in
[-1, 1]; a text is *negative* at or below :data:`NEGATIVE_AT` (VADER's own convention).

The scorer is pluggable: every function takes ``scorer``, any callable ``str -> float`` in
[-1, 1] (for example a Korean lexicon scorer). No Korean sentiment lexicon ships in a
maintained package (``kiwipiepy`` is a tokenizer only), so Korean text scores 0 under VADER
(it ignores words it does not know); plug a scorer in where Korean matters.

The batch features (:mod:`tenure.features.customer_features`) and the online ones
(:mod:`tenure.features.incremental`) both score through :func:`text_sentiment`, so they agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

Scorer = Callable[[str], float]
"""A sentiment scorer: text -> score in [-1, 1] (negative .. positive)."""

NEGATIVE_AT: float = -0.05
"""A text with a score at or below this is negative (VADER's recommended threshold)."""

TEXT_EVENT_TYPES: tuple[str, ...] = ("support_ticket", "survey")
"""Event types whose ``text`` the features and the report read."""

MAX_TEXT_CHARS: int = 2000
"""Only the first this many characters of a text are scored (bounds the cost of one event)."""


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_score(text: str) -> float:
    """VADER's compound score of ``text`` in [-1, 1] (0 for text without sentiment words)."""
    return float(_vader().polarity_scores(text[:MAX_TEXT_CHARS])["compound"])


def vader_lexicon() -> frozenset[str]:
    """The words VADER reads as sentiment (lower case): its valence lexicon, boosters (``really``) and
    negations (``never``); they say how a customer feels, not what about."""
    from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE

    return frozenset(_vader().lexicon) | frozenset(BOOSTER_DICT) | frozenset(NEGATE)


def text_sentiment(text: Any, scorer: Scorer | None = None) -> float:
    """Score of one text; NaN when there is no text (None, NaN, blank)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return math.nan
    text = str(text)
    if not text.strip():
        return math.nan
    return float((scorer or vader_score)(text))


def score_texts(texts: Iterable[Any], scorer: Scorer | None = None):
    """Scores of many texts as a float64 numpy array (NaN where there is no text).

    Each distinct text is scored once (templates, repeated answers), so the cost follows the
    number of distinct texts.
    """
    import numpy as np
    import pandas as pd

    values = pd.Series(list(texts) if not hasattr(texts, "__len__") else texts, dtype=object)
    present = values.notna().to_numpy()
    out = np.full(len(values), np.nan)
    if not present.any():
        return out
    codes, uniques = pd.factorize(values[present].astype(str))
    scores = np.array([text_sentiment(u, scorer) for u in uniques], dtype=np.float64)
    out[present] = scores[codes]
    return out
