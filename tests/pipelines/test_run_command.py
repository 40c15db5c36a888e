"""``tenure run``: exit codes, the failure message, and the recorded attempt."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from tenure.pipelines.cli import app
from tenure.pipelines.steps import StepRunner

from .conftest import isolated_overrides


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "tenure.yaml"
    path.write_text(yaml.safe_dump(isolated_overrides(tmp_path)))
    return path


def test_ingest_step_without_new_files_uses_tables_ingested_by_hand(tmp_path: Path) -> None:
    """`tenure ingest customers FILE` then `tenure run all`: the run goes on with the stored tables."""
    config = _config(tmp_path)
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,signup_at,country,acquisition_channel,consent_personalization\nc1,2026-01-01T00:00:00Z,DE,web,true\n")
    assert CliRunner().invoke(app, ["--config", str(config), "ingest", "customers", str(customers)]).exit_code == 0
    result = CliRunner().invoke(app, ["--config", str(config), "run", "ingest"])
    assert result.exit_code == 0, result.output
    assert "stored tables are used" in " ".join(result.output.split())


def test_unknown_step_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--config", str(_config(tmp_path)), "run", "deploy"])
    assert result.exit_code == 2
    assert "unknown step" in " ".join(result.output.split())


def test_failed_step_exits_1_and_is_recorded(tmp_path: Path, settings) -> None:
    config = _config(tmp_path)
    result = CliRunner().invoke(app, ["--config", str(config), "run", "ingest"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())  # rich wraps long lines
    assert "step 'ingest' failed" in text and "run the same command again" in text
    state = Path(yaml.safe_load(config.read_text())["paths"]["data_dir"]) / "state"
    history = StepRunner(state).history()
    assert [(h["step"], h["status"]) for h in history] == [("ingest", "failed")]
    assert "nothing to ingest" in history[0]["error"]
    status = CliRunner().invoke(app, ["--config", str(config), "run", "--status"])
    assert status.exit_code == 0 and "nothing to ingest" in " ".join(status.output.split())
