"""Recommender quality: ALS against popularity, item-cosine, BPR (and buy-again / blend on generated data).

Part 1, MovieLens small (``ml-latest-small``, 610 users, 9,742 films): ratings as implicit
feedback, rating >= 4 is a positive with confidence 1 (times ``alpha``), lower ratings are not
positives but count as "seen" (never recommended again). Split: per user, by time: each user's
last 20% of ratings (users with >= 5 ratings) is the test period; relevant = test films rated
>= 4. Hyper-parameters of ALS (factors, regularization, alpha, BM25 or not), BPR (factors,
learning rate, regularization) and item-cosine (K) are tuned with Optuna on a validation split
made the same way inside the training part (the last 20% of each user's training ratings), never
on the test part; then everything is refitted on the full training part and scored once on test.
For reference the pipeline's own split (one global cut-off, ``--global-holdout-days`` before the
last rating) is scored too: it is the honest production split but leaves few MovieLens users.

Part 2, generated shop (``features.simulator.simulate_shop``): the pipeline's split (global
cut-off ``holdout_days`` = 14 before the end), the settings' defaults, modes ``als``, ``blend``
and ``buy_again`` each beside all baselines.

Metric definitions: ``training/recommender_evaluate.py`` (precision divides by k; implicit's
variant, dividing by min(k, |test|), is reported as ``P@k (implicit)`` to compare with published
figures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tenure.settings import load_settings
from training.interactions import build_interactions, holdout_targets
from training.recommender_evaluate import evaluate
from training.recommender_model import ALSRecommender
from training.recommender_pipeline import (
    MOVIELENS_EVENT_WEIGHTS,
    RecommenderData,
    config_from_settings,
    holdout_evaluation,
    read_movielens_events,
)

K = 10
SHOW = ["precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "hit_rate_at_k", "coverage_at_k",
        "popularity_percentile_at_k", "precision_implicit_at_k"]


def per_user_split(events: pd.DataFrame, frac: float = 0.2, min_events: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's last ``frac`` of events (by time) is the test part; users with few events stay in train."""
    ev = events.sort_values(["customer_id", "event_at", "event_id"], kind="stable")
    rank = ev.groupby("customer_id").cumcount()
    size = ev.groupby("customer_id")["event_id"].transform("size")
    n_test = np.where(size >= min_events, np.ceil(size * frac), 0)
    test = rank >= size - n_test
    return ev[~test], ev[test]


def _matrices(train_ev, test_ev, items, weighting="none"):
    train = build_interactions(train_ev, None, items, event_weights=MOVIELENS_EVENT_WEIGHTS, weighting=weighting,
                               purchase_event_types=("purchase", "view"))
    return train, holdout_targets(test_ev, train, ("purchase",))


def _als_table(train, targets, params, categories, baselines=(), bpr=None, cosine_k=100, threads=0):
    model = ALSRecommender(factors=params["factors"], regularization=params["regularization"],
                           alpha=params["alpha"], iterations=15, mode="als", use_gpu="never",
                           num_threads=threads, random_state=42).fit(train.user_items, train.purchases)
    return evaluate(model, train, targets, K, categories, baselines, num_threads=threads,
                    bpr_params=bpr, cosine_k=cosine_k)


def _categories(items, item_ids):
    return items.set_index("item_id")["category"].reindex(item_ids).fillna("unknown").to_numpy()


def tune_movielens(train_ev, items, trials: int, threads: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fit_ev, val_ev = per_user_split(train_ev)
    cache = {w: _matrices(fit_ev, val_ev, items, w) for w in ("none", "bm25")}
    cats = _categories(items, cache["none"][0].item_ids)

    def als_objective(trial):
        weighting = trial.suggest_categorical("weighting", ["none", "bm25"])
        params = {"factors": trial.suggest_categorical("factors", [16, 32, 64, 128]),
                  "regularization": trial.suggest_float("regularization", 1e-3, 50.0, log=True),
                  "alpha": trial.suggest_float("alpha", 0.5, 100.0, log=True)}
        train, targets = cache[weighting]
        return _als_table(train, targets, params, cats, threads=threads).loc["model", "ndcg_at_k"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=42))
    study.enqueue_trial({"weighting": "none", "factors": 64, "regularization": 0.01, "alpha": 20.0})
    study.optimize(als_objective, n_trials=trials)
    best_als = dict(study.best_params)

    train, targets = cache["none"]

    def bpr_objective(trial):
        bpr = {"factors": trial.suggest_categorical("factors", [32, 64, 128]),
               "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.1, log=True),
               "regularization": trial.suggest_float("regularization", 1e-4, 0.1, log=True),
               "iterations": 100}
        table = _als_table(train, targets, {"factors": 4, "regularization": 1.0, "alpha": 1.0}, cats,
                           baselines=("bpr",), bpr=bpr, threads=threads)
        return table.loc["bpr", "ndcg_at_k"]

    bpr_study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=42))
    bpr_study.enqueue_trial({"factors": 64, "learning_rate": 0.01, "regularization": 0.01})
    bpr_study.optimize(bpr_objective, n_trials=max(trials // 2, 1))
    best_bpr = dict(bpr_study.best_params) | {"iterations": 100}

    cosine_scores = {}
    for k_nn in (20, 50, 100, 200):
        table = _als_table(train, targets, {"factors": 4, "regularization": 1.0, "alpha": 1.0}, cats,
                           baselines=("item_cosine",), cosine_k=k_nn, threads=threads)
        cosine_scores[k_nn] = table.loc["item_cosine", "ndcg_at_k"]
    best_k = max(cosine_scores, key=cosine_scores.get)
    return {"als": best_als, "als_validation_ndcg": study.best_value, "bpr": best_bpr,
            "bpr_validation_ndcg": bpr_study.best_value, "cosine_k": best_k,
            "cosine_validation_ndcg": cosine_scores}


def movielens(path: Path, trials: int, threads: int, global_days: int) -> dict:
    customers, items, events = read_movielens_events(path)
    train_ev, test_ev = per_user_split(events)
    t0 = time.perf_counter()
    tuned = tune_movielens(train_ev, items, trials, threads)
    tune_s = time.perf_counter() - t0
    best = tuned["als"]
    train, targets = _matrices(train_ev, test_ev, items, best["weighting"])
    plain_train, _ = _matrices(train_ev, test_ev, items, "none")
    cats = _categories(items, train.item_ids)
    table = _als_table(train, targets, best, cats, baselines=("popular", "popular_in_category"), threads=threads)
    # baselines that learn from the matrix see the plain (un-weighted) matrix they were tuned on
    others = _als_table(plain_train, targets, {"factors": 64, "regularization": 0.01, "alpha": 20.0}, cats,
                        baselines=("item_cosine", "bpr"), bpr=tuned["bpr"], cosine_k=tuned["cosine_k"],
                        threads=threads)
    table = pd.concat([table, others.rename(index={"model": "als_reference_64f_a20"})])
    table = table.rename(index={"model": "als_tuned"})

    data = RecommenderData(events, customers, items, "movielens", str(path), dict(MOVIELENS_EVENT_WEIGHTS),
                           mode="als", purchase_event_types=("purchase", "view"))
    config = config_from_settings(load_settings(None), data)
    config.update(factors=best["factors"], regularization=best["regularization"], alpha=best["alpha"],
                  weighting=best["weighting"])
    global_table, cutoff, _ = holdout_evaluation(data, config, global_days, K,
                                                 baselines=("popular", "item_cosine", "bpr"), num_threads=threads,
                                                 bpr_params=tuned["bpr"], cosine_k=tuned["cosine_k"])
    return {"per_user_split": table, "global_split": global_table, "global_cutoff": str(cutoff),
            "tuned": tuned, "tune_seconds": tune_s, "n_test_users": len(targets)}


def generated(n_customers: int, n_items: int, days: int, threads: int, trials: int) -> dict:
    from features.simulator import simulate_shop
    from training.recommender_pipeline import tune

    settings = load_settings(None)
    shop = simulate_shop(n_customers, n_items, days, 42, "2026-01-01")
    data = RecommenderData(shop.events, shop.customers, shop.items, "generated", None,
                           dict(settings.recommender.event_weights))
    tables = {}
    for mode in ("als", "blend", "buy_again"):
        config = config_from_settings(settings, data)
        config["mode"] = mode
        table, cutoff, _ = holdout_evaluation(data, config, settings.recommender.holdout_days, K, num_threads=threads)
        tables[mode] = table
    tuned = {}
    if trials:
        config = config_from_settings(settings, data)
        config["mode"] = "blend"
        best = tune(data, config, trials, settings.recommender.holdout_days, K, num_threads=threads)
        table, cutoff, _ = holdout_evaluation(data, best, settings.recommender.holdout_days, K, num_threads=threads)
        tables["blend_tuned"] = table
        tuned = {key: best[key] for key in ("factors", "regularization", "alpha", "weighting", "blend_weight",
                                            "tuned_validation_ndcg_at_k")}
    return {"tables": tables, "tuned_blend": tuned, "cutoff": str(cutoff), "shape": [n_customers, n_items, days],
            "n_events": len(shop.events)}


def _print(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(table[SHOW].rename(columns=lambda c: c.replace("_at_k", "@10")).round(4).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movielens", type=Path, default=ROOT.parent / "shared" / "datasets" / "movielens_small")
    parser.add_argument("--trials", type=int, default=30, help="Optuna trials for ALS (BPR gets half).")
    parser.add_argument("--global-holdout-days", type=int, default=730)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--generated-trials", type=int, default=15, help="Optuna trials for blend (pipeline's tune).")
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recommender_quality.json")
    args = parser.parse_args()

    result: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg(), "k": K}
    t0 = time.perf_counter()
    if not args.skip_movielens:
        if not (args.movielens / "ratings.csv").is_file():
            parser.error(f"{args.movielens}/ratings.csv not found (use --movielens DIR or --skip-movielens)")
        ml = movielens(args.movielens, args.trials, args.threads, args.global_holdout_days)
        _print(f"MovieLens small, per-user time split (last 20%), {ml['n_test_users']} test users, tuned on validation",
               ml["per_user_split"])
        _print(f"MovieLens small, global cut-off {ml['global_cutoff']} (pipeline split)", ml["global_split"])
        print("tuned:", json.dumps(ml["tuned"], default=str))
        result["movielens"] = {
            "split": "per user by time: last 20% of each user's ratings (users with >= 5) = test; "
                     "relevant = test ratings >= 4; tuned on the same split inside the training part",
            "per_user_split": ml["per_user_split"].round(5).to_dict(orient="index"),
            "global_split": ml["global_split"].round(5).to_dict(orient="index"),
            "global_cutoff": ml["global_cutoff"], "tuned": ml["tuned"], "tune_seconds": round(ml["tune_seconds"], 1),
        }
    gen = generated(args.customers, args.items, args.days, args.threads, args.generated_trials)
    for mode, table in gen["tables"].items():
        _print(f"generated shop {gen['shape']} ({gen['n_events']:,} events), holdout after {gen['cutoff']}, "
               f"mode {mode}", table)
    result["generated"] = {"shape_customers_items_days": gen["shape"], "n_events": gen["n_events"],
                           "cutoff": gen["cutoff"], "tuned_blend": gen["tuned_blend"],
                           "modes": {m: t.round(5).to_dict(orient="index") for m, t in gen["tables"].items()}}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
