"""What the CLI shows: numbers for people, no third-party noise, ``--quiet``, ``--json`` for scripts.

The noise tests run the real console script in a child process: warnings printed at import
time, by MLflow's own log handler or by Feast's ``print`` only show up there (pytest's own
warning capture would hide them in-process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tenure.pipelines.console import format_metric, format_number, format_probability, format_reason


def _workspace_config(root: Path, **extra) -> Path:
    """A settings file that puts every store under ``root`` (small LightGBM for speed)."""
    overrides = {
        "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                  "exports_dir": str(root / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                   "artifact_root": str(root / "mlruns" / "artifacts")},
        "serving": {"model_cache_dir": str(root / "data" / "model_cache")},
        "feast": {"repo_path": str(root / "feature_repo")},
        "monitoring": {"alert_sinks": [{"kind": "jsonl", "path": str(root / "reports" / "alerts.jsonl")}]},
        **extra,
    }
    path = root / "tenure.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path


def tenure(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``tenure --config CONFIG ARGS`` as a user would (a fresh interpreter), capturing both streams."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TENURE_") and k not in ("PYTHONWARNINGS", "MLFLOW_CONFIGURE_LOGGING")}
    env["COLUMNS"] = "80"  # what rich would assume for a pipe: piped tables must not be cut to it
    return subprocess.run([sys.executable, "-m", "tenure.pipelines.cli", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


# --- numbers for people ----------------------------------------------------------------------------


def test_a_reason_reads_like_a_sentence() -> None:
    reason = {"feature": "days_since_last_activity", "value": 48.121122685185185, "contribution": 0.4213}
    assert format_reason(reason) == "days since last activity: 48"
    assert format_reason(reason, contribution=True) == "days since last activity: 48 (+0.42)"
    assert format_reason({"feature": "channel", "value": "paid_social", "contribution": -0.1}) == "channel: paid_social"
    assert format_reason({"feature": "avg_basket_value_90d", "value": None}) == "avg basket value 90d: missing"


@pytest.mark.parametrize(
    ("value", "text"),
    [(48.12, "48"), (1234.5, "1,234"), (3.47, "3.5"), (0.5312, "0.53"), (0.00421, "0.0042"), (12.0, "12"),
     (7, "7"), (float("nan"), "missing"), (True, "True")],
)
def test_numbers_are_rounded_for_people(value, text) -> None:
    assert format_number(value) == text


def test_probabilities_and_metrics() -> None:
    assert format_probability(0.5312) == "0.53"
    assert format_metric(0.81234) == "0.812"
    assert format_metric(None) == format_metric(float("nan")) == "-"


# --- noise and verbosity ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config whose raw folder holds a small generated shop (not ingested yet)."""
    config = _workspace_config(tmp_path_factory.mktemp("generated"))
    result = tenure(config, "generate", "--customers", "60", "--items", "20", "--days", "20", "--seed", "5")
    assert result.returncode == 0, result.stderr
    return config


def test_ingest_prints_no_warnings_and_no_third_party_logs(generated: Path) -> None:
    raw = generated.parent / "data" / "raw"
    result = tenure(generated, "ingest", "--from-dir", str(raw))
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "INFO" not in result.stderr, result.stderr
    assert "stored customers: 60 inserted" in result.stderr  # our own progress line, on stderr
    assert "accepted" in result.stdout and "stored customers" not in result.stdout


def test_quiet_prints_results_only(generated: Path) -> None:
    raw = generated.parent / "data" / "raw"
    result = tenure(generated, "--quiet", "ingest", "--from-dir", str(raw))  # again: all rows are duplicates
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert "accepted" in result.stdout and "rows/s" in result.stdout


# --- --json and piped tables on a trained workspace ------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A small workspace prepared through the CLI, and the output of ``tenure train churn --promote --json``."""
    root = tmp_path_factory.mktemp("cli_json")
    config = _workspace_config(root, churn={"n_estimators": 40, "early_stopping_rounds": 10})
    for step in (("generate", "--customers", "400", "--items", "40", "--days", "150", "--seed", "5",
                  "--start", "2026-01-01"),
                 ("ingest", "--from-dir", str(root / "data" / "raw")),
                 ("features", "build", "--start", "2026-01-15", "--end", "2026-05-30", "--every", "7d"),
                 ("features", "apply")):
        done = tenure(config, "--quiet", *step)
        assert done.returncode == 0, done.stderr
    return config, tenure(config, "train", "churn", "--promote", "--json")


def test_train_churn_json_is_one_document_on_stdout(trained) -> None:
    _, result = trained
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)  # nothing but the document on stdout
    assert {"model", "source", "name", "run_id", "version", "split_rows", "metrics", "tuning", "gate", "chosen",
            "validation", "calibration", "segments"} <= set(document)
    assert document["chosen"] in document["validation"] and "logistic" in document["metrics"]
    assert {"before", "after", "why", "method"} <= set(document["calibration"])
    assert document["model"] == "churn" and document["version"] == "1"
    assert 0.0 <= document["metrics"]["tenure"]["roc_auc"] <= 1.0
    # the gate judged the first model against its baselines (400 customers: either verdict is honest)
    gate = document["gate"]
    assert gate["promoted"] is (gate["reason"].startswith("no champion yet; beats its baselines")), gate
    assert "Warning" not in result.stderr and "INFO" not in result.stderr, result.stderr


def test_models_list_json_and_a_piped_table(trained) -> None:
    config, _ = trained
    result = tenure(config, "models", "list", "churn", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["model"] == "churn" and document["name"] == "tenure-churn"
    (version,) = document["versions"]
    assert {"version", "aliases", "created_at", "run_id", "metrics", "gate", "candidate", "segments"} <= set(version)
    assert version["aliases"] in (["champion"], ["challenger"]) and "test_roc_auc" in version["metrics"]

    table = tenure(config, "models", "list", "churn")  # stdout is a pipe, COLUMNS=80
    assert table.returncode == 0, table.stderr
    assert "test_roc_auc" in table.stdout and "…" not in table.stdout, table.stdout
    assert "baselines" in table.stdout and version["gate"].split(":")[0] in table.stdout
