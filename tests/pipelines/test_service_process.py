"""The service launcher with small real process trees (no server): stop, stragglers, signal forwarding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tenure.pipelines.service_process import (
    ServiceProcess,
    Stopped,
    process_tree,
    raise_on_stop_signals,
)

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc (Linux)")

# a parent that starts a child in a session of its own (as BentoML starts its workers) and
# writes the child's pid; the child ignores SIGTERM when STUBBORN is set
TREE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    child = ("import signal, time\\n"
             + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\\n" if os.environ.get("STUBBORN") else "")
             + "print('ready', flush=True)\\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", child], start_new_session=True, stdout=subprocess.PIPE)
    proc.stdout.readline()  # the child's signal disposition is set
    def stop(*_):
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    with open(sys.argv[1], "w") as f:
        f.write(str(proc.pid))
    time.sleep(60)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_tree(tmp_path: Path, stubborn: bool) -> tuple[ServiceProcess, int]:
    pid_file = tmp_path / "child.pid"
    env = {**os.environ, "STUBBORN": "1" if stubborn else ""}
    service = ServiceProcess([sys.executable, "-c", TREE, str(pid_file)], "http://127.0.0.1:1",
                             tmp_path / "tree.log", env=env).start()
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, service.log_tail()
        time.sleep(0.05)
    return service, int(pid_file.read_text())


def test_stop_lets_a_well_behaved_tree_end_by_itself(tmp_path: Path) -> None:
    service, child = _start_tree(tmp_path, stubborn=False)
    tree = process_tree(service.pid)
    assert {p.pid for p in tree} >= {service.pid, child}
    assert len({p.pgid for p in tree}) == 2, "the child runs in a group of its own"
    outcome = service.stop(timeout_s=10)
    assert outcome is not None and outcome.killed == 0 and outcome.returncode == 0
    assert not _alive(child)
    assert service.stop() is None, "stopping twice is harmless"


def test_stop_kills_what_ignores_sigterm_in_another_group(tmp_path: Path) -> None:
    service, child = _start_tree(tmp_path, stubborn=True)
    t0 = time.monotonic()
    outcome = service.stop(timeout_s=1.0)
    assert outcome is not None and outcome.killed >= 1
    assert time.monotonic() - t0 < 8
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the straggler outside the leader's group was killed"


def _run_script(script: str, pid_file: Path) -> tuple[subprocess.Popen, int]:
    """Run a Python script that starts :data:`TREE`; returns it and the tree's inner child, once started."""
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=repo, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    return proc, int(pid_file.read_text())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_supervise_forwards_the_signal_and_reports_it(tmp_path: Path, signum: int) -> None:
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import sys
        from tenure.pipelines.service_process import supervise
        ended = supervise([sys.executable, "-c", {TREE!r}, {str(pid_file)!r}], stop_timeout_s=5)
        print(ended.signal, ended.killed, ended.returncode)
    """)
    proc, child = _run_script(script, pid_file)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=15)
    assert out.split() == [signal.Signals(signum).name, "0", "0"]
    assert proc.returncode == 0
    assert not _alive(child)


def test_stop_signals_raise_in_the_main_thread() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Stopped) as caught, raise_on_stop_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler is back"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_entry_point_stopped_by_a_signal_stops_its_service(tmp_path: Path, signum: int) -> None:
    """What ``tenure demo`` does: signals raise ``Stopped``, and ``finally`` stops the service it started."""
    pid_file = tmp_path / "child.pid"
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from tenure.pipelines.service_process import ServiceProcess, Stopped, raise_on_stop_signals
        with raise_on_stop_signals():
            service = ServiceProcess([sys.executable, "-c", {TREE!r}, {str(pid_file)!r}], "http://127.0.0.1:1",
                                     Path({str(tmp_path / "tree.log")!r})).start()
            try:
                time.sleep(60)
            except Stopped as exc:
                print("stopped by", exc)
            finally:
                service.stop(timeout_s=5)
    """)
    proc, child = _run_script(script, pid_file)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=15)
    assert out.strip() == f"stopped by {signal.Signals(signum).name}"
    assert not _alive(child)
