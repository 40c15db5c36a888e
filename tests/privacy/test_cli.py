"""The privacy commands as a user runs them: tenure consent, tenure forget (--verify), tenure export customer."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from tenure.pipelines.cli import app


def _run(config, *args):
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result


def test_consent_forget_verify_and_export_from_the_command_line(make_settings, shop_workspace, tmp_path):
    settings = make_settings()
    shop = shop_workspace(settings)
    config = tmp_path / "tenure.yaml"
    config.write_text(yaml.safe_dump({"paths": {k: str(getattr(settings.paths, k)) for k in
                                                ("data_dir", "reports_dir", "exports_dir")},
                                      "mlflow": {"tracking_uri": settings.mlflow.tracking_uri,
                                                 "artifact_root": str(settings.mlflow.artifact_root)},
                                      "serving": {"model_cache_dir": str(settings.serving.model_cache_dir)}}))
    cid, other = (str(c) for c in shop.events["customer_id"].value_counts().index[:2])

    changed = _run(config, "consent", "set", cid, "--scope", "marketing", "--withdraw", "--channel", "email", "--json")
    assert changed.exit_code == 0, changed.output
    assert json.loads(changed.stdout)["consent"] == {"marketing": False}
    file = tmp_path / "consent.csv"
    file.write_text(f"customer_id,scope,granted,event_at,channel\n{cid},profiling,no,2026-02-01T00:00:00Z,app\n")
    assert _run(config, "consent", "ingest", str(file)).exit_code == 0
    shown = json.loads(_run(config, "consent", "show", cid, "--json").stdout)
    assert shown["consent"] == {"marketing": False, "profiling": False} and len(shown["history"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(f"customer_id,scope,granted,event_at\n{cid},newsletter,no,2026-02-01T00:00:00Z\n")
    refused = _run(config, "consent", "ingest", str(bad))
    assert refused.exit_code == 1 and "row 1" in refused.output and "newsletter" in refused.output

    (settings.paths.raw_dir / "consent-2026-02.csv").write_text(
        f"customer_id,scope,status,at,channel,event_type\n{other},marketing,withdrawn,2026-02-02T00:00:00Z,web,consent\n")
    ingested = _run(config, "ingest", "--from-dir", str(settings.paths.raw_dir), "--allow-rejects")
    assert ingested.exit_code == 0, ingested.output
    assert json.loads(_run(config, "consent", "show", other, "--json").stdout)["consent"] == {"marketing": False}

    exported = json.loads(_run(config, "export", "customer", cid).stdout)
    assert {"tables", "inputs", "feature_tables", "consent"} <= set(exported["stores"])
    assert _run(config, "forget", cid, "--verify").exit_code == 1  # held: not clean

    erased = _run(config, "forget", cid, "--json")
    assert erased.exit_code == 0, erased.output
    receipt = json.loads(erased.stdout)
    assert receipt["verification"]["clean"] and cid not in erased.stdout
    verified = _run(config, "forget", cid, "--verify", "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["clean"]
    assert json.loads(_run(config, "export", "customer", cid).stdout)["stores"] == {}
    assert "tables" in json.loads(_run(config, "export", "customer", other).stdout)["stores"]
    assert _run(config, "forget").exit_code == 2  # no id: a usage error
