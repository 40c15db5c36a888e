"""ASGI guard in front of the API: keys, size, media type, safe JSON, typed bodies, docs pages.

Every request to an API route passes these checks, in this order, and the first that fails
answers with a JSON error ``{"error": str, "detail": [{"loc": [...], "msg": str, "type": str}]}``
(:class:`serving.schemas.ErrorResponse`, the same shape for every status):

1. ``X-API-Key`` on write and admin routes, and on read routes when configured (compared in
   constant time, never logged): missing -> 401, wrong -> 403.
2. The body size: over ``max_bytes`` (declared or counted while read) -> 413.
3. ``POST`` bodies must say ``Content-Type: application/json`` (UTF-8) -> 415 otherwise, so a
   cross-origin ``text/plain`` form post from a web page cannot reach the API. An empty body
   needs no type (``/admin/reload`` takes none and reads it as ``{}``).
4. JSON that parses safely -> 400 otherwise, answered in milliseconds: no ``NaN``/``Infinity``
   literals, no number that overflows to infinity, no number literal longer than
   ``max_number_digits``, no nesting deeper than ``max_depth``.
5. The body against the route's request model (strict types: ``"k": "10"`` and ``"k": true``
   are not integers) -> 400 with one ``detail`` entry per field problem.

Each rejected request is one WARNING line (route, status, reason; never a traceback, never the
key), at most ``error_log_per_minute`` lines a minute. The guard also answers ``GET /readyz``
(the service's readiness: 200 ready, 503 not), ``GET /docs.json`` (the OpenAPI document built
from the request and response models, :mod:`serving.openapi`) and ``GET /`` and ``/docs``
(Swagger UI from BentoML's bundled files, without the third-party tag manager of BentoML's page).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

WRITE_ROUTES = ("/events", "/admin/", "/consent", "/customers/")
READ_ROUTES = ("/churn-score", "/recommend", "/similar-items")
DOCS_PAGES = ("/", "/docs")
DOCS_JSON = "/docs.json"


def _matches(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)


def error_body(message: str, detail: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one error shape of the API (see :class:`serving.schemas.ErrorResponse`)."""
    return {"error": message, "detail": detail or []}


async def _send_bytes(send, status: int, payload: bytes, content_type: bytes = b"application/json") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


async def _send_json(send, status: int, body: dict) -> None:
    await _send_bytes(send, status, json.dumps(body).encode())


class BodyError(ValueError):
    """A request body that is not acceptable JSON; ``msg`` says why, without echoing it."""


def parse_json(raw: bytes, max_depth: int = 32, max_number_digits: int = 40) -> Any:
    """Parse a request body strictly, in time linear in its size.

    Raises
    ------
    BodyError
        Malformed JSON or UTF-8, a ``NaN``/``Infinity`` literal, a number with more than
        ``max_number_digits`` characters or one that overflows a float, nesting deeper than
        ``max_depth``.
    """
    def constant(name: str) -> Any:
        raise BodyError(f"{name} is not a JSON number: send finite numbers only")

    def number(text: str, convert: Callable[[str], Any]) -> Any:
        if len(text) > max_number_digits:
            raise BodyError(f"a number of {len(text)} characters: at most {max_number_digits} are accepted")
        value = convert(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise BodyError(f"number {text} is out of range (not a finite 64-bit float)")
        return value

    try:
        parsed = json.loads(raw, parse_constant=constant, parse_int=lambda t: number(t, int),
                            parse_float=lambda t: number(t, float))
    except RecursionError:
        raise BodyError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    if raw.count(b"[") + raw.count(b"{") > max_depth and _deeper_than(parsed, max_depth):
        raise BodyError(f"JSON nested deeper than {max_depth} levels")
    if _SURROGATE.search(raw) and _has_lone_surrogate(parsed):
        raise BodyError("a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff): not text")
    return parsed


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _has_lone_surrogate(value: Any) -> bool:
    """True when a key or string value cannot be written as UTF-8 (a lone surrogate)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _media_type_ok(value: bytes | None) -> bool:
    """True for ``application/json`` with no charset or a UTF-8 one."""
    if value is None:
        return False
    media, _, params = value.decode("latin-1").partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def validation_detail(exc: Any) -> list[dict[str, Any]]:
    """Pydantic ``ValidationError`` -> ``detail`` entries (location, message, error type; no input echo)."""
    return [{"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors(include_url=False, include_input=False)]


class _RateLimitedLog:
    """At most ``per_minute`` WARNING lines a minute; the lines dropped are counted in the next one."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._window = 0.0
        self._count = 0
        self._dropped = 0

    def warning(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._window >= 60:
            self._window, self._count = now, 0
        if self._count >= self.per_minute:
            self._dropped += 1
            return
        self._count += 1
        if self._dropped:
            message += " (%d similar lines dropped)"
            args = (*args, self._dropped)
            self._dropped = 0
        logger.warning(message, *args)


class ApiGuard:
    """Pure ASGI middleware (BentoML ``add_asgi_middleware``).

    Parameters
    ----------
    api_keys: keys accepted in ``X-API-Key``.
    require_key_for_reads: whether the read routes need a key too.
    max_bytes: the largest body accepted.
    models: ``{route: pydantic model}`` that bodies are checked against (routes not named
        are passed on after the JSON checks).
    max_depth, max_number_digits: JSON limits (see :func:`parse_json`).
    error_log_per_minute: most log lines a minute about rejected requests.
    openapi: builds the OpenAPI document served at ``/docs.json`` (built once, on first ask).
    """

    def __init__(self, app, api_keys: list[str], require_key_for_reads: bool, max_bytes: int,
                 models: Mapping[str, Any] | None = None, max_depth: int = 32, max_number_digits: int = 40,
                 error_log_per_minute: int = 30, openapi: Callable[[], dict] | None = None) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys if k]
        self.require_key_for_reads = require_key_for_reads
        self.max_bytes = max_bytes
        self.models = dict(models or {})
        self.max_depth = max_depth
        self.max_number_digits = max_number_digits
        self._log = _RateLimitedLog(error_log_per_minute)
        self._openapi = openapi
        self._openapi_bytes: bytes | None = None

    def _key_status(self, headers: dict[bytes, bytes]) -> int | None:
        given = headers.get(b"x-api-key")
        if given is None:
            return 401
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return None if ok else 403

    async def reject(self, send, path: str, status: int, message: str,
                     detail: list[dict[str, Any]] | None = None) -> None:
        """Answer a client error and log it as one rate-limited line."""
        self._log.warning("rejected %s: %d %s", path, status, message)
        await _send_json(send, status, error_body(message, detail))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        method = scope.get("method")
        if method in ("GET", "HEAD") and await self._answer_get(path, send):
            return
        protected_write = _matches(path, WRITE_ROUTES)
        protected_read = self.require_key_for_reads and _matches(path, READ_ROUTES)
        if not (protected_write or _matches(path, READ_ROUTES)):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if protected_write or protected_read:
            if not self._keys:
                await self.reject(send, path, 403, "this route needs an API key, and the service has none "
                                                   "configured (serving.api_keys)")
                return
            status = self._key_status(headers)
            if status is not None:
                await self.reject(send, path, status, "missing X-API-Key header" if status == 401 else "invalid API key")
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.reject(send, path, 413, f"request body over {self.max_bytes} bytes")
            return
        if method != "POST":
            await self.app(scope, receive, send)
            return
        raw = await self._read_body(receive)
        if raw is None:
            await self.reject(send, path, 413, f"request body over {self.max_bytes} bytes")
            return
        if raw is _DISCONNECTED:
            return
        body = await self._check_body(path, raw, headers, send)
        if body is None:
            return
        parsed, checked = body
        if checked is not None and await self.answer(path, checked, send):
            return
        # pass the checked body on as JSON (the endpoint parses it again with its own model)
        payload = json.dumps(parsed).encode() if raw.strip() == b"" else raw
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope.get("headers") or [] if k not in (b"content-type", b"content-length")]
        scope["headers"] += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive) -> bytes | None | object:
        """The whole body; None when it is over the limit, ``_DISCONNECTED`` when the client left."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _DISCONNECTED
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                return None
            chunks.append(body)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _check_body(self, path: str, raw: bytes, headers: dict[bytes, bytes], send) -> tuple[Any, Any] | None:
        """``(parsed JSON, validated model or None)``, or None after answering with an error."""
        from pydantic import ValidationError

        empty = not raw.strip()
        if not empty and not _media_type_ok(headers.get(b"content-type")):
            await self.reject(send, path, 415, "send the body as Content-Type: application/json (UTF-8)",
                              [{"loc": ["header", "content-type"], "msg": "expected application/json",
                                "type": "unsupported_media_type"}])
            return None
        if empty and path.startswith("/admin/"):
            raw = b"{}"
        if not raw.strip():
            await self.reject(send, path, 400, "the body must be a JSON object",
                              [{"loc": ["body"], "msg": "the body is empty", "type": "missing"}])
            return None
        try:
            parsed = parse_json(raw, self.max_depth, self.max_number_digits)
        except BodyError as exc:
            await self.reject(send, path, 400, "malformed JSON", [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}])
            return None
        if not isinstance(parsed, dict):
            await self.reject(send, path, 400, "the body must be a JSON object",
                              [{"loc": ["body"], "msg": f"got {type(parsed).__name__}", "type": "model_type"}])
            return None
        model = self.models.get(path)
        if model is None:
            return parsed, None
        try:
            return parsed, self.validate(model, parsed)
        except ValidationError as exc:
            detail = validation_detail(exc)
            await self.reject(send, path, 400, f"invalid request body ({len(detail)} problem(s))", detail)
            return None
        except ValueError as exc:  # a validator's own error outside pydantic's wrapping
            await self.reject(send, path, 400, "invalid request body",
                              [{"loc": ["body"], "msg": str(exc), "type": "value_error"}])
            return None

    def validate(self, model: Any, parsed: dict) -> Any:
        """``parsed`` as an instance of the route's request model (pydantic errors are raised)."""
        return model.model_validate(parsed)

    async def answer(self, path: str, body: Any, send) -> bool:
        """Answer a checked, validated request here instead of passing it on; True when answered.

        The default answers nothing (every request goes on to the app).
        """
        return False

    async def _answer_get(self, path: str, send) -> bool:
        if path == "/readyz":
            await self._readiness(send)
            return True
        if path == DOCS_JSON and self._openapi is not None:
            if self._openapi_bytes is None:
                self._openapi_bytes = json.dumps(self._openapi()).encode()
            await _send_bytes(send, 200, self._openapi_bytes)
            return True
        if path in DOCS_PAGES:
            await _send_bytes(send, 200, DOCS_HTML.encode(), b"text/html; charset=utf-8")
            return True
        return False

    async def _readiness(self, send) -> None:
        import anyio
        import bentoml

        try:
            service = bentoml.get_current_service()
            state = await anyio.to_thread.run_sync(service.readiness)
        except Exception as exc:  # noqa: BLE001  not started yet, or no readiness method
            state = {"ready": False, "problems": [f"service not initialised yet ({type(exc).__name__})"]}
        await _send_json(send, 200 if state.get("ready") else 503, state)


_DISCONNECTED = object()

DOCS_HTML = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>tenure API</title>
    <link rel="stylesheet" type="text/css" href="/static_content/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="/static_content/index.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <noscript>The OpenAPI document is at <a href="/docs.json">/docs.json</a>.</noscript>
    <script src="/static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/static_content/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""
"""Swagger UI from BentoML's bundled static files only (no third-party script), reading ``./docs.json``.

``swagger-initializer.js`` loads ``./docs.json``: relative to ``/docs`` and ``/`` that is ``/docs.json``.
"""
