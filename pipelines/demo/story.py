"""The demo story: the whole loop on a generated shop, from raw files to a retrained, hot-reloaded model.

1. generate a shop whose last days hold a drift episode, and hold those days back;
2. ingest, build and materialize features, train both models and promote them;
3. start the service (``tenure serve`` on a free port), call every endpoint, show an
   event changing a score;
4. a monitoring pass before the drift (a quiet week: no alert), then replay the held-back
   days through ``/events`` and ``/churn-score`` (the prediction log fills);
5. the nightly job: ingest the new events, rebuild the feature snapshot, run monitoring on it:
   the drift raises an alert, retraining runs, the gate decides, the service hot-reloads the
   new champion;
6. batch scores and an audience file; a summary (``reports_dir/demo_summary.json``).

Library code: it reports progress through a ``say`` callback (the CLI prints, tests log).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.steps import atomic_write_text
from tenure.settings import Settings

logger = logging.getLogger(__name__)

DEMO_MARKER = ".tenure-demo"
SUMMARY_FILE = "demo_summary.json"


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Size and shape of the demo shop and its replay."""

    customers: int = 3000
    items: int = 300
    days: int = 180
    seed: int = 42
    start: str = "2026-01-01"
    replay_days: int = 8
    drift_days_before_end: int = 7  # a full week of the changed shop: what monitoring is tuned to catch
    live_customers: int = 300
    customers_per_request: int = 20
    port: int | None = None
    keep_serving: bool = False
    ready_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.customers < 50:
            raise ValueError(f"the demo needs at least 50 customers, got {self.customers}")
        if self.items < 10:
            raise ValueError(f"the demo needs at least 10 items, got {self.items}")
        if not 1 <= self.replay_days < self.days // 2:
            raise ValueError(f"replay_days must be between 1 and half the simulated days ({self.days // 2}), "
                             f"got {self.replay_days}")
        if not 1 <= self.drift_days_before_end <= self.replay_days:
            raise ValueError(f"the drift must start inside the replayed days (1..{self.replay_days} days before "
                             f"the end), got {self.drift_days_before_end}")


SMALL = DemoConfig(customers=1000, items=80, days=150, live_customers=100)
DEFAULT = DemoConfig()

Say = Callable[[str, str], None]
"""``say(kind, text)``: kind is ``stage``, ``info``, ``ok``, ``warn`` or ``result``."""


def _log_say(kind: str, text: str) -> None:
    logger.info("[%s] %s", kind, text)


class DemoError(RuntimeError):
    """A demo stage failed; ``stage`` names it (the summary records it too)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"demo stage '{stage}' failed: {message}")
        self.stage = stage


# --------------------------------------------------------------------------------------------
# workspace


def _local_mlflow_paths(settings: Settings) -> list[Path]:
    paths = []
    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        paths.append(Path(uri.removeprefix("sqlite:///")))
    paths.append(Path(settings.mlflow.artifact_root))
    return paths


def prepare_workspace(settings: Settings, reset: bool = True) -> None:
    """Make sure the demo starts from empty stores.

    Stores left by an earlier demo (marked with ``data_dir/.tenure-demo``) are removed
    when ``reset``; anything else already there stops the demo, so it never deletes
    data it did not create.
    """
    data_dir = Path(settings.paths.data_dir)
    marker = data_dir / DEMO_MARKER
    occupied = data_dir.exists() and any(p.name != DEMO_MARKER for p in data_dir.iterdir())
    if occupied and not marker.exists():
        raise DemoError(
            "prepare",
            f"{data_dir} already holds data that the demo did not create; point the demo elsewhere "
            f"(e.g. TENURE_PATHS__DATA_DIR=demo-data) or move that folder away",
        )
    if marker.exists() and reset:
        targets = [data_dir, Path(settings.paths.reports_dir), Path(settings.paths.exports_dir),
                   *_local_mlflow_paths(settings)]
        for target in targets:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        model_cache = Path(settings.serving.model_cache_dir)
        if model_cache.is_dir():
            shutil.rmtree(model_cache)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / DEMO_MARKER).write_text("created by `tenure demo`; the next demo may delete this folder\n")


# --------------------------------------------------------------------------------------------
# data


@dataclasses.dataclass
class DemoData:
    """The generated shop split into history (ingested) and replay (sent to the service)."""

    replay_events: Any  # DataFrame, canonical events of the held-back days
    replay_start: Any  # pd.Timestamp
    drift_at: Any  # pd.Timestamp
    end: Any  # pd.Timestamp
    counts: dict[str, int]


def generate_demo_data(settings: Settings, config: DemoConfig) -> DemoData:
    """Simulate the shop with a drift episode and write everything but the replay days under ``raw_dir``."""
    import pandas as pd

    from features.simulator import simulate_shop

    start = pd.Timestamp(config.start, tz="UTC")
    end = start + pd.Timedelta(days=config.days)
    drift_at = end - pd.Timedelta(days=config.drift_days_before_end)
    replay_start = end - pd.Timedelta(days=config.replay_days)
    shop = simulate_shop(config.customers, config.items, config.days, config.seed, config.start,
                         drift_at=config.days - config.drift_days_before_end)
    events = shop.events
    at = pd.to_datetime(events["event_at"], utc=True)
    history, replay = events[at < replay_start], events[at >= replay_start]
    write_raw(settings, shop.customers, shop.items, history)
    return DemoData(
        replay_events=replay.sort_values("event_at", kind="stable").reset_index(drop=True),
        replay_start=replay_start,
        drift_at=drift_at,
        end=end,
        counts={"customers": len(shop.customers), "items": len(shop.items), "history_events": len(history),
                "replay_events": len(replay)},
    )


def write_raw(settings: Settings, customers: Any, items: Any, events: Any) -> None:
    """Write the canonical frames as the raw files ``tenure ingest`` reads."""
    writer = None
    try:
        from features.simulator import write_shop  # the data room's writer, when it has one

        writer = write_shop
    except ImportError:
        pass
    raw = settings.paths.raw_dir
    if writer is not None:
        from features.simulator import Shop

        writer(Shop(customers=customers, items=items, events=events), raw)
        return
    raw.mkdir(parents=True, exist_ok=True)
    customers.to_parquet(raw / "customers.parquet", index=False)
    items.to_parquet(raw / "items.parquet", index=False)
    events.to_parquet(raw / "events.parquet", index=False)


# --------------------------------------------------------------------------------------------
# the service


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def absolute_paths(values: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Settings values (``model_dump(mode="json")``) with relative store paths made absolute.

    The service process runs with the repository as its working directory, so relative
    paths would point somewhere else than for the demo process.
    """
    base = (base or Path.cwd()).resolve()

    def fix(value: str) -> str:
        return value if Path(value).is_absolute() else str(base / value)

    for key in ("data_dir", "reports_dir", "exports_dir"):
        values["paths"][key] = fix(values["paths"][key])
    values["mlflow"]["artifact_root"] = fix(values["mlflow"]["artifact_root"])
    uri = values["mlflow"]["tracking_uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        values["mlflow"]["tracking_uri"] = "sqlite:///" + fix(uri.removeprefix("sqlite:///"))
    values["serving"]["model_cache_dir"] = fix(values["serving"]["model_cache_dir"])
    for sink in values["monitoring"]["alert_sinks"]:
        if sink.get("path"):
            sink["path"] = fix(sink["path"])
    return values


def write_service_config(settings: Settings, path: Path, api_key: str) -> Path:
    """The effective settings as a YAML file for the service subprocess (mode 0600: it holds the key)."""
    import yaml

    values = absolute_paths(settings.model_dump(mode="json"))
    values["serving"]["api_keys"] = [api_key] + [k.get_secret_value() for k in settings.serving.api_keys
                                                 if k.get_secret_value() != api_key]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
    os.chmod(path, 0o600)
    return path


class ServiceProcess:
    """``tenure serve`` as a child process on 127.0.0.1, with its log under ``reports_dir``."""

    def __init__(self, config_file: Path, port: int, log_path: Path, host: str = "127.0.0.1",
                 tracking_uri: str | None = None) -> None:
        self.config_file = config_file
        self.tracking_uri = tracking_uri
        self.port = port
        self.host = host
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the service."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start the process (returns at once; see :meth:`wait_ready`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pipelines.cli", "--config", str(self.config_file), "serve",
                   "--host", self.host, "--port", str(self.port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
        if self.tracking_uri:  # MLflow calls that do not take the URI explicitly use the same store
            env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = self.tracking_uri
        env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed here after Popen
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        log.close()
        logger.info("started %s (pid %d)", " ".join(command), self.process.pid)

    def wait_ready(self, timeout_s: float) -> float:
        """Poll ``/readyz`` until it answers 200; returns the seconds waited."""
        import httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the service exited with code {self.process.returncode}; "
                                   f"see {self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service was not ready after {timeout_s:.0f} s; see {self.log_path}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the service log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL after 15 s)."""
        import signal

        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# HTTP helpers


def event_records(frame: Any) -> list[dict[str, Any]]:
    """Canonical events as JSON-ready dicts (timestamps ISO 8601, missing values left out)."""
    import pandas as pd

    records = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
                continue
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif hasattr(value, "item"):  # numpy scalars
                value = value.item()
            clean[key] = value
        records.append(clean)
    return records


def _results(body: Any) -> list[dict[str, Any]]:
    """The per-customer list of a /churn-score answer (``results``, ``scores`` or a bare list)."""
    if isinstance(body, list):
        return body
    for key in ("results", "scores", "customers", "items"):
        if isinstance(body, dict) and isinstance(body.get(key), list):
            return body[key]
    return [body] if isinstance(body, dict) else []


def churn_score(client: Any, customer_ids: Sequence[str], batch: int = 100) -> list[dict[str, Any]]:
    """POST /churn-score (in batches of at most ``batch`` customers) and return the per-customer results."""
    results: list[dict[str, Any]] = []
    ids = list(customer_ids)
    for start in range(0, len(ids), batch):
        response = client.post("/churn-score", json={"customer_ids": ids[start : start + batch]})
        if response.status_code >= 400:
            raise RuntimeError(f"/churn-score answered {response.status_code}: {response.text[:500]}")
        results.extend(_results(response.json()))
    return results


def customer_batches(records: list[dict[str, Any]], max_events: int, max_customers: int) -> Iterator[list[dict[str, Any]]]:
    """Split events into requests that keep each customer's events together (in time order).

    The service refreshes the online features of every customer in a request once, so a
    customer split over two requests would cost two refreshes; ``max_customers`` bounds the
    refreshes (the work) of one request, ``max_events`` its size.
    """
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_customer.setdefault(str(record["customer_id"]), []).append(record)
    batch: list[dict[str, Any]] = []
    customers = 0
    for group in by_customer.values():
        group.sort(key=lambda r: r["event_at"])
        if batch and (len(batch) + len(group) > max_events or customers >= max_customers):
            yield batch
            batch, customers = [], 0
        batch.extend(group)  # a customer with more than max_events events gets requests of their own
        customers += 1
        while len(batch) > max_events:
            yield batch[:max_events]
            batch = batch[max_events:]
    if batch:
        yield batch


def post_events(client: Any, records: list[dict[str, Any]], max_events: int, max_customers: int = 100) -> int:
    """POST /events, customers kept together (see :func:`customer_batches`); returns how many were sent."""
    sent = 0
    for chunk in customer_batches(records, max_events, max_customers):
        response = client.post("/events", json={"events": chunk})
        if response.status_code >= 400:
            raise RuntimeError(f"/events answered {response.status_code}: {response.text[:500]}")
        sent += len(chunk)
    return sent


# --------------------------------------------------------------------------------------------
# the story


@dataclasses.dataclass
class DemoRun:
    """Mutable state of one demo run; ``summary`` becomes ``demo_summary.json``."""

    settings: Settings
    config: DemoConfig
    say: Say
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    service: ServiceProcess | None = None

    @contextmanager
    def stage(self, name: str, title: str) -> Iterator[None]:
        """Time a stage, announce it, and record a failure in the summary."""
        self.say("stage", title)
        t0 = time.perf_counter()
        try:
            yield
        except DemoError:
            raise
        except Exception as exc:
            self.summary.setdefault("failed_stage", {"stage": name, "error": f"{type(exc).__name__}: {exc}"})
            raise DemoError(name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 2)


def summary_path(settings: Settings) -> Path:
    """Where the demo writes its machine-readable summary."""
    return Path(settings.paths.reports_dir) / SUMMARY_FILE


_SHOWN_METRICS = ("roc_auc", "pr_auc", "lift_top10", "ece", "ndcg_at_k", "recall_at_k", "coverage_at_k")


def _metric_lines(train_details: dict[str, Any]) -> list[str]:
    """Readable "model vs baselines" lines from the train step's details (headline metrics only)."""
    lines = []
    for kind, info in train_details.items():
        result = info.get("result", {}) if isinstance(info, dict) else {}
        metrics = result.get("metrics") if isinstance(result, dict) else None
        if isinstance(metrics, dict) and metrics and all(isinstance(v, dict) for v in metrics.values()):
            for model, values in metrics.items():
                shown = ", ".join(f"{k} {values[k]:.3f}" for k in _SHOWN_METRICS if isinstance(values.get(k), float))
                lines.append(f"{kind} {model}: {shown}")
        elif isinstance(metrics, dict):
            shown = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if isinstance(v, float))
            lines.append(f"{kind}: {shown}")
        gate = info.get("gate") if isinstance(info, dict) else None
        if gate:
            lines.append(f"{kind} gate: version {gate.get('challenger_version')} "
                         f"{'promoted' if gate.get('promoted') else 'kept out'} ({gate.get('reason')})")
    return lines


def run_demo(settings: Settings, config: DemoConfig = DEFAULT, say: Say = _log_say, reset: bool = True) -> dict[str, Any]:
    """Run the demo story end to end and write ``reports_dir/demo_summary.json``.

    Returns
    -------
    dict
        The summary (also on disk). On failure the summary so far is written, with
        ``failed_stage``, and :class:`DemoError` is raised.
    """
    run = DemoRun(settings=settings, config=config, say=say)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    run.summary.update({
        "started_at": started.isoformat(timespec="seconds"),
        "config": dataclasses.asdict(config),
        "claims": {},
    })
    failed = True
    try:
        _story(run)
        failed = False
    finally:
        run.summary["timings_s"] = run.timings
        run.summary["wall_s"] = round(time.perf_counter() - t0, 1)
        run.summary["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        path = summary_path(settings)
        atomic_write_text(path, json.dumps(run.summary, indent=2, sort_keys=False, default=str))
        # a failed run always stops its service; a finished one unless asked to keep it
        if run.service is not None and (failed or not config.keep_serving):
            run.service.stop()
    return run.summary


def _story(run: DemoRun) -> ServiceProcess | None:
    from pipelines.flows import run_step

    settings, config, say, summary = run.settings, run.config, run.say, run.summary
    claims = summary["claims"]

    with run.stage("prepare", "Preparing an empty workspace"):
        prepare_workspace(settings)

    with run.stage("generate", f"Generating a shop: {config.customers:,} customers, {config.items:,} items, "
                               f"{config.days} days, drift {config.drift_days_before_end} days before the end"):
        data = generate_demo_data(settings, config)
        summary["data"] = {**data.counts, "replay_start": str(data.replay_start), "drift_at": str(data.drift_at),
                           "end": str(data.end), "raw_dir": str(settings.paths.raw_dir)}
        say("info", f"{data.counts['history_events']:,} events ingested now; the last {config.replay_days} days "
                    f"({data.counts['replay_events']:,} events, drift from {data.drift_at:%Y-%m-%d}) held back for replay")

    for step, title in (("ingest", "Ingesting and validating the raw files"),
                        ("features", "Building feature tables, applying Feast definitions, materializing"),
                        ("train", "Training churn (LightGBM) and recommender (ALS), gating, promoting")):
        with run.stage(step, title):
            result = run_step(settings, step)
            summary.setdefault("steps", {})[step] = {"status": result.status, "duration_s": result.duration_s,
                                                     "rows": result.rows}
            say("info", f"{step}: {result.status} in {result.duration_s:.1f} s; "
                        + ", ".join(f"{k}={v:,}" for k, v in list(result.rows.items())[:6]))
            if step == "train":
                summary["initial_training"] = result.details
                for line in _metric_lines(result.details):
                    say("result", line)

    from registry.models import get_alias_version

    champions = {kind: get_alias_version(settings, kind, "champion") for kind in ("churn", "recommender")}
    summary["champions"] = {"initial": champions}
    claims["champions_exist"] = all(champions.values())
    if not claims["champions_exist"]:
        raise DemoError("train", f"no champion after training: {champions}")

    service = None
    with run.stage("serve", "Starting the service (tenure serve) on a free port"):
        api_key = secrets.token_urlsafe(16)
        config_file = write_service_config(settings, settings.paths.state_dir / "demo-service.yaml", api_key)
        port = config.port or free_port()
        tracking_uri = absolute_paths(settings.model_dump(mode="json"))["mlflow"]["tracking_uri"]
        service = ServiceProcess(config_file, port, Path(settings.paths.reports_dir) / "demo-service.log",
                                 tracking_uri=tracking_uri)
        run.service = service  # stopped by run_demo whatever happens next
        service.start()
        waited = service.wait_ready(config.ready_timeout_s)
        say("ok", f"service ready at {service.url} after {waited:.1f} s")
        summary["service"] = {"url": service.url, "ready_after_s": round(waited, 1), "log": str(service.log_path),
                              "pid": service.process.pid if service.process else None}

    import httpx

    client = httpx.Client(base_url=service.url, headers={"X-API-Key": api_key}, timeout=120.0)
    try:
        with run.stage("calls", "Calling /churn-score, /recommend and /events"):
            _calls(run, client, data)
        with run.stage("quiet", "Monitoring before the drift: a quiet week should raise no alert"):
            _quiet_pass(run)
        with run.stage("replay", f"Replaying {config.replay_days} days of traffic through the service"):
            _replay(run, client, data)
        with run.stage("monitor", "Monitoring: drift reports, alerts, retraining, promotion gate"):
            _monitor(run, data)
        with run.stage("reload", "Hot-reloading the champion in the running service"):
            _reload(run, client)
    finally:
        client.close()

    with run.stage("score", "Batch scores and an audience file"):
        result = run_step(settings, "score")
        summary["scores"] = {"rows": result.rows, **result.details}
        from pipelines.scoring import export_audience

        # the high band, or medium and high when no customer is in the high band this time
        risk = ("high",) if result.rows.get("risk_high", 0) else ("medium", "high")
        path, frame = export_audience(settings, risk=risk, k=5, file_format="csv")
        summary["audience"] = {"path": str(path), "rows": len(frame), "risk": list(risk), "k": 5}
        say("ok", f"{len(frame):,} customers at {'/'.join(risk)} risk with reasons and 5 recommendations -> {path}")

    summary["explore"] = _explore(settings, service)
    summary["plots"] = _plots(settings)
    claims["service_answered"] = bool(summary.get("calls", {}).get("answered"))
    return service


def _calls(run: DemoRun, client: Any, data: DemoData) -> None:
    settings, say, summary = run.settings, run.say, run.summary
    scores_path = settings.paths.features_dir / "customer_features.parquet"
    import pandas as pd

    snapshot = pd.read_parquet(scores_path, columns=["customer_id", "event_timestamp"])
    latest = snapshot[snapshot["event_timestamp"] == snapshot["event_timestamp"].max()]
    ids = sorted(latest["customer_id"].astype(str).unique())[:200]
    answered = churn_score(client, ids, settings.serving.max_batch_size)
    scored = [r for r in answered if r.get("churn_probability") is not None]
    scored.sort(key=lambda r: r["churn_probability"], reverse=True)
    calls: dict[str, Any] = {"churn_score_customers": len(ids), "churn_scored": len(scored)}
    if not scored:
        raise RuntimeError(f"/churn-score gave no probabilities for {len(ids)} known customers: {answered[:2]}")
    top = scored[0]
    say("result", f"/churn-score {top['customer_id']}: p={top['churn_probability']:.3f} ({top.get('risk_band')}), "
                  f"model v{top.get('model_version')}, reasons: "
                  + "; ".join(f"{r.get('feature')}={r.get('value')} ({r.get('contribution'):+.3f})"
                              for r in top.get("top_reasons", [])[:3] if isinstance(r.get("contribution"), (int, float))))
    calls["example_score"] = top

    response = client.post("/recommend", json={"customer_id": top["customer_id"], "k": 5, "exclude_purchased": True})
    response.raise_for_status()
    rec = response.json()
    calls["example_recommendation"] = rec
    say("result", f"/recommend {top['customer_id']}: {[it.get('item_id') for it in rec.get('items', [])]} "
                  f"({rec.get('strategy')}, model v{rec.get('model_version')})")

    # an event changes the score: the at-risk customer comes back and buys
    when = pd.Timestamp(data.replay_start) - pd.Timedelta(minutes=5)
    item = (rec.get("items") or [{}])[0].get("item_id")
    events = [
        {"event_id": f"demo-{secrets.token_hex(6)}", "customer_id": top["customer_id"], "event_at": when.isoformat(),
         "event_type": "session", "channel": "web"},
        {"event_id": f"demo-{secrets.token_hex(6)}", "customer_id": top["customer_id"],
         "event_at": (when + pd.Timedelta(minutes=2)).isoformat(), "event_type": "purchase",
         "item_id": item, "quantity": 1, "amount": 30.0, "channel": "web"},
    ]
    events = [{k: v for k, v in e.items() if v is not None} for e in events]
    response = client.post("/events", json={"events": events})
    if response.status_code >= 400:
        raise RuntimeError(f"/events answered {response.status_code}: {response.text[:500]}")
    calls["events_ack"] = response.json()
    after = churn_score(client, [top["customer_id"]])[0]
    calls["score_after_event"] = after
    change = after.get("churn_probability", math.nan) - top["churn_probability"]
    calls["event_changed_score"] = bool(abs(change) > 1e-9)
    say("result", f"after a session + purchase via /events: p={after.get('churn_probability'):.3f} "
                  f"({after.get('risk_band')}), change {change:+.3f}")
    calls["answered"] = True
    summary["calls"] = calls
    run.summary["claims"]["event_changed_score"] = calls["event_changed_score"]


def _replay(run: DemoRun, client: Any, data: DemoData) -> None:
    """Replay the held-back days, day by day.

    A panel of ``live_customers`` customers active in the replayed days is live: each day
    their events go through ``POST /events`` (their online features refresh) and those active
    that day are scored (the prediction log fills). The other customers' events of each day
    arrive as a file (``raw_dir/events-replay-YYYYMMDD.parquet``), as a nightly export
    would, and are ingested with the service's event log when retraining runs.
    """
    import pandas as pd

    settings, config, say, summary = run.settings, run.config, run.say, run.summary
    events = data.replay_events
    days = pd.to_datetime(events["event_at"], utc=True).dt.floor("D")
    batch = min(settings.serving.max_events_per_request, 1000)
    score_batch = min(settings.serving.max_batch_size, 100)
    sent = filed = score_calls = scored = 0
    events_s = score_s = 0.0
    marks: dict[str, str] = {}
    everyone = events["customer_id"].astype(str).drop_duplicates()
    panel = set(everyone.sample(min(len(everyone), config.live_customers), random_state=config.seed))
    for day in sorted(days.unique()):
        if day >= data.drift_at.floor("D") and "drift_first_logged_at" not in marks:
            marks["drift_first_logged_at"] = datetime.now(UTC).isoformat()
        todays = events[days == day]
        is_live = todays["customer_id"].astype(str).isin(panel)
        live = set(todays.loc[is_live, "customer_id"].astype(str))
        bulk = todays[~is_live]
        if len(bulk):
            path = settings.paths.raw_dir / f"events-replay-{pd.Timestamp(day):%Y%m%d}.parquet"
            tmp = path.with_name(f".{path.name}.tmp")
            bulk.to_parquet(tmp, index=False)
            tmp.replace(path)
            filed += len(bulk)
        t0 = time.perf_counter()
        sent += post_events(client, event_records(todays[is_live]), batch, config.customers_per_request)
        events_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = sorted(live)
        for start in range(0, len(ids), score_batch):
            churn_score(client, ids[start : start + score_batch])
            score_calls += 1
        scored += len(ids)
        for cid in ids[:5]:
            client.post("/recommend", json={"customer_id": cid, "k": 5})
        score_s += time.perf_counter() - t0
    say("info", f"{sent:,} events of {scored:,} customers sent to /events ({events_s:.0f} s), "
                f"{filed:,} more as daily files; {score_calls} /churn-score calls ({score_s:.0f} s, "
                f"with 5 /recommend calls a day) over {config.replay_days} days")
    summary["replay"] = {"days": config.replay_days, "live_customers": len(panel),
                         "events_via_service": sent, "events_via_files": filed,
                         "customers_scored": scored, "score_calls": score_calls,
                         "events_s": round(events_s, 1), "scoring_s": round(score_s, 1), **marks}


def _quiet_pass(run: DemoRun) -> None:
    """A monitoring pass on the newest snapshot before the replay (no drift yet): no alert expected.

    No retrain action is given, so even a false alarm would change nothing; the claim records it.
    """
    from monitoring import run_monitoring_pass

    settings, say, summary = run.settings, run.say, run.summary
    result = run_monitoring_pass(settings, window=None, mode="snapshot", retrain=None)
    info = _monitoring_info(result)
    drift = (info["result"] or {}).get("drift") or {}
    summary["quiet_monitoring"] = {"verdict": result.verdict, "mode": result.mode, "alerts": info.get("alerts", []),
                                   "drift_share": drift.get("drift_share"), "drifted": drift.get("drifted"),
                                   "reports": info.get("reports", [])}
    summary["claims"]["quiet_pass_alerted"] = bool(info.get("alerts"))
    say("result" if not info.get("alerts") else "warn",
        f"before the drift ({result.mode}): {result.verdict}; "
        f"{len(info.get('alerts', []))} alert(s), drift share {drift.get('drift_share', 0):.0%}")


def _monitor(run: DemoRun, data: DemoData) -> None:
    """The nightly job after the replay: ingest the day files and the service's event log,
    rebuild the feature snapshot, then one monitoring pass on it (alive customers, like the
    reference) with retraining by policy.

    The snapshot, not the prediction log, is what is compared: the replay scores the customers
    who were active each day, a busier crowd than the training reference, so the log would read
    as drift even without one (docs/monitoring.md, Limits).
    """
    from monitoring import run_monitoring_pass
    from pipelines.flows import make_retrain, run_steps

    settings, say, summary = run.settings, run.say, run.summary
    time.sleep(max(settings.serving.prediction_log_flush_s, 0) + 0.5)  # let the service flush its logs
    summary["nightly"] = {r.step: {"status": r.status, "duration_s": r.duration_s}
                          for r in run_steps(settings, ("ingest", "features"))}
    result = run_monitoring_pass(settings, window=None, mode="snapshot", retrain=make_retrain(settings))
    info = _monitoring_info(result)
    summary["monitoring"] = info
    claims = summary["claims"]
    claims["alert_raised"] = bool(info.get("alerts"))
    retrain = info.get("retrain") or {}
    decision = retrain.get("decision") or {}
    claims["retrain_decision"] = {
        "triggered": decision.get("triggered"),
        "reasons": decision.get("reasons"),
        "blocked_by": decision.get("blocked_by"),
        "outcome": retrain.get("summary"),
    } if retrain else None
    for alert in info.get("alerts", [])[:1]:
        say("warn", f"alert: {alert}")
    for path in info.get("reports", [])[:4]:
        say("info", f"report: {path}")
    say("result", f"retrain decision: {'retrain' if decision.get('triggered') else 'no retrain'} "
                  f"({'; '.join(decision.get('reasons') or []) or decision.get('blocked_by') or 'healthy'})")
    if retrain.get("summary"):
        say("result", f"outcome: {retrain['summary']}")


def _monitoring_info(result: Any) -> dict[str, Any]:
    from pipelines.flows import _jsonable

    raw = _jsonable(result)
    info: dict[str, Any] = {"result": raw}
    if isinstance(raw, dict):
        info["alerts"] = raw.get("alerts") or []
        info["reports"] = [str(p) for p in (raw.get("report_paths") or raw.get("reports") or [])]
        info["retrain"] = raw.get("retrain") or raw.get("retrain_decision")
    return info


def _reload(run: DemoRun, client: Any) -> None:
    from registry.models import get_alias_version

    settings, say, summary = run.settings, run.say, run.summary
    before = summary["champions"]["initial"]
    after = {kind: get_alias_version(settings, kind, "champion") for kind in ("churn", "recommender")}
    summary["champions"]["final"] = after
    response = client.post("/admin/reload")
    if response.status_code >= 400:
        raise RuntimeError(f"/admin/reload answered {response.status_code}: {response.text[:300]}")
    summary["reload"] = {"answer": response.json()}
    probe = summary.get("calls", {}).get("example_score", {}).get("customer_id")
    served = churn_score(client, [probe])[0].get("model_version") if probe else None
    summary["reload"]["served_churn_model_version"] = served
    say("ok", f"champions before {before}, after {after}; the service now serves churn model v{served}")
    summary["claims"]["served_new_champion"] = str(served) == str(after["churn"])


def _explore(settings: Settings, service: ServiceProcess | None) -> dict[str, str]:
    uri = settings.mlflow.tracking_uri
    return {
        "mlflow_ui": f"uv run mlflow ui --backend-store-uri {uri} --port 5000",
        "reports_index": str(Path(settings.paths.reports_dir) / "index.html"),
        "service": service.url if service else "",
        "serve_again": "uv run tenure serve",
        "steps": "uv run tenure run --status",
        "audience": "uv run tenure export audience --risk high --with-recommendations 5 --format csv",
    }


def _plots(settings: Settings) -> dict[str, list[str]]:
    """PNG plots logged with the champion runs (ROC, calibration, lift, importance), as local paths."""
    from urllib.parse import unquote, urlparse

    from registry.models import get_alias_version, model_name_for
    from training.tracking import configure_mlflow

    client = configure_mlflow(settings)
    found: dict[str, list[str]] = {}
    for kind in ("churn", "recommender"):
        version = get_alias_version(settings, kind, "champion")
        if version is None:
            continue
        run_id = client.get_model_version(model_name_for(settings, kind), version).run_id
        uri = client.get_run(run_id).info.artifact_uri
        if not uri.startswith("file:"):
            continue
        root = Path(unquote(urlparse(uri).path))
        found[kind] = sorted(str(p) for p in root.rglob("*.png"))
    return found
