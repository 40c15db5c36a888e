"""The online feature updater in its own process (serving/updater_process.py), over real HTTP and on its files.

The session's service (conftest) runs it; these tests find it through ``/readyz`` (``event_updater``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import wait_updater_models


def _event(event_id: str, customer_id: str, at: pd.Timestamp, event_type: str, **extra) -> dict:
    return {"event_id": event_id, "customer_id": customer_id, "event_at": at.isoformat(), "event_type": event_type, **extra}


def _updater(client) -> dict:
    return client.get("/readyz").json()["event_updater"]


def _lag_count(client) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in client.get("/metrics").text.splitlines()
               if line.startswith("tenure_event_to_online_seconds_count"))


def _state_db(settings) -> sqlite3.Connection:
    return sqlite3.connect(Path(settings.paths.event_log_dir) / "feature_state.sqlite", timeout=30)


def _service_pids(service) -> set[int]:
    from tenure.pipelines.service_process import process_tree

    return {p.pid for p in process_tree(service.process.pid)}


def test_updater_is_a_child_process_that_comes_back_after_kill_9(service, client, workspace, api_key):
    _, shop, _ = workspace
    first = _updater(client)
    pid = first["pid"]
    assert pid and first["heartbeat_age_s"] is not None and first["heartbeat_age_s"] < 5
    assert pid in _service_pids(service) and pid != service.process.pid  # in the service's tree: stopped with it
    lag_before = _lag_count(client)

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        now = _updater(client)
        if now["pid"] not in (None, pid) and now["heartbeat_age_s"] is not None and now["heartbeat_age_s"] < 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the updater process was not started again: {_updater(client)}")
    wait_updater_models(service.url, 120)

    # events acknowledged after the kill are applied by the new process: nothing lost, the lag is measured
    cid = str(shop.customers["customer_id"].iloc[11])
    at = shop.events["event_at"].max() + pd.Timedelta(hours=5)
    body = client.post("/events", headers={"X-API-Key": api_key}, json={
        "wait_for_features": True, "events": [_event("ev-after-kill-1", cid, at, "session")]}).json()
    assert body["accepted"] == 1 and body["features_updated"] == [cid]
    deadline = time.monotonic() + 10
    while _lag_count(client) <= lag_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _lag_count(client) > lag_before  # the workers observe the lag of what the other process applied
    assert not any("behind acknowledged events" in p for p in client.get("/readyz").json()["problems"])


def test_recent_items_cross_the_process_boundary_and_erasure_reaches_the_updater(client, workspace, api_key):
    settings, shop, _ = workspace
    cid = str(shop.customers["customer_id"].iloc[-5])
    item = str(shop.items["item_id"].iloc[4])
    at = shop.events["event_at"].max() + pd.Timedelta(hours=6)
    body = client.post("/events", headers={"X-API-Key": api_key}, json={
        "wait_for_features": True, "events": [_event("ev-erase-1", cid, at, "view", item_id=item),
                                              _event("ev-erase-2", cid, at + pd.Timedelta(minutes=1), "purchase",
                                                     item_id=item, quantity=1, amount=10.0)]}).json()
    assert body["features_updated"] == [cid]
    db = _state_db(settings)
    try:
        (items,), = db.execute("SELECT items FROM recent WHERE customer_id = ?", (cid,)).fetchall()
        assert [i for i, _ in json.loads(items)] == [item, item]  # what /recommend reads in the workers

        answer = client.delete(f"/customers/{cid}", headers={"X-API-Key": api_key})
        assert answer.status_code == 200, answer.text
        # the request is applied (and removed) by the updater process within a micro-batch interval
        deadline = time.monotonic() + 20
        while db.execute("SELECT COUNT(*) FROM forget").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert db.execute("SELECT COUNT(*) FROM forget").fetchone()[0] == 0
        time.sleep(settings.events.update_interval_s + 5.5)  # past the next checkpoint (5 s): nothing written back
        for table in ("state", "recent"):
            assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE customer_id = ?", (cid,)).fetchone()[0] == 0, table
    finally:
        db.close()


def test_a_retry_after_a_client_timeout_is_a_duplicate_and_nothing_is_lost(service, client, workspace, api_key):
    """The sender gives up before the answer (here: closes the connection), sends the same events again."""
    settings, shop, _ = workspace
    cid = str(shop.customers["customer_id"].iloc[13])
    at = shop.events["event_at"].max() + pd.Timedelta(hours=7)
    events = [_event("ev-retry-1", cid, at, "session"), _event("ev-retry-2", cid, at, "view",
                                                               item_id=str(shop.items["item_id"].iloc[2]))]
    payload = json.dumps({"events": events}).encode()
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:  # the first try: no answer read
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"X-API-Key: {api_key}\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    deadline = time.monotonic() + 10
    logged: list[dict] = []
    while time.monotonic() < deadline:
        logged = [json.loads(line) for path in sorted(Path(settings.paths.event_log_dir).glob("events-*.jsonl"))
                  for line in path.read_text().splitlines() if "ev-retry-" in line]
        if len(logged) == 2:
            break
        time.sleep(0.05)
    assert sorted(e["event_id"] for e in logged) == ["ev-retry-1", "ev-retry-2"]  # logged though nobody read the ack

    again = client.post("/events", headers={"X-API-Key": api_key}, json={"events": events}).json()
    assert again["accepted"] == 0 and again["duplicates"] == 2
    assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
    logged = [line for path in sorted(Path(settings.paths.event_log_dir).glob("events-*.jsonl"))
              for line in path.read_text().splitlines() if "ev-retry-" in line]
    assert len(logged) == 2  # once each in the log


WORKER = """
import os, sys, time
from pathlib import Path
from tenure.serving.updater_process import UpdaterSupervisor
child = ("import sys, time; from tenure.serving.updater_process import _die_with_parent; "
         "_die_with_parent(int(sys.argv[1])); time.sleep(120)")
supervisor = UpdaterSupervisor(Path(sys.argv[1]), command=[sys.executable, "-c", child, str(os.getpid())])
supervisor.start()
seen = None
while True:
    pid = supervisor.process.pid if supervisor.running() else None
    if pid != seen and pid is not None:
        print(pid, flush=True)
        seen = pid
    time.sleep(0.02)
"""


def _alive(pid: int) -> bool:
    from tenure.pipelines.service_process import process_tree

    return any(p.pid == pid for p in process_tree(pid))


def test_the_supervisor_restarts_the_process_and_it_dies_with_its_worker(tmp_path: Path) -> None:
    """kill -9 of the updater process: started again; kill -9 of its worker: it goes too (no orphan)."""
    import subprocess
    import sys

    from tenure.pipelines.service_process import CODE_ROOT

    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(CODE_ROOT)})
    try:
        first = int(worker.stdout.readline())
        assert _alive(first)
        os.kill(first, signal.SIGKILL)
        second = int(worker.stdout.readline())  # started again (after the 1 s back-off)
        assert second != first and _alive(second)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        deadline = time.monotonic() + 10
        while _alive(second) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(second), "the updater process outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)


def test_trigger_counts_of_the_updater_process_reach_the_services_metrics_folder(tmp_path: Path) -> None:
    """The updater process counts triggers in BentoML's Prometheus multiprocess folder (inherited from its worker),
    which the service's /metrics merges."""
    import subprocess
    import sys

    import prometheus_client
    from prometheus_client import multiprocess

    from tenure.pipelines.service_process import CODE_ROOT

    code = ("from tenure.serving.updater_process import _trigger_counter; "
            "_trigger_counter().labels(outcome='queued').inc(2)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={**os.environ, "PYTHONPATH": str(CODE_ROOT), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    assert registry.get_sample_value("tenure_triggers_total", {"outcome": "queued"}) == 2.0


def test_with_two_workers_one_runs_the_process_and_the_other_takes_over_when_it_dies(tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading

    from tenure.pipelines.service_process import CODE_ROOT

    env = {**os.environ, "PYTHONPATH": str(CODE_ROOT)}
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                                env=env) for _ in range(2)]
    started: list[list[int]] = [[], []]

    def read(k: int) -> None:
        for line in workers[k].stdout:
            started[k].append(int(line))

    readers = [threading.Thread(target=read, args=(k,), daemon=True) for k in range(2)]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + 20
        while not any(started) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the other worker would have started one by now
        holder = 0 if started[0] else 1
        assert len(started[holder]) == 1 and started[1 - holder] == []  # one updater process per machine
        os.kill(workers[holder].pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not started[1 - holder] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started[1 - holder], "the other worker did not take over"
        assert _alive(started[1 - holder][0])
        deadline = time.monotonic() + 10
        while _alive(started[holder][0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(started[holder][0])  # the dead worker's process went with it
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(10)
