"""First paint of ``/dashboard`` with many customers, in Debian's headless chromium (Playwright).

Builds a workspace (simulated shop, features online, both champions), starts ``tenure serve``,
scores every customer through ``/churn-score`` (so the prediction log holds them all), runs a
real monitoring pass, waits until the dashboard's panels are computed (their compute times are
recorded: the KPI report over every customer is the slow one), then loads the page ``--loads``
times: the first with an empty browser cache, the rest warm. Per load: first contentful paint
(the browser's own paint timing), "data shown" (numbers, tables and messages of every panel on
screen) and "charts drawn" (once Plotly has drawn every chart),
plus the latency and size of ``GET /dashboard/data``. Saves a screenshot (``--screenshot``).

    .venv/bin/python benchmarks/dashboard_paint.py --customers 100000          # the target's size
    .venv/bin/python benchmarks/dashboard_paint.py --customers 5000 --reuse    # small, on a busy machine
    .venv/bin/python benchmarks/dashboard_paint.py --customers 100000 --panels-only --out benchmarks/results/dashboard_panels_100k.json

Results: ``benchmarks/results/dashboard_paint.json`` with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "serving"))

from tenure.pipelines.service_process import tenure_service

RESULTS = REPO / "benchmarks" / "results" / "dashboard_paint.json"


def build(root: Path, customers: int, items: int, days: int, reuse: bool):
    """Settings and customer ids of the workspace (built once; ``--reuse`` keeps an earlier one)."""
    from workspace import build_workspace, serving_settings

    settings = serving_settings(root, serving={"reload_interval_s": 3600, "prediction_log_flush_s": 1.0},
                                dashboard={"refresh_s": 2.0})
    marker = root / "built.json"
    if reuse and marker.exists():
        info = json.loads(marker.read_text())
        if info.get("customers") == customers:
            from tenure.features.tables import read_customers

            return settings, [str(c) for c in read_customers(settings)["customer_id"]], info
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    t0 = time.perf_counter()
    shop = build_workspace(settings, n_customers=customers, n_items=items, days=days, seed=21)
    info = {"customers": customers, "items": items, "days": days, "build_s": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(info))
    return settings, [str(c) for c in shop.customers["customer_id"]], info


def panel_costs(n: int, folder: Path, features: int = 32) -> dict:
    """Seconds the service's background thread spends on the log-based panels for ``n`` scored customers.

    Writes ``n`` churn records with the service's own ``PredictionLog`` (``features`` values each,
    like a real line), then times reading them (:class:`ChurnLogTail`), the risk-band mix and value
    at risk against ``n`` customer values. No service needed: this is the part that grows with
    customers (the KPI report's cost is measured by ``benchmarks/kpi_recovery.py``).
    """
    import numpy as np
    import pandas as pd

    from tenure.serving.dashboard_panels import ChurnLogTail, risk_mix, value_at_risk
    from tenure.serving.prediction_log import PredictionLog

    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(3)
    proba = rng.beta(2, 5, n)
    log = PredictionLog(folder, flush_s=3600)
    now = datetime.now(UTC)
    for i in range(n):
        log.add({"kind": "churn", "request_id": "r", "logged_at": now.isoformat(timespec="milliseconds"),
                 "customer_id": f"c{i:06d}", "model_version": "1",
                 "features": {f"feature_{j}": float(j) for j in range(features)},
                 "churn_probability": float(proba[i]),
                 "risk_band": "high" if proba[i] >= 0.6 else "medium" if proba[i] >= 0.3 else "low"})
    log.close()
    size = sum(p.stat().st_size for p in folder.glob("*.jsonl"))
    tail = ChurnLogTail(folder)
    t0 = time.perf_counter()
    read = tail.update()
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    risk_mix(tail, days=90)
    mix_s = time.perf_counter() - t0
    values = pd.DataFrame({"customer_id": [f"c{i:06d}" for i in range(n)], "expected_value": rng.gamma(2, 50, n),
                           "p_alive": rng.random(n)})
    t0 = time.perf_counter()
    value_at_risk(values, tail.latest, lambda cid: cid, top=10)
    var_s = time.perf_counter() - t0
    return {"scores": read, "log_bytes": size, "read_log_s": round(read_s, 3),
            "lines_per_s": round(read / read_s) if read_s else None, "risk_mix_s": round(mix_s, 4),
            "value_at_risk_s": round(var_s, 3)}


def fit_values(settings) -> float | None:
    """Fit the insight room's customer value model when it is there (value at risk then has data); seconds."""
    try:
        from tenure.insight.value import fit_customer_values
    except ImportError:
        return None
    t0 = time.perf_counter()
    fit_customer_values(settings, track=False)
    return round(time.perf_counter() - t0, 1)


def score_everyone(url: str, ids: list[str], batch: int = 100, threads: int = 4) -> float:
    """``/churn-score`` for every customer in batches; returns the seconds it took."""
    import httpx

    batches = [ids[i:i + batch] for i in range(0, len(ids), batch)]
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client, ThreadPoolExecutor(threads) as pool:
        for response in pool.map(lambda b: client.post("/churn-score", json={"customer_ids": b}), batches):
            response.raise_for_status()
    return time.perf_counter() - t0


def wait_for_panels(url: str, scored: int, timeout_s: float) -> dict:
    """The panels once the risk mix has every customer, the monitoring pass is drawn and nothing is computing."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        panels = httpx.get(f"{url}/dashboard/data", timeout=60).json()
        risk = panels["risk_mix"].get("data") or {}
        values = panels["value_at_risk"]
        done = (all(p["status"] != "computing" for p in panels.values()) and panels["drift"]["status"] == "ok"
                and risk.get("customers_scored", 0) >= scored
                and (values["status"] != "empty" or "no customer values" not in (values["message"] or "")))
        if done or time.monotonic() > deadline:
            return panels
        time.sleep(1.0)


def data_latency(url: str, n: int = 30) -> dict:
    """Latency (ms) and size of ``GET /dashboard/data`` on a warm service."""
    import httpx

    times, size = [], 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get("/dashboard/data")
            times.append(1000 * (time.perf_counter() - t0))
            size = len(response.content)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[min(n - 1, int(0.99 * n))], 2),
            "bytes": size}


def browser_loads(url: str, loads: int, screenshot: Path | None) -> list[dict]:
    """Load the page ``loads`` times (first cold, then warm cache); paint and drawn times per load."""
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("TENURE_CHROMIUM") or shutil.which("chromium")
    if not executable:
        raise SystemExit("Debian's chromium is needed: apt-get install -y chromium")
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        for i in range(loads):
            page = context.new_page()
            t0 = time.perf_counter()
            page.goto(f"{url}/dashboard/", wait_until="domcontentloaded")
            page.wait_for_function("window.tenureDashboard && window.tenureDashboard.drawn", timeout=120_000)
            wall = 1000 * (time.perf_counter() - t0)
            paint = dict(page.evaluate("performance.getEntriesByType('paint').map(e => [e.name, e.startTime])"))
            state = page.evaluate("window.tenureDashboard")
            nav = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0]; "
                                "return {dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd}; })()")
            drawn = [c for c in state["charts"].values() if c["status"] == "drawn"]
            out.append({"load": i + 1, "cache": "cold" if i == 0 else "warm",
                        "first_paint_ms": round(paint.get("first-paint", 0), 1),
                        "first_contentful_paint_ms": round(paint.get("first-contentful-paint", 0), 1),
                        "data_shown_ms": round(state["shownAtMs"], 1), "charts_drawn_ms": round(state["drawnAtMs"], 1),
                        **{k: round(v, 1) for k, v in nav.items()},
                        "wall_ms": round(wall, 1), "charts_drawn": len(drawn), "errors": state["errors"]})
            if screenshot is not None and i == loads - 1:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
            page.close()
        browser.close()
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("/tmp/tenure-dashboard-bench"))
    parser.add_argument("--reuse", action="store_true", help="Reuse a workspace built by an earlier run.")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--loads", type=int, default=5, help="Page loads (the first with a cold cache).")
    parser.add_argument("--screenshot", type=Path, default=None, help="Save a screenshot of the last load here.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--panels-only", action="store_true",
                        help="Only time the log-based panels for --customers scored customers (no workspace, no browser).")
    args = parser.parse_args(argv)

    from workspace import write_config

    from tenure.monitoring.runner import run_monitoring_pass

    load_before = os.getloadavg()
    costs = panel_costs(args.customers, args.workspace.parent / "tenure-dashboard-bench-log")
    print("log-based panels for", args.customers, "customers:", json.dumps(costs))
    if args.panels_only:
        result = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                  "load_average_before": [round(x, 2) for x in load_before],
                  "load_average_after": [round(x, 2) for x in os.getloadavg()],
                  "customers": args.customers, "panel_costs": costs}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        return result
    settings, ids, info = build(args.workspace, args.customers, args.items, args.days, args.reuse)
    config = write_config(settings, args.workspace / "tenure.yaml")
    for path in Path(settings.paths.prediction_log_dir).glob("churn-*.jsonl"):  # one scoring of everyone per run
        path.unlink()
    service = tenure_service(config, args.workspace / "service.log").start()
    try:
        started = time.perf_counter()
        service.wait_ready(600)
        ready_s = time.perf_counter() - started
        scoring_s = score_everyone(service.url, ids)
        t0 = time.perf_counter()
        run_monitoring_pass(settings)
        monitoring_s = time.perf_counter() - t0
        values_s = fit_values(settings)
        t0 = time.perf_counter()
        panels = wait_for_panels(service.url, len(ids), timeout_s=900)
        panels_s = time.perf_counter() - t0
        latency = data_latency(service.url)
        loads = browser_loads(service.url, args.loads, args.screenshot)
    finally:
        service.stop()
    warm = [x for x in loads if x["cache"] == "warm"] or loads
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.machine(),
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "workspace": info, "panel_costs": costs, "service_ready_s": round(ready_s, 1), "score_everyone_s": round(scoring_s, 1),
        "monitoring_pass_s": round(monitoring_s, 1), "fit_values_s": values_s, "panels_ready_after_s": round(panels_s, 1),
        "panels": {name: {"status": p["status"], "compute_s": p.get("compute_s"), "message": p.get("message")}
                   for name, p in panels.items()},
        "customers_in_risk_mix": (panels["risk_mix"].get("data") or {}).get("customers_scored"),
        "dashboard_data": latency, "loads": loads,
        "first_contentful_paint_ms": {"cold": loads[0]["first_contentful_paint_ms"],
                                      "warm_median": statistics.median(x["first_contentful_paint_ms"] for x in warm)},
        "data_shown_ms": {"cold": loads[0]["data_shown_ms"],
                          "warm_median": statistics.median(x["data_shown_ms"] for x in warm)},
        "charts_drawn_ms": {"cold": loads[0]["charts_drawn_ms"],
                            "warm_median": statistics.median(x["charts_drawn_ms"] for x in warm)},
        "target": "first paint under 1 s with 100k customers",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("workspace", "panels_ready_after_s", "dashboard_data",
                                             "first_contentful_paint_ms", "data_shown_ms", "charts_drawn_ms",
                                             "load_average_before",
                                             "load_average_after")}, indent=2))
    return result


if __name__ == "__main__":
    main()
