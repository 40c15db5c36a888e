"""Benchmark: VADER's own accuracy on the labelled public sets that ship inside its package.

The source distribution of the pinned ``vaderSentiment`` (3.3.2, MIT) carries
``additional_resources/hutto_ICWSM_2014.tar.gz``: the human-rated sentences of the VADER paper
(Hutto & Gilbert, ICWSM 2014): 4,200 tweets, 10,605 movie-review snippets, 3,708 Amazon
product-review snippets and 5,190 New York Times editorial snippets, each with the mean of
about 20 people's ratings on -4 .. +4. The wheel that the project installs leaves them out, so
this script fetches the sdist of the *locked* version from PyPI with pip (``pip download
--no-binary``), checks its sha256 against ``uv.lock`` and reads the sets from it (nothing is
installed; ``--sdist PATH`` uses a copy at hand).

Scored with the project's scorer (``tenure.features.sentiment.vader_score``, VADER's compound):

- ROC-AUC of the compound for "the people read it as positive" (mean rating > 0) vs negative
  (< 0), sentences rated exactly 0 left out;
- accuracy of VADER's own three-way rule (positive >= 0.05, negative <= -0.05, neutral between,
  counted wrong) on those sentences, and of the sign alone;
- Spearman correlation of the compound with the mean human rating (all sentences).

Caveat: these are the sets VADER was evaluated on in its paper (its lexicon was built from
separate word ratings, not from these sentences), so they are an optimistic, public reference,
not a held-out test of this shop's texts.

    .venv/bin/python benchmarks/vader_accuracy.py [--sdist vaderSentiment-3.3.2.tar.gz]

Writes benchmarks/results/vader_accuracy.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "vader_accuracy.json"
SETS = {"tweets": "tweets_GroundTruth.txt", "movie_reviews": "movieReviewSnippets_GroundTruth.txt",
        "amazon_reviews": "amazonReviewSnippets_GroundTruth.txt", "nyt_editorials": "nytEditorialSnippets_GroundTruth.txt"}


def locked_sdist(lock: Path = ROOT / "uv.lock") -> tuple[str, str]:
    """(version, sha256) of vaderSentiment's source distribution in uv.lock."""
    text = lock.read_text()
    block = re.search(r'\[\[package\]\]\nname = "vadersentiment"\nversion = "([^"]+)".*?\nsdist = \{[^}]*hash = '
                      r'"sha256:([0-9a-f]{64})"', text, re.DOTALL)
    if block is None:
        raise SystemExit("uv.lock has no vadersentiment sdist entry")
    return block.group(1), block.group(2)


def fetch_sdist(pinned: str, into: Path) -> Path:
    """pip download the sdist of vaderSentiment==pinned (no dependencies, nothing installed)."""
    for pip in ([sys.executable, "-m", "pip"], ["python3", "-m", "pip"]):
        done = subprocess.run([*pip, "download", f"vaderSentiment=={pinned}", "--no-binary", ":all:", "--no-deps",
                               "--quiet", "-d", str(into)], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            found = sorted(into.glob("vaderSentiment-*.tar.gz"))
            if found:
                return found[0]
    raise SystemExit(f"could not download the vaderSentiment {pinned} sdist: {done.stderr.strip()[-500:]}")


def read_sets(sdist: Path) -> dict[str, list[tuple[float, str]]]:
    """{set name: [(mean human rating, sentence)]} from the sdist's ICWSM 2014 archive."""
    with tarfile.open(sdist) as outer:
        member = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        inner_bytes = outer.extractfile(member).read()
    sets: dict[str, list[tuple[float, str]]] = {}
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        for name, file in SETS.items():
            member = next(m for m in inner.getmembers() if m.name.endswith(file))
            rows = []
            for line in inner.extractfile(member).read().decode("utf-8", errors="replace").splitlines():
                parts = line.split("\t")
                if len(parts) >= 3:
                    rows.append((float(parts[1]), "\t".join(parts[2:]).strip()))
            sets[name] = rows
    return sets


def evaluate(rows: list[tuple[float, str]]) -> dict[str, float | int]:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from tenure.features.sentiment import NEGATIVE_AT, vader_score

    truth = np.array([r for r, _ in rows])
    score = np.array([vader_score(t) for _, t in rows])
    polar = truth != 0
    positive = truth[polar] > 0
    s = score[polar]
    three_way = np.where(s >= -NEGATIVE_AT, 1, np.where(s <= NEGATIVE_AT, -1, 0))
    return {
        "sentences": len(rows),
        "rated_positive": int(positive.sum()),
        "rated_negative": int((~positive).sum()),
        "roc_auc": round(float(roc_auc_score(positive, s)), 4),
        "accuracy_three_way": round(float((three_way == np.where(positive, 1, -1)).mean()), 4),
        "accuracy_sign": round(float(((s > 0) == positive).mean()), 4),
        "neutral_share": round(float((three_way == 0).mean()), 4),
        "spearman_with_rating": round(float(spearmanr(score, truth).statistic), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, default=None, help="A vaderSentiment sdist at hand (else pip download).")
    args = parser.parse_args()
    pinned, sha = locked_sdist()
    installed = version("vaderSentiment")
    if installed != pinned:
        raise SystemExit(f"installed vaderSentiment {installed} is not the locked {pinned}: run make setup")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tenure-vader-") as tmp:
        sdist = args.sdist or fetch_sdist(pinned, Path(tmp))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != sha:
            raise SystemExit(f"{sdist} has sha256 {digest}, uv.lock says {sha}")
        sets = read_sets(sdist)
    results = {name: evaluate(rows) for name, rows in sets.items()}
    result = {
        "benchmark": "vader_accuracy",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "vaderSentiment": pinned,
        "sdist_sha256": sha,
        "seconds": round(time.perf_counter() - started, 1),
        "sets": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"vaderSentiment {pinned} (sdist sha256 checked against uv.lock), load {os.getloadavg()[0]:.1f}")
    for name, r in results.items():
        print(f"{name:16s} n={r['sentences']:6d}  ROC-AUC {r['roc_auc']:.3f}  accuracy {r['accuracy_three_way']:.3f} "
              f"(sign {r['accuracy_sign']:.3f}, neutral {r['neutral_share']:.3f})  Spearman {r['spearman_with_rating']:.3f}")


if __name__ == "__main__":
    main()
