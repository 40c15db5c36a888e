"""``tenure train churn --tune N`` end to end: Optuna trials run, are recorded in MLflow, and the best one is used."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


@pytest.fixture
def own_mlflow(churn_workspace, tmp_path):
    """The shared workspace's data with a tracking store of its own (the shared registry stays untouched)."""
    mlflow_settings = churn_workspace.mlflow.model_copy(update={
        "tracking_uri": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        "artifact_root": str(tmp_path / "mlruns" / "artifacts"),
    })
    # tuning tunes the lightgbm candidate; with it alone the registered booster is the tuned one
    churn = churn_workspace.churn.model_copy(update={"n_estimators": 30, "early_stopping_rounds": 5,
                                                     "candidates": ["lightgbm"]})
    # the model cache is keyed by version: another registry's version 1 needs a cache of its own
    serving = churn_workspace.serving.model_copy(update={"model_cache_dir": tmp_path / "model_cache"})
    return churn_workspace.model_copy(update={"mlflow": mlflow_settings, "churn": churn, "serving": serving})


def test_cli_tune_runs_trials_records_them_and_fits_the_best(own_mlflow, tmp_path):
    import yaml
    from mlflow.tracking import MlflowClient

    from tenure.pipelines.cli import app
    from tenure.training.churn_pipeline import load_registered_scorer

    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump(own_mlflow.model_dump(mode="json")))
    result = CliRunner().invoke(app, ["--config", str(config), "train", "churn", "--tune", "2"])
    assert result.exit_code == 0, result.output
    assert "tuning: 2 trials" in result.output

    client = MlflowClient(own_mlflow.mlflow.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name(own_mlflow.mlflow.churn_experiment).experiment_id])
    assert run.info.run_id in result.output
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["tuning_trials"] == "2"

    history = client.get_metric_history(run.info.run_id, "tuning_valid_roc_auc")
    assert sorted(m.step for m in history) == [0, 1]
    assert metrics["tuning_best_valid_roc_auc"] == max(m.value for m in history)
    tuning = json.loads(client.download_artifacts(run.info.run_id, "tuning.json", str(tmp_path)) and
                        (tmp_path / "tuning.json").read_text())
    assert len(tuning["trials"]) == 2
    assert {t["params"]["num_leaves"] for t in tuning["trials"]} != {int(own_mlflow.churn.num_leaves)}

    # the final model is fitted with the best trial's parameters, not the settings' defaults
    best = json.loads(tags["tenure.tuning.best_params"])
    assert best == tuning["best_params"] == tuning["trials"][tuning["best_trial"]]["params"]
    for name, value in best.items():
        assert float(params[name]) == pytest.approx(value, rel=1e-12), name
    # ... and reproduces the best trial's validation score (seeded sampler, deterministic LightGBM)
    assert metrics["valid_lightgbm_roc_auc"] == pytest.approx(tuning["best_value"], abs=1e-12)
    scorer = load_registered_scorer(own_mlflow, "1")
    assert f"[num_leaves: {best['num_leaves']}]" in scorer.booster.model_to_string()
