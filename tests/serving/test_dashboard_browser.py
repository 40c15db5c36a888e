"""The dashboard in a real headless browser: Debian's ``chromium`` driven by Playwright, against the
session's real service (``tenure serve``), with nothing reachable but the service itself.

It fills the panels' sources the way a user would (``/churn-score`` calls, a real monitoring pass),
loads ``/dashboard``, waits until the page says it has drawn, and checks that every chart of a panel
with data was drawn by Plotly with points, that the panels this workspace has sources for are there,
that no request left the service (the chart library comes from the installed ``plotly`` package),
and that the page raised no script error. It records the first paint and saves a screenshot
(``TENURE_DASHBOARD_SCREENSHOT=path`` copies it there).

Chromium is Debian's package (``apt-get install -y chromium``; ``.ci/run`` installs it when missing);
Playwright never downloads a browser. Without chromium the test fails, naming the fix; locally,
``TENURE_SKIP_BROWSER=1`` skips it instead (never under CI).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def chromium_executable() -> str:
    """The system chromium, or a test failure (a skip only with ``TENURE_SKIP_BROWSER=1`` outside CI)."""
    path = os.environ.get("TENURE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("TENURE_SKIP_BROWSER") == "1" and not os.environ.get("CI"):
        pytest.skip("TENURE_SKIP_BROWSER=1: the dashboard's browser test is skipped (chromium is not installed)")
    pytest.fail("Debian's chromium is not installed, so the dashboard cannot be tested in a browser: "
                "apt-get install -y chromium (.ci/run does it), or set TENURE_CHROMIUM to a Chromium binary; "
                "TENURE_SKIP_BROWSER=1 skips this test on a developer machine")


def _wait_for_panels(client, names: list[str], timeout_s: float = 60.0) -> dict:
    """The dashboard's panels once every one of ``names`` answers ``ok`` (the service refreshes them every second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        panels = client.get("/dashboard/data").json()
        if all(panels[n]["status"] == "ok" for n in names) or time.monotonic() > deadline:
            return panels
        time.sleep(0.5)


def test_the_dashboard_draws_every_chart_with_data_in_a_real_browser(service, client, workspace, tmp_path,
                                                                        record_property):
    from playwright.sync_api import sync_playwright

    from tenure.monitoring.runner import run_monitoring_pass
    from tenure.serving.dashboard_panels import room_available

    executable = chromium_executable()
    settings, shop, _ = workspace
    ids = [str(c) for c in shop.customers["customer_id"][:150]]
    for start in range(0, len(ids), 50):
        assert client.post("/churn-score", json={"customer_ids": ids[start:start + 50]}).status_code == 200
    run_monitoring_pass(settings)  # a real drift report (and an alert if it finds drift)
    expected = ["risk_mix", "drift", "champions"] + (["kpis"] if room_available("tenure.insight.kpis") else [])
    if room_available("tenure.insight.value"):  # customer values: value at risk has something to draw
        from tenure.insight import value

        if hasattr(value, "fit_customer_values"):
            value.fit_customer_values(settings, track=False)
            expected.append("value_at_risk")
    panels = _wait_for_panels(client, expected)
    assert {n: panels[n]["status"] for n in expected} == dict.fromkeys(expected, "ok"), \
        {n: panels[n]["message"] for n in expected}

    outside: list[str] = []
    page_errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})

            def only_the_service(route):
                if route.request.url.startswith(service.url):
                    route.continue_()
                else:  # a CDN, a font, anything else: the page must not need it
                    outside.append(route.request.url)
                    route.abort()

            context.route("**/*", only_the_service)
            page = context.new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.goto(f"{service.url}/dashboard", wait_until="domcontentloaded")
            assert page.url == f"{service.url}/dashboard/"  # /dashboard redirects to the page
            page.wait_for_function("window.tenureDashboard && window.tenureDashboard.drawn", timeout=60_000)
            state = page.evaluate("window.tenureDashboard")
            rendered = page.evaluate("""() => Array.from(document.querySelectorAll('.chart')).map(n => ({
                id: n.id, panel: n.dataset.panel, empty: n.dataset.empty === 'true', hidden: n.closest('[hidden]') !== null,
                svg: n.querySelectorAll('.main-svg').length, traces: (n._fullData || []).length,
                points: (n._fullData || []).reduce((s, t) => s + ((t.y || t.x || []).length || 0), 0)}))""")
            paint = dict(page.evaluate("performance.getEntriesByType('paint').map(e => [e.name, e.startTime])"))
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert outside == [], f"the page asked for something outside the service: {outside}"
    assert page_errors == [] and state["errors"] == [], (page_errors, state["errors"])
    statuses = {name: p["status"] for name, p in state["panels"].items()}
    assert {n: statuses[n] for n in expected} == dict.fromkeys(expected, "ok")
    assert statuses["experiments"] in ("ok", "empty") and statuses["value_at_risk"] in ("ok", "empty", "unavailable")
    drawn = 0
    for chart in rendered:
        if chart["hidden"]:
            continue
        if statuses.get(chart["panel"]) == "ok":  # a panel with data: its chart is an SVG drawn by Plotly, with points
            assert chart["svg"] > 0 and chart["traces"] > 0 and chart["points"] > 0, chart
            assert state["charts"][chart["id"]]["status"] == "drawn"
            drawn += 1
        else:  # a panel without data says so in place of the chart
            assert chart["empty"] and state["charts"][chart["id"]]["message"], chart
    assert drawn >= 4
    assert paint.get("first-contentful-paint", 0) > 0 and state["drawnAtMs"] > 0
    record_property("first_contentful_paint_ms", paint["first-contentful-paint"])
    record_property("charts_drawn_ms", state["drawnAtMs"])
    assert shot.stat().st_size > 20_000
    if os.environ.get("TENURE_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, Path(os.environ["TENURE_DASHBOARD_SCREENSHOT"]))
