"""Settings: precedence (file < env < overrides) and errors that name the setting."""

from __future__ import annotations

import pytest

from tenure.settings import SettingsError, load_settings


def test_defaults_are_valid(settings):
    assert settings.churn.horizon_days == 30
    assert settings.feast.profile == "local"
    assert settings.paths.tables_dir.name == "tables"


def test_env_beats_file_and_overrides_beat_env(tmp_path, monkeypatch):
    config = tmp_path / "tenure.yaml"
    config.write_text("churn:\n  horizon_days: 20\nserving:\n  port: 4000\n")
    monkeypatch.setenv("TENURE_CHURN__HORIZON_DAYS", "25")
    loaded = load_settings(config)
    assert loaded.churn.horizon_days == 25
    assert loaded.serving.port == 4000
    assert load_settings(config, churn={"horizon_days": 40}).churn.horizon_days == 40


def test_bad_value_names_setting_and_allowed_values(monkeypatch):
    monkeypatch.setenv("TENURE_FEAST__PROFILE", "cloud")
    with pytest.raises(SettingsError, match=r"feast\.profile .*TENURE_FEAST__PROFILE.*'local' or 'production'"):
        load_settings()


def test_misspelt_env_variable_is_an_error_but_the_documented_levers_are_not_settings(monkeypatch):
    monkeypatch.setenv("TENURE_SKIP_BROWSER", "1")
    monkeypatch.setenv("TENURE_CHROMIUM", "/usr/bin/chromium")
    monkeypatch.setenv("TENURE_DASHBOARD_SCREENSHOT", "/tmp/shot.png")
    assert load_settings().churn.horizon_days == 30
    monkeypatch.setenv("TENURE_CHURN_HORIZON_DAYS", "20")  # one underscore where two belong
    with pytest.raises(SettingsError, match="churn_horizon_days"):
        load_settings()


def test_unknown_key_in_file_is_an_error(tmp_path):
    config = tmp_path / "tenure.yaml"
    config.write_text("churn:\n  horizon_dayz: 20\n")
    with pytest.raises(SettingsError, match="horizon_dayz"):
        load_settings(config)


def test_unknown_event_type_in_weights(tmp_path):
    with pytest.raises(SettingsError, match="unknown event types"):
        load_settings(recommender={"event_weights": {"click": 1.0}})


def test_thresholds_must_be_ordered():
    with pytest.raises(SettingsError, match="medium_threshold"):
        load_settings(churn={"medium_threshold": 0.7, "high_threshold": 0.6})


def test_missing_config_file(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")
