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
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "serving"))

RESULTS = REPO / "benchmarks" / "results" / "serving_load.json"


# --- a minimal open-loop HTTP/1.1 client --------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.strip().lower()] = v.strip()
    if b"content-length" in headers:
        await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def open_loop(host: str, port: int, path: str, bodies: list[bytes], rate: float, duration: float,
                    headers: dict[str, str] | None = None, max_connections: int = 512, timeout_s: float = 10.0) -> dict:
    """Send ``rate * duration`` POSTs on a fixed schedule; latency from the scheduled time."""
    loop = asyncio.get_running_loop()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    idle: asyncio.Queue = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    errors: dict[str, int] = {}
    n = max(1, int(rate * duration))
    start = loop.time() + 0.2
    finished = [start]

    async def one(i: int) -> None:
        nonlocal opened
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            conn = idle.get_nowait()
        except asyncio.QueueEmpty:
            if opened < max_connections:
                opened += 1
                conn = await asyncio.open_connection(host, port)
            else:
                conn = await idle.get()
        reader, writer = conn
        body = bodies[i % len(bodies)]
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                   f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body
        try:
            writer.write(request)
            status = await asyncio.wait_for(_read_response(reader), timeout_s)
            latencies.append(loop.time() - scheduled)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            idle.put_nowait(conn)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            writer.close()
            opened -= 1
        finished[0] = max(finished[0], loop.time())

    await asyncio.gather(*(one(i) for i in range(n)))
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()
    elapsed = max(finished[0] - start, 1e-9)
    lat = sorted(latencies)

    def q(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None

    return {"path": path, "target_rate": rate, "duration_s": duration, "sent": n, "ok": n - sum(errors.values()),
            "errors": errors, "achieved_rate": round(len(lat) / elapsed, 1), "p50_ms": q(0.50), "p95_ms": q(0.95),
            "p99_ms": q(0.99), "max_ms": round(lat[-1] * 1000, 2) if lat else None, "connections": opened}


# --- workspace and processes -------------------------------------------------------------------


def build(root: Path, customers: int, items: int, days: int, workers: int, reuse: bool):
    """Settings + shop of a benchmark workspace (built once; ``--reuse`` keeps an earlier one)."""
    import pandas as pd
    from workspace import build_workspace, serving_settings

    settings = serving_settings(root, serving={"workers": workers, "reload_interval_s": 3600,
                                               "prediction_log_flush_s": 1.0})
    marker = root / "built.json"
    if reuse and marker.exists():
        from features.tables import read_customers, read_items

        info = json.loads(marker.read_text())
        return settings, read_customers(settings), read_items(settings), pd.Timestamp(info["end"])
    t0 = time.perf_counter()
    shop = build_workspace(settings, n_customers=customers, n_items=items, days=days, seed=11)
    end = shop.events["event_at"].max()
    marker.write_text(json.dumps({"end": end.isoformat(), "build_s": time.perf_counter() - t0}))
    return settings, shop.customers, shop.items, end


def start_naive(config: Path, port: int, log: Path, workers: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
    env.update(TENURE_CONFIG=str(config), BENTOML_DO_NOT_TRACK="True", BENTOML_HOME=str(config.parent / "bentoml-naive"),
               BENTOML_CONFIG_OPTIONS=f"services.naive_churn.workers={workers}")
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "benchmarks.naive_service:NaiveChurnService",
                                 "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(REPO)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


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

    from workspace import API_KEY, ServiceProcess, free_port, write_config

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
        at = end + __import__("pandas").Timedelta(minutes=r)
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
    service = ServiceProcess(config, args.workspace / "service.log") if not args.naive_only else None
    try:
        if service is None:
            raise _SkipTenure
        service.start()
        service.wait_ready(300)
        port = service.port
        key = {"X-API-Key": API_KEY}
        run = asyncio.run
        run(open_loop("127.0.0.1", port, "/churn-score", single[:200], 50, 2))  # warm-up
        run(open_loop("127.0.0.1", port, "/recommend", recommend[:200], 50, 2))
        out["phases"]["churn_1"] = run(open_loop("127.0.0.1", port, "/churn-score", single, args.rate, args.duration))
        out["phases"]["churn_100"] = run(open_loop("127.0.0.1", port, "/churn-score", batch, args.batch_rate, args.duration))
        out["phases"]["recommend_k10"] = run(open_loop("127.0.0.1", port, "/recommend", recommend, args.rate, args.duration))
        out["phases"]["events_10"] = run(open_loop("127.0.0.1", port, "/events", events, args.events_rate, args.duration, key))
        steps = [run(open_loop("127.0.0.1", port, "/churn-score", single, float(r), args.peak_duration))
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
        port = free_port()
        proc = start_naive(config, port, args.workspace / "naive.log", args.workers)
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            asyncio.run(open_loop("127.0.0.1", port, "/churn-score", single[:100], 20, 2))
            out["naive"]["churn_1"] = asyncio.run(open_loop("127.0.0.1", port, "/churn-score", single, args.rate, args.duration))
            out["naive"]["churn_100"] = asyncio.run(open_loop("127.0.0.1", port, "/churn-score", batch, args.batch_rate, args.duration))
            steps = [asyncio.run(open_loop("127.0.0.1", port, "/churn-score", single, float(r), args.peak_duration))
                     for r in args.naive_rates.split(",")]
            out["naive"]["peak_steps"] = steps
            out["naive"]["peak_rps"] = peak(steps)
        finally:
            stop(proc)
        if out["naive"]["peak_rps"]:
            out["speedup_peak"] = round(out["peak_rps"] / out["naive"]["peak_rps"], 1)
    out["loadavg_after"] = os.getloadavg()

    rows = [(name, r) for name, r in out["phases"].items()] + [(f"naive {n}", r) for n, r in out["naive"].items() if n != "peak_steps" and isinstance(r, dict)]
    print(f"{'phase':<16} {'target/s':>8} {'achieved/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} errors")
    for name, r in rows:
        print(f"{name:<16} {r['target_rate']:>8.0f} {r['achieved_rate']:>10.1f} {r['p50_ms']!s:>8} {r['p95_ms']!s:>8} "
              f"{r['p99_ms']!s:>8} {r['max_ms']!s:>8} {sum(r['errors'].values())}")
    print(f"peak sustained /churn-score (1 customer): tenure {out.get('peak_rps')} req/s, "
          f"naive {out['naive'].get('peak_rps')} req/s; load average {out['loadavg_before']} -> {out['loadavg_after']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
