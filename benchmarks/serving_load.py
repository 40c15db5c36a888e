"""Open-loop HTTP load on the tenure service and on a naive baseline, over loopback.

Requests are sent on a fixed schedule (``rate`` per second) whatever the answers do, and each
latency is measured from the *scheduled* send time, so a slow server cannot hide its queue
(no coordinated omission). The client is a small asyncio HTTP/1.1 keep-alive client (lighter
than httpx, so the generator steals less CPU from the server on a small machine).

Phases: ``/churn-score`` with 1 and with 100 customers, ``/recommend`` k=10 on a large
catalogue, ``/events`` with 10 events a request; then a peak search (rising rates of
single-customer ``/churn-score``) on the tenure service and on ``benchmarks/naive_service.py``.

    .venv/bin/python benchmarks/serving_load.py --help
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "serving"))

from tenure.pipelines.service_process import (
    ServiceProcess,
    bentoml_serve_command,
    child_environment,
    free_port,
    tenure_service,
)

RESULTS = REPO / "benchmarks" / "results" / "serving_load.json"


# --- a minimal open-loop HTTP/1.1 client --------------------------------------------------------

KEEPALIVE_EXPIRY_S = 4.0
"""An idle connection older than this is closed, not reused (the server, uvicorn, closes idle ones after
5 s; a request written into a connection the server has just closed is never answered). httpx does
the same with its ``keepalive_expiry``."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight (no pipelining).

    A bare ``asyncio.Protocol`` (no streams, no task or ``wait_for`` per request): the load
    generator shares the cores with the server, so its own CPU per request has to stay small.
    """

    def __init__(self, done) -> None:
        self._done = done  # done(connection, status or None)
        self._buffer = bytearray()
        self.transport = None
        self.busy_since: float | None = None  # scheduled time of the request in flight
        self.idle_since = 0.0  # loop time it last became idle
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.busy_since is not None:
            self._done(self, None)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while self.busy_since is not None:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(buffer[:head_end]).lower()
            status = int(head[9:12])
            body_start = head_end + 4
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                end = body_start + int(head[at + 17: stop if stop >= 0 else None])
            elif b"transfer-encoding: chunked" in head:
                end = _chunked_end(buffer, body_start)
                if end is None:
                    return
            else:
                end = body_start
            if len(buffer) < end:
                return
            del buffer[:end]
            self._done(self, status)


def _chunked_end(buffer: bytearray, pos: int) -> int | None:
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2 + size + 2
        if len(buffer) < pos:
            return None
        if size == 0:
            return pos


async def open_loop(host: str, port: int, path: str, bodies: list[bytes], rate: float, duration: float,
                    headers: dict[str, str] | None = None, max_connections: int = 512, timeout_s: float = 10.0) -> dict:
    """Send ``rate * duration`` POSTs on a fixed schedule; latency from the scheduled time.

    Requests due at the same moment go out together; a request finding no idle connection opens
    one (up to ``max_connections``) or waits in a queue for the next free one, its latency still
    counted from its scheduled time. A request unanswered after ``timeout_s`` counts as an error.
    The result also says how much CPU the generator itself used (``client_cpu_ms_per_request``).
    """
    import collections
    import resource

    loop = asyncio.get_running_loop()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    prefix = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}").encode()
    requests = [prefix + f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    n = max(1, int(rate * duration))
    idle: list[_Connection] = []
    waiting: collections.deque[int] = collections.deque()
    connections: set[_Connection] = set()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    state = {"opened": 0, "opening": 0, "outstanding": 0, "finished": 0.0, "expired": 0}

    def error(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    def send(conn: _Connection, i: int) -> None:
        conn.busy_since = start + i / rate
        conn.transport.write(requests[i % len(requests)])

    def done(conn: _Connection, status: int | None) -> None:
        now = loop.time()
        state["outstanding"] -= 1
        if status is None:
            error("ConnectionError")
            connections.discard(conn)
        else:
            latencies.append(now - conn.busy_since)
            if status != 200:
                error(str(status))
        conn.busy_since = None
        state["finished"] = max(state["finished"], now)
        if conn.closed:
            return
        if waiting:
            send(conn, waiting.popleft())
        else:
            conn.idle_since = now
            idle.append(conn)

    def take_idle(now: float) -> _Connection | None:
        """The most recently used live idle connection; closed or expired ones are dropped."""
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_EXPIRY_S:
                return conn
            connections.discard(conn)
            state["opened"] -= 1
            state["expired"] += 1
            if not conn.closed:
                conn.closed = True
                conn.transport.close()
        return None

    async def connect() -> None:
        try:
            _, conn = await loop.create_connection(lambda: _Connection(done), host, port)
        except OSError:
            state["opening"] -= 1
            state["opened"] -= 1
            while waiting and not connections and not state["opening"]:
                waiting.popleft()
                state["outstanding"] -= 1
                error("ConnectError")
            return
        state["opening"] -= 1
        connections.add(conn)
        if waiting:
            send(conn, waiting.popleft())
        else:
            conn.idle_since = loop.time()
            idle.append(conn)

    def sweep(now: float) -> None:
        for conn in list(connections):
            if conn.busy_since is not None and now - conn.busy_since > timeout_s:
                connections.discard(conn)
                conn.busy_since = None
                conn.closed = True
                conn.transport.abort()
                state["outstanding"] -= 1
                error("TimeoutError")
        for _ in range(len(waiting)):
            if now - (start + waiting[0] / rate) > timeout_s:
                waiting.popleft()
                state["outstanding"] -= 1
                error("TimeoutError")

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = loop.time() + 0.2
    state["finished"] = start
    i, last_sweep = 0, start
    while i < n:
        due = start + i / rate
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
            now = loop.time()
        while i < n and start + i / rate <= now:
            state["outstanding"] += 1
            conn = take_idle(now)
            if conn is not None:
                send(conn, i)
            else:
                waiting.append(i)
                if state["opened"] < max_connections and len(waiting) > state["opening"]:
                    state["opened"] += 1
                    state["opening"] += 1
                    loop.create_task(connect())
            i += 1
        if now - last_sweep > 0.1:
            sweep(now)
            last_sweep = now
    while state["outstanding"] > 0:
        await asyncio.sleep(0.005)
        sweep(loop.time())
    for conn in connections:
        conn.transport.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    elapsed = max(state["finished"] - start, 1e-9)
    lat = sorted(latencies)

    def q(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

    return {"path": path, "target_rate": rate, "duration_s": duration, "sent": n, "ok": n - sum(errors.values()),
            "errors": errors, "achieved_rate": round(len(lat) / elapsed, 1), "p50_ms": q(0.50), "p95_ms": q(0.95),
            "p99_ms": q(0.99), "max_ms": round(lat[-1] * 1000, 2) if lat else None, "connections": state["opened"],
            "connections_expired": state["expired"],
            "client_cpu_ms_per_request": round(cpu / n * 1000, 3)}


def _tree_cpu_s(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants."""
    clock = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / clock
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def settle(server_pid: int, idle_cores: float = 0.2, timeout_s: float = 30.0) -> float:
    """Wait until the server uses less than ``idle_cores`` of CPU (requests queued by an overloaded
    step would otherwise be served during the next one); returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        before = _tree_cpu_s(server_pid)
        time.sleep(0.5)
        if (_tree_cpu_s(server_pid) - before) / 0.5 < idle_cores:
            break
    return round(time.monotonic() - t0, 1)


def phase(server_pid: int, *args, **kwargs) -> dict:
    """:func:`open_loop` after :func:`settle`, plus the server's CPU per request and the 1-minute load
    average around it."""
    waited = settle(server_pid)
    before, load_before = _tree_cpu_s(server_pid), os.getloadavg()[0]
    result = asyncio.run(open_loop(*args, **kwargs))
    used = _tree_cpu_s(server_pid) - before
    result.update(server_cpu_ms_per_request=round(used / result["sent"] * 1000, 3),
                  loadavg_1m=[round(load_before, 2), round(os.getloadavg()[0], 2)], settled_s=waited)
    return result


# --- workspace and processes -------------------------------------------------------------------


def build(root: Path, customers: int, items: int, days: int, workers: int, reuse: bool):
    """Settings + shop of a benchmark workspace (built once; ``--reuse`` keeps an earlier one)."""
    import pandas as pd
    from workspace import build_workspace, serving_settings

    settings = serving_settings(root, serving={"workers": workers, "reload_interval_s": 3600,
                                               "prediction_log_flush_s": 1.0})
    marker = root / "built.json"
    if reuse and marker.exists():
        from tenure.features.tables import read_customers, read_items

        info = json.loads(marker.read_text())
        return settings, read_customers(settings), read_items(settings), pd.Timestamp(info["end"])
    t0 = time.perf_counter()
    shop = build_workspace(settings, n_customers=customers, n_items=items, days=days, seed=11)
    end = shop.events["event_at"].max()
    marker.write_text(json.dumps({"end": end.isoformat(), "build_s": time.perf_counter() - t0}))
    return settings, shop.customers, shop.items, end


def start_naive(config: Path, log: Path, workers: int) -> ServiceProcess:
    """The naive baseline service (``benchmarks/naive_service.py``) under BentoML, started on a free port."""
    port = free_port()
    env = child_environment({"TENURE_CONFIG": str(config), "BENTOML_HOME": str(config.parent / "bentoml-naive"),
                             "BENTOML_CONFIG_OPTIONS": f"services.naive_churn.workers={workers}"})
    command = bentoml_serve_command("benchmarks.naive_service:NaiveChurnService", "127.0.0.1", port, REPO)
    return ServiceProcess(command, f"http://127.0.0.1:{port}", log, env=env, cwd=REPO).start()


class _SkipTenure(Exception):
    """Raised to skip the tenure phases (``--naive-only``)."""


def peak(results: list[dict]) -> float:
    """Highest achieved rate among steps that kept up (>= 95 % of target, no errors, p99 under 1 s)."""
    good = [r["achieved_rate"] for r in results
            if not r["errors"] and r["achieved_rate"] >= 0.95 * r["target_rate"] and (r["p99_ms"] or 1e9) < 1000]
    return max(good, default=0.0)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/tenure-serving-bench"), help="Where the data, models and logs go.")
    parser.add_argument("--reuse", action="store_true", help="Reuse a workspace built by an earlier run.")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--items", type=int, default=10_000, help="Catalogue size (for /recommend).")
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2, help="BentoML worker processes of each service.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per fixed-rate phase.")
    parser.add_argument("--rate", type=float, default=200.0, help="Requests/s of the single-customer and /recommend phases.")
    parser.add_argument("--batch-rate", type=float, default=20.0, help="Requests/s of the 100-customer phase.")
    parser.add_argument("--events-rate", type=float, default=20.0, help="Requests/s of the /events phase.")
    parser.add_argument("--peak-rates", default="300,600,1000,1500", help="Rising rates of the peak search (tenure).")
    parser.add_argument("--naive-rates", default="25,50,100,200,400", help="Rising rates of the peak search (naive).")
    parser.add_argument("--peak-duration", type=float, default=5.0)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--naive-only", action="store_true", help="Run only the baseline; add it to the existing results file.")
    args = parser.parse_args(argv)

    from workspace import API_KEY, write_config

    args.workspace.mkdir(parents=True, exist_ok=True)
    settings, customers, items, end = build(args.workspace, args.customers, args.items, args.days, args.workers, args.reuse)
    config = write_config(settings, args.workspace / "tenure.yaml")
    rng = random.Random(7)
    ids = customers["customer_id"].astype(str).tolist()
    item_ids = items["item_id"].astype(str).tolist()
    single = [json.dumps({"customer_ids": [rng.choice(ids)]}).encode() for _ in range(2000)]
    batch = [json.dumps({"customer_ids": rng.sample(ids, 100)}).encode() for _ in range(200)]
    recommend = [json.dumps({"customer_id": rng.choice(ids), "k": 10}).encode() for _ in range(2000)]
    events = []
    for r in range(int(args.events_rate * args.duration) + 1):
        at = end + timedelta(minutes=r)
        events.append(json.dumps({"events": [
            {"event_id": f"bench-{time.time_ns()}-{r}-{j}", "customer_id": rng.choice(ids), "event_at": at.isoformat(),
             "event_type": "view", "item_id": rng.choice(item_ids)} for j in range(10)]}).encode())

    out: dict = {"benchmark": "serving_load", "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
                 "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
                 "loadavg_before": os.getloadavg(), "python": platform.python_version(),
                 "workspace": {"customers": len(ids), "items": len(item_ids), "days": args.days},
                 "workers": args.workers, "phases": {}, "naive": {}}
    if args.naive_only:
        previous = json.loads(RESULTS.read_text())
        out.update({k: previous[k] for k in ("phases", "peak_steps", "peak_rps", "loadavg_before", "date", "command")
                    if k in previous})
        out["naive_command"] = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    service = tenure_service(config, args.workspace / "service.log") if not args.naive_only else None
    try:
        if service is None:
            raise _SkipTenure
        service.start()
        service.wait_ready(300)
        port = service.port
        key = {"X-API-Key": API_KEY}
        run = asyncio.run
        pid = service.pid
        run(open_loop("127.0.0.1", port, "/churn-score", single[:200], 50, 2))  # warm-up
        run(open_loop("127.0.0.1", port, "/recommend", recommend[:200], 50, 2))
        out["phases"]["churn_1"] = phase(pid, "127.0.0.1", port, "/churn-score", single, args.rate, args.duration)
        out["phases"]["churn_100"] = phase(pid, "127.0.0.1", port, "/churn-score", batch, args.batch_rate, args.duration)
        out["phases"]["recommend_k10"] = phase(pid, "127.0.0.1", port, "/recommend", recommend, args.rate, args.duration)
        out["phases"]["events_10"] = phase(pid, "127.0.0.1", port, "/events", events, args.events_rate, args.duration, key)
        steps = [phase(pid, "127.0.0.1", port, "/churn-score", single, float(r), args.peak_duration)
                 for r in args.peak_rates.split(",")]
        out["peak_steps"] = steps
        out["peak_rps"] = peak(steps)
    except _SkipTenure:
        pass
    finally:
        if service is not None:
            service.stop()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))  # kept if the baseline fails
    if not args.skip_naive:
        naive = start_naive(config, args.workspace / "naive.log", args.workers)
        port, pid = naive.port, naive.pid
        try:
            naive.wait_ready(300)
            asyncio.run(open_loop("127.0.0.1", port, "/churn-score", single[:100], 20, 2))
            out["naive"]["churn_1"] = phase(pid, "127.0.0.1", port, "/churn-score", single, args.rate, args.duration)
            out["naive"]["churn_100"] = phase(pid, "127.0.0.1", port, "/churn-score", batch, args.batch_rate, args.duration)
            steps = [phase(pid, "127.0.0.1", port, "/churn-score", single, float(r), args.peak_duration)
                     for r in args.naive_rates.split(",")]
            out["naive"]["peak_steps"] = steps
            out["naive"]["peak_rps"] = peak(steps)
        finally:
            naive.stop()
        if out["naive"]["peak_rps"]:
            out["speedup_peak"] = round(out["peak_rps"] / out["naive"]["peak_rps"], 1)
    out["loadavg_after"] = os.getloadavg()

    rows = [(name, r) for name, r in out["phases"].items()]
    rows += [(f"peak {r['target_rate']:.0f}", r) for r in out.get("peak_steps", [])]
    rows += [(f"naive {n}", r) for n, r in out["naive"].items() if n != "peak_steps" and isinstance(r, dict)]
    rows += [(f"naive peak {r['target_rate']:.0f}", r) for r in out["naive"].get("peak_steps", [])]
    print(f"{'phase':<16} {'target/s':>8} {'achieved/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'errors':>6} {'srv cpu ms':>10} {'cli cpu ms':>10} load1m")
    for name, r in rows:
        print(f"{name:<16} {r['target_rate']:>8.0f} {r['achieved_rate']:>10.1f} {r['p50_ms']!s:>8} {r['p95_ms']!s:>8} "
              f"{r['p99_ms']!s:>8} {r['max_ms']!s:>8} {sum(r['errors'].values()):>6} "
              f"{r.get('server_cpu_ms_per_request')!s:>10} {r.get('client_cpu_ms_per_request')!s:>10} {r.get('loadavg_1m')}")
    print(f"peak sustained /churn-score (1 customer): tenure {out.get('peak_rps')} req/s, "
          f"naive {out['naive'].get('peak_rps')} req/s; load average {out['loadavg_before']} -> {out['loadavg_after']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
