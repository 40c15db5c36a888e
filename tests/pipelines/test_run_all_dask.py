"""``tenure run all`` with ``compute.engine: dask`` on the demo's small data (a LocalCluster of 2 workers per
step): every step finishes, the churn model was trained by lightgbm.dask, the recommender's matrices were built
on the cluster, the churn gate's test window built there scores like the local one, and the partitioned scores
equal the local batch scoring of the same champion."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tenure.pipelines.cli import app

from .conftest import isolated_overrides

pytestmark = pytest.mark.slow


def test_run_all_on_a_local_dask_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tenure.pipelines.scoring import batch_score
    from tenure.pipelines.steps import StepRunner
    from tenure.registry.models import configure_mlflow, get_alias_version, model_name_for
    from tenure.settings import load_settings

    overrides = isolated_overrides(tmp_path)
    overrides.update(compute={"engine": "dask", "partitions": 4, "local_workers": 2},
                     churn={"n_estimators": 60, "early_stopping_rounds": 10},
                     monitoring={**overrides["monitoring"], "dry_run": True})
    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump(overrides))
    runner = CliRunner()
    generated = runner.invoke(app, ["--config", str(config), "generate", "--customers", "700", "--items", "60",
                                    "--days", "150", "--seed", "11"])
    assert generated.exit_code == 0, generated.output
    result = runner.invoke(app, ["--config", str(config), "run", "all"])
    assert result.exit_code == 0, result.output

    settings = load_settings(config)
    done = {h["step"] for h in StepRunner(settings.paths.state_dir).history() if h["status"] == "done"}
    assert done == {"ingest", "features", "train", "score", "monitor"}

    version = get_alias_version(settings, "churn", "challenger") or get_alias_version(settings, "churn", "champion")
    client = configure_mlflow(settings)
    run = client.get_run(client.get_model_version(model_name_for(settings, "churn"), version).run_id)
    assert run.data.tags["tenure.engine"] == "dask"
    # the whole training window (below 200k rows the baseline's sample is all of it)
    assert run.data.metrics["rows_train"] == run.data.metrics["rows_train_baseline_sample"] > 1000
    assert run.data.metrics["test_roc_auc"] > 0.6
    # the recommender's matrices were built on the cluster (its training step never loads the events)
    rec_version = (get_alias_version(settings, "recommender", "challenger")
                   or get_alias_version(settings, "recommender", "champion"))
    rec_run = client.get_run(client.get_model_version(model_name_for(settings, "recommender"), rec_version).run_id)
    assert rec_run.data.tags["tenure.engine"] == "dask" and rec_run.data.metrics["ndcg_at_k"] > 0

    # the churn gate's comparison on the test window built on the cluster: the champion against itself gives
    # the numbers of the local comparison (the window's rows are the same)
    from tenure.training.churn_pipeline import compare_for_gate
    from tenure.training.gate import _comparator

    champion = get_alias_version(settings, "churn", "champion")
    on_cluster = _comparator(settings, "churn")(settings, champion, champion)
    local_gate = compare_for_gate(load_settings(config, compute={"engine": "local"}), champion, champion)
    assert on_cluster.promoted and on_cluster.challenger_metrics.keys() == local_gate.challenger_metrics.keys()
    for key, value in local_gate.challenger_metrics.items():
        assert on_cluster.challenger_metrics[key] == pytest.approx(value, rel=1e-9, nan_ok=True), key

    scores = pd.read_parquet(settings.paths.exports_dir / "scores" / "scores.parquet")
    assert scores["churn_probability"].is_monotonic_decreasing
    local = batch_score(load_settings(config, compute={"engine": "local"}), k=settings.recommender.k)
    columns = [c for c in local.columns if c != "scored_at"]
    pd.testing.assert_frame_equal(scores[columns].sort_values("customer_id").reset_index(drop=True),
                                  local[columns].sort_values("customer_id").reset_index(drop=True), check_dtype=False)

    # the audience export, partition by partition through the CLI, equals the local export; the champions
    # reach the partitions as versions the workers load, not as scattered data (which a worker restarted for
    # memory would lose for good)
    import distributed

    from tenure.pipelines.scoring import export_audience

    def no_scatter(*args, **kwargs):
        raise AssertionError("scattered data is lost when a worker restarts")

    monkeypatch.setattr(distributed.Client, "scatter", no_scatter)
    exported = runner.invoke(app, ["--config", str(config), "export", "audience", "--risk", "medium", "--risk", "high",
                                   "-k", "3", "--format", "parquet", "--out", str(tmp_path / "dask.parquet"), "--json"])
    assert exported.exit_code == 0, exported.output
    _, want = export_audience(load_settings(config, compute={"engine": "local"}), risk=("medium", "high"), k=3,
                              file_format="parquet", out=tmp_path / "local.parquet")
    got = pd.read_parquet(tmp_path / "dask.parquet")
    assert len(want) > 10 and got["churn_probability"].is_monotonic_decreasing
    assert f'"rows": {len(want)}' in exported.output
    columns = [c for c in want.columns if c != "scored_at"]
    assert list(got.columns) == list(want.columns)
    pd.testing.assert_frame_equal(got[columns].sort_values("customer_id").reset_index(drop=True),
                                  want[columns].sort_values("customer_id").reset_index(drop=True), check_dtype=False)

    # monitoring's current window drawn on the cluster: the rows (and scores) of the local window
    from datetime import UTC, datetime

    from tenure.monitoring.runner import _current_window
    from tenure.monitoring.sources import load_champion as load_monitored
    from tenure.monitoring.sources import load_champion_runtime

    runtime = load_champion_runtime(settings, load_monitored(settings, "churn"))
    now = datetime.now(UTC)
    source, on_cluster = _current_window(settings, lambda: runtime, "snapshot", now)
    local_source, local_window = _current_window(load_settings(config, compute={"engine": "local"}), lambda: runtime,
                                                 "snapshot", now)
    assert source == local_source and len(local_window) > 100
    assert on_cluster.attrs["as_of"] == local_window.attrs["as_of"]
    pd.testing.assert_frame_equal(on_cluster.sort_values("customer_id").reset_index(drop=True),
                                  local_window.sort_values("customer_id").reset_index(drop=True), check_dtype=False)
