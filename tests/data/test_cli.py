"""`tenure generate` and `tenure ingest` through the real CLI app: exit codes and messages."""

from __future__ import annotations

import pandas as pd
import pytest


def test_generate_then_ingest(cli, tmp_path):
    result = cli("generate", "--customers", "60", "--items", "20", "--days", "15", "--seed", "4", "--format", "csv")
    assert result.exit_code == 0, result.output
    raw = tmp_path / "data" / "raw"
    # the three tables, and beside them only the simulator's ground-truth files (never ingested)
    names = {p.name for p in raw.iterdir()}
    assert {"customers.csv", "items.csv", "events.csv"} <= names
    assert all(name.endswith("_truth.json") for name in names - {"customers.csv", "items.csv", "events.csv"}), names
    assert "tenure ingest --from-dir" in result.output
    result = cli("ingest", "--from-dir", str(raw))
    assert result.exit_code == 0, result.output
    assert "accepted" in result.output and "rows/s" in result.output
    again = cli("ingest", "--from-dir", str(raw))
    assert again.exit_code == 0
    n_events = len(pd.read_csv(raw / "events.csv"))
    assert f"{n_events:,}" in again.output  # skipped duplicates reported


def test_rejects_exit_1_unless_allowed(cli, tmp_path):
    assert cli("generate", "--customers", "30", "--items", "10", "--days", "10", "--out", str(tmp_path / "g")).exit_code == 0
    assert cli("ingest", "--from-dir", str(tmp_path / "g")).exit_code == 0
    events = pd.read_parquet(tmp_path / "g" / "events.parquet").head(5).copy()
    events["event_id"] = "new-" + events["event_id"]
    events.loc[events.index[0], "event_type"] = "teleport"
    events["event_at"] = events["event_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    bad = tmp_path / "bad.csv"
    events.to_csv(bad, index=False)
    result = cli("ingest", "events", str(bad))
    assert result.exit_code == 1
    assert "1 row(s) rejected" in result.output and "--allow-rejects" in result.output
    assert "unknown event_type" in result.output
    rejects = list((tmp_path / "data" / "rejects").glob("rejects-*.csv"))
    assert len(rejects) == 1
    events["event_id"] = "again-" + events["event_id"]
    events.to_csv(bad, index=False)
    allowed = cli("ingest", "events", str(bad), "--allow-rejects")
    assert allowed.exit_code == 0, allowed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "say what to ingest"),
        (("events",), "give the file to ingest"),
        (("orders", "x.csv"), "TABLE must be one of"),
        (("events", "nope.csv"), "does not exist"),
        (("--source", "telco"), "needs --path"),
        (("--source", "kaggle", "--path", "."), "--source must be one of"),
        (("--event-log", "--from-dir", "."), "give only one of"),
        (("items", "pyproject.toml", "--label-column", "x"), "--label-column applies"),
    ],
)
def test_usage_errors_exit_2(cli, args, message):
    result = cli("ingest", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_generate_usage_errors(cli):
    assert cli("generate", "--days", "10", "--drift-at", "10").exit_code == 2
    assert cli("generate", "--format", "xlsx").exit_code == 2
    assert cli("generate", "--customers", "0").exit_code == 2


def test_snapshot_with_label_column(cli, tmp_path):
    path = tmp_path / "snapshot.csv"
    pd.DataFrame({"customer_id": ["a", "b"], "Churn": ["Yes", "No"], "plan": ["x", "y"]}).to_csv(path, index=False)
    result = cli("ingest", "customers", str(path), "--label-column", "Churn")
    assert result.exit_code == 0, result.output
    from tenure.features.tables import read_customers
    from tenure.settings import load_settings

    settings = load_settings(None, paths={"data_dir": str(tmp_path / "data")})
    stored = read_customers(settings).set_index("customer_id")
    assert stored.loc["a", "churned"] == True and stored.loc["b", "churned"] == False


def test_event_log_with_nothing_there(cli):
    result = cli("ingest", "--event-log")
    assert result.exit_code == 0
    assert "nothing to ingest" in " ".join(result.output.split())
