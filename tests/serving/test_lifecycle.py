"""SIGTERM or SIGINT to ``tenure serve`` stops BentoML's server and workers and frees the port within 10 s.

The service starts without models (a first deployment answers ``/healthz``), so no workspace
is needed: real ``tenure serve``, real BentoML, one signal to the ``tenure serve`` process only.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import yaml

from tenure.pipelines.service_process import process_tree, processes, tenure_service

pytestmark = pytest.mark.slow

STOP_WITHIN_S = 10.0


def _bare_config(root: Path, workers: int) -> Path:
    """Settings with every store under ``root``: no data, no models."""
    values = {
        "paths": {"data_dir": str(root / "data"), "reports_dir": str(root / "reports"),
                  "exports_dir": str(root / "exports")},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
                   "artifact_root": str(root / "mlruns" / "artifacts")},
        "serving": {"model_cache_dir": str(root / "data" / "model_cache"), "workers": workers},
    }
    path = root / "tenure.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _in_groups(groups: set[int]) -> list[int]:
    """Processes (not zombies) whose process group is one of ``groups``."""
    return [p.pid for p in processes().values() if p.pgid in groups and p.state != "Z"]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.parametrize(("signum", "workers"), [(signal.SIGTERM, 2), (signal.SIGINT, 1)])
def test_stop_signal_ends_every_process_and_frees_the_port(tmp_path: Path, signum: int, workers: int) -> None:
    service = tenure_service(_bare_config(tmp_path, workers), tmp_path / "service.log")
    port = service.port
    service.start()
    try:
        service.wait_alive(150)
        deadline = time.monotonic() + 90  # every worker up, so this is a stop, not an aborted start
        while service.log_path.read_text(errors="replace").count("Service tenure initialized") < workers:
            assert time.monotonic() < deadline, f"{workers} worker(s) not up after 90 s:\n{service.log_tail()}"
            time.sleep(0.3)
        tree = process_tree(service.pid)
        assert len(tree) >= 2 + workers, f"expected tenure serve, BentoML and {workers} worker(s): {tree}"
        groups = {p.pgid for p in tree}
        assert len(groups) >= 2, "BentoML runs in a process group of its own"

        t0 = time.monotonic()
        os.kill(service.pid, signum)  # the `tenure serve` process only, as `kill` or a terminal would
        while time.monotonic() - t0 < STOP_WITHIN_S:
            if service.process.poll() is not None and not _in_groups(groups) and _port_free(port):
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
        left = _in_groups(groups)
        assert not left, f"processes still running {took:.1f} s after {signal.Signals(signum).name}: {left}\n" \
                         f"{service.log_tail()}"
        assert service.process.poll() == 0, f"tenure serve exited with {service.process.returncode}:\n" \
                                            f"{service.log_tail()}"
        assert _port_free(port), f"port {port} still taken {took:.1f} s after the signal"
        assert took < STOP_WITHIN_S
        assert "stopped (" in service.log_tail(), "tenure serve says how it stopped"
    finally:
        service.stop()
