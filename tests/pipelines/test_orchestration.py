"""Prefect 3 deployments and one real flow run (temporary Prefect server via the test harness)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tenure.pipelines.steps import StepRunner


def test_deployments_have_the_documented_schedules() -> None:
    from tenure.pipelines.orchestration import build_deployments

    deployments = {d.name: d for d in build_deployments("tenure.yaml", daily_cron="30 1 * * *", monitor_every_hours=6)}
    assert set(deployments) == {"tenure-daily", "tenure-monitor", "tenure-train"}
    daily = deployments["tenure-daily"]
    assert daily.schedules[0].schedule.cron == "30 1 * * *"
    assert daily.parameters == {"config_file": "tenure.yaml", "steps": ["ingest", "features", "score"]}
    monitor = deployments["tenure-monitor"]
    assert monitor.schedules[0].schedule.interval == timedelta(hours=6)
    assert monitor.parameters["steps"] == ["monitor"]
    assert deployments["tenure-train"].schedules == [], "training runs on demand"
    with pytest.raises(ValueError, match="not a valid cron"):
        build_deployments(daily_cron="every day")
    with pytest.raises(ValueError, match="must be positive"):
        build_deployments(monitor_every_hours=0)


@pytest.mark.slow
def test_flow_runs_steps_through_the_shared_runner(tmp_path: Path) -> None:
    """A Prefect flow run ingests a tiny shop; the second run finds the step done (shared markers)."""
    from prefect.testing.utilities import prefect_test_harness

    from tenure.features.simulator import simulate_shop
    from tenure.pipelines.demo.data import write_raw
    from tenure.pipelines.orchestration import tenure_pipeline
    from tenure.settings import load_settings

    overrides = {
        "paths": {"data_dir": str(tmp_path / "data"), "reports_dir": str(tmp_path / "reports"),
                  "exports_dir": str(tmp_path / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}", "artifact_root": str(tmp_path / "art")},
    }
    settings = load_settings(None, **overrides)
    shop = simulate_shop(60, 12, 20, seed=3)
    write_raw(settings, shop.customers, shop.items, shop.events)

    with prefect_test_harness(server_startup_timeout=120):
        first = tenure_pipeline(steps=["ingest"], overrides=overrides)
        second = tenure_pipeline(steps=["ingest"], overrides=overrides)
        with pytest.raises(ValueError, match="unknown steps"):
            tenure_pipeline(steps=["deploy"], overrides=overrides)

        # the same deployments registered with a work pool, for workers elsewhere
        from prefect import get_client
        from prefect.client.schemas.actions import WorkPoolCreate

        from tenure.pipelines.orchestration import deploy_to_work_pool

        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name="tenure-test", type="process"))
            ids = deploy_to_work_pool("tenure-test", config_file="prod.yaml", monitor_every_hours=6)
            deployments = {d.name: d for d in (client.read_deployment(i) for i in ids)}
        assert set(deployments) == {"tenure-daily", "tenure-monitor", "tenure-train"}
        assert deployments["tenure-daily"].work_pool_name == "tenure-test"
        assert deployments["tenure-daily"].parameters["config_file"] == "prod.yaml"
        assert deployments["tenure-monitor"].schedules[0].schedule.interval == timedelta(hours=6)

    assert first[0]["status"] == "done" and first[0]["rows"], first
    assert second[0]["status"] == "skipped"
    assert second[0]["rows"] == first[0]["rows"]
    history = StepRunner(settings.paths.state_dir).history("ingest")
    assert [h["status"] for h in history] == ["done", "skipped"]
