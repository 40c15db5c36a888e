"""A complete small workspace for service tests and benchmarks: data, features online, both champions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tenure.settings import Settings, _deep_merge, load_settings

API_KEY = "test-key-0123456789"


def serving_settings(root: Path, **overrides) -> Settings:
    """Settings with every store under ``root`` and one API key."""
    base = {
        "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"), "exports_dir": str(root / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                   "artifact_root": str(root / "mlruns" / "artifacts")},
        "churn": {"n_estimators": 60, "early_stopping_rounds": 10},
        "recommender": {"iterations": 5, "factors": 16},
        "serving": {"api_keys": [API_KEY], "model_cache_dir": str(root / "data" / "model_cache"),
                    "reload_interval_s": 1.0, "prediction_log_flush_s": 0.2},
    }
    return load_settings(None, **_deep_merge(base, overrides))


def build_workspace(settings: Settings, n_customers: int = 600, n_items: int = 60, days: int = 150, seed: int = 5):
    """Simulate, ingest, build + apply + materialize features, train and promote both models."""
    shop = build_data(settings, n_customers=n_customers, n_items=n_items, days=days, seed=seed)
    train_models(settings)
    return shop


def build_data(settings: Settings, n_customers: int = 600, n_items: int = 60, days: int = 150, seed: int = 5):
    """Simulate and ingest a shop, build feature tables, ``feast apply`` and materialize; returns the shop."""
    from feature_repo.store import apply_definitions, materialize
    from features.ingest import IngestRun
    from features.simulator import simulate_shop
    from features.snapshots import build_feature_tables, snapshot_times

    shop = simulate_shop(n_customers=n_customers, n_items=n_items, days=days, seed=seed, start="2026-01-01")
    with IngestRun(settings) as run:
        run.ingest_frame("customers", shop.customers, source="sim customers")
        run.ingest_frame("items", shop.items, source="sim items")
        run.ingest_frame("events", shop.events, source="sim events")
    end = shop.events["event_at"].max()
    build_feature_tables(settings, snapshot_times(pd.Timestamp("2026-01-15", tz="UTC"), end, every_days=7) + [end])
    apply_definitions(settings)
    materialize(settings)
    return shop


def train_models(settings: Settings) -> None:
    """Train both models on the ingested data and promote them to ``champion``."""
    from training.churn_pipeline import train_churn
    from training.gate import promote
    from training.recommender_pipeline import train_recommender

    train_churn(settings, promote=True)
    train_recommender(settings, num_threads=1)
    promote(settings, "recommender")


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a YAML file for the service process (``tenure --config FILE serve``), keys included."""
    import yaml

    values = settings.model_dump(mode="json")
    values["serving"]["api_keys"] = [k.get_secret_value() for k in settings.serving.api_keys]
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """``tenure --config FILE serve`` as a child process on a free port of 127.0.0.1."""

    def __init__(self, config: Path, log_path: Path, port: int | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> ServiceProcess:
        import os
        import subprocess
        import sys

        repo = Path(__file__).resolve().parents[2]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TENURE_", "BENTOML_HOME"))}
        env["BENTOML_DO_NOT_TRACK"] = "True"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "--config", str(self.config), "serve",
                 "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float = 150.0) -> None:
        """Poll ``/readyz`` until 200; raise with the log tail when the process dies or time runs out."""
        self._wait("/readyz", timeout_s)

    def wait_alive(self, timeout_s: float = 150.0) -> None:
        """Poll ``/healthz`` until 200 (the service answers, ready or not)."""
        self._wait("/healthz", timeout_s)

    def _wait(self, route: str, timeout_s: float) -> None:
        import time

        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}{route}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.url}{route} not 200 after {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of the service log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process group (the CLI, the BentoML arbiter and its workers); SIGKILL after 20 s."""
        import os
        import signal
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
