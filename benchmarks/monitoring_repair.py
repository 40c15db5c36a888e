"""Does the monitoring loop repair a model after the world changes? Old champion vs retrained one.

For each seed the simulator runs with ``drift_at``. Workspace *before* holds only what was
known on ``drift_at`` (customers signed up and events up to that day): features, Feast, and a
churn champion trained and promoted there. Workspace *after* holds what is known on
``--retrain-day`` and shares the MLflow registry. One real monitoring pass
(``monitoring.run_monitoring_pass``, snapshot mode, default policy) runs in *after*, with a
retrain action that trains on *after* and runs the promotion gate (``training.churn_pipeline
.train_churn`` + ``training.gate.promote``, as the CLI wires it).

Then both models score the same later window that neither saw: the alive customers at
``--retrain-day`` with features from the full simulated history and churn labels from the
``horizon`` days after it. Reported per seed: whether monitoring fired and why, the gate's
decision, and realised ROC-AUC / calibration error / top-decile lift of the old champion and of
the retrained model on that window.

    .venv/bin/python benchmarks/monitoring_repair.py --control            # + no-drift control runs
    .venv/bin/python benchmarks/monitoring_repair.py --seeds 301 --customers 1500
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = (301, 302, 303)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=3000, help="customers per simulated shop")
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--days", type=int, default=365, help="simulated days (must cover retrain day + horizon)")
    p.add_argument("--drift-at", type=int, default=200, help="day the world changes; the first champion is trained then")
    p.add_argument("--retrain-day", type=int, default=330, help="day of the monitoring pass that retrains")
    p.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    p.add_argument("--control", action="store_true",
                   help="also run every seed without drift (retraining forced) to separate repair from freshness")
    p.add_argument("--trees", type=int, default=300, help="churn.n_estimators for both models")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "monitoring_repair.json")
    return p.parse_args(argv)


def workspace(root: Path, mlruns: Path, trees: int):
    """Settings with data under ``root`` and the shared MLflow store under ``mlruns``."""
    from tenure.settings import load_settings

    return load_settings(None, paths={"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                  "exports_dir": str(root / "exports")}, mlflow={"tracking_uri": f"sqlite:///{mlruns / 'mlflow.db'}", "artifact_root": str(mlruns / "artifacts")}, churn={"n_estimators": trees}, monitoring={"alert_sinks": [{"kind": "jsonl"}]})


def fill(settings, shop, day: int, start) -> None:
    """Ingest what is known on ``day`` (signed-up customers, events before it), build weekly snapshots, apply Feast."""
    import pandas as pd

    from tenure.feature_repo.store import apply_definitions
    from tenure.features.ingest import IngestRun
    from tenure.features.snapshots import build_feature_tables, snapshot_times

    end = start + pd.Timedelta(days=day)
    customers = shop.customers[shop.customers["signup_at"] < end]
    events = shop.events[shop.events["event_at"] < end]
    with IngestRun(settings) as run:
        run.ingest_frame("customers", customers, source="sim customers")
        run.ingest_frame("items", shop.items, source="sim items")
        run.ingest_frame("events", events, source="sim events")
    build_feature_tables(settings, snapshot_times(start + pd.Timedelta(days=14), end, every_days=7))
    apply_definitions(settings)


def later_window(shop, as_of, horizon_days: int, qualifying):
    """Alive customers at ``as_of``: features from the full history, labels from the horizon after it."""
    from tenure.features.customer_features import compute_customer_features
    from tenure.features.labels import label_churn

    known = shop.events[shop.events["event_at"] < as_of]
    customers = shop.customers[shop.customers["signup_at"] < as_of]
    features = compute_customer_features(known, customers, shop.items, as_of)
    labels = label_churn(shop.events, customers, [as_of], horizon_days, qualifying)
    return features.merge(labels[["customer_id", "label"]], on="customer_id")


def score(settings, version: str, frame):
    from tenure.training.churn_model import to_matrix
    from tenure.training.churn_pipeline import load_registered_scorer

    scorer = load_registered_scorer(settings, version)
    return scorer.predict_proba(to_matrix(frame, scorer.feature_names, scorer.categories))


def one_seed(seed: int, args, tmp: Path, drift: bool = True) -> dict:
    import pandas as pd

    from tenure.features.simulator import simulate_shop
    from tenure.monitoring import run_monitoring_pass
    from tenure.monitoring.performance import churn_metrics
    from tenure.registry.models import get_alias_version
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote

    t0 = time.perf_counter()
    start = pd.Timestamp("2026-01-01", tz="UTC")
    shop = simulate_shop(args.customers, args.items, args.days, seed, start=str(start.date()),
                         drift_at=args.drift_at if drift else None)
    name = f"{seed}-{'drift' if drift else 'control'}"
    mlruns = tmp / f"mlruns-{name}"
    before = workspace(tmp / f"before-{name}", mlruns, args.trees)
    after = workspace(tmp / f"after-{name}", mlruns, args.trees)

    fill(before, shop, args.drift_at, start)
    first = train_churn(before)
    promote(before, "churn")
    old_version = first.version
    print(f"seed {seed}: champion v{old_version} trained on days < {args.drift_at} "
          f"(test ROC-AUC {first.metrics['tenure']['roc_auc']:.3f})", flush=True)

    fill(after, shop, args.retrain_day, start)
    trained: list = []

    def retrain():
        result = train_churn(after)
        gate = promote(after, "churn")
        trained.append(result.version)
        return {"model": "churn", "run_id": result.run_id, "version": result.version,
                "promoted": gate.promoted, "reason": gate.reason}

    passed = run_monitoring_pass(after, mode="snapshot", retrain=retrain,
                                 now=datetime.now(UTC))
    fired = bool(passed.retrain and passed.retrain["decision"]["triggered"])
    forced = None
    if not trained and not drift:
        forced = retrain()  # control: retrain anyway, to see what a fresher model alone gains
    champion_now = get_alias_version(after, "churn", "champion")
    print(f"seed {seed}: monitoring verdict: {passed.verdict}; {passed.retrain.get('summary')}", flush=True)

    window = later_window(shop, start + pd.Timedelta(days=args.retrain_day), after.churn.horizon_days,
                          after.churn.qualifying_event_types)
    y = window["label"].to_numpy()
    models = {"old_champion": old_version}
    if trained:
        models["retrained"] = trained[0]
    figures = {}
    for role, version in models.items():
        m = churn_metrics(y, score(after, version, window))
        figures[role] = {"version": version, **{k: round(v, 4) for k, v in m.items()}}
    alerts_file = after.paths.reports_dir / "alerts.jsonl"
    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()] if alerts_file.exists() else []
    return {
        "seed": seed,
        "world": "drift" if drift else "control (no drift; retrained without a trigger)",
        "fired": fired,
        "forced_retrain": forced,
        "reasons": passed.retrain["decision"]["reasons"] if passed.retrain else [],
        "drift_share": passed.drift["drift_share"] if passed.drift else None,
        "drifted": passed.drift["drifted"] if passed.drift else [],
        "realised_in_pass": passed.performance,
        "retrain": (passed.retrain or {}).get("outcome") or forced,
        "champion_after_pass": champion_now,
        "later_window": {"as_of_day": args.retrain_day, "rows": len(window), "churn_rate": round(float(y.mean()), 4)},
        "metrics": figures,
        "alerts": alerts,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if not 0 < args.drift_at < args.retrain_day:
        raise SystemExit(f"--retrain-day ({args.retrain_day}) must come after --drift-at ({args.drift_at})")
    if args.retrain_day + 30 > args.days:
        raise SystemExit(f"--days ({args.days}) must cover --retrain-day + the 30-day churn horizon")
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            results.append(one_seed(seed, args, Path(tmp)))
            if args.control:
                results.append(one_seed(seed, args, Path(tmp), drift=False))
    elapsed = time.perf_counter() - t0

    print(f"\n{'seed':>5} {'world':>8} {'fired':>6} {'gate':>9} {'old AUC':>8} {'new AUC':>8} {'old ECE':>8} "
          f"{'new ECE':>8} {'old lift':>8} {'new lift':>8}")
    auc: dict[str, dict[str, list[float]]] = {w: {"old": [], "new": [], "gain": []} for w in ("drift", "control")}
    for r in results:
        world = r["world"].split()[0]
        old, new = r["metrics"]["old_champion"], r["metrics"].get("retrained", {})
        gate = (r["retrain"] or {}).get("promoted")
        auc[world]["old"].append(old["roc_auc"])
        if new:
            auc[world]["new"].append(new["roc_auc"])
            auc[world]["gain"].append(new["roc_auc"] - old["roc_auc"])
        print(f"{r['seed']:>5} {world:>8} {r['fired']!s:>6} "
              f"{('promoted' if gate else 'rejected' if gate is False else '-'):>9} "
              f"{old['roc_auc']:>8.3f} {new.get('roc_auc', float('nan')):>8.3f} {old['ece']:>8.3f} "
              f"{new.get('ece', float('nan')):>8.3f} {old['lift_top10']:>8.2f} {new.get('lift_top10', float('nan')):>8.2f}")
    summary = {w: {k: round(sum(v) / len(v), 4) for k, v in parts.items() if v} for w, parts in auc.items()}
    summary = {w: parts for w, parts in summary.items() if parts}
    for world, parts in summary.items():
        print(f"{world:>8}: mean ROC-AUC on the later window: old champion {parts.get('old', float('nan')):.3f}, "
              f"retrained {parts.get('new', float('nan')):.3f}, gain {parts.get('gain', float('nan')):+.4f}")
    out = {
        "benchmark": "monitoring_repair",
        "command": "benchmarks/monitoring_repair.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "elapsed_s": round(elapsed, 1),
        "setup": {"customers": args.customers, "items": args.items, "days": args.days, "drift_at": args.drift_at,
                  "retrain_day": args.retrain_day, "seeds": args.seeds, "n_estimators": args.trees,
                  "monitoring": "default settings, snapshot mode, one pass at the retrain day",
                  "later_window": "alive customers at the retrain day, labels from the 30 days after it"},
        "mean_roc_auc": summary,  # per world: old champion, retrained, gain (retrained - old)
        "fired": {w: sum(r["fired"] for r in results if r["world"].startswith(w)) for w in ("drift", "control")},
        "promoted": {w: sum(bool((r["retrain"] or {}).get("promoted")) for r in results if r["world"].startswith(w))
                     for w in ("drift", "control")},
        "seeds": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    print(f"wrote {args.out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
