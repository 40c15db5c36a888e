"""Where each data source's prepared tables live, and what preparing one refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenure.settings import load_settings


def test_each_public_source_gets_its_own_workspace_and_feast_project(tmp_path: Path) -> None:
    from tenure.training.sources import source_settings

    settings = load_settings(None, paths={"data_dir": str(tmp_path / "data")})
    assert source_settings(settings, "generated") is settings
    for source in ("telco", "cdnow", "movielens"):
        ws = source_settings(settings, source)
        assert ws.paths.data_dir == tmp_path / "data" / "sources" / source
        assert ws.feast.project == f"{settings.feast.project}_{source}" and ws.feast.profile == "local"
        assert ws.mlflow == settings.mlflow  # models of every source go to the one registry
    cdnow = source_settings(settings, "cdnow")
    assert cdnow.churn.horizon_days == 90 and cdnow.churn.qualifying_event_types == ["purchase"]
    assert cdnow.feast.snapshot_every_days == 28
    with pytest.raises(ValueError, match="source must be one of"):
        source_settings(settings, "kaggle")


def test_prepare_source_refuses_unknown_sources_and_missing_paths(tmp_path: Path) -> None:
    from tenure.pipelines.flows import prepare_source

    settings = load_settings(None, paths={"data_dir": str(tmp_path / "data")})
    with pytest.raises(ValueError, match="source must be one of"):
        prepare_source(settings, "generated", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_source(settings, "telco", tmp_path / "nowhere")
    assert not (tmp_path / "data").exists()  # nothing written before the checks pass


def test_training_reads_only_prepared_tables(tmp_path: Path) -> None:
    from tenure.training.churn_pipeline import load_training_data
    from tenure.training.recommender_pipeline import load_data

    settings = load_settings(None, paths={"data_dir": str(tmp_path / "data")})
    with pytest.raises(ValueError, match="prepare the workspace first"):
        load_training_data(settings, "telco")
    with pytest.raises(ValueError, match="prepare it first"):
        load_data(settings, "movielens")
    with pytest.raises(ValueError, match="churn source must be one of"):
        load_training_data(settings, "movielens")
