"""``tenure monitor run|watch``: usage errors, a pass without a champion, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tenure.pipelines.cli import app


def _config(tmp_path: Path) -> Path:
    overrides = {
        "paths": {"data_dir": str(tmp_path / "data"), "reports_dir": str(tmp_path / "reports"),
                  "exports_dir": str(tmp_path / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                   "artifact_root": str(tmp_path / "mlruns" / "artifacts")},
        "serving": {"model_cache_dir": str(tmp_path / "data" / "model_cache")},
        "monitoring": {"alert_sinks": [{"kind": "jsonl", "path": str(tmp_path / "reports" / "alerts.jsonl")}]},
    }
    path = tmp_path / "tenure.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path


@pytest.mark.parametrize("args", [["--mode", "sideways"], ["--window", "7 weeks"]])
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["--config", str(_config(tmp_path)), "monitor", "run", *args])
    assert result.exit_code == 2, result.output


def test_run_without_a_champion_says_so_and_succeeds(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--config", str(_config(tmp_path)), "monitor", "run", "--no-retrain"])
    assert result.exit_code == 0, result.output
    assert "no churn champion" in result.output


def test_run_json_is_one_document_on_stdout(tmp_path: Path) -> None:
    import json

    result = CliRunner().invoke(app, ["--config", str(_config(tmp_path)), "monitor", "run", "--no-retrain", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {"checked_at", "mode", "model_version", "verdict", "alerts", "report_paths", "retrain"} <= set(document)
    assert document["model_version"] is None and "no churn champion" in document["verdict"]


def test_watch_finishes_the_pass_in_progress_then_stops_on_sigterm(tmp_path: Path, monkeypatch) -> None:
    from tenure.monitoring import MonitoringResult
    from tenure.pipelines.commands import monitor

    passes = []

    def one_pass(settings, window, dry_run, mode, retrain):
        passes.append(mode)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-pass: the pass still completes
        return MonitoringResult(checked_at="now", mode=mode, model_version="3", verdict="healthy")

    monkeypatch.setattr(monitor, "_pass", one_pass)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = CliRunner().invoke(app, ["--config", str(_config(tmp_path)), "monitor", "watch", "--every", "6h",
                                          "--mode", "snapshot"])
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert result.exit_code == 0, result.output
    assert passes == ["snapshot"]
    assert "healthy" in result.output
    assert "stopped after 1 pass" in result.output
