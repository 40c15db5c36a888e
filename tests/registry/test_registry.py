"""Registry: challenger registration, gate decisions recorded as tags, rollback, listing.

Uses a real MLflow SQLite store; the model is a tiny pyfunc, since only the registry's
own logic is under test here (the model comparisons are tested with each model).
"""

from __future__ import annotations

import json

import pytest

from tenure.registry.models import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    get_alias_version,
    list_versions,
    register_version,
)
from tenure.training.gate import promote, rollback


def _log_run(settings, value: float) -> str:
    import mlflow
    from mlflow.pyfunc import PythonModel

    from tenure.training.tracking import ensure_experiment

    class ConstantModel(PythonModel):
        def predict(self, context, model_input: list[float]) -> list[float]:
            return [value] * len(model_input)

    experiment_id = ensure_experiment(settings, settings.mlflow.churn_experiment)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_metric("test_roc_auc", value)
        mlflow.pyfunc.log_model(name="model", python_model=ConstantModel())
    return run.info.run_id


def _by_auc(settings, champion, challenger):
    """Comparator for the test: reads the logged metric of both versions."""
    rows = {r["version"]: r for r in list_versions(settings, "churn", ("test_roc_auc",))}
    new, old = rows[challenger]["metrics"]["test_roc_auc"], rows[champion]["metrics"]["test_roc_auc"]
    return GateDecision(
        promoted=new >= old,
        reason=f"auc {new:.2f} vs {old:.2f}",
        challenger_metrics={"roc_auc": new},
        champion_metrics={"roc_auc": old},
    )


def test_first_version_is_promoted_then_gate_decides(settings):
    s = settings
    v1 = register_version(s, "churn", _log_run(s, 0.80))
    assert get_alias_version(s, "churn", CHALLENGER) == v1
    first = promote(s, "churn", compare=_by_auc)
    assert first.promoted and "no champion" in first.reason
    assert get_alias_version(s, "churn", CHAMPION) == v1
    assert get_alias_version(s, "churn", CHALLENGER) is None

    v2 = register_version(s, "churn", _log_run(s, 0.70))
    worse = promote(s, "churn", compare=_by_auc)
    assert not worse.promoted
    assert get_alias_version(s, "churn", CHAMPION) == v1
    tags = {r["version"]: r["tags"] for r in list_versions(s, "churn")}
    assert tags[v2]["gate.challenger.promoted"] == "false"
    assert json.loads(tags[v2]["gate.challenger.challenger_metrics"]) == {"roc_auc": 0.7}
    assert tags[v1]["gate.champion.champion_version"] == v1

    v3 = register_version(s, "churn", _log_run(s, 0.90))
    better = promote(s, "churn", compare=_by_auc)
    assert better.promoted and better.champion_version == v1
    assert get_alias_version(s, "churn", CHAMPION) == v3

    back = rollback(s, "churn", reason="test")
    assert back.challenger_version == v1
    assert get_alias_version(s, "churn", CHAMPION) == v1
    with pytest.raises(ValueError, match="no earlier champion"):
        rollback(s, "churn")


def test_force_promotes_a_worse_model_with_reason(settings):
    s = settings
    register_version(s, "churn", _log_run(s, 0.80))
    promote(s, "churn", compare=_by_auc)
    v2 = register_version(s, "churn", _log_run(s, 0.60))
    with pytest.raises(ValueError, match="non-empty reason"):
        promote(s, "churn", force_reason="  ", compare=_by_auc)
    forced = promote(s, "churn", force_reason="hotfix for segment bug", compare=_by_auc)
    assert forced.promoted and forced.forced
    rows = {r["version"]: r for r in list_versions(s, "churn")}
    assert rows[v2]["tags"]["gate.challenger.reason"] == "forced: hotfix for segment bug"
    assert rows[v2]["aliases"] == [CHAMPION]


def test_errors_say_what_to_do(settings):
    with pytest.raises(ValueError, match="no 'challenger' version"):
        promote(settings, "churn", compare=_by_auc)
    with pytest.raises(ValueError, match="'churn', 'recommender' or 'uplift'"):
        get_alias_version(settings, "ranker")
    assert list_versions(settings, "recommender") == []
