"""The durable event log (group commit, kill -9), the fast validator, and the online feature updater.

No service here: the log, the validator and the updater are plain objects; the updater's push
is a collaborator, handed in as a function that records what it was given (the HTTP tests in
test_events.py use the real Feast store).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tenure.features.customer_features import compute_customer_features
from tenure.features.incremental import ItemCatalog, parse_time_ns, profiles_from_frame
from tenure.serving.event_intake import DurableEventLog, EventValidator, LogPosition, read_log
from tenure.serving.feature_updater import FeatureUpdater

ROOT = Path(__file__).resolve().parents[2]


def _event(n: int, customer: str = "c1", **extra) -> dict:
    return {"event_id": f"e{n}", "customer_id": customer, "event_at": f"2026-03-01T10:{n % 60:02d}:00+00:00",
            "event_type": "session", **extra}


def _logged_ids(folder: Path) -> list[str]:
    records, _ = read_log(folder, LogPosition())
    return [r["event_id"] for r in records]


# --- group commit ---------------------------------------------------------------------------------


def test_concurrent_requests_share_fsyncs_and_replays_are_flagged(tmp_path: Path) -> None:
    log = DurableEventLog(tmp_path, commit_window_s=0.005)
    results: dict[int, list[bool]] = {}

    def send(n: int) -> None:
        # every request carries its own event and one shared id: exactly one request logs it
        results[n] = log.append([_event(n + 1000), _event(0)])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    groups = len(log.commits)
    log.close()
    assert all(flags[0] for flags in results.values())
    assert sum(flags[1] for flags in results.values()) == 1
    ids = _logged_ids(tmp_path)
    assert sorted(ids) == sorted([f"e{n + 1000}" for n in range(40)] + ["e0"])
    assert groups < 40, f"{groups} fsyncs for 40 concurrent requests: no group commit"
    reopened = DurableEventLog(tmp_path)
    assert reopened.append([_event(0), _event(7)]) == [False, True]
    reopened.close()


def test_ids_logged_but_not_indexed_before_a_crash_are_indexed_at_start(tmp_path: Path) -> None:
    log = DurableEventLog(tmp_path)
    log.append([_event(1)])
    log.close()
    day_file = next(tmp_path.glob("events-*.jsonl"))
    with open(day_file, "a") as f:  # fsynced line whose index commit never happened
        f.write(json.dumps(_event(2)) + "\n")
        f.write('{"event_id": "e3", "customer_')  # a write cut short: never acknowledged
    reopened = DurableEventLog(tmp_path)
    assert reopened.seen(["e1", "e2", "e3"]) == {"e1", "e2"}
    assert reopened.append([_event(2), _event(4)]) == [False, True]
    reopened.close()
    assert _logged_ids(tmp_path) == ["e1", "e2", "e4"]  # the broken line is skipped, the next one is whole


_WRITER = textwrap.dedent("""
    import sys, threading
    from tenure.serving.event_intake import DurableEventLog
    log = DurableEventLog(sys.argv[1])
    lock = threading.Lock()
    def client(k):
        n = 0
        while True:
            n += 1
            batch = [{"event_id": f"k{k}-{n}-{j}", "customer_id": "c1", "event_at": "2026-03-01T10:00:00+00:00",
                      "event_type": "session"} for j in range(1 + n % 5)]
            log.append(batch)
            with lock:  # acknowledged: tell the parent
                sys.stdout.write(" ".join(e["event_id"] for e in batch) + "\\n")
                sys.stdout.flush()
    for k in range(4):
        threading.Thread(target=client, args=(k,), daemon=True).start()
    threading.Event().wait()
""")


@pytest.mark.parametrize("kill_after_s", [0.3, 0.7, 1.3])
def test_kill_9_loses_no_acknowledged_event(tmp_path: Path, kill_after_s: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    acked: list[str] = []
    reader = threading.Thread(target=lambda: acked.extend(
        eid for line in proc.stdout for eid in line.decode().split() if line.endswith(b"\n")))
    reader.start()
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("events-*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(kill_after_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reader.join()
    assert acked, "the writer acknowledged nothing before the kill"
    log = DurableEventLog(tmp_path)  # restart: re-indexes what the crash left unindexed
    try:
        logged = set(_logged_ids(tmp_path))
        missing = [e for e in acked if e not in logged]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
        assert log.seen(acked) == set(acked), "acknowledged ids must stay duplicates after a restart"
        assert len(_logged_ids(tmp_path)) == len(logged), "an id was logged twice"
    finally:
        log.close()


# --- validation -----------------------------------------------------------------------------------


def _validator() -> EventValidator:
    return EventValidator(["c1", "c2"], ["i1", "i2"], earliest="2000-01-01T00:00:00Z", max_future_hours=24)


def _full(**fields) -> dict:
    base = dict.fromkeys(("item_id", "quantity", "amount", "channel", "nps", "csat", "resolution_hours"))
    return {**base, **fields}


def test_fast_validation_gives_what_the_contract_gives() -> None:
    v = _validator()
    good = [
        _full(event_id="a", customer_id="c1", event_at="2026-03-01T10:00:00Z", event_type="purchase", item_id="i1",
              quantity=2, amount=12.5, channel="web"),
        _full(event_id="b", customer_id="c2", event_at="2026-03-01T12:00:00.123+02:00", event_type="survey", nps=9),
        _full(event_id="c", customer_id="c1", event_at="2026-03-01T10:00:00.123456789Z", event_type="support_ticket",
              resolution_hours=0),
    ]
    fast = v.validate(good)
    slow, reasons = v.slow(good)
    assert fast is not None and not reasons
    assert fast[0] == slow


@pytest.mark.parametrize("bad", [
    {"customer_id": "nobody"}, {"customer_id": " c1"}, {"event_type": "teleport"}, {"item_id": "no-item"},
    {"event_at": "2026-03-01T10:00:00"}, {"event_at": "yesterday"}, {"nps": 11}, {"amount": -1},
    {"amount": float("inf")}, {"event_at": "1999-01-01T00:00:00Z"}, {"event_at": "2999-01-01T00:00:00Z"},
    {"channel": ""},
])
def test_fast_validation_leaves_anything_doubtful_to_the_contract(bad: dict) -> None:
    event = _full(event_id="a", customer_id="c1", event_at="2026-03-01T10:00:00Z", event_type="view")
    event.update(bad)
    assert _validator().fast(event) is None


# --- the online feature updater -------------------------------------------------------------------


@pytest.fixture
def shop():
    customers = pd.DataFrame({"customer_id": ["c1", "c2"], "signup_at": pd.to_datetime(["2025-01-01", "2025-06-01"],
                                                                                      utc=True),
                              "consent_personalization": [True, False], "plan": ["pro", None]})
    items = pd.DataFrame({"item_id": ["i1", "i2"], "category": ["a", "b"], "price": [10.0, 4.0]})
    stored = pd.DataFrame({"event_id": ["s1", "s2"], "customer_id": ["c1", "c1"],
                           "event_at": pd.to_datetime(["2026-02-01T09:00Z", "2026-02-20T09:00Z"], utc=True),
                           "event_type": ["purchase", "session"], "item_id": ["i2", None]})
    return customers, items, stored


def _updater(folder: Path, shop, pushes: list) -> FeatureUpdater:
    customers, items, stored = shop

    def history(ids):
        return [r for r in stored.to_dict(orient="records") if r["customer_id"] in ids]

    return FeatureUpdater(folder, profiles_from_frame(customers), ItemCatalog.from_frame(items), history,
                          lambda rows, as_of_ns: pushes.append((dict(rows), as_of_ns)))


def test_updater_pushes_batch_equal_features_once_per_micro_batch_and_resumes(tmp_path: Path, shop) -> None:
    customers, items, stored = shop
    log = DurableEventLog(tmp_path)
    live = [_event(1, "c1", event_type="purchase", item_id="i1", quantity=2),
            _event(2, "c2", event_type="view", item_id="i2"), _event(3, "c1", nps=3.0), _event(4, "ghost")]
    log.append(live)
    pushes: list = []
    updater = _updater(tmp_path, shop, pushes)
    assert updater.step() is True and updater.step() is False
    assert len(pushes) == 1  # one push for the micro-batch, both customers in it
    rows, as_of_ns = pushes[0]
    assert set(rows) == {"c1", "c2"} and as_of_ns == max(parse_time_ns(e["event_at"]) for e in live)
    every = pd.concat([stored, pd.DataFrame(live).assign(event_at=lambda f: pd.to_datetime(f["event_at"], utc=True))])
    batch = compute_customer_features(every, customers, items, pd.Timestamp(as_of_ns, tz="UTC")).set_index("customer_id")
    for cid, features in rows.items():
        expected = batch.loc[cid].to_dict()
        for name, value in features.items():
            assert value == pytest.approx(expected[name], nan_ok=True) if not isinstance(value, str) \
                else value == expected[name], (cid, name)
    assert updater.recent_items("c1", {"purchase": 5.0}) == [("i1", 5.0)]  # live events only, not the stored one
    updater.stop()

    # restart: resumes from the checkpoint (state + position), no replay, the stored history is not read again
    # (sessions: the stored one, e3 and the new e5)
    log.append([_event(5, "c1", event_type="session")])
    log.close()
    pushes.clear()
    resumed = _updater(tmp_path, shop, pushes)
    resumed._history = lambda ids: pytest.fail(f"stored history read again for {ids}")
    assert resumed.step() is True
    (rows, as_of_ns), = pushes
    assert set(rows) == {"c1"} and rows["c1"]["sessions_30d"] == 3 and rows["c1"]["last_nps"] == 3.0
    resumed.stop()


def test_one_worker_at_a_time_applies_the_log(tmp_path: Path, shop) -> None:
    first, second = _updater(tmp_path, shop, []), _updater(tmp_path, shop, [])
    try:
        assert first._take_ownership() is True
        assert second._take_ownership() is False  # another worker holds feature_updater.lock
        log = DurableEventLog(tmp_path)
        log.append([_event(1, "c1")])
        log.close()
        first.step()
        assert second.applied_position() == first.position  # the other worker reads progress from the checkpoint
    finally:
        first.stop()
    assert second._take_ownership() is True  # the lock is released when its holder stops
    second.stop()


def test_an_erasure_request_reaches_the_updater_and_its_checkpoint_does_not_write_the_person_back(
        tmp_path: Path, shop) -> None:
    from tenure.serving.feature_updater import UpdaterView, request_forget

    log = DurableEventLog(tmp_path)
    log.append([_event(1, "c1", event_type="view", item_id="i1"), _event(2, "c2", event_type="view", item_id="i2")])
    log.close()
    updater = _updater(tmp_path, shop, [])
    updater.recent_weights = {"view": 1.0}
    updater.checkpoint_interval_s = 3600.0  # states stay dirty, in memory: the case an erasure must reach
    view = UpdaterView(tmp_path)  # a worker's view (another process in the service)
    assert updater.step() is True
    assert view.recent_items("c1") == [("i1", 1.0)] and view.applied_position() == updater.position
    assert [p for p, _ in view.new_batches()] == [updater.position]  # the workers' lag histogram reads these

    request_forget(tmp_path, ["c1"])  # what DELETE /customers/{id} and `tenure forget` do (serving/erasure.py)
    assert view.recent_items("c1") == []
    updater.step()  # the next look at the log applies the request first
    assert updater.features_of("c1") is None and "c1" not in updater.profiles
    updater.stop()  # the last checkpoint
    import sqlite3

    db = sqlite3.connect(tmp_path / "feature_state.sqlite")
    assert db.execute("SELECT customer_id FROM state").fetchall() == [("c2",)]
    assert db.execute("SELECT COUNT(*) FROM forget").fetchone() == (0,)  # applied: its hash is not kept
    db.close()
    view.close()
