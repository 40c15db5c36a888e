"""MLflow's tracking server store and model registry on the real PostgreSQL server (127.0.0.1:5432, user
postgres): a churn model trained, logged, registered, promoted and loaded back, all through PostgreSQL.

Each test gets a database of its own (created and dropped here), so MLflow's schema migration runs on
an empty database as it would on a new production server."""

from __future__ import annotations

import socket
import uuid

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SERVER = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def mlflow_database():
    """The SQLAlchemy URL of a fresh PostgreSQL database, dropped after the test."""
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1.0).close()
    except OSError:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import psycopg

    name = f"tenure_mlflow_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_churn_model_round_trip_through_mlflow_on_postgres(make_settings, mlflow_database, tmp_path):
    import psycopg

    from tenure.feature_repo.store import apply_definitions
    from tenure.features.ingest import IngestRun
    from tenure.features.simulator import simulate_shop
    from tenure.features.snapshots import build_feature_tables, snapshot_times
    from tenure.registry.champion import load_champion
    from tenure.registry.models import get_alias_version
    from tenure.training.churn_pipeline import train_churn
    from tenure.training.gate import promote

    uri, database = mlflow_database
    settings = make_settings(mlflow={"tracking_uri": uri, "artifact_root": str(tmp_path / "artifacts")},
                             churn={"candidates": ["lightgbm"], "n_estimators": 40, "early_stopping_rounds": 10})
    shop = simulate_shop(n_customers=500, n_items=40, days=150, seed=5, start="2026-01-01")
    with IngestRun(settings) as run:
        for table in ("customers", "items", "events"):
            run.ingest_frame(table, getattr(shop, table), source=f"sim {table}")
    import pandas as pd

    build_feature_tables(settings, snapshot_times(pd.Timestamp("2026-01-15", tz="UTC"), shop.events["event_at"].max(), 7))
    apply_definitions(settings)

    result = train_churn(settings)
    # the gate's verdict on this small shop is not what is tested here: its decision is, recorded in PostgreSQL
    decision = promote(settings, "churn", force_reason="test of the PostgreSQL registry")
    assert decision.promoted and decision.forced
    assert get_alias_version(settings, "churn", "champion") == result.version

    # what MLflow wrote is in PostgreSQL, not in a local file
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as conn:
        runs = conn.execute("SELECT run_uuid FROM runs").fetchall()
        metric = conn.execute("SELECT value FROM latest_metrics WHERE run_uuid = %s AND key = 'test_roc_auc'",
                              (result.run_id,)).fetchone()
        aliases = conn.execute("SELECT alias, version FROM registered_model_aliases").fetchall()
    assert [r[0] for r in runs] == [result.run_id]
    assert metric is not None and metric[0] == pytest.approx(result.metrics["tenure"]["roc_auc"])
    assert ("champion", int(result.version)) in aliases
    assert not list(tmp_path.rglob("mlflow.db"))  # no SQLite store on the side

    # a fresh loader (as the service does) gets the champion through the PostgreSQL registry
    champion = load_champion(settings, "churn")
    assert champion.version == result.version
    assert champion.runtime.predict_proba is not None
