"""Every kind of change: is it caught in the first window, named, and never confused with quiet ageing?

For each held-out seed the simulator runs once per drift kind (features/sim_drift.py) with the
change on ``--drift-at``; the days before it are the quiet world of the same seed.

*World kinds* (channel_mix, price_shock, engagement_decline, concept). A churn model (LightGBM,
isotonic calibration, as training does) is fitted on weekly cut-offs well before the change; the
reference is the alive population at a later pre-change cut-off with the model's probabilities
(the champion's test sample). Passes are weekly cut-offs after the change (``--windows``), each
through ``monitoring.drift.drift_report`` (features, churn score, risk bands), the event-level
signals, the CBPE estimate (``monitoring.estimation``), the early outcome / concept check
(``monitoring.early_outcome``: the cohort scored ``k`` days before the pass, ``k`` in
``--early-days``, against the cohorts of the 28 days before it, as the runner does) and
``monitoring.policy.decide_retrain``. Drift counts as the runner counts it: against the champion's sample AND
the recent reference (``monitoring.recent_reference_days`` before the pass, held while an episode is open;
``alarm_primary_only`` keeps what the champion's sample alone would have said). The early outcome's
per-segment CUSUM runs over each seed's passes in order (``sequential``). Reported: share of seeds detected in the first window, delay
(windows), whether the alert named the right column or cause, and CBPE's estimated ROC-AUC against
the realised one at the horizon (labels 30 days later). Quiet windows: the no-drift world's weekly
cut-offs after the reference (false alarms).

*Seasonality*: 960 days with a yearly cycle (peak on day 0, troughs on days 182, 547, 912);
windows every ``--season-step`` days in the third year (742-938) against the reference the runner
picks with ``monitoring.reference`` (auto: the weekly snapshots 365 +/- 14 days before), against one
cut-off before the windows (what the champion's training sample is) and against the previous year
pooled (``--season-context``); a no-season control with the auto reference separates a year of ageing from the
season. The auto reference is measured alone and confirmed by the recent reference, as the runner does.

*Pipeline breaks* (nulls, units, renamed_category, duplicate_events, timezone_shift): a workspace
ingests the history before the change, then the first week after it, broken, through the real
``tenure ingest`` path; caught = quarantined by that same ingestion and absent from the stored
events (what features and training read). The world kinds' and the quiet world's weeks go through
the same ingestion (they must not be quarantined).

    .venv/bin/python benchmarks/drift_kinds.py --skip seasonality --seeds 131 132 133 134 135 \
        --out benchmarks/results/drift_kinds_recent.json                          # held out (121-125: design)
    .venv/bin/python benchmarks/drift_kinds.py --skip world pipeline --seeds 131 132 133 134 135 \
        --out benchmarks/results/drift_kinds_seasonality_recent.json
    .venv/bin/python benchmarks/drift_kinds.py --skip seasonality pipeline --kinds concept --customers 20000 \
        --items 400 --seeds 121 122 --out benchmarks/results/drift_kinds_concept_20k.json
    .venv/bin/python benchmarks/drift_kinds.py --seeds 101 102 103                  # tuning seeds
    .venv/bin/python benchmarks/drift_kinds.py --speed 100000        # the new checks' seconds at 100k customers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPORT_SEEDS = (121, 122, 123, 124, 125)
WORLD = ("channel_mix", "price_shock", "engagement_decline", "concept")
# what a good alert names, per kind: a drifted feature of these, or the cause
EXPECTED = {
    "channel_mix": ("acquisition_channel",),
    "price_shock": ("revenue_7d", "revenue_30d", "revenue_90d", "avg_basket_90d", "revenue_trend_30d", "event:amount"),
    "engagement_decline": ("event:activity", "sessions_30d", "views_30d", "add_to_carts_30d", "session_trend_30d", "purchases_7d",
                           "purchases_30d", "purchase_trend_30d", "days_since_last_session", "revenue_7d"),
    "concept": ("estimated_auc_drop", "auc_drop", "plan"),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--customers", type=int, default=2500)
    p.add_argument("--items", type=int, default=150)
    p.add_argument("--drift-at", type=int, default=150)
    p.add_argument("--windows", type=int, default=5, help="weekly windows (passes) after the change")
    p.add_argument("--seeds", type=int, nargs="*", default=list(REPORT_SEEDS))
    p.add_argument("--kinds", nargs="*", default=list(WORLD), choices=list(WORLD), help="world kinds measured")
    p.add_argument("--season-context", action="store_true",
                   help="also measure the seasonal world against one cut-off and the previous year pooled (no rule)")
    p.add_argument("--season-step", type=int, default=14, help="days between seasonal windows (742-938)")
    p.add_argument("--early-days", type=int, nargs="*", default=[7, 14],
                   help="early-outcome windows k measured (the settings' monitoring.early_outcome_days decides alarms)")
    p.add_argument("--skip", nargs="*", default=[], choices=["world", "seasonality", "pipeline"])
    p.add_argument("--speed", type=int, default=0, metavar="CUSTOMERS",
                   help="only time the new checks on a shop of this many customers (-> drift_kinds_speed.json)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "drift_kinds.json")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- helpers
def _features(shop, days, start):
    import pandas as pd

    from tenure.features.customer_features import compute_customer_feature_snapshots
    from tenure.monitoring.runner import alive_population

    cuts = [start + pd.Timedelta(days=d) for d in days]
    snaps = compute_customer_feature_snapshots(shop.events, shop.customers, shop.items, cuts)
    out = {}
    for d, t in zip(days, cuts):
        rows = snaps[snaps["event_timestamp"] == t].reset_index(drop=True)
        out[d] = alive_population(rows, 30)
    return out


def _labelled(shop, frame, day, start):
    import pandas as pd

    from tenure.features.labels import label_churn
    from tenure.settings import ChurnSettings

    churn = ChurnSettings()
    cut = start + pd.Timedelta(days=day)
    labels = label_churn(shop.events, shop.customers, [cut], churn.horizon_days, churn.qualifying_event_types)
    return frame.merge(labels[["customer_id", "label"]], on="customer_id", how="inner")


class _Model:
    """LightGBM + isotonic calibration on the customer features (the benchmark's champion)."""

    def __init__(self, numeric, categorical):
        self.numeric, self.categorical = list(numeric), list(categorical)

    def _x(self, frame):
        import pandas as pd

        x = frame[self.numeric + self.categorical].copy()
        for c in self.categorical:
            x[c] = pd.Categorical(x[c].astype(str), categories=self.levels_[c])
        return x

    def fit(self, train, calib):
        import lightgbm as lgb
        from sklearn.isotonic import IsotonicRegression

        self.levels_ = {c: sorted(train[c].astype(str).unique()) for c in self.categorical}
        self.gbm_ = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=40,
                                       subsample=0.8, subsample_freq=1, random_state=0, verbose=-1)
        self.gbm_.fit(self._x(train), train["label"].to_numpy())
        raw = self.gbm_.predict_proba(self._x(calib))[:, 1]
        self.iso_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(raw, calib["label"].to_numpy())
        return self

    def predict(self, frame):
        return self.iso_.predict(self.gbm_.predict_proba(self._x(frame))[:, 1])


def _bands(p):
    import numpy as np

    return np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low"))


def _assess(reference, current, numeric, categorical, monitoring, promised, ref_p, ref_y, events, end, recent=None):
    """drift report (confirmed against the ``recent`` reference as the runner does, when given) + event-level
    shifts + CBPE + policy on one window; returns a record (``alarm_primary_only``: the policy without the
    recent reference)."""
    from tenure.monitoring.drift import drift_report
    from tenure.monitoring.estimation import estimate_performance
    from tenure.monitoring.event_drift import event_drift
    from tenure.monitoring.policy import decide_retrain
    from tenure.monitoring.reference import confirm_drift

    primary, _ = drift_report(reference, current, numeric, categorical, monitoring)
    recent_summary = drift_report(recent, current, numeric, categorical, monitoring)[0] if recent is not None else None
    summary, detail = confirm_drift(primary, recent_summary)
    est = estimate_performance(current["prediction"].to_numpy(), ref_p, ref_y, promised)
    shifts = event_drift(events, end, 7, monitoring.event_baseline_days, monitoring)

    def decide(s):
        return decide_retrain(drift_share=s.drift_share, drifted=s.drifted, auc_drop=None,
                              model_age_days=None, settings=monitoring, last_retrain_at=None,
                              now=datetime.now(UTC), dry_run=True, estimated_auc_drop=est["estimated_auc_drop"],
                              prediction_drifted=bool(s.prediction and s.prediction.drifted),
                              event_shifts=shifts)

    decision, alone = decide(summary), decide(primary)
    return {"drift_share": summary.drift_share, "drifted": summary.drifted,
            "alarm_primary_only": alone.triggered, "kinds_primary_only": alone.kinds,
            "set_aside": detail.get("set_aside", []), "drifted_recent": detail.get("drifted_recent"),
            "prediction_drifted": bool(summary.prediction and summary.prediction.drifted),
            "prediction_score": summary.prediction.score if summary.prediction else None,
            "estimated_roc_auc": est["estimated_roc_auc"], "estimated_auc_drop": est["estimated_auc_drop"],
            "event_shifts": {x.signal: round(x.score, 4) for x in shifts},
            "alarm": decision.triggered, "reasons": decision.reasons, "kinds": decision.kinds}


# ----------------------------------------------------------------------------- world kinds
def _early(shop, feats, cohort_day, k, start, model, categorical, monitoring):
    """Early-outcome check of the cohort scored on ``cohort_day`` (its ``k`` days passed) against the cohorts
    scored in the 28 days before whose ``k``-day outcomes ended by ``cohort_day`` (as the runner does)."""
    import pandas as pd

    from tenure.features.labels import label_churn
    from tenure.monitoring.early_outcome import early_outcome_check
    from tenure.settings import ChurnSettings

    churn = ChurnSettings()

    def cohort(day):
        frame = feats(day)
        cut = start + pd.Timedelta(days=day)
        lab = label_churn(shop.events, shop.customers, [cut], k, churn.qualifying_event_types)
        rows = frame.merge(lab[["customer_id", "label"]].rename(columns={"label": "outcome"}), on="customer_id")
        return rows.assign(prediction=model.predict(rows), cohort=day)

    refs = [r for r in range(cohort_day - monitoring.event_baseline_days, cohort_day - k + 1, 7)]
    current = cohort(cohort_day)
    reference = pd.concat([cohort(r) for r in refs], ignore_index=True)
    return early_outcome_check(current, reference, categorical, days=k,
                               max_p_value=monitoring.early_outcome_max_p_value,
                               min_auc_drop=monitoring.early_outcome_min_auc_drop,
                               min_rate_increase=monitoring.early_outcome_min_rate_increase)


def world_seed(seed, args, monitoring):
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from tenure.features.customer_features import (
        CUSTOMER_CATEGORICAL_FEATURES,
        CUSTOMER_NUMERIC_FEATURES,
    )
    from tenure.features.sim_drift import simulate_drifted_shop
    from tenure.features.simulator import simulate_shop

    numeric, categorical = list(CUSTOMER_NUMERIC_FEATURES), list(CUSTOMER_CATEGORICAL_FEATURES)
    d = args.drift_at
    days = d + 7 * max(args.windows, 5) + 31  # the last pass's 30-day labels
    start = pd.Timestamp("2026-01-01", tz="UTC")
    quiet = simulate_shop(args.customers, args.items, days, seed)
    train_days = list(range(d - 90, d - 36, 7))
    calib_day, ref_day = d - 30, d - 23
    # weekly cut-offs from d-35 (after the training cut-offs): early-outcome cohorts and the quiet passes
    aligned = list(range(d - 35, d + 7 * max(args.windows, 5) + 1, 7))
    quiet_days = [x for x in aligned if x >= ref_day + 7]
    lag = monitoring.recent_reference_days
    q = _features(quiet, sorted({*train_days, calib_day, ref_day, *aligned, *(x - lag for x in quiet_days if lag)}),
                  start)
    train = pd.concat([_labelled(quiet, q[t], t, start) for t in train_days], ignore_index=True)
    calib = _labelled(quiet, q[calib_day], calib_day, start)
    model = _Model(numeric, categorical).fit(train, calib)
    ref = _labelled(quiet, q[ref_day], ref_day, start)
    ref_p = model.predict(ref)
    promised = float(roc_auc_score(ref["label"], ref_p))
    reference = ref.assign(prediction=ref_p, risk_band=_bands(ref_p))
    records = []

    def early_all(shop, feats, day):
        out = {}
        for k in args.early_days:
            cohort = day - k
            if cohort - monitoring.event_baseline_days < aligned[0] or (cohort - aligned[0]) % 7:
                continue  # its cohort or reference cohorts were not computed
            res = _early(shop, feats, day - k, k, start, model, categorical, monitoring)
            out[str(k)] = {"alarm": res["alarm"], "auc_drop": res.get("auc_drop"), "roc_auc": res.get("roc_auc"),
                           "reference_roc_auc": res.get("reference_roc_auc"), "outcome_rate": res.get("outcome_rate"),
                           "expected_rate": res.get("expected_rate"),
                           "alarms": [f["signal"] for f in res["findings"] if f["alarm"]],
                           "top": sorted(res["findings"], key=lambda f: f["p_value"])[:2],
                           "segments": [{"signal": f["signal"], "column": f["column"], "score": round(f["score"], 5),
                                         "z": round(f["z"], 4)} for f in res["findings"]
                                        if f["signal"].startswith("segment:")]}
        return out

    def scored(frame):
        out = frame.assign(prediction=model.predict(frame))
        out["risk_band"] = _bands(out["prediction"].to_numpy())
        return out

    held = {}  # the recent reference's day while the (kind's) episode is open, as the runner holds it

    def window(kind, shop, frame, day, k, feats):
        cur = scored(frame)
        recent_day = held.get(kind, day - lag) if lag else None
        recent = scored(feats(recent_day)) if lag else None
        rec = _assess(reference, cur, numeric, categorical, monitoring, promised, ref_p, ref["label"].to_numpy(),
                      shop.events, start + pd.Timedelta(days=day), recent)
        rec["recent_reference_day"] = recent_day
        if lag and rec["alarm"]:
            held.setdefault(kind, recent_day)
        else:
            held.pop(kind, None)
        lab = _labelled(shop, cur, day, start)
        realised = float(roc_auc_score(lab["label"], lab["prediction"])) if lab["label"].nunique() == 2 else None
        est_lab = None
        if len(lab):
            from tenure.monitoring.estimation import estimate_performance

            est_lab = estimate_performance(lab["prediction"].to_numpy(), ref_p, ref["label"].to_numpy())["estimated_roc_auc"]
        early = early_all(shop, feats, day)
        expected = EXPECTED.get(kind, ())
        named = bool(set(rec["drifted"]) & set(expected)) or \
            any(k_ in expected or k_.split(":")[0] in expected or ":".join(k_.split(":")[:2]) in expected
                for k_ in rec["kinds"])
        records.append({"seed": seed, "kind": kind, "day": day, "window": k, "promised_roc_auc": promised,
                        "realised_roc_auc": realised, "estimated_on_labelled": est_lab, "named": named,
                        "rows": len(cur), "early_outcome": early, **rec})

    def quiet_feats(day):
        return q[day]

    for day in quiet_days:
        window("quiet", quiet, q[day], day, (day - ref_day) // 7 + 1, quiet_feats)
    for kind in [k for k in WORLD if k in args.kinds]:
        shop, _ = simulate_drifted_shop(args.customers, args.items, days, seed, kind, d)
        wdays = [d + 7 * k for k in range(1, args.windows + 1)]
        f = _features(shop, wdays, start)

        def feats(day, f=f):
            return q[day] if day <= d else f[day]  # the days before the change are the quiet world's

        for k, day in enumerate(wdays, 1):
            window(kind, shop, f[day], day, k, feats)
    return records


# ----------------------------------------------------------------------------- seasonality
def seasonal_seed(seed, args, monitoring):
    """Weekly-snapshot history of 960 days with a yearly cycle (peak on day 0, troughs on days 182, 547,
    912); windows every ``--season-step`` days in the third year (days 742-938, down into the trough) go
    through the drift report and the policy against the reference the runner would choose
    (``monitoring.reference``: ``tenure.monitoring.reference.choose_reference`` over the weekly snapshots;
    auto -> the snapshots 365 +/- 14 days before, pooled), against one cut-off before the windows (what
    ``latest`` gives: the champion's training sample does not cover the cycle) and against monthly
    cut-offs of the previous year pooled. A no-season control with the auto reference separates a year of
    ageing from the season."""
    import pandas as pd

    from tenure.features.customer_features import (
        CUSTOMER_CATEGORICAL_FEATURES,
        CUSTOMER_NUMERIC_FEATURES,
    )
    from tenure.features.sim_drift import simulate_drifted_shop
    from tenure.features.simulator import simulate_shop
    from tenure.monitoring.drift import drift_report
    from tenure.monitoring.policy import decide_retrain
    from tenure.monitoring.reference import choose_reference, confirm_drift, recent_cutoff

    numeric, categorical = list(CUSTOMER_NUMERIC_FEATURES), list(CUSTOMER_CATEGORICAL_FEATURES)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    days = 960
    grid = list(range(7, days, 7))  # the batch feature table's weekly snapshots
    cur_days = list(range(742, 939, args.season_step))
    pooled_days = list(range(406, 743, 28))
    single_day = 700
    chosen = {}
    for day in cur_days:
        kind, cuts, _ = choose_reference(monitoring.reference, [start + pd.Timedelta(days=g) for g in grid if g < day],
                                         start + pd.Timedelta(days=day), monitoring.season_days,
                                         monitoring.season_tolerance_days)
        chosen[day] = (kind, [round((c - start) / pd.Timedelta(days=1)) for c in cuts])
    auto_days = sorted({x for _, cuts in chosen.values() for x in cuts})
    lag = monitoring.recent_reference_days
    worlds = {"seasonal": simulate_drifted_shop(args.customers, args.items, days, seed, "seasonality", 0)[0],
              "no season (control)": simulate_shop(args.customers, args.items, days, seed)}
    out = []
    for world, shop in worlds.items():
        seasonal = world == "seasonal"
        context = seasonal and args.season_context
        need = set(cur_days + auto_days + ([x - lag for x in cur_days] if lag else []))
        need |= set(pooled_days + [single_day]) if context else set()
        f = _features(shop, sorted(need), start)
        references = {"auto (same season)": None}
        if context:
            references["pooled previous year"] = pd.concat([f[t] for t in pooled_days], ignore_index=True)
            references[f"one cut-off (day {single_day})"] = f[single_day]
        for label, fixed in references.items():
            held = None  # the recent reference's day while an episode is open (the runner holds it)
            for day in cur_days:
                if fixed is None:
                    kind, cuts = chosen[day]
                    reference = pd.concat([f[t] for t in cuts], ignore_index=True) if kind == "same_season" else f[single_day]
                else:
                    reference = fixed
                primary, _ = drift_report(reference, f[day], numeric, categorical, monitoring)

                def decide(summary):
                    return decide_retrain(drift_share=summary.drift_share, drifted=summary.drifted, auc_drop=None,
                                          model_age_days=None, settings=monitoring, last_retrain_at=None,
                                          now=datetime.now(UTC), dry_run=True,
                                          prediction_drifted=bool(summary.prediction and summary.prediction.drifted))

                decision = decide(primary)
                scores = {x.column: round(x.score, 4) for x in primary.features if x.column in categorical}
                out.append({"seed": seed, "world": world, "reference": label, "day": day,
                            "reference_cutoffs": chosen[day][1] if fixed is None else None,
                            "drift_share": primary.drift_share, "drifted": primary.drifted,
                            "categorical_scores": scores, "alarm": decision.triggered, "reasons": decision.kinds})
                if fixed is None and lag:
                    # the built rule: drifted against the same season AND the recent snapshot (runner's choice)
                    grid_days = [g for g in grid if g < day and g in f]
                    cut = recent_cutoff([start + pd.Timedelta(days=g) for g in grid_days], start + pd.Timedelta(days=day),
                                        lag, None if held is None else start + pd.Timedelta(days=held))
                    recent_day = None if cut is None else round((cut - start) / pd.Timedelta(days=1))
                    recent = None if recent_day is None else drift_report(f[recent_day], f[day], numeric, categorical,
                                                                           monitoring)[0]
                    both, detail = confirm_drift(primary, recent)
                    both_decision = decide(both)
                    held = (held or recent_day) if both_decision.triggered else None
                    out.append({"seed": seed, "world": world,
                                "reference": f"auto (same season) confirmed by the recent reference ({lag} days)",
                                "day": day, "reference_cutoffs": chosen[day][1] + [recent_day],
                                "drift_share": both.drift_share, "drifted": both.drifted,
                                "set_aside": detail.get("set_aside", []), "categorical_scores": {},
                                "alarm": both_decision.triggered, "reasons": both_decision.kinds})
    return out


# ----------------------------------------------------------------------------- pipeline breaks
def pipeline_seed(seed, args, settings_for):
    import pandas as pd

    from tenure.features.ingest import IngestRun
    from tenure.features.sim_drift import PIPELINE_KINDS, apply_break, simulate_drifted_shop
    from tenure.features.simulator import simulate_shop
    from tenure.features.tables import read_events

    d = args.drift_at
    days = d + 14
    quiet = simulate_shop(args.customers, args.items, days, seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    cut = start + pd.Timedelta(days=d)
    week = pd.Timedelta(days=7)
    ev = quiet.events
    history = ev[ev["event_at"] < cut]
    base = Path(tempfile.mkdtemp(prefix="drift-kinds-"))
    try:
        seed_ws = base / "history"
        s = settings_for(seed_ws)
        with IngestRun(s) as run:
            run.ingest_frame("customers", quiet.customers, "customers", apply_mapping=False)
            run.ingest_frame("items", quiet.items, "items", apply_mapping=False)
            run.ingest_frame("events", history, "history", apply_mapping=False)
        stored = len(read_events(s))
        out = []

        def ingest_week(name, batch, family):
            ws = base / name
            shutil.copytree(seed_ws, ws)
            s2 = settings_for(ws)
            t0 = time.perf_counter()
            with IngestRun(s2) as run:
                report = run.ingest_frame("events", batch, name, apply_mapping=False)
            seconds = time.perf_counter() - t0
            after = len(read_events(s2))
            columns = [f"{x['table']}.{x['column']}" for x in (report.quality or {}).get("findings", [])]
            out.append({"seed": seed, "kind": name, "family": family, "rows": len(batch),
                        "quarantined": report.quarantined is not None, "columns": columns,
                        "stored_rows_added": after - stored, "seconds": round(seconds, 2)})
            shutil.rmtree(ws, ignore_errors=True)

        first_week = ev[(ev["event_at"] >= cut) & (ev["event_at"] < cut + week)]
        second_week = ev[(ev["event_at"] >= cut + week) & (ev["event_at"] < cut + 2 * week)]
        ingest_week("quiet week 1", first_week, "quiet")
        for kind in PIPELINE_KINDS:
            broken, _ = apply_break(first_week, None, kind, cut, seed)
            ingest_week(kind, broken, "pipeline")
        for kind in WORLD:
            shop, _ = simulate_drifted_shop(args.customers, args.items, days, seed, kind, d)
            e = shop.events
            ingest_week(kind, e[(e["event_at"] >= cut) & (e["event_at"] < cut + week)], "world")
        del second_week
        return out
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------- summary
def _early_alarm(r, k):
    e = (r.get("early_outcome") or {}).get(str(k))
    return bool(e and e["alarm"])


def sequential(world, min_rate_increase=0.03):
    """The early outcome's per-segment CUSUM (``monitoring.early_outcome.update_cusum``) run over each seed's and
    kind's windows in order, as the runner keeps it between passes: ``r["cusum"][k]`` = the segments that alarmed."""
    import pandas as pd

    from tenure.monitoring.early_outcome import update_cusum

    start = pd.Timestamp("2026-01-01", tz="UTC")
    for key in sorted({(r["seed"], r["kind"]) for r in world}):
        recs = sorted((r for r in world if (r["seed"], r["kind"]) == key), key=lambda r: r["day"])
        states = {}
        for r in recs:
            r["cusum"] = {}
            for k, e in (r.get("early_outcome") or {}).items():
                result = {"days": int(k), "findings": e.get("segments", [])}
                cohort = (start + pd.Timedelta(days=r["day"] - int(k))).isoformat()
                states[k], found = update_cusum(states.get(k, {}), result, cohort, min_rate_increase=min_rate_increase)
                r["cusum"][k] = [f.signal for f in found]


def _cusum_alarm(r, k):
    return bool((r.get("cusum") or {}).get(str(k)))


def summarise(world, seasonal, pipeline, pipeline_truth, early_days=14, min_rate_increase=0.03):
    """Per kind: detection (drift, event-level, CBPE, and the early outcome with ``early_days``) and CBPE's error."""
    import numpy as np

    sequential(world, min_rate_increase)
    for r in world:
        r["alarm_all"] = bool(r["alarm"] or _early_alarm(r, early_days))
    table = []
    for kind in [k for k in WORLD if any(r["kind"] == k for r in world)]:
        recs = [r for r in world if r["kind"] == kind]
        seeds = sorted({r["seed"] for r in recs})
        first = [r for r in recs if r["window"] == 1]

        def delays(flag, recs=recs, seeds=seeds):
            out = []
            for s in seeds:
                hits = [r["window"] for r in recs if r["seed"] == s and flag(r)]
                out.append(min(hits) if hits else None)
            return out

        errs = [abs(r["estimated_on_labelled"] - r["realised_roc_auc"]) for r in recs
                if r["realised_roc_auc"] is not None and r["estimated_on_labelled"] is not None]
        early_named = [r for r in first if _early_alarm(r, early_days)]
        table.append({
            "kind": kind, "seeds": len(seeds),
            "detected_first_window": sum(r["alarm_all"] for r in first) / max(len(first), 1),
            "detected_first_window_without_early_outcome": sum(r["alarm"] for r in first) / max(len(first), 1),
            "delays": delays(lambda r: r["alarm_all"]),
            "delays_without_early_outcome": delays(lambda r: r["alarm"]),
            **{f"delays_early_outcome_{k}d": delays(lambda r, k=k: _early_alarm(r, k))
               for k in sorted({int(k) for r in recs for k in (r.get("early_outcome") or {})})},
            **{f"delays_cusum_{k}d": delays(lambda r, k=k: _cusum_alarm(r, k))
               for k in sorted({int(k) for r in recs for k in (r.get("early_outcome") or {})})},
            **{f"cusum_{k}d_signals": sorted({x for r in recs for x in (r.get("cusum") or {}).get(str(k), [])})
               for k in sorted({int(k) for r in recs for k in (r.get("early_outcome") or {})})},
            "delays_primary_reference_only": delays(lambda r: r.get("alarm_primary_only", r["alarm"])),
            "set_aside_first_window": sorted({c for r in first for c in r.get("set_aside", [])}),
            "named_right": (sum(r["named"] or (kind == "concept" and _early_alarm(r, early_days)) for r in first if r["alarm_all"])
                            / max(sum(r["alarm_all"] for r in first), 1)),
            "early_outcome_signals_first_window": sorted({x for r in early_named
                                                          for x in r["early_outcome"][str(early_days)]["alarms"]}),
            "triggers_first_window": sorted({k for r in first for k in r["kinds"]}),
            "drift_share_first_window": [round(r["drift_share"], 3) for r in first],
            "estimated_roc_auc_first_window": [round(r["estimated_roc_auc"], 3) for r in first],
            "realised_roc_auc_first_window": [None if r["realised_roc_auc"] is None else round(r["realised_roc_auc"], 3)
                                              for r in first],
            "promised_roc_auc": [round(r["promised_roc_auc"], 3) for r in first],
            "cbpe_mae": float(np.mean(errs)) if errs else None,
        })
    quiet = [r for r in world if r["kind"] == "quiet"]
    quiet_errs = [abs(r["estimated_on_labelled"] - r["realised_roc_auc"]) for r in quiet
                  if r["realised_roc_auc"] is not None and r["estimated_on_labelled"] is not None]
    covariate = [row["cbpe_mae"] for row in table if row["kind"] != "concept" and row["cbpe_mae"] is not None]
    def season_row(recs):
        return {"windows": len(recs), "false_alarms": sum(r["alarm"] for r in recs),
                "drift_share_max": round(max((r["drift_share"] for r in recs), default=0), 3),
                "reasons": sorted({k for r in recs for k in r["reasons"]})}

    season = {f"{w} / {ref}": season_row([r for r in seasonal if r["world"] == w and r["reference"] == ref])
              for w, ref in sorted({(r["world"], r["reference"]) for r in seasonal})}
    pipe = {}
    for kind in sorted({r["kind"] for r in pipeline}):
        recs = [r for r in pipeline if r["kind"] == kind]
        pipe[kind] = {
            "family": recs[0]["family"], "batches": len(recs),
            "quarantined": sum(r["quarantined"] for r in recs),
            "named_right": sum(bool(set(r["columns"]) & set(pipeline_truth.get(kind, ()))) for r in recs),
            "stored_rows_added_when_quarantined": sum(r["stored_rows_added"] for r in recs if r["quarantined"]),
            "columns": sorted({c for r in recs for c in r["columns"]}),
            "seconds_mean": round(float(np.mean([r["seconds"] for r in recs])), 2),
        }
    return {
        "world": table,
        "quiet": {"windows": len(quiet), "false_alarms": sum(r["alarm_all"] for r in quiet),
                  "false_alarms_without_early_outcome": sum(r["alarm"] for r in quiet),
                  **{f"early_outcome_{k}d": {"windows": sum(str(k) in (r.get("early_outcome") or {}) for r in quiet),
                                             "false_alarms": sum(_early_alarm(r, k) for r in quiet),
                                             "cusum_false_alarms": sum(_cusum_alarm(r, k) for r in quiet)}
                     for k in sorted({int(k) for r in quiet for k in (r.get("early_outcome") or {})})},
                  "false_alarms_primary_reference_only": sum(bool(r.get("alarm_primary_only", r["alarm"])) for r in quiet),
                  "reasons": sorted({x for r in quiet for x in r["kinds"]}),
                  "cbpe_mae": float(np.mean(quiet_errs)) if quiet_errs else None},
        "seasonal": season,
        "pipeline": pipe,
        "cbpe_mae_covariate_kinds": float(np.mean(covariate)) if covariate else None,
        "cbpe_mae_all_world_kinds_and_quiet": float(np.mean([*(row["cbpe_mae"] for row in table if row["cbpe_mae"] is not None),
                                                             *([np.mean(quiet_errs)] if quiet_errs else [])])),
    }


def speed(customers: int, days: int = 63) -> dict:
    """Seconds of the new checks at scale: batch quality (a week vs the 28 days before), event-level
    shifts, and CBPE on ``customers`` probabilities (reference of the same size)."""
    import numpy as np
    import pandas as pd

    from tenure.features.quality import check_events_batch
    from tenure.features.simulator import simulate_shop
    from tenure.monitoring.estimation import estimate_performance
    from tenure.monitoring.event_drift import event_drift
    from tenure.settings import Settings

    settings = Settings()
    t = time.perf_counter()
    import scipy.stats  # noqa: F401  (loaded by Evidently in a monitoring pass anyway)
    import sklearn.isotonic  # noqa: F401

    imports_s = time.perf_counter() - t
    t = time.perf_counter()
    shop = simulate_shop(customers, max(100, customers // 20), days, 7)
    simulate_s = time.perf_counter() - t
    ev = shop.events
    end = ev["event_at"].min().normalize() + pd.Timedelta(days=days)
    cut = end - pd.Timedelta(days=7)
    batch = ev[ev["event_at"] >= cut]
    base = ev[(ev["event_at"] < cut) & (ev["event_at"] >= cut - pd.Timedelta(days=28))]
    t = time.perf_counter()
    report = check_events_batch(batch, base, settings.quality)
    quality_s = time.perf_counter() - t
    t = time.perf_counter()
    shifts = event_drift(ev, end, 7, 28, settings.monitoring)
    event_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    ref_p = rng.beta(1, 5, customers)
    ref_y = rng.random(customers) < ref_p
    t = time.perf_counter()
    est = estimate_performance(rng.beta(1, 5, customers), ref_p, ref_y, 0.8)
    cbpe_s = time.perf_counter() - t
    from tenure.monitoring.early_outcome import early_outcome_check

    def cohort(n):
        p = rng.beta(1, 5, n)
        return pd.DataFrame({"prediction": p, "outcome": (rng.random(n) < 0.1 + p).astype(int),
                             "plan": rng.choice(["free", "monthly", "annual"], n),
                             "acquisition_channel": rng.choice(["organic", "paid", "email", "social"], n),
                             "region": rng.choice(["north", "south", "east", "west"], n)})

    current, ref = cohort(customers), cohort(3 * customers).assign(cohort=lambda x: np.arange(len(x)) % 3)
    t = time.perf_counter()
    early = early_outcome_check(current, ref, ["plan", "acquisition_channel", "region"], days=14)
    early_s = time.perf_counter() - t
    return {"customers": customers, "events": len(ev), "batch_rows": len(batch), "baseline_rows": len(base),
            "imports_s (scipy.stats, sklearn; once per process)": round(imports_s, 1),
            "simulate_s": round(simulate_s, 1), "quality_check_s": round(quality_s, 2),
            "event_drift_s": round(event_s, 2), "cbpe_s": round(cbpe_s, 3),
            "early_outcome_check_s (cohort vs 3 reference cohorts, scoring and labels apart)": round(early_s, 2),
            "early_outcome_alarm": early["alarm"], "quality_broken": report.broken,
            "event_alarms": [x.signal for x in shifts if x.alarm], "estimated_roc_auc": round(est["estimated_roc_auc"], 3)}


def main(argv=None) -> int:
    args = parse_args(argv)
    import logging

    logging.disable(logging.ERROR)
    if args.speed:
        load = os.getloadavg()
        result = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "load_average_before": load,
                  **speed(args.speed), "load_average_after": os.getloadavg()}
        out = args.out.with_name("drift_kinds_speed.json")
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0
    from tenure.features.sim_drift import PIPELINE_KINDS, drift_truth
    from tenure.settings import Settings

    monitoring = Settings().monitoring
    load = os.getloadavg()
    t0 = time.perf_counter()

    def settings_for(root: Path):
        return Settings(paths={"data_dir": root / "data", "reports_dir": root / "reports",
                               "exports_dir": root / "exports"})

    world, seasonal, pipeline = [], [], []
    for seed in args.seeds:
        t = time.perf_counter()
        if "world" not in args.skip:
            world += world_seed(seed, args, monitoring)
        if "seasonality" not in args.skip:
            seasonal += seasonal_seed(seed, args, monitoring)
        if "pipeline" not in args.skip:
            pipeline += pipeline_seed(seed, args, settings_for)
        print(f"seed {seed}: {time.perf_counter() - t:.0f} s", flush=True)
    truth = {k: drift_truth(k, args.drift_at, "2026-01-01").columns for k in PIPELINE_KINDS}
    summary = summarise(world, seasonal, pipeline, truth, monitoring.early_outcome_days,
                        monitoring.early_outcome_min_rate_increase)
    result = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "load_average_before": load, "load_average_after": os.getloadavg(),
              "seconds": round(time.perf_counter() - t0, 1), "summary": summary,
              "records": {"world": world, "seasonal": seasonal, "pipeline": pipeline}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(summary, indent=2, default=str))
    print(f"-> {args.out} ({result['seconds']} s, load {load[0]:.1f} -> {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
