"""The demo story in order: each stage calls one module of ``pipelines.demo`` and records its part
of the summary; the service the story starts is stopped whatever happens (failure, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.pipelines.demo.config import DEFAULT, DemoConfig, DemoError, Say, log_say
from tenure.pipelines.demo.data import DemoData, generate_demo_data
from tenure.pipelines.demo.nightly import (
    champion_versions,
    nightly,
    quiet_pass,
    reload_champions,
    retrain_claim,
)
from tenure.pipelines.demo.plots import champion_plots
from tenure.pipelines.demo.replay import replay
from tenure.pipelines.demo.summary import explore, metric_lines, write_summary
from tenure.pipelines.demo.tour import tour
from tenure.pipelines.demo.workspace import absolute_paths, prepare_workspace, write_service_config
from tenure.pipelines.service_client import ServiceClient
from tenure.pipelines.service_process import ServiceProcess, tenure_service
from tenure.settings import Settings


@dataclasses.dataclass
class DemoRun:
    """State of one demo run: the summary being built, stage timings, the service and its client."""

    settings: Settings
    config: DemoConfig
    say: Say
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    service: ServiceProcess | None = None
    client: ServiceClient | None = None

    @property
    def claims(self) -> dict[str, Any]:
        """The summary's checkable statements."""
        return self.summary.setdefault("claims", {})

    @contextmanager
    def stage(self, name: str, title: str) -> Iterator[None]:
        """Time a stage, announce it, and record a failure or an interruption in the summary."""
        self.say("stage", title)
        t0 = time.perf_counter()
        try:
            yield
        except DemoError:
            raise
        except Exception as exc:
            self.summary.setdefault("failed_stage", {"stage": name, "error": f"{type(exc).__name__}: {exc}"})
            raise DemoError(name, f"{type(exc).__name__}: {exc}") from exc
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM turned into an exception by the CLI
            self.summary.setdefault("failed_stage", {"stage": name, "error": f"interrupted ({exc or 'SIGINT'})"})
            raise
        finally:
            self.timings[name] = round(time.perf_counter() - t0, 2)

    def start_service(self) -> float:
        """``tenure serve`` on the demo's stores with a fresh API key; returns the seconds until ready."""
        settings = self.settings
        api_key = secrets.token_urlsafe(16)
        config_file = write_service_config(settings, settings.paths.state_dir / "demo-service.yaml", api_key)
        uri = absolute_paths(settings.model_dump(mode="json"))["mlflow"]["tracking_uri"]
        # MLflow calls that do not take the URI explicitly use the same store
        env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        self.service = tenure_service(config_file, Path(settings.paths.reports_dir) / "demo-service.log",
                                      port=self.config.port, env=env)
        self.service.start()
        waited = self.service.wait_ready(self.config.ready_timeout_s)
        self.client = ServiceClient(self.service.url, api_key)
        return waited

    def stop_service(self) -> None:
        """Close the client and stop the service with all its processes (no-op when none runs)."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.service is not None:
            self.service.stop()


def run_demo(settings: Settings, config: DemoConfig = DEFAULT, say: Say = log_say, reset: bool = True,
             hold: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run the demo story end to end and write ``reports_dir/demo_summary.json``.

    Parameters
    ----------
    hold:
        Called with the finished summary while the service still runs (``--keep-serving``
        waits there for Ctrl-C); the service stops when it returns or raises.

    Returns
    -------
    dict
        The summary, JSON-ready (also on disk; keys in ``pipelines.demo.summary``). On failure
        the summary so far is written, with ``failed_stage``, and :class:`DemoError` is raised.
    """
    run = DemoRun(settings=settings, config=config, say=say)
    t0 = time.perf_counter()
    run.summary.update({"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                        "config": dataclasses.asdict(config), "claims": {}})
    try:
        try:
            _story(run, reset)
        finally:
            run.summary["timings_s"] = run.timings
            run.summary["wall_s"] = round(time.perf_counter() - t0, 1)
            run.summary["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            summary = write_summary(settings, run.summary)
        if hold is not None:
            hold(summary)
    finally:
        run.stop_service()
    return summary


def _story(run: DemoRun, reset: bool) -> None:
    settings, config, say, summary = run.settings, run.config, run.say, run.summary

    with run.stage("prepare", "Preparing an empty workspace"):
        prepare_workspace(settings, reset)

    with run.stage("generate", f"Generating a shop: {config.customers:,} customers, {config.items:,} items, "
                               f"{config.days} days, drift {config.drift_days_before_end} days before the end"):
        data = generate_demo_data(settings, config)
        summary["data"] = data.as_dict(settings)
        say("info", f"{data.counts['history_events']:,} events ingested now; the last {config.replay_days} days "
                    f"({data.counts['replay_events']:,} events, drift from {data.drift_at:%Y-%m-%d}) held back for replay")

    _build(run)

    with run.stage("insight", "Customer insight: KPIs, what customers write, customer value"):
        from tenure.pipelines.demo.insight import insight_tour

        summary["insight"] = insight_tour(settings, say)
        run.claims["customer_values_fitted"] = summary["insight"]["value"]["customers"] > 0

    with run.stage("experiment", "A retention campaign: measured effect beside the truth, uplift vs risk audiences"):
        from tenure.pipelines.demo.experiment import (
            campaign_tour,  # on a shop of its own (experiments/)
        )

        summary["experiment"] = campaign_tour(settings, config, say)
        run.claims["experiment_interval_covers_truth"] = summary["experiment"]["covers_truth"]

    with run.stage("pipeline_break", "A broken upstream batch (amounts in cents): caught and quarantined"):
        from tenure.pipelines.demo.breakage import pipeline_break

        summary["pipeline_break"] = pipeline_break(settings, data, say)
        run.claims["pipeline_break_quarantined"] = bool(summary["pipeline_break"]["quarantined"]) and \
            summary["pipeline_break"]["stored_rows_added"] == 0

    with run.stage("serve", "Starting the service (tenure serve) on a free port"):
        waited = run.start_service()
        service = run.service
        say("ok", f"service ready at {service.url} after {waited:.1f} s; dashboard at {service.url}/dashboard")
        summary["service"] = {"url": service.url, "ready_after_s": round(waited, 1), "log": str(service.log_path),
                              "pid": service.pid}

    _live(run, data)

    with run.stage("score", "Batch scores and an audience file"):
        summary["scores"], summary["audience"] = _score(settings, say)

    with run.stage("privacy", "Privacy: a consent withdrawal and an erasure with its receipt"):
        from tenure.pipelines.demo.privacy import privacy_tour

        summary["privacy"] = privacy_tour(run.client, settings, say)
        run.claims["consent_withdrawal_seen"] = summary["privacy"]["withdrawal"]["strategy_after"] == "no_consent_popular"
        run.claims["erasure_clean"] = summary["privacy"]["erasure"]["clean"]

    summary["explore"] = explore(settings, run.service.url)
    summary["plots"] = champion_plots(settings)
    run.claims["service_answered"] = bool(summary.get("calls", {}).get("answered"))


def _build(run: DemoRun) -> None:
    """Ingest, features and training through the step runner; both models must have a champion."""
    from tenure.pipelines.flows import run_step

    settings, say, summary = run.settings, run.say, run.summary
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
                for line in metric_lines(result.details):
                    say("result", line)
    champions = champion_versions(settings)
    summary["champions"] = {"initial": champions}
    run.claims["champions_exist"] = all(champions.values())
    if not run.claims["champions_exist"]:
        raise DemoError("train", f"no champion after training: {champions}")


def _live(run: DemoRun, data: DemoData) -> None:
    """The service at work: first calls, a quiet monitoring pass, the replay, the nightly job, the reload."""
    settings, config, say, summary, claims = run.settings, run.config, run.say, run.summary, run.claims
    client = run.client
    with run.stage("calls", "Calling /churn-score, /recommend and /events"):
        summary["calls"] = tour(client, settings, data, say)
        claims["event_changed_score"] = summary["calls"]["event_changed_score"]
    with run.stage("quiet", "Monitoring before the drift: a quiet week should raise no alert"):
        summary["quiet_monitoring"] = quiet_pass(settings, say)
        claims["quiet_pass_alerted"] = bool(summary["quiet_monitoring"]["alerts"])
    with run.stage("replay", f"Replaying {config.replay_days} days of traffic through the service"):
        summary["replay"] = replay(client, settings, config, data, say)
    with run.stage("monitor", "Monitoring: drift reports, alerts, retraining, promotion gate"):
        summary["nightly"], summary["monitoring"] = nightly(settings, say)
        claims["alert_raised"] = bool(summary["monitoring"]["alerts"])
        claims["retrain_decision"] = retrain_claim(summary["monitoring"])
    with run.stage("reload", "Hot-reloading the champion in the running service"):
        probe = summary["calls"]["example_score"]["customer_id"]
        final, summary["reload"] = reload_champions(client, settings, probe, say, summary["champions"]["initial"])
        summary["champions"]["final"] = final
        claims["served_new_champion"] = str(summary["reload"]["served_churn_model_version"]) == str(final["churn"])


def _score(settings: Settings, say: Say) -> tuple[dict[str, Any], dict[str, Any]]:
    """The score step, then an audience file of the riskiest customers with 5 recommendations each."""
    from tenure.pipelines.flows import run_step
    from tenure.pipelines.scoring import export_audience

    result = run_step(settings, "score")
    # the high band, or medium and high when no customer is in the high band this time
    risk = ("high",) if result.rows.get("risk_high", 0) else ("medium", "high")
    path, frame = export_audience(settings, risk=risk, k=5, file_format="csv")
    say("ok", f"{len(frame):,} customers at {'/'.join(risk)} risk with reasons and 5 recommendations -> {path}")
    return ({"rows": result.rows, **result.details},
            {"path": str(path), "rows": len(frame), "risk": list(risk), "k": 5})
