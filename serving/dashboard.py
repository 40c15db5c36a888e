"""``GET /dashboard``: one page of the service for marketing and ops, drawn in the browser from JSON.

Mounted on the BentoML service (``TenureService.mount_asgi_app(dashboard_app(), path="/dashboard")``),
so no extra server runs. Routes (relative to ``/dashboard/``):

- ``/`` the page (``serving/static/dashboard.html`` + ``dashboard.js``); ``/dashboard`` redirects here.
- ``/data`` every panel in one JSON object ``{panel: answer}``; ``/data/<panel>`` one panel
  (``kpis``, ``risk_mix``, ``value_at_risk``, ``experiments``, ``drift``, ``alerts``, ``champions``;
  the answer's shape is in :mod:`serving.dashboard_panels`). Scripts can read them too.
- ``/plotly.min.js`` the chart library from the installed ``plotly`` package (gzip, cached by the
  browser): the page needs no CDN and works offline.

When reads need a key (``serving.require_key_for_reads``, or the production profile), every route
needs it: ``X-API-Key`` (scripts) or HTTP Basic authentication with the key as the password (a
browser asks for it once; any user name). Missing -> 401 with ``WWW-Authenticate: Basic``, wrong
-> 403, in the API's error shape. The panels are computed in a background thread of the service
(:class:`serving.dashboard_panels.DashboardData`), so a request only copies prepared bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import hmac
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
JSON = "application/json"
REALM = 'Basic realm="tenure dashboard", charset="UTF-8"'


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None,
           headers: dict[str, str] | None = None) -> Response:
    """The API's one error shape (``serving.schemas.ErrorResponse``)."""
    return Response(json.dumps({"error": message, "detail": detail or []}), status, headers=headers, media_type=JSON)


def presented_key(headers: Any) -> bytes | None:
    """The key a request presents: ``X-API-Key``, else the password of HTTP Basic authentication."""
    given = headers.get("x-api-key")
    if given is not None:
        return given.encode()
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""  # presented, but not readable: a wrong key
    return decoded.partition(b":")[2]


def key_status(given: bytes | None, keys: list[bytes]) -> int | None:
    """None when ``given`` is one of ``keys`` (compared in constant time), else 401 (none given) or 403."""
    if given is None:
        return 401
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return None if ok else 403


class _Static:
    """The page's files, read once: the HTML (with the settings it needs), the script, plotly.min.js gzipped."""

    def __init__(self, refresh_s: float) -> None:
        self.page = (STATIC / "dashboard.html").read_text().replace(
            "{{refresh_ms}}", str(int(max(refresh_s, 5.0) * 1000))).encode()
        self.script = (STATIC / "dashboard.js").read_bytes()
        self._plotly: tuple[bytes, bytes, str] | None = None

    def plotly(self) -> tuple[bytes, bytes, str]:
        """``(raw, gzipped, etag)`` of the installed plotly's ``plotly.min.js`` (read and compressed on first use)."""
        if self._plotly is None:
            raw = resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
            etag = '"' + hashlib.sha256(raw).hexdigest()[:20] + '"'
            self._plotly = (raw, gzip.compress(raw, compresslevel=6, mtime=0), etag)
        return self._plotly


def dashboard_app() -> Starlette:
    """The ASGI app mounted at ``/dashboard``; settings are read and panels computed when the service starts."""
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        from tenure.serving.dashboard_panels import DashboardData
        from tenure.settings import load_settings

        settings = load_settings()
        state["settings"] = settings
        state["keys"] = [k.get_secret_value().encode() for k in settings.serving.api_keys if k.get_secret_value()]
        state["static"] = _Static(settings.dashboard.refresh_s)
        data = None
        if settings.dashboard.enabled:
            served, ref = _service_hooks()
            data = DashboardData(settings, served, ref)
            data.start()
        state["data"] = app.state.dashboard_data = data  # tests wait for its thread through app.state
        try:
            yield
        finally:
            if data is not None:
                data.stop()

    def guard(request: Request) -> Response | None:
        """An error answer when the dashboard is off or the request lacks the read key; None to go on."""
        settings = state.get("settings")
        if settings is None or state.get("data") is None:
            return _error(404, "the dashboard is off (dashboard.enabled: false)" if settings is not None
                          else "the dashboard is starting")
        if not settings.reads_need_key:
            return None
        if not state["keys"]:
            return _error(403, "the dashboard needs an API key, and the service has none configured (serving.api_keys)")
        status = key_status(presented_key(request.headers), state["keys"])
        if status is None:
            return None
        logger.warning("rejected %s: %d", request.url.path, status)
        if status == 401:
            return _error(401, "missing API key: send X-API-Key, or sign in with the key as the password",
                          headers={"WWW-Authenticate": REALM})
        return _error(403, "invalid API key", headers={"WWW-Authenticate": REALM})

    async def page(request: Request) -> Response:
        return guard(request) or Response(state["static"].page, media_type="text/html; charset=utf-8",
                                          headers={"Cache-Control": "no-cache"})

    async def script(request: Request) -> Response:
        return guard(request) or Response(state["static"].script, media_type="text/javascript; charset=utf-8",
                                          headers={"Cache-Control": "no-cache"})

    async def plotly(request: Request) -> Response:
        denied = guard(request)
        if denied:
            return denied
        raw, zipped, etag = state["static"].plotly()
        headers = {"Cache-Control": "public, max-age=604800", "ETag": etag, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        if "gzip" in (request.headers.get("accept-encoding") or ""):
            return Response(zipped, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})
        return Response(raw, media_type="text/javascript", headers=headers)

    async def all_panels(request: Request) -> Response:
        denied = guard(request)
        if denied:
            return denied
        import anyio.to_thread

        wait = state["settings"].dashboard.first_answer_wait_s
        body = await anyio.to_thread.run_sync(state["data"].all_bytes, wait)
        return Response(body, media_type=JSON, headers={"Cache-Control": "no-store"})

    async def one_panel(request: Request) -> Response:
        from tenure.serving.dashboard_panels import PANELS

        denied = guard(request)
        if denied:
            return denied
        name = request.path_params["panel"]
        if name not in PANELS:
            return _error(404, f"unknown dashboard panel {name!r}",
                          [{"loc": ["path", "panel"], "msg": f"one of {', '.join(PANELS)}", "type": "not_found"}])
        import anyio.to_thread

        wait = state["settings"].dashboard.first_answer_wait_s
        body = await anyio.to_thread.run_sync(state["data"].panel_bytes, name, wait)
        return Response(body, media_type=JSON, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[
        Route("/", page, methods=["GET", "HEAD"]),
        Route("/dashboard.js", script, methods=["GET", "HEAD"]),
        Route("/plotly.min.js", plotly, methods=["GET", "HEAD"]),
        Route("/data", all_panels, methods=["GET", "HEAD"]),
        Route("/data/{panel}", one_panel, methods=["GET", "HEAD"]),
    ], lifespan=lifespan)


def _service_hooks():
    """``(served_versions, customer_ref)`` read from the running service instance (None outside one)."""
    import bentoml

    found: list[Any] = []

    def service():
        if not found:
            try:
                found.append(bentoml.get_current_service())
            except Exception:  # noqa: BLE001  not initialised (tests, or before the service starts)
                return None
        return found[0]

    def served() -> dict[str, str | None]:
        svc = service()
        models = getattr(svc, "models", None)
        if models is None:
            return {}
        current = models.current
        return {"churn": current.churn_version, "recommender": current.recommender_version}

    def customer_ref(customer_id: str) -> str:
        log = getattr(service(), "prediction_log", None)
        return customer_id if log is None else log.customer_ref(customer_id)

    return served, customer_ref
