"""The voice of the customer: what support tickets and survey comments say, for the KPI report.

Texts are scored with the same scorer as the features (:mod:`tenure.features.sentiment`, VADER by
default). *Negative topics* are the words and word pairs that most negative texts share, found
by counting (one count per text) after dropping English stop words and the scorer's own
sentiment words ("terrible", "frustrating" say how, not what): so the
topics are the shop's own nouns ("delivery late", "refund", "app crashing"), with no list to keep.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tenure.features.sentiment import (
    NEGATIVE_AT,
    TEXT_EVENT_TYPES,
    Scorer,
    score_texts,
    vader_lexicon,
)

POSITIVE_AT: float = 0.05
"""A text scoring at or above this is positive (VADER's convention)."""

_FILLER = frozenset({"hello", "hi", "team", "thanks", "thank", "please", "dear", "ok", "okay"})


def voice_summary(events: pd.DataFrame, scorer: Scorer | None = None, top_topics: int = 10) -> dict[str, Any]:
    """Sentiment and negative topics of the ticket and survey texts in ``events``.

    Parameters
    ----------
    events: canonical events (``event_type``, ``text``, optional ``channel``, ``event_at``); other
        event types and events without text are ignored.
    scorer: text -> score in [-1, 1] (default VADER).
    top_topics: how many negative topics to return.

    Returns
    -------
    dict: ``texts`` (scored texts), ``sentiment_mean``, ``negative_share``, ``positive_share``,
    ``by_type`` (one dict per event type: ``event_type``, ``texts``, ``sentiment_mean``,
    ``negative_share``), ``monthly`` (``month``, ``texts``, ``sentiment_mean``, ``negative_share``),
    ``negative_topics`` (``topic``, ``texts``: negative texts that mention it, ``share``: of all
    negative texts), most frequent first.
    """
    if top_topics < 1:
        raise ValueError(f"top_topics must be at least 1, got {top_topics}")
    if "text" not in events.columns:
        texts = pd.DataFrame({"event_type": [], "text": [], "score": []})
    else:
        mask = events["event_type"].isin(TEXT_EVENT_TYPES).to_numpy() & events["text"].notna().to_numpy()
        texts = events.loc[mask, [c for c in ("event_type", "text", "channel", "event_at") if c in events.columns]]
        texts = texts.assign(score=score_texts(texts["text"].to_numpy(dtype=object), scorer))
        texts = texts[texts["score"].notna()]
    summary = _shares(texts["score"].to_numpy(dtype=np.float64))
    summary["by_type"] = [{"event_type": str(t), **_shares(g["score"].to_numpy(dtype=np.float64))}
                          for t, g in texts.groupby("event_type", sort=True)]
    if "event_at" in texts.columns and len(texts):
        month = texts["event_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period("M").astype(str)
        summary["monthly"] = [{"month": m, **_shares(g["score"].to_numpy(dtype=np.float64))}
                              for m, g in texts.groupby(month, sort=True)]
    else:
        summary["monthly"] = []
    negative = texts.loc[texts["score"] <= NEGATIVE_AT, "text"].astype(str)
    summary["negative_topics"] = negative_topics(negative.tolist(), top=top_topics)
    return summary


def _shares(scores: np.ndarray) -> dict[str, Any]:
    n = len(scores)
    return {"texts": int(n),
            "sentiment_mean": float(scores.mean()) if n else None,
            "negative_share": float((scores <= NEGATIVE_AT).mean()) if n else None,
            "positive_share": float((scores >= POSITIVE_AT).mean()) if n else None}


def negative_topics(texts: Sequence[str], top: int = 10, min_texts: int = 2) -> list[dict[str, Any]]:
    """The words and word pairs most negative texts share.

    A text is split into lower-case words; English stop words and the scorer's sentiment words
    are dropped, and a *pair* is two words next to each other in the text with neither dropped.
    Each word and pair counts once per text.

    Parameters
    ----------
    texts: the negative texts.
    top: how many topics to return.
    min_texts: a topic must appear in at least this many texts.

    Returns
    -------
    list of ``{"topic", "texts", "share"}``, most texts first (ties alphabetical). A pair is a
    topic when it holds at least half the texts of its rarer word; a word is left out when a
    chosen pair holding it covers at least 80% of its texts (``delivery`` under ``late delivery``).
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    if not len(texts):
        return []
    distinct, counts = np.unique(np.asarray(texts, dtype=object).astype(str), return_counts=True)
    dropped = _stop_words() | vader_lexicon() | _FILLER
    found: Counter[str] = Counter()
    for text, n in zip(distinct, counts):
        words = [w for w in _WORD.findall(text.lower())]
        keep = [w not in dropped and len(w) > 1 for w in words]
        terms = {w for w, k in zip(words, keep) if k}
        terms |= {f"{a} {b}" for a, b, ka, kb in zip(words, words[1:], keep, keep[1:]) if ka and kb}
        for term in terms:
            found[term] += int(n)
    pairs = {t: n for t, n in found.items() if " " in t and n >= min_texts
             and n >= 0.5 * min(found[w] for w in t.split())}
    words = {t: n for t, n in found.items() if " " not in t and n >= min_texts
             and not any(t in p.split() and m >= 0.8 * n for p, m in pairs.items())}
    ranked = sorted({**pairs, **words}.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    total = int(counts.sum())
    return [{"topic": term, "texts": n, "share": n / total} for term, n in ranked]


_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def _stop_words() -> frozenset[str]:
    """English stop words (scikit-learn's list, read without importing the package: it is slow to import)."""
    return _ENGLISH_STOP_WORDS


# scikit-learn's ENGLISH_STOP_WORDS (BSD-3), plus contractions of customer texts
_ENGLISH_STOP_WORDS = frozenset(["a", "about", "above", "across", "after", "afterwards", "again", "against", "all", "almost", "alone", "along", "already", "also", "although", "always", "am", "among", "amongst", "amoungst", "amount", "an", "and", "another", "any", "anyhow", "anyone", "anything", "anyway", "anywhere", "are", "around", "as", "at", "back", "be", "became", "because", "become", "becomes", "becoming", "been", "before", "beforehand", "behind", "being", "below", "beside", "besides", "between", "beyond", "bill", "both", "bottom", "but", "by", "call", "can", "cannot", "cant", "co", "con", "could", "couldnt", "cry", "de", "describe", "detail", "do", "done", "down", "due", "during", "each", "eg", "eight", "either", "eleven", "else", "elsewhere", "empty", "enough", "etc", "even", "ever", "every", "everyone", "everything", "everywhere", "except", "few", "fifteen", "fifty", "fill", "find", "fire", "first", "five", "for", "former", "formerly", "forty", "found", "four", "from", "front", "full", "further", "get", "give", "go", "had", "has", "hasnt", "have", "he", "hence", "her", "here", "hereafter", "hereby", "herein", "hereupon", "hers", "herself", "him", "himself", "his", "how", "however", "hundred", "i", "ie", "if", "in", "inc", "indeed", "interest", "into", "is", "it", "its", "itself", "keep", "last", "latter", "latterly", "least", "less", "ltd", "made", "many", "may", "me", "meanwhile", "might", "mill", "mine", "more", "moreover", "most", "mostly", "move", "much", "must", "my", "myself", "name", "namely", "neither", "never", "nevertheless", "next", "nine", "no", "nobody", "none", "noone", "nor", "not", "nothing", "now", "nowhere", "of", "off", "often", "on", "once", "one", "only", "onto", "or", "other", "others", "otherwise", "our", "ours", "ourselves", "out", "over", "own", "part", "per", "perhaps", "please", "put", "rather", "re", "same", "see", "seem", "seemed", "seeming", "seems", "serious", "several", "she", "should", "show", "side", "since", "sincere", "six", "sixty", "so", "some", "somehow", "someone", "something", "sometime", "sometimes", "somewhere", "still", "such", "system", "take", "ten", "than", "that", "the", "their", "them", "themselves", "then", "thence", "there", "thereafter", "thereby", "therefore", "therein", "thereupon", "these", "they", "thick", "thin", "third", "this", "those", "though", "three", "through", "throughout", "thru", "thus", "to", "together", "too", "top", "toward", "towards", "twelve", "twenty", "two", "un", "under", "until", "up", "upon", "us", "very", "via", "was", "we", "well", "were", "what", "whatever", "when", "whence", "whenever", "where", "whereafter", "whereas", "whereby", "wherein", "whereupon", "wherever", "whether", "which", "while", "whither", "who", "whoever", "whole", "whom", "whose", "why", "will", "with", "within", "without", "would", "yet", "you", "your", "yours", "yourself", "yourselves", "i'm", "i've", "it's", "don't", "can't", "won't", "didn't", "doesn't", "isn't", "wasn't"])
