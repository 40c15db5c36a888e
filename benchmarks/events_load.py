"""Live events at shop scale: open-loop ``POST /events`` load, event -> online lag, reads while events flow.

Uses ``benchmarks/serving_load.py``'s open-loop client (latency from the scheduled send time,
no coordinated omission) and workspace, and ``pipelines/service_process.py`` to run
``tenure serve``. Phases (each after the server has settled):

- ``batch50``: events in requests of 50 at ``--batch-rate`` requests/s (target 2,000 events/s);
- ``single``: one event a request at ``--single-rate`` requests/s (target 500/s);
- ``lag``: 1,000 events/s (requests of 10); the ack -> online lag is read from the service's
  ``tenure_event_to_online_seconds`` histogram (its p99 is the upper edge of the bucket that holds
  the 99th percentile);
- ``mixed``: ``/churn-score`` (one customer) at 200 requests/s while events flow at 1,000/s.

``server_cpu_s`` is the whole service tree's CPU in a phase (workers and the updater process),
``updater_process_cpu_s`` the updater process's share (it runs apart from the request workers,
at a lower CPU priority: serving/updater_process.py).

The old path (rescan + pandas + Feast push per request, before this change) is not run here: its
figures on this machine are in the issue (about 470 events/s in batches of 50 with p99 1.9 s, and
about 10 single-event requests/s) and in ``benchmarks/results/serving_load.json`` (``events_10``).

    .venv/bin/python benchmarks/events_load.py --help
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
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests" / "serving"))

from serving_load import build, open_loop, settle

from tenure.pipelines.service_process import tenure_service

RESULTS = REPO / "benchmarks" / "results" / "events_load.json"


def lag_histogram(url: str) -> dict[float, float]:
    """Cumulative counts of ``tenure_event_to_online_seconds`` by upper bucket edge, from ``/metrics``."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("tenure_event_to_online_seconds_bucket{"):
            edge = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if edge == "+Inf" else float(edge)] = out.get(
                float("inf") if edge == "+Inf" else float(edge), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def updater_pid(url: str) -> int | None:
    """The online feature updater process (``/readyz``'s ``event_updater``; serving/updater_process.py)."""
    import urllib.error

    try:
        text = urllib.request.urlopen(f"{url}/readyz", timeout=10).read()
    except urllib.error.HTTPError as exc:  # 503: not ready, the body still says
        text = exc.read()
    return (json.loads(text.decode() or "{}").get("event_updater") or {}).get("pid")


def process_cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of one process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> dict:
    """Upper bucket edge holding the ``q`` quantile of what was observed between two snapshots."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1] if counts else 0.0
    if not total:
        return {"observed": 0, "quantile_le_s": None}
    for edge, c in zip(edges, counts):
        if c >= q * total:
            return {"observed": int(total), "quantile_le_s": edge}
    return {"observed": int(total), "quantile_le_s": float("inf")}


def event_bodies(ids: list[str], item_ids: list[str], start, per_request: int, n_requests: int, tag: str,
                 rng: random.Random) -> list[bytes]:
    """``n_requests`` JSON bodies of ``per_request`` events each (unique ids, views/carts/purchases/sessions)."""
    kinds = ["view"] * 6 + ["add_to_cart"] * 2 + ["purchase", "session"]
    bodies = []
    for r in range(n_requests):
        events = []
        for j in range(per_request):
            kind = rng.choice(kinds)
            event = {"event_id": f"{tag}-{r}-{j}", "customer_id": rng.choice(ids),
                     "event_at": (start + timedelta(milliseconds=r * per_request + j)).isoformat(), "event_type": kind}
            if kind != "session":
                event["item_id"] = rng.choice(item_ids)
            if kind == "purchase":
                event.update(quantity=1, amount=round(rng.uniform(5, 80), 2))
            events.append(event)
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def run_phase(pid: int, loads: list[tuple], url: str | None = None) -> dict:
    """Run open loops together (one asyncio loop); add the server's CPU, the load average and the lag."""
    from serving_load import _tree_cpu_s

    waited = settle(pid)
    before_cpu, load_before = _tree_cpu_s(pid), os.getloadavg()[0]
    hist_before = lag_histogram(url) if url else {}
    updater = updater_pid(url) if url else None
    updater_before = process_cpu_s(updater)

    async def together():
        return await asyncio.gather(*(open_loop(*args, **kwargs) for args, kwargs in loads))

    t0 = time.perf_counter()
    results = asyncio.run(together())
    elapsed = time.perf_counter() - t0
    time.sleep(1.5)  # let the updater finish the last micro-batch before reading the lag
    out = {"loops": results, "server_cpu_s": round(_tree_cpu_s(pid) - before_cpu, 2),
           "updater_process_cpu_s": round(process_cpu_s(updater) - updater_before, 2), "elapsed_s": round(elapsed, 1),
           "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)], "settled_s": waited}
    if url:
        hist_after = lag_histogram(url)
        out["lag_p50"] = histogram_quantile(hist_before, hist_after, 0.50)
        out["lag_p99"] = histogram_quantile(hist_before, hist_after, 0.99)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/tenure-events-bench"))
    parser.add_argument("--reuse", action="store_true", help="Reuse a workspace built by an earlier run.")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per phase.")
    parser.add_argument("--batch-rate", type=float, default=40.0, help="Requests/s of 50 events (40 = 2,000 events/s).")
    parser.add_argument("--single-rate", type=float, default=500.0, help="Requests/s of one event.")
    parser.add_argument("--lag-rate", type=float, default=100.0, help="Requests/s of 10 events in the lag phase.")
    parser.add_argument("--score-rate", type=float, default=200.0, help="/churn-score requests/s in the mixed phase.")
    args = parser.parse_args(argv)

    from workspace import API_KEY, write_config

    args.workspace.mkdir(parents=True, exist_ok=True)
    settings, customers, items, end = build(args.workspace, args.customers, args.items, args.days, 1, args.reuse)
    config = write_config(settings, args.workspace / "tenure.yaml")
    rng = random.Random(11)
    ids = customers["customer_id"].astype(str).tolist()
    item_ids = items["item_id"].astype(str).tolist()
    tag = f"b{time.time_ns()}"
    d = args.duration
    start = end + timedelta(seconds=1)
    batch50 = event_bodies(ids, item_ids, start, 50, int(args.batch_rate * d) + 1, f"{tag}-b", rng)
    single = event_bodies(ids, item_ids, start + timedelta(hours=1), 1, int(args.single_rate * d) + 1, f"{tag}-s", rng)
    lag = event_bodies(ids, item_ids, start + timedelta(hours=2), 10, int(args.lag_rate * d) + 1, f"{tag}-l", rng)
    mixed = event_bodies(ids, item_ids, start + timedelta(hours=3), 10, int(args.lag_rate * d) + 1, f"{tag}-m", rng)
    scores = [json.dumps({"customer_ids": [rng.choice(ids)]}).encode() for _ in range(2000)]
    warm = event_bodies(ids, item_ids, start - timedelta(hours=1), 10, 100, f"{tag}-w", rng)

    out: dict = {"benchmark": "events_load", "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
                 "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
                 "loadavg_before": os.getloadavg(), "python": platform.python_version(),
                 "workspace": {"customers": len(ids), "items": len(item_ids), "days": args.days}, "workers": 1,
                 "old_path_reference": {"events_per_s_batches_of_50": 470, "p99_ack_ms": 1900,
                                        "single_event_requests_per_s": 10,
                                        "source": "issue 15 (same machine, before this change)"},
                 "phases": {}}
    service = tenure_service(config, args.workspace / "service.log")
    try:
        service.start()
        service.wait_ready(300)
        port, pid, url = service.port, service.pid, service.url
        key = {"X-API-Key": API_KEY}
        host = "127.0.0.1"
        asyncio.run(open_loop(host, port, "/events", warm, 20, 5, key))  # warm-up: every customer's state starts here
        asyncio.run(open_loop(host, port, "/churn-score", scores[:200], 50, 2))
        phases = out["phases"]
        phases["batch50"] = run_phase(pid, [((host, port, "/events", batch50, args.batch_rate, d, key), {})], url)
        phases["single"] = run_phase(pid, [((host, port, "/events", single, args.single_rate, d, key), {})], url)
        phases["lag"] = run_phase(pid, [((host, port, "/events", lag, args.lag_rate, d, key), {})], url)
        phases["mixed"] = run_phase(pid, [((host, port, "/events", mixed, args.lag_rate, d, key), {}),
                                          ((host, port, "/churn-score", scores, args.score_rate, d), {})], url)
    finally:
        service.stop()
    out["loadavg_after"] = os.getloadavg()

    print(f"{'phase':<10} {'path':<12} {'target/s':>8} {'achieved/s':>10} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'lag p99 <= s':>12} load1m")
    per_request = {"batch50": 50, "single": 1, "lag": 10, "mixed": 10}
    for name, phase in out["phases"].items():
        for loop in phase["loops"]:
            events = loop["achieved_rate"] * per_request[name] if loop["path"] == "/events" else None
            loop["events_per_s"] = round(events, 1) if events else None
            print(f"{name:<10} {loop['path']:<12} {loop['target_rate']:>8.0f} {loop['achieved_rate']:>10.1f} "
                  f"{events or '':>9} {loop['p50_ms']!s:>8} {loop['p99_ms']!s:>8} {sum(loop['errors'].values()):>6} "
                  f"{(phase.get('lag_p99') or {}).get('quantile_le_s')!s:>12} {phase['loadavg_1m']}")
    print(f"load average {out['loadavg_before']} -> {out['loadavg_after']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
