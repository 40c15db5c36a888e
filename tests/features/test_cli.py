"""`tenure features ...` end to end on ingested tables: build, apply, materialize, show, training-frame."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner


@pytest.fixture
def cli_env(make_settings, small_shop, monkeypatch, tmp_path):
    """Settings via environment (as a user would), with the small shop stored as canonical tables."""
    from tenure.features.tables import append_events, upsert_customers, upsert_items

    settings = make_settings(feast={"repo_path": str(tmp_path / "feature_repo")})
    customers, items, events = small_shop
    upsert_customers(settings, customers)
    upsert_items(settings, items)
    append_events(settings, events)
    monkeypatch.setenv("TENURE_PATHS__DATA_DIR", str(settings.paths.data_dir))
    monkeypatch.setenv("TENURE_FEAST__REPO_PATH", str(settings.feast.repo_path))
    return settings


def run(*args: str):
    from tenure.pipelines.cli import app

    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_build_apply_materialize_show_and_training_frame(cli_env, small_shop, tmp_path):
    settings = cli_env
    result = run("features", "build", "--start", "2026-02-01", "--end", "2026-04-26", "--every", "7d")
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(settings.paths.features_dir / "customer_features.parquet")
    assert table["event_timestamp"].nunique() == 13
    assert {"event_timestamp", "created"} <= set(table.columns)
    assert (settings.paths.features_dir / "item_features.parquet").exists()

    result = run("features", "build", "--as-of", "2026-04-30")
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(settings.paths.features_dir / "customer_features.parquet")[
        "event_timestamp"].nunique() == 14  # the weekly snapshots are kept

    assert run("features", "apply").exit_code == 0
    assert (settings.feast.repo_path / "feature_store.yaml").exists()
    result = run("features", "materialize")
    assert result.exit_code == 0, result.output

    customer_id = table.loc[table["event_timestamp"] == table["event_timestamp"].max(), "customer_id"].iloc[0]
    result = run("features", "show", customer_id)
    assert result.exit_code == 0, result.output
    assert "days_since_last_purchase" in result.output and "acquisition_channel" in result.output
    result = run("features", "show", "no-such-customer")
    assert result.exit_code == 1
    assert "no features in the online store" in result.output

    entity_file = tmp_path / "entities.csv"
    pd.DataFrame({"customer_id": [customer_id, customer_id],
                  "event_timestamp": ["2026-03-02T00:00:00Z", "2026-04-30T00:00:00Z"],
                  "churned": [0, 1]}).to_csv(entity_file, index=False)
    out = tmp_path / "frame.parquet"
    result = run("features", "training-frame", "--entity-file", str(entity_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame["churned"]) == [0, 1] and "purchases_30d" in frame.columns
    fast = tmp_path / "fast.parquet"
    result = run("features", "training-frame", "--entity-file", str(entity_file), "--out", str(fast),
                 "--engine", "pandas")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(fast), frame, check_dtype=False)


def test_usage_errors_exit_with_2(cli_env):
    assert run("features", "build").exit_code == 2
    assert run("features", "build", "--as-of", "2026-04-01", "--start", "2026-03-01").exit_code == 2
    assert run("features", "build", "--start", "2026-03-01", "--end", "2026-04-01", "--every", "weekly").exit_code == 2
    assert run("features", "build", "--start", "2026-04-01", "--end", "2026-03-01").exit_code == 2
    assert run("features", "build", "--as-of", "yesterday-ish").exit_code == 2


def test_materialize_before_build_fails_with_advice(cli_env):
    result = run("features", "materialize")
    assert result.exit_code == 1
    assert "tenure features build" in result.output
