"""Run a service as a child process and stop it with everything it started.

One launcher for every place that starts a server: ``tenure serve`` (BentoML under it),
the demo, the service tests and the load benchmark.

- :class:`ServiceProcess` starts a command in its own process group (its own session), waits
  until an HTTP route answers 200, and stops it: SIGTERM to the group, a wait, then SIGKILL
  to whatever of the process tree is left.
- :func:`supervise` is what ``tenure serve`` does with BentoML: run it in its own group,
  forward SIGTERM/SIGINT to that group, wait, kill the stragglers after a timeout.

Why the process tree and not only the group: BentoML's arbiter starts each worker in a
session of its own, so a signal to the arbiter's group does not reach the workers. The
arbiter stops them itself on SIGTERM; when it cannot (it hangs or was killed), the tree
recorded before the stop (Linux ``/proc``; elsewhere only the group) is what gets killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Self

import tenure

logger = logging.getLogger(__name__)

#: The folder holding the ``tenure`` package (a checkout's root, or site-packages for a wheel):
#: child interpreters and ``bentoml serve --working-dir`` import ``tenure.*`` from there.
CODE_ROOT = Path(tenure.__file__).resolve().parent.parent
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tenure_serve_command(config_file: Path, host: str, port: int) -> list[str]:
    """``tenure --config FILE serve`` as a command line for this interpreter."""
    return [sys.executable, "-m", "tenure.pipelines.cli", "--config", str(Path(config_file).resolve()), "serve",
            "--host", host, "--port", str(port)]


def bentoml_serve_command(target: str, host: str, port: int, working_dir: Path = CODE_ROOT) -> list[str]:
    """``bentoml serve TARGET`` (e.g. ``tenure.serving.service:TenureService``) as a command line."""
    return [sys.executable, "-m", "bentoml", "serve", target, "--host", host, "--port", str(port),
            "--working-dir", str(working_dir)]


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``TENURE_*`` and ``BENTOML_HOME`` (the child reads its
    settings from its own config file), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_") and k != "BENTOML_HOME"}
    env["BENTOML_DO_NOT_TRACK"] = "True"
    env.update(extra or {})
    return env


# --- the process tree ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ProcInfo:
    """One process: pid, parent, process group, state letter (``Z`` = zombie) and start time
    (clock ticks after boot, so a reused pid is not mistaken for the process it replaced)."""

    pid: int
    ppid: int
    pgid: int
    state: str
    started: int


def _read_stat(pid: int) -> ProcInfo | None:
    """``/proc/PID/stat`` of one process; None when it is gone (or on a system without ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return ProcInfo(pid, int(fields[1]), int(fields[2]), fields[0], int(fields[19]))


def processes() -> dict[int, ProcInfo]:
    """Every process on the machine by pid (Linux ``/proc``; empty elsewhere)."""
    if not Path("/proc").is_dir():
        return {}
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _read_stat(int(entry))) is not None:
            found[info.pid] = info
    return found


def process_tree(root: int) -> list[ProcInfo]:
    """``root`` and all its descendants alive now, zombies left out (only ``root`` without ``/proc``)."""
    table = processes()
    if not table:
        with contextlib.suppress(OSError):
            return [ProcInfo(root, 0, os.getpgid(root), "R", 0)]
        return []
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid].state != "Z":
            tree.append(table[pid])
        todo += children.get(pid, [])
    return tree


def _alive(proc: ProcInfo) -> bool:
    now = _read_stat(proc.pid)
    if now is None:
        if Path("/proc").is_dir():
            return False
        try:
            os.kill(proc.pid, 0)
        except OSError:
            return False
        return True
    return now.state != "Z" and (proc.started == 0 or now.started == proc.started)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclasses.dataclass(frozen=True)
class StopOutcome:
    """How a stop went: the child's exit code, seconds taken, and processes that needed SIGKILL."""

    returncode: int | None
    seconds: float
    killed: int = 0


def terminate(process: subprocess.Popen, timeout_s: float, hurry: threading.Event | None = None) -> StopOutcome:
    """Stop ``process`` (leader of its own process group) and every process it started.

    SIGTERM goes to the leader's group (a server stops its own workers); whatever of the tree
    recorded now is still alive ``timeout_s`` seconds later (or as soon as ``hurry`` is set) gets
    SIGKILL. Returns when the leader is reaped and the tree is gone.
    """
    t0 = time.monotonic()
    tree = process_tree(process.pid) if process.poll() is None else []
    _signal_group(process.pid, signal.SIGTERM)
    deadline = t0 + timeout_s
    while time.monotonic() < deadline and not (hurry is not None and hurry.is_set()):
        process.poll()
        if process.returncode is not None and not any(_alive(p) for p in tree if p.pid != process.pid):
            break
        time.sleep(0.1)
    left = [p for p in tree if _alive(p)]
    for proc in left:
        logger.warning("process %d did not stop within %.0f s of SIGTERM; killing it", proc.pid, timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)
    if left:
        _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    return StopOutcome(process.returncode, round(time.monotonic() - t0, 2), killed=len(left))


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT until the block ends (so a second Ctrl-C cannot cut a stop in half)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived (see :func:`raise_on_stop_signals`); ``signum`` says which.

    A ``KeyboardInterrupt`` so that ``except Exception`` blocks let it through and
    ``try/finally`` blocks (which stop services) run on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def raise_on_stop_signals() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT raise :class:`Stopped` in the main thread.

    Entry points (the demo command) use it so that a ``kill`` runs the same ``finally``
    clean-up as Ctrl-C. Outside the main thread it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- a service as a child process -------------------------------------------------------------


class ServiceProcess:
    """A server command run as a child process in its own process group, spoken to over HTTP.

    Parameters
    ----------
    command:
        The command line (see :func:`tenure_serve_command`, :func:`bentoml_serve_command`).
    url:
        Base URL the server answers on, e.g. ``http://127.0.0.1:3000``.
    log_path:
        File that receives the child's stdout and stderr (appended).
    env:
        The child's environment (default :func:`child_environment`).
    cwd:
        Working directory of the child (default: the repository root).
    """

    def __init__(self, command: Sequence[str], url: str, log_path: Path, env: Mapping[str, str] | None = None,
                 cwd: Path = CODE_ROOT) -> None:
        self.command = list(command)
        self.url = url.rstrip("/")
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else child_environment()
        self.cwd = cwd
        self.process: subprocess.Popen | None = None

    @property
    def port(self) -> int | None:
        """The port of :attr:`url`."""
        from urllib.parse import urlsplit

        return urlsplit(self.url).port

    @property
    def pid(self) -> int | None:
        """Process id of the child (also its process group id), None before :meth:`start`."""
        return self.process.pid if self.process is not None else None

    def start(self) -> ServiceProcess:
        """Start the child (returns at once; see :meth:`wait_ready`)."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.command[:4]} is already running (pid {self.process.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        logger.info("started %s (pid %d, log %s)", " ".join(self.command), self.process.pid, self.log_path)
        return self

    def wait_ready(self, timeout_s: float = 180.0, route: str = "/readyz") -> float:
        """Poll ``route`` until it answers 200; returns the seconds waited.

        Raises ``RuntimeError`` with the log's last lines when the child exits or time runs out.
        """
        import httpx

        if self.process is None:
            raise RuntimeError("the service was not started; call start() first")
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with code {self.process.returncode}; "
                                   f"see {self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}{route}", timeout=2.0).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.url}{route} did not answer 200 within {timeout_s:.0f} s; "
                           f"see {self.log_path}:\n{self.log_tail()}")

    def wait_alive(self, timeout_s: float = 180.0) -> float:
        """Poll ``/healthz`` until 200: the server answers, ready (models loaded) or not."""
        return self.wait_ready(timeout_s, route="/healthz")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 15.0) -> StopOutcome | None:
        """Stop the child and everything it started (see :func:`terminate`); None when not running.

        SIGTERM and SIGINT arriving meanwhile are held until the stop is done.
        """
        if self.process is None or self.process.poll() is not None:
            return None
        with signals_deferred():
            outcome = terminate(self.process, timeout_s)
        logger.info("stopped pid %d in %.1f s (exit %s)", self.process.pid, outcome.seconds, outcome.returncode)
        return outcome

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def tenure_service(config_file: Path, log_path: Path, port: int | None = None, host: str = "127.0.0.1",
                   env: Mapping[str, str] | None = None) -> ServiceProcess:
    """``tenure --config FILE serve`` on ``host`` and ``port`` (a free one by default), not started yet.

    ``env`` adds variables to :func:`child_environment` (the settings come from the file only).
    """
    port = port or free_port(host)
    return ServiceProcess(tenure_serve_command(config_file, host, port), f"http://{host}:{port}", log_path,
                          env=child_environment(env))


# --- supervising a server (``tenure serve``) ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Supervised:
    """How a supervised server ended.

    ``signal`` is the name of the signal that asked it to stop (None when it exited by itself);
    ``killed`` counts processes that needed SIGKILL after the timeout.
    """

    returncode: int | None
    signal: str | None
    seconds_to_stop: float = 0.0
    killed: int = 0


def supervise(command: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None,
              stop_timeout_s: float = 8.0) -> Supervised:
    """Run ``command`` in its own process group until it exits or SIGTERM/SIGINT arrives.

    A stop signal is forwarded as SIGTERM to the child's group; after ``stop_timeout_s`` (or
    at a second signal) what is left of its process tree is killed. The child's output goes
    to this process's stdout/stderr. Call from the main thread (it installs signal handlers,
    and restores the previous ones on return).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("supervise() installs signal handlers: call it from the main thread")
    received: list[int] = []
    hurry = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) > 1:
            hurry.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        process = subprocess.Popen(list(command), env=dict(env) if env is not None else None, cwd=cwd,
                                   start_new_session=True)
        while not received:
            try:
                process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
        if not received:  # the server exited by itself
            return Supervised(process.returncode, None)
        outcome = terminate(process, stop_timeout_s, hurry)
        return Supervised(outcome.returncode, signal.Signals(received[0]).name, outcome.seconds, outcome.killed)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
