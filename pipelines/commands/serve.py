"""``tenure serve``: run the BentoML service with the champions from the registry.

BentoML runs as a child process in its own process group; SIGTERM or SIGINT (Ctrl-C) to
``tenure serve`` is forwarded to that group, and whatever is left of BentoML's process
tree after ``--stop-timeout`` seconds is killed, so no server or worker outlives the command.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tenure.pipelines.console import console, fail
from tenure.pipelines.service_process import bentoml_serve_command, supervise

SERVICE = "tenure.serving.service:TenureService"


def absolute_paths(settings) -> dict[str, str]:
    """``TENURE_*`` variables pinning every relative path of ``settings`` to this directory.

    BentoML runs the service from the repository folder, so a relative ``data/`` or
    ``sqlite:///mlruns/...`` would otherwise point somewhere else than the CLI's.
    """
    env = {
        "TENURE_PATHS__DATA_DIR": settings.paths.data_dir,
        "TENURE_PATHS__REPORTS_DIR": settings.paths.reports_dir,
        "TENURE_PATHS__EXPORTS_DIR": settings.paths.exports_dir,
        "TENURE_FEAST__REPO_PATH": settings.feast.repo_path,
        "TENURE_MLFLOW__ARTIFACT_ROOT": settings.mlflow.artifact_root,
        "TENURE_SERVING__MODEL_CACHE_DIR": settings.serving.model_cache_dir,
    }
    out = {name: str(Path(value).resolve()) for name, value in env.items()}
    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        out["TENURE_MLFLOW__TRACKING_URI"] = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
    return out


def service_environment(config: Path | None, workers: int, bentoml_home: Path | None = None) -> dict[str, str]:
    """Environment for the service process: the same settings file, the worker count for BentoML.

    ``BENTOML_HOME`` (unless already set) is a folder of this workspace: BentoML keeps its
    Prometheus multi-process files there and clears them at start, so two services sharing
    the default ``~/bentoml`` would wipe each other's metrics.
    """
    env = dict(os.environ)
    if config is not None:
        env["TENURE_CONFIG"] = str(Path(config).resolve())
    env["BENTOML_CONFIG_OPTIONS"] = f"services.tenure.workers={workers}"
    if bentoml_home is not None and "BENTOML_HOME" not in env:
        env["BENTOML_HOME"] = str(Path(bentoml_home).resolve())
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


def register(app: typer.Typer) -> None:
    """Add ``tenure serve`` to the root app."""

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        host: str | None = typer.Option(None, "--host", help="Bind address (default serving.host)."),
        port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (default serving.port)."),
        workers: int | None = typer.Option(None, "--workers", min=1, max=64, help="Worker processes (default serving.workers)."),
        stop_timeout: float = typer.Option(8.0, "--stop-timeout", min=0.5, max=300,
                                           help="Seconds BentoML gets to stop after SIGTERM/Ctrl-C before it is killed."),
    ) -> None:
        """Serve /churn-score, /recommend, /similar-items and /events from the registered champions.

        The service loads the `champion` alias of tenure-churn and tenure-recommender, checks for
        newly promoted versions every serving.reload_interval_s seconds (or on POST /admin/reload),
        and answers /readyz once both models and the feature store are loaded.

        Exit codes: 0 when stopped by SIGTERM/SIGINT (every process ended in time), 1 when the
        service exited by itself with an error or had to be killed after --stop-timeout.
        """
        settings = ctx.obj
        from tenure.pseudonym import log_key
        from tenure.settings import SettingsError

        try:
            log_key(settings)  # the service would refuse to start without the log secret: say so here, at once
        except SettingsError as exc:
            fail(str(exc))
        parent = ctx.find_root()
        config = parent.params.get("config")
        host, port = host or settings.serving.host, port or settings.serving.port
        env = service_environment(config, workers or settings.serving.workers,
                                  bentoml_home=settings.paths.state_dir / "bentoml")
        env.update(absolute_paths(settings))
        console.print(f"serving on http://{host}:{port} (OpenAPI at /docs, dashboard at http://{host}:{port}/dashboard); "
                      "Ctrl-C stops")
        ended = supervise(bentoml_serve_command(SERVICE, host, port), env=env, stop_timeout_s=stop_timeout)
        if ended.signal is None:
            if ended.returncode:
                fail(f"the service exited with code {ended.returncode}; see the log above")
            return
        if ended.killed:
            fail(f"the service did not stop within {stop_timeout:g} s of {ended.signal}; "
                 f"killed {ended.killed} process(es)")
        console.print(f"stopped ({ended.signal}) in {ended.seconds_to_stop:.1f} s")
