"""The churn pipeline end to end on a small simulated shop: MLflow contents, gate, rollback, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow

CRIPPLED = {"candidates": ["lightgbm"], "num_leaves": 2, "n_estimators": 1, "learning_rate": 0.01}
"""One stump and no other candidate: a real model that loses to its own baselines."""


def test_run_logs_params_metrics_artifacts_and_registers_a_champion(churn_workspace, trained_churn):
    from mlflow.tracking import MlflowClient

    from tenure.registry.models import get_alias_version

    client = MlflowClient(churn_workspace.mlflow.tracking_uri)
    run = client.get_run(trained_churn.run_id)
    for key in ("test_roc_auc", "test_brier", "test_ece", "test_lift_top10", "logistic_test_roc_auc",
                "recency_rule_test_roc_auc", "rows_train"):
        assert key in run.data.metrics, key
    assert run.data.params["horizon_days"] == "30"
    assert run.data.tags["tenure.feature_service"] == "churn_v1"
    assert len(run.data.tags["tenure.training_data_hash"]) == 16
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "reference", "segments.csv", "importance.csv", "features.json"} <= artifacts
    plots = {a.path.split("/")[-1] for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"roc.png", "pr.png", "calibration.png", "lift.png", "importance.png"}
    assert get_alias_version(churn_workspace, "churn", "champion") == trained_churn.version
    # the model beats the recency rule on the simulated shop's test window
    assert trained_churn.metrics["tenure"]["roc_auc"] > trained_churn.metrics["recency_rule"]["roc_auc"]


def test_registered_model_gives_the_same_probabilities_three_ways(churn_workspace, trained_churn, tmp_path):
    import mlflow
    import pandas as pd

    from tenure.registry.champion import load_champion, load_pyfunc
    from tenure.training.churn_pipeline import load_registered_scorer

    scorer = load_registered_scorer(churn_workspace, trained_churn.version)
    reference = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=trained_churn.run_id, artifact_path="reference/reference.parquet", dst_path=str(tmp_path / "ref"),
        tracking_uri=churn_workspace.mlflow.tracking_uri))
    features = reference.drop(columns=["prediction", "label"])
    p_scorer = scorer.predict_proba(scorer.vectorize(features.to_dict(orient="records")))
    np.testing.assert_allclose(p_scorer, reference["prediction"].to_numpy(), rtol=1e-9)
    pyfunc = load_pyfunc(load_champion(churn_workspace, "churn", runtime=False).model_dir)
    np.testing.assert_allclose(pyfunc.predict(features)["churn_probability"].to_numpy(), p_scorer, rtol=1e-9)


def test_gate_refuses_a_worse_model_accepts_an_equal_one_and_rollback(churn_workspace, trained_churn):
    from tenure.registry.models import get_alias_version, list_versions
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote, rollback

    champion = trained_churn.version
    weak = churn_workspace.model_copy(update={"churn": churn_workspace.churn.model_copy(update=CRIPPLED)})
    worse = train_churn(weak)
    # training only registers a challenger: the gate (one place) decides
    assert get_alias_version(churn_workspace, "churn", "challenger") == worse.version
    assert get_alias_version(churn_workspace, "churn", "champion") == champion
    decision = promote(churn_workspace, "churn")
    assert not decision.promoted
    assert "ROC-AUC" in decision.reason
    assert get_alias_version(churn_workspace, "churn", "champion") == champion
    tags = {r["version"]: r["tags"] for r in list_versions(churn_workspace, "churn")}
    assert tags[worse.version]["gate.challenger.promoted"] == "false"

    again = train_churn(churn_workspace)
    decision = promote(churn_workspace, "churn")
    assert decision.promoted, decision.reason
    assert get_alias_version(churn_workspace, "churn", "champion") == again.version
    rollback(churn_workspace, "churn", reason="test")
    assert get_alias_version(churn_workspace, "churn", "champion") == champion


def test_the_first_model_is_refused_when_it_loses_to_a_baseline_and_force_records_why(churn_workspace, tmp_path):
    from tenure.registry.models import get_alias_version, list_versions
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote

    own = churn_workspace.model_copy(update={
        "mlflow": churn_workspace.mlflow.model_copy(update={
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifact_root": str(tmp_path / "artifacts")}),
        "churn": churn_workspace.churn.model_copy(update=CRIPPLED)})
    loser = train_churn(own)
    assert loser.chosen == "lightgbm"
    assert loser.metrics["tenure"]["roc_auc"] < loser.metrics["logistic"]["roc_auc"] - own.churn.gate_auc_tolerance
    decision = promote(own, "churn")
    assert not decision.promoted
    assert "loses to its baselines" in decision.reason and "logistic regression" in decision.reason
    assert get_alias_version(own, "churn", "champion") is None
    tags = {r["version"]: r["tags"] for r in list_versions(own, "churn")}
    assert tags[loser.version]["gate.challenger.promoted"] == "false"

    forced = promote(own, "churn", force_reason="demo needs a model today")
    assert forced.promoted and forced.forced
    assert get_alias_version(own, "churn", "champion") == loser.version
    reason = {r["version"]: r["tags"] for r in list_versions(own, "churn")}[loser.version]["gate.challenger.reason"]
    assert reason.startswith("forced: demo needs a model today") and "loses to its baselines" in reason


def test_cli_lists_versions_and_refuses_bad_arguments(churn_workspace, trained_churn, tmp_path):
    import yaml

    from tenure.pipelines.cli import app

    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump(churn_workspace.model_dump(mode="json")))
    runner = CliRunner()
    listed = runner.invoke(app, ["--config", str(config), "models", "list", "churn"])
    assert listed.exit_code == 0, listed.output
    assert "champion" in listed.output
    as_json = runner.invoke(app, ["--config", str(config), "models", "list", "churn", "--json"])
    assert as_json.exit_code == 0, as_json.output
    version = next(v for v in json.loads(as_json.stdout)["versions"] if v["version"] == trained_churn.version)
    assert version["candidate"] == trained_churn.chosen
    assert version["segments"]["worst"] and "plan" in version["segments"]["by_segment"]
    assert version["segments"]["largest_gap_roc_auc"] >= 0
    bad = runner.invoke(app, ["--config", str(config), "models", "promote", "ranker"])
    assert bad.exit_code == 2
    forced = runner.invoke(app, ["--config", str(config), "models", "promote", "churn", "--force"])
    assert forced.exit_code == 2 and "--reason" in forced.output
    telco = runner.invoke(app, ["--config", str(config), "train", "churn", "--source", "telco"])
    assert telco.exit_code == 2 and "--path" in telco.output
