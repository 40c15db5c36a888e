"""The one champion loader: alias -> version -> local cache -> runtime, against a real MLflow store.

Models are tiny but real (a 5-tree LightGBM booster in a ``ChurnScorer``, a 4x3 ALS-shaped
``RecommenderRuntime``), logged with their real pyfunc wrappers and registered like training does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tenure.registry.champion import (
    COMPLETE_MARKER,
    Champion,
    ModelCache,
    NoChampionError,
    find_champion,
    load_champion,
    load_pyfunc,
    load_version,
)
from tenure.registry.models import CHAMPION, configure_mlflow, model_name_for, register_version


def _tiny_scorer():
    import lightgbm as lgb

    from tenure.registry.churn_scorer import ChurnScorer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_leaves": 4}, lgb.Dataset(X, y), num_boost_round=5)
    return ChurnScorer(booster, ["gap", "spend"], {}, {"method": "none"}, (0.3, 0.6))


def _tiny_runtime():
    from tenure.registry.recommender_runtime import RecommenderRuntime

    rng = np.random.default_rng(1)
    interactions = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    return RecommenderRuntime(
        user_factors=rng.normal(size=(4, 2)).astype(np.float32),
        item_factors=rng.normal(size=(3, 2)).astype(np.float32),
        customer_ids=["c1", "c2", "c3", "c4"], item_ids=["i1", "i2", "i3"],
        user_items=interactions, purchases=interactions,
        item_category=["a", "a", "b"], item_available=[True, True, True],
        popularity=np.array([2.0, 2.0, 2.0]), params={"mode": "als"},
    )


def _register(settings, kind: str, tmp_path: Path, promote: bool = True) -> str:
    """Log a tiny real model of ``kind`` with its pyfunc wrapper, register it, optionally make it champion."""
    import mlflow
    import pandas as pd

    from tenure.training.tracking import ensure_experiment

    configure_mlflow(settings)
    experiment = settings.mlflow.churn_experiment if kind == "churn" else settings.mlflow.recommender_experiment
    folder = tmp_path / kind / ("bundle" if kind == "churn" else "recommender")  # the artifact names training uses
    with mlflow.start_run(experiment_id=ensure_experiment(settings, experiment)) as run:
        mlflow.log_metric("test_roc_auc", 0.75)
        mlflow.log_param("band_high", "0.6")
        if kind == "churn":
            from tenure.registry.churn_pyfunc import ChurnPyfunc

            _tiny_scorer().save(folder)
            pd.DataFrame({"gap": [1.0, -1.0], "spend": [0.0, 0.5], "prediction": [0.7, 0.2]}).to_parquet(
                tmp_path / "reference.parquet")
            mlflow.log_artifact(str(tmp_path / "reference.parquet"), artifact_path="reference")
            info = mlflow.pyfunc.log_model(name="model", python_model=ChurnPyfunc(), artifacts={"bundle": str(folder)},
                                           pip_requirements=["lightgbm", "numpy", "pandas"])
        else:
            from tenure.registry.recommender_pyfunc import RecommenderPyfunc

            _tiny_runtime().save(folder)
            info = mlflow.pyfunc.log_model(name="model", python_model=RecommenderPyfunc(),
                                           artifacts={"recommender": str(folder)},
                                           pip_requirements=["implicit", "numpy", "scipy", "pandas"])
    version = register_version(settings, kind, run.info.run_id, model_uri=info.model_uri)
    if promote:
        configure_mlflow(settings).set_registered_model_alias(model_name_for(settings, kind), CHAMPION, version)
    return version


@pytest.fixture(scope="module")
def registry_workspace(tmp_path_factory):
    """One MLflow store with a churn champion (v1) and a recommender champion (v1); built once."""
    from tenure.settings import load_settings

    root = tmp_path_factory.mktemp("champion")
    settings = load_settings(None, paths={"data_dir": str(root / "data")}, mlflow={
        "tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}", "artifact_root": str(root / "mlruns" / "artifacts")})
    _register(settings, "churn", root)
    _register(settings, "recommender", root)
    return settings


def _cache_for(settings, tmp_path: Path) -> ModelCache:
    """The workspace's registry with a fresh, test-local cache folder."""
    return ModelCache(settings.mlflow.tracking_uri,
                      {"churn": settings.mlflow.churn_model_name, "recommender": settings.mlflow.recommender_model_name},
                      tmp_path / "cache")


def _artifact_root(settings) -> Path:
    return Path(settings.mlflow.artifact_root)


def test_both_kinds_load_with_run_metadata(registry_workspace):
    churn = load_champion(registry_workspace, "churn")
    assert isinstance(churn, Champion) and churn.version == "1" and churn.alias == CHAMPION
    assert churn.runtime.model_version == "1" and churn.runtime.feature_names == ["gap", "spend"]
    X = churn.runtime.vectorize([{"gap": 2.0, "spend": 0.0}, {"gap": -2.0, "spend": 0.0}])
    p = churn.runtime.predict_proba(X)
    assert p.shape == (2,) and p[0] > p[1]
    assert churn.metrics["test_roc_auc"] == 0.75 and churn.params["band_high"] == "0.6"
    assert churn.run_id and churn.experiment_id and churn.age_days >= 0
    assert churn.model_dir.is_relative_to(registry_workspace.serving.model_cache_dir / "churn")

    reco = load_champion(registry_workspace, "recommender")
    assert reco.runtime.model_version == "1"
    answer = reco.runtime.recommend("c2", k=2)
    assert len(answer.items) == 2 and answer.strategy


def test_second_load_uses_the_cache_without_downloading(registry_workspace, tmp_path):
    cache = _cache_for(registry_workspace, tmp_path)
    first = cache.load("churn")
    assert (first.model_dir / COMPLETE_MARKER).read_text() == "1"
    # with the registry's artifacts gone, only the cache can answer
    store = _artifact_root(registry_workspace)
    hidden = tmp_path / "artifacts-hidden"
    shutil.move(store, hidden)
    try:
        second = cache.load("churn")
    finally:
        shutil.move(hidden, store)
    assert second.model_dir == first.model_dir and second.runtime.model_version == "1"


def test_interrupted_download_leaves_no_complete_marker_and_is_redone(registry_workspace, tmp_path):
    cache = _cache_for(registry_workspace, tmp_path)
    store = _artifact_root(registry_workspace)
    hidden = tmp_path / "artifacts-hidden"
    shutil.move(store, hidden)
    try:
        with pytest.raises(Exception):  # noqa: B017 - whichever error MLflow raises for missing files
            cache.download("churn", "1")
    finally:
        shutil.move(hidden, store)
    kind_dir = cache.cache_dir / "churn"
    assert not cache.is_cached("churn", "1")
    assert not list(kind_dir.glob("*.partial")) and not (kind_dir / "1").exists()

    # a download killed mid-way (files but no marker) is not trusted: it is downloaded again
    (kind_dir / "1").mkdir(parents=True)
    (kind_dir / "1" / "half-written.bin").write_bytes(b"\0" * 10)
    (kind_dir / ".1.999999999-1.partial").mkdir()  # a partial of a process that is gone
    loaded = cache.load("churn")
    assert loaded.runtime.model_version == "1"
    assert cache.is_cached("churn", "1") and not (kind_dir / "1" / "half-written.bin").exists()
    assert not list(kind_dir.glob("*.partial"))


def test_unknown_alias_names_the_model_and_the_command(registry_workspace, tmp_path):
    cache = _cache_for(registry_workspace, tmp_path)
    name = registry_workspace.mlflow.churn_model_name
    with pytest.raises(NoChampionError, match=rf"{name} has no version with alias 'shadow'") as info:
        cache.load("churn", alias="shadow")
    assert "tenure train churn" in str(info.value)
    assert find_champion(registry_workspace, "churn", alias="shadow") is None
    assert not (cache.cache_dir / "churn").exists()  # nothing downloaded


def test_a_model_never_registered_gives_the_same_clear_error(registry_workspace, tmp_path):
    cache = ModelCache(registry_workspace.mlflow.tracking_uri, {"recommender": "shop-recommender"}, tmp_path)
    with pytest.raises(NoChampionError, match="shop-recommender has no version with alias 'champion'") as info:
        cache.load("recommender")
    assert "tenure train recommender --promote" in str(info.value)
    assert isinstance(info.value, ValueError)  # CLI commands report ValueErrors as failures


def test_version_by_number_pyfunc_and_reference(registry_workspace, tmp_path):
    import pandas as pd

    champion = load_version(registry_workspace, "churn", "1", runtime=False)
    assert champion.alias is None and champion.runtime is None and champion.model_dir.is_dir()
    scored = load_pyfunc(champion.model_dir).predict(pd.DataFrame({"gap": [2.0, -2.0], "spend": [0.0, 0.0]}))
    assert list(scored.columns) == ["churn_probability", "risk_band", "percentile"] and len(scored) == 2
    reference = _cache_for(registry_workspace, tmp_path).read_reference(champion)
    assert list(reference["prediction"]) == [0.7, 0.2]


def test_current_version_is_recorded_only_when_asked(registry_workspace, tmp_path):
    cache = _cache_for(registry_workspace, tmp_path)
    cache.load("churn")
    assert cache.current_version("churn") is None  # a download alone (e.g. training's gate) marks nothing
    cache.mark_current("churn", "1")
    assert cache.current_version("churn") == "1"
