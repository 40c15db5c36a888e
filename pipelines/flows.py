"""The pipeline steps (ingest, features, train, score, monitor) as plain functions, and their runner.

Each step composes the other rooms' functions; it does not re-implement them. Each one
returns its row counts (:class:`pipelines.steps.StepOutput`) and has an input fingerprint
(:func:`step_fingerprint`), so :func:`run_step` skips it when it already finished for the
same inputs and a failed run resumes where it stopped. The CLI (``tenure run``), the
Prefect flows (:mod:`pipelines.orchestration`) and the demo all go through :func:`run_step`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tenure.pipelines.steps import StepOutput, StepResult, StepRunner, fingerprint
from tenure.settings import Settings

logger = logging.getLogger(__name__)

STEPS: tuple[str, ...] = ("ingest", "features", "train", "score", "monitor")
MODEL_KINDS: tuple[str, ...] = ("churn", "recommender")
SOURCE_STEPS: dict[str, tuple[str, ...]] = {"telco": ("ingest",), "cdnow": ("ingest", "features"),
                                            "movielens": ("ingest",)}
"""The steps that prepare each public dataset's workspace (Telco and MovieLens need no feature snapshots)."""


# --------------------------------------------------------------------------------------------
# ingest


def ingest_step(settings: Settings) -> StepOutput:
    """New raw files (``raw_dir``) and the service's event log (``event_log_dir``) -> validated tables.

    Ingestion is idempotent on ``event_id``: re-reading a file adds nothing twice.
    """
    rows: dict[str, int] = {}
    details: dict[str, Any] = {}
    sources = [p for p in (settings.paths.raw_dir, settings.paths.event_log_dir) if p.exists() and any(p.iterdir())]
    if not sources and _has_stored_customers(settings):
        # tables ingested by hand (`tenure ingest FILE`, `--source movielens`): the later steps use them
        logger.warning("no new files under %s or %s: the stored tables are used as they are",
                       settings.paths.raw_dir, settings.paths.event_log_dir)
        return StepOutput(rows={}, details={"new_files": 0, "stored_tables": str(settings.paths.tables_dir)})
    if not sources:
        raise FileNotFoundError(
            f"nothing to ingest: {settings.paths.raw_dir} and {settings.paths.event_log_dir} are empty; "
            "put files there or run `tenure generate` first"
        )
    from tenure.features.ingest import ingest

    for source in sources:
        report = ingest(settings, source)
        for key, value in _report_counts(report).items():
            rows[key] = rows.get(key, 0) + value
        details[str(source)] = _jsonable(report)
    return StepOutput(rows=rows, details=details)


def _has_stored_customers(settings: Settings) -> bool:
    """Whether a customers table is stored (its Parquet files), without reading it."""
    from tenure.features.tables import table_path

    folder = table_path(settings, "customers")
    return folder.is_dir() and any(folder.rglob("*.parquet"))


def _report_counts(report: Any) -> dict[str, int]:
    """Integer fields of an ingestion report (dataclass, dict or object) as row counts."""
    import dataclasses

    if dataclasses.is_dataclass(report):
        items = dataclasses.asdict(report).items()
    elif isinstance(report, dict):
        items = report.items()
    else:
        items = vars(report).items() if hasattr(report, "__dict__") else []
    counts: dict[str, int] = {}
    for key, value in items:
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            counts[str(key)] = value
        elif isinstance(value, dict):
            for sub, v in value.items():
                if isinstance(v, int) and not isinstance(v, bool):
                    counts[f"{key}.{sub}"] = v
    return counts


def _jsonable(value: Any) -> Any:
    import dataclasses
    import json

    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


# --------------------------------------------------------------------------------------------
# features


def feature_snapshot_times(settings: Settings) -> list[Any]:
    """As-of times of the batch feature snapshots: every ``feast.snapshot_every_days`` back from
    the end of the data (the day after the last event), covering the churn history window."""
    from tenure.features.tables import read_events

    events = read_events(settings, columns=["event_at"])
    if events.empty:
        raise ValueError("no events in the tables; run `tenure run ingest` first")
    return snapshot_grid(settings, events["event_at"].min(), events["event_at"].max())


def snapshot_grid(settings: Settings, first: Any, last: Any) -> list[Any]:
    """The snapshot times of :func:`feature_snapshot_times` for events from ``first`` to ``last``."""
    import pandas as pd

    from tenure.features.snapshots import snapshot_times

    last = pd.Timestamp(last).tz_convert("UTC")
    end = last.floor("D") + pd.Timedelta(days=1)
    span = settings.churn.history_days + settings.churn.horizon_days
    first_event = pd.Timestamp(first).tz_convert("UTC").floor("D")
    every = settings.feast.snapshot_every_days
    start = max(first_event, end - pd.Timedelta(days=span))
    # align the grid on the end so the latest snapshot is the end of the data
    n = int((end - start) / pd.Timedelta(days=every))
    return snapshot_times(end - pd.Timedelta(days=every * n), end, every)


def features_step(settings: Settings) -> StepOutput:
    """Build the batch feature tables, register the Feast definitions, materialize the online store.

    With ``compute.engine: dask`` the tables are built on the cluster (``pipelines.cluster_steps``)."""
    from tenure.feature_repo.store import apply_definitions, materialize
    from tenure.features.snapshots import build_feature_tables

    if settings.compute.engine == "dask":
        from tenure.pipelines.cluster_steps import build_features_on_cluster

        tables = build_features_on_cluster(settings)
    else:
        tables = build_feature_tables(settings, feature_snapshot_times(settings))
    applied = apply_definitions(settings)
    start, end = materialize(settings, incremental=True)
    return StepOutput(
        rows={"customer_feature_rows": tables.customer_rows, "item_feature_rows": tables.item_rows,
              "snapshots": len(tables.as_of)},
        details={"first_as_of": str(tables.as_of[0]), "last_as_of": str(tables.as_of[-1]),
                 "feast_objects": len(applied), "materialized": [str(start), str(end)]},
    )


# --------------------------------------------------------------------------------------------
# train


def _train(settings: Settings, kind: str) -> Any:
    """Train one model on this workspace's tables; it is registered as ``challenger``, not promoted."""
    if kind == "churn":
        if settings.compute.engine == "dask":
            from tenure.pipelines.cluster_steps import train_churn_on_cluster

            return train_churn_on_cluster(settings)
        from tenure.training.churn_pipeline import train_churn

        return train_churn(settings)
    from tenure.training.recommender_pipeline import train_recommender

    return train_recommender(settings)


def train_step(settings: Settings, kinds: Sequence[str] = MODEL_KINDS, promote: bool = True) -> StepOutput:
    """Train both models (logged to MLflow, registered as ``challenger``), then run the promotion
    gate of each (``training.gate.promote``, the one place that decides) unless ``promote`` is False."""
    from tenure.registry.models import get_alias_version
    from tenure.training.gate import promote as run_gate
    from tenure.training.recommender_pipeline import NothingToRecommend

    rows: dict[str, int] = {}
    details: dict[str, Any] = {}
    for kind in kinds:
        if kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {list(MODEL_KINDS)}, got {kind!r}")
        try:
            result = _train(settings, kind)
        except NothingToRecommend as exc:  # a churn-only history: the loop goes on without a recommender
            logger.warning("recommender not trained: %s", exc)
            details[kind] = {"skipped": str(exc)}
            continue
        info: dict[str, Any] = {"result": _jsonable(_summarise_training(result))}
        info["challenger_version"] = get_alias_version(settings, kind, "challenger")
        if promote and info["challenger_version"] is not None:
            decision = run_gate(settings, kind)
            info["gate"] = decision.as_dict()
        info["champion_version"] = get_alias_version(settings, kind, "champion")
        for key, value in _report_counts(_summarise_training(result)).items():
            rows[f"{kind}.{key}"] = value
        details[kind] = info
    return StepOutput(rows=rows, details=details)


def _summarise_training(result: Any) -> Any:
    """The JSON-ready part of a training result (run id, version, metrics, counts)."""
    import dataclasses

    import pandas as pd

    def plain(value: Any) -> Any:
        if isinstance(value, (str, int, float, bool, type(None))):
            return value
        if isinstance(value, pd.DataFrame):
            if isinstance(value.index, pd.RangeIndex):  # long tables (segments, importance) stay in MLflow
                return _SKIP
            # a metrics table, one row per model or baseline: {row: {metric: value}}
            return {str(i): {str(c): _float(v) for c, v in row.items()} for i, row in value.iterrows()}
        if isinstance(value, pd.Timestamp):
            return str(value)
        if isinstance(value, dict) and all(isinstance(v, (int, float, str, bool, type(None))) for v in value.values()):
            return value
        if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
            return {str(k): plain(v) for k, v in value.items()}
        return _SKIP

    if dataclasses.is_dataclass(result):
        out = {}
        for field in dataclasses.fields(result):
            value = plain(getattr(result, field.name))
            if value is not _SKIP:
                out[field.name] = value
        return out
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool, dict, type(None)))}
    return str(result)


_SKIP = object()


def _float(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


# --------------------------------------------------------------------------------------------
# score


def score_step(settings: Settings, k: int | None = None) -> StepOutput:
    """Churn scores (and ``k`` recommendations) for every customer -> ``exports_dir/scores/``."""
    from tenure.pipelines.scoring import batch_score, write_scores
    from tenure.registry.champion import find_champion

    k = settings.recommender.k if k is None else k
    if k and find_champion(settings, "recommender") is None:  # e.g. skipped on a history without products
        logger.warning("no recommender champion: the scores go out without recommendations")
        k = 0
    if settings.compute.engine == "dask":  # the same scores, partitioned on the cluster
        from tenure.pipelines.cluster_steps import score_on_cluster

        summary, paths = score_on_cluster(settings, k)
        return StepOutput(rows={"customers_scored": summary["customers_scored"],
                                **{f"risk_{b}": n for b, n in summary["bands"].items()}},
                          details={"paths": paths, "churn_model_version": summary["churn_model_version"]})
    frame = batch_score(settings, k=k)
    paths = write_scores(settings, frame)
    bands = frame["risk_band"].value_counts().to_dict() if len(frame) else {}
    return StepOutput(
        rows={"customers_scored": len(frame), **{f"risk_{b}": int(n) for b, n in bands.items()}},
        details={"paths": {k: str(v) for k, v in paths.items()},
                 "churn_model_version": str(frame["churn_model_version"].iloc[0]) if len(frame) else None},
    )


# --------------------------------------------------------------------------------------------
# monitor and retrain


def make_retrain(settings: Settings, kinds: Sequence[str] = MODEL_KINDS) -> Callable[..., dict[str, Any]]:
    """The retrain callable handed to monitoring: ingest the logged events, rebuild features,
    train both models and run the gate. Returns what happened (versions, gate decisions)."""

    def retrain(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
        runner = StepRunner(settings.paths.state_dir)
        results = {}
        for step in ("ingest", "features"):
            results[step] = run_step(settings, step, runner=runner).as_dict()
        # monitoring decided to retrain: train even when the tables did not change
        trained = runner.run(
            "train", lambda: train_step(settings, kinds), lambda: step_fingerprint(settings, "train"), force=True
        )
        results["train"] = trained.as_dict()
        models = {}
        for kind in kinds:
            info = trained.details.get(kind, {})
            models[kind] = {"challenger_version": info.get("challenger_version"),
                            "champion_version": info.get("champion_version"),
                            "gate": info.get("gate")}
        return {
            "steps": {name: {"status": r["status"], "duration_s": r["duration_s"]} for name, r in results.items()},
            "models": models,
        }

    return retrain


def monitor_step(settings: Settings, retrain: bool = True, window: Any = None) -> StepOutput:
    """One monitoring pass: drift/performance reports, alerts and (policy permitting) retraining."""
    from tenure.monitoring import run_monitoring_pass

    result = run_monitoring_pass(settings, window=window, retrain=make_retrain(settings) if retrain else None)
    summary = _jsonable(result)
    rows = _report_counts(result)
    return StepOutput(rows=rows, details={"result": summary})


# --------------------------------------------------------------------------------------------
# public datasets: their own workspace, prepared by the same steps


def source_ingest_step(settings: Settings, source: str, path: Path | str) -> StepOutput:
    """Read a public dataset through its adapter (``features.adapters``) and ingest it into
    ``settings``' tables (``features.ingest``: validated, idempotent on ids), like any other file.

    ``settings`` are the source's workspace (:func:`training.sources.source_settings`).
    """
    from tenure.features import adapters
    from tenure.features.ingest import ingest_shop_frames

    if source == "telco":
        frames = {"customers": adapters.read_telco(path)}
    elif source == "cdnow":
        frames = dict(zip(("customers", "items", "events"), adapters.read_cdnow(path), strict=True))
    elif source == "movielens":
        frames = dict(zip(("customers", "items", "events"), adapters.read_movielens(path), strict=True))
    else:
        raise ValueError(f"source must be one of {', '.join(SOURCE_STEPS)}, got {source!r}")
    report = ingest_shop_frames(settings, source, **frames)
    if not report.accepted:
        raise ValueError(f"no row of {path} was accepted as {source} data; see the rejects under "
                         f"{settings.paths.rejects_dir}")
    return StepOutput(rows=_report_counts(report), details={"source": source, "path": str(path)})


def prepare_source(
    settings: Settings,
    source: str,
    path: Path | str,
    force: bool = False,
    on_result: Callable[[StepResult], None] | None = None,
) -> Settings:
    """Prepare a public dataset's workspace for training: ingest it, then build its features.

    The steps are those of every workspace (:func:`source_ingest_step` for the ingest, then
    :func:`features_step`), run through the same :class:`StepRunner` with the workspace's own
    done markers: preparing the same files again skips what is done. Which steps a source needs
    is :data:`SOURCE_STEPS`.

    Parameters
    ----------
    settings:
        This workspace's settings; the dataset goes under ``data/sources/<source>``.
    source:
        ``telco``, ``cdnow`` or ``movielens``.
    path:
        The dataset's file or folder (see ``features.adapters``).
    force:
        Re-run the steps even when done for the same inputs.
    on_result:
        Called after each step (the CLI prints a line).

    Returns
    -------
    Settings
        The source's workspace settings (what training reads).
    """
    from tenure.training.sources import source_settings

    if source not in SOURCE_STEPS:
        raise ValueError(f"source must be one of {', '.join(SOURCE_STEPS)}, got {source!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: pass --path to the {source} dataset's folder")
    ws = source_settings(settings, source)
    runner = StepRunner(ws.paths.state_dir, force=force)
    functions: dict[str, tuple[Callable[[], StepOutput], Callable[[], str]]] = {
        "ingest": (lambda: source_ingest_step(ws, source, path),
                   lambda: fingerprint(path.resolve(), source)),
        "features": (lambda: features_step(ws), lambda: step_fingerprint(ws, "features")),
    }
    for step in SOURCE_STEPS[source]:
        function, fp = functions[step]
        result = runner.run(step, function, fp)
        if on_result is not None:
            on_result(result)
    return ws


# --------------------------------------------------------------------------------------------
# fingerprints and the runner


def _champion_versions(settings: Settings) -> dict[str, str | None]:
    from tenure.registry.models import get_alias_version

    return {kind: get_alias_version(settings, kind, "champion") for kind in MODEL_KINDS}


def step_fingerprint(settings: Settings, step: str) -> str:
    """The input fingerprint of ``step``: the files it reads and the settings that shape it."""
    p = settings.paths
    if step == "ingest":
        return fingerprint(p.raw_dir, p.event_log_dir, settings.columns)
    if step == "features":
        return fingerprint(p.tables_dir, settings.feast, settings.churn.history_days, settings.churn.horizon_days)
    if step == "train":
        return fingerprint(p.features_dir, p.tables_dir, settings.churn, settings.recommender)
    if step == "score":
        return fingerprint(p.features_dir, p.feast_dir, _champion_versions(settings), settings.recommender.k,
                           settings.churn.medium_threshold, settings.churn.high_threshold)
    if step == "monitor":
        return fingerprint(p.prediction_log_dir, _champion_versions(settings), settings.monitoring)
    raise ValueError(f"unknown step {step!r}; allowed: {list(STEPS)}")


def step_function(settings: Settings, step: str) -> Callable[[], StepOutput]:
    """The no-argument function that runs ``step`` with ``settings``."""
    functions: dict[str, Callable[[], StepOutput]] = {
        "ingest": lambda: ingest_step(settings),
        "features": lambda: features_step(settings),
        "train": lambda: train_step(settings),
        "score": lambda: score_step(settings),
        "monitor": lambda: monitor_step(settings),
    }
    if step not in functions:
        raise ValueError(f"unknown step {step!r}; allowed: {list(STEPS)}")
    return functions[step]


def run_step(settings: Settings, step: str, force: bool = False, runner: StepRunner | None = None) -> StepResult:
    """Run ``step`` unless it already finished for its current inputs (see :class:`StepRunner`)."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; allowed: {list(STEPS)}")
    runner = runner or StepRunner(settings.paths.state_dir)
    return runner.run(step, step_function(settings, step), lambda: step_fingerprint(settings, step), force=force)


def run_steps(
    settings: Settings,
    steps: Iterable[str] = STEPS,
    force: bool | Iterable[str] = False,
    on_result: Callable[[StepResult], None] | None = None,
) -> list[StepResult]:
    """Run ``steps`` in order; stops at the first failure (raising :class:`pipelines.steps.StepFailed`).

    Parameters
    ----------
    force:
        True re-runs all, or the names of the steps to re-run.
    on_result:
        Called after each step (the CLI prints a line).
    """
    steps = list(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown steps {unknown}; allowed: {list(STEPS)}")
    runner = StepRunner(settings.paths.state_dir, force=force)
    results = []
    for step in steps:
        result = runner.run(step, step_function(settings, step), lambda s=step: step_fingerprint(settings, s))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


__all__ = [
    "SOURCE_STEPS",
    "STEPS",
    "feature_snapshot_times",
    "features_step",
    "ingest_step",
    "make_retrain",
    "monitor_step",
    "prepare_source",
    "run_step",
    "run_steps",
    "score_step",
    "source_ingest_step",
    "step_fingerprint",
    "step_function",
    "train_step",
]
