"""Benchmark: what the voice of the customer adds to churn prediction (ROC-AUC with vs without the text features).

Simulated shops (their ticket and survey texts' tone follows each customer's will to leave,
``features/simulator_voice.py``): features and 30-day churn labels at weekly cut-offs, the same
code as training (``compute_customer_feature_snapshots``, ``label_churn``). A LightGBM model with
the project's churn settings is fitted on the training seeds with every customer feature, and
again without ``sentiment_30d`` and ``negative_tickets_30d``; both are scored on held-out seeds
(other shops, never seen in training). The gain is the difference of ROC-AUC per held-out seed.

    .venv/bin/python benchmarks/sentiment_gain.py [--customers 3000] [--days 150]

Writes benchmarks/results/sentiment_gain.json. VADER's own accuracy on the human-rated sets inside its
sdist is measured by benchmarks/vader_accuracy.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sentiment_gain.json"
TEXT_FEATURES = ("sentiment_30d", "negative_tickets_30d")


def dataset(customers: int, days: int, seed: int, horizon: int = 30) -> pd.DataFrame:
    """Features + label at weekly cut-offs from day 60 to the last matured one, for one simulated shop."""
    from tenure.features.customer_features import compute_customer_feature_snapshots
    from tenure.features.labels import label_churn
    from tenure.features.simulator import simulate_shop
    from tenure.settings import load_settings

    shop = simulate_shop(customers, 200, days, seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    cutoffs = [start + pd.Timedelta(days=d) for d in range(60, days - horizon + 1, 7)]
    features = compute_customer_feature_snapshots(shop.events, shop.customers, shop.items, cutoffs)
    labels = label_churn(shop.events, shop.customers, cutoffs, horizon,
                         load_settings().churn.qualifying_event_types)
    frame = labels.merge(features, on=["customer_id", "event_timestamp"], how="inner")
    frame["seed"] = seed
    return frame


def fit_and_score(train: pd.DataFrame, tests: list[pd.DataFrame], features: list[str],
                  categorical: list[str]) -> list[tuple[float, float]]:
    """LightGBM (the churn settings' trees and learning rate) fitted on ``train``; per test frame the ROC-AUC
    on every row and on the rows of customers who wrote something in the last 30 days."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    from tenure.settings import load_settings

    cfg = load_settings().churn

    def matrix(frame: pd.DataFrame) -> pd.DataFrame:
        x = frame[features].copy()
        for c in categorical:
            x[c] = pd.Categorical(x[c], categories=sorted(train[c].astype(str).unique()))
        return x

    model = lgb.LGBMClassifier(n_estimators=300, learning_rate=cfg.learning_rate, num_leaves=cfg.num_leaves,
                               min_child_samples=50, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                               random_state=cfg.random_state, verbose=-1)
    model.fit(matrix(train), train["label"])
    scores = []
    for t in tests:
        p = model.predict_proba(matrix(t))[:, 1]
        wrote = t["sentiment_30d"].notna().to_numpy()
        scores.append((float(roc_auc_score(t["label"], p)), float(roc_auc_score(t["label"][wrote], p[wrote]))))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--test-seeds", type=int, nargs="+", default=[201, 202, 203])
    args = parser.parse_args()

    from tenure.features.customer_features import (
        CUSTOMER_CATEGORICAL_FEATURES,
        CUSTOMER_NUMERIC_FEATURES,
    )

    t0 = time.perf_counter()
    train = pd.concat([dataset(args.customers, args.days, s) for s in args.train_seeds], ignore_index=True)
    tests = [dataset(args.customers, args.days, s) for s in args.test_seeds]
    build_s = time.perf_counter() - t0
    categorical = list(CUSTOMER_CATEGORICAL_FEATURES)
    every = [*CUSTOMER_NUMERIC_FEATURES, *categorical]
    without = [f for f in every if f not in TEXT_FEATURES]
    with_both = fit_and_score(train, tests, every, categorical)
    without_both = fit_and_score(train, tests, without, categorical)
    with_text, with_writers = [a for a, _ in with_both], [b for _, b in with_both]
    without_text, without_writers = [a for a, _ in without_both], [b for _, b in without_both]
    gains = np.array(with_text) - np.array(without_text)
    writer_gains = np.array(with_writers) - np.array(without_writers)
    written = float(train["sentiment_30d"].notna().mean())
    result = {
        "benchmark": "sentiment_gain",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "shops": {"customers": args.customers, "days": args.days, "train_seeds": args.train_seeds,
                  "test_seeds": args.test_seeds, "train_rows": len(train), "test_rows": [len(t) for t in tests],
                  "churn_rate_train": float(train["label"].mean()),
                  "rows_with_text_in_30_days": written},
        "roc_auc_with_text": with_text,
        "roc_auc_without_text": without_text,
        "gain_per_test_seed": gains.tolist(),
        "gain_mean": float(gains.mean()),
        "gain_min": float(gains.min()),
        "roc_auc_writers_with_text": with_writers,
        "roc_auc_writers_without_text": without_writers,
        "gain_writers_mean": float(writer_gains.mean()),
        "gain_writers_per_test_seed": writer_gains.tolist(),
        "build_seconds": round(build_s, 1),
        "vader_accuracy_on_a_packaged_labelled_set": None,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
