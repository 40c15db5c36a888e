"""Scheduled operation on Prefect 3: the same pipeline steps as flows and scheduled deployments.

The only module of tenure that imports Prefect (plus ``tenure schedule``, which imports
this one inside its function); everything else runs without it. A flow run is the step
runner of :mod:`pipelines.flows`, so a scheduled run, ``tenure run`` and the demo share
markers: a step already done for the same inputs is skipped whoever started it.

Deployments served by ``tenure schedule`` (one long-running process, ``prefect.serve``):

- ``tenure-daily``: ingest -> features -> score, every day (cron, default 02:00 UTC);
- ``tenure-monitor``: monitoring (alerts, and retraining when the policy says so), every 6 hours;
- ``tenure-train``: ingest -> features -> train, unscheduled (run it on demand:
  ``prefect deployment run 'tenure-pipeline/tenure-train'``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task

from tenure.pipelines.flows import STEPS, run_step
from tenure.settings import load_settings

logger = logging.getLogger(__name__)

DAILY_STEPS: tuple[str, ...] = ("ingest", "features", "score")
MONITOR_STEPS: tuple[str, ...] = ("monitor",)
TRAIN_STEPS: tuple[str, ...] = ("ingest", "features", "train")


@task(name="tenure-step", task_run_name="{step}")
def step_task(step: str, config_file: str | None = None, overrides: dict[str, Any] | None = None,
              force: bool = False) -> dict[str, Any]:
    """Run one pipeline step through the step runner (skipped when done for the same inputs)."""
    settings = load_settings(config_file, **(overrides or {}))
    result = run_step(settings, step, force=force)
    get_run_logger().info(
        "step %s %s in %.1f s, rows %s", step, result.status, result.duration_s, result.rows
    )
    return result.as_dict()


@flow(name="tenure-pipeline", log_prints=False)
def tenure_pipeline(
    steps: list[str] | None = None,
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Run ``steps`` in order (each one a task); stops at the first failing step.

    Parameters
    ----------
    steps:
        Names among ``ingest, features, train, score, monitor`` (default: the daily ones).
    config_file:
        tenure YAML settings file read by every step (else ``TENURE_CONFIG`` / defaults).
    overrides:
        Nested settings overrides (as for ``load_settings``).
    force:
        Re-run steps even when done for the same inputs.
    """
    steps = list(DAILY_STEPS) if steps is None else steps
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown steps {unknown}; allowed: {list(STEPS)}")
    return [step_task(step, config_file, overrides, force) for step in steps]


def _deployment_specs(
    config_file: str | None, daily_cron: str, monitor_every_hours: float, timezone: str
) -> list[dict[str, Any]]:
    """Keyword arguments of each deployment, shared by ``serve`` and ``deploy``."""
    if monitor_every_hours <= 0:
        raise ValueError(f"monitoring interval must be positive, got {monitor_every_hours} hours")
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    try:
        daily = CronSchedule(cron=daily_cron, timezone=timezone)
    except Exception as exc:
        raise ValueError(f"daily schedule {daily_cron!r} is not a valid cron expression: {exc}") from exc
    common = {"config_file": config_file}
    return [
        {
            "name": "tenure-daily",
            "schedule": daily,
            "parameters": {**common, "steps": list(DAILY_STEPS)},
            "description": "New files and logged events -> tables -> features (Feast) -> batch scores.",
            "tags": ["tenure", "daily"],
        },
        {
            "name": "tenure-monitor",
            "schedule": IntervalSchedule(interval=timedelta(hours=monitor_every_hours), timezone=timezone),
            "parameters": {**common, "steps": list(MONITOR_STEPS)},
            "description": "Drift and performance reports, alerts, retraining by the policy.",
            "tags": ["tenure", "monitoring"],
        },
        {
            "name": "tenure-train",
            "parameters": {**common, "steps": list(TRAIN_STEPS)},
            "description": "Retrain both models on the latest data and run the promotion gate (on demand).",
            "tags": ["tenure", "training"],
        },
    ]


def build_deployments(
    config_file: str | None = None,
    daily_cron: str = "0 2 * * *",
    monitor_every_hours: float = 6.0,
    timezone: str = "UTC",
) -> list[Any]:
    """The scheduled deployments of tenure (``RunnerDeployment`` objects, not yet served).

    Parameters
    ----------
    config_file:
        tenure settings file the runs read (None: ``TENURE_CONFIG`` or the defaults).
    daily_cron:
        Cron expression of the daily ingest -> features -> score run.
    monitor_every_hours:
        Interval of the monitoring run (hours, > 0).
    """
    specs = _deployment_specs(config_file, daily_cron, monitor_every_hours, timezone)
    return [tenure_pipeline.to_deployment(concurrency_limit=1, **spec) for spec in specs]


def deploy_to_work_pool(
    work_pool: str,
    source: str | None = None,
    config_file: str | None = None,
    daily_cron: str = "0 2 * * *",
    monitor_every_hours: float = 6.0,
    timezone: str = "UTC",
) -> list[str]:
    """Register the same deployments with a Prefect work pool, for workers on other machines.

    Parameters
    ----------
    work_pool:
        Name of an existing work pool (e.g. ``prefect work-pool create tenure --type process``).
    source:
        Where workers find the code: a git URL or a folder (default: this checkout).

    Returns
    -------
    list of str
        The deployment ids.
    """
    from pathlib import Path

    import tenure

    # the folder holding the tenure package (a checkout, or site-packages) and this file under it
    code_root = Path(tenure.__file__).parent.parent
    source = source or str(code_root)
    entrypoint = f"{Path(__file__).relative_to(code_root).as_posix()}:tenure_pipeline"
    remote = tenure_pipeline.from_source(source=source, entrypoint=entrypoint)
    ids = []
    for spec in _deployment_specs(config_file, daily_cron, monitor_every_hours, timezone):
        # to_deployment + apply registers without building an image (Flow.deploy would
        # also query the pool's workers, which fails on Prefect 3.8.8's own server)
        deployment = remote.to_deployment(work_pool_name=work_pool, concurrency_limit=1, **spec)
        ids.append(str(deployment.apply()))
    logger.info("deployed %d tenure deployments to work pool %s (code from %s)", len(ids), work_pool, source)
    return ids


def serve_schedules(
    config_file: str | None = None,
    daily_cron: str = "0 2 * * *",
    monitor_every_hours: float = 6.0,
    timezone: str = "UTC",
) -> None:
    """Serve the deployments in this process until interrupted (``prefect.serve``).

    Uses the Prefect API of ``PREFECT_API_URL`` (a Prefect server or Prefect Cloud); without
    one Prefect starts a temporary local server.
    """
    from prefect import serve

    deployments = build_deployments(config_file, daily_cron, monitor_every_hours, timezone)
    logger.info("serving %d tenure deployments", len(deployments))
    serve(*deployments)
