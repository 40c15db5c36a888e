"""ASGI guard in front of the API: request size limit, API keys, and JSON that parses.

- Bodies over ``max_bytes`` -> 413; malformed JSON -> 400 with the parser's message.
- ``X-API-Key`` is required on write and admin routes, and on reads when configured;
  keys are compared in constant time and never logged. Missing key -> 401, wrong -> 403.
- API bodies are read as JSON whatever the ``Content-Type`` says; an empty body on
  ``/admin/*`` means ``{}``.
- ``GET /readyz`` answers with the service's :meth:`readiness` as JSON (200 ready, 503 not),
  so a probe and a person both see what is loaded.
Errors are JSON ``{"error": ..., "detail": [...]}`` and never carry a traceback.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)

WRITE_ROUTES = ("/events", "/admin/")
READ_ROUTES = ("/churn-score", "/recommend", "/similar-items")


def _matches(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)


async def _send_json(send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class ApiGuard:
    """Pure ASGI middleware (BentoML ``add_asgi_middleware``)."""

    def __init__(self, app, api_keys: list[str], require_key_for_reads: bool, max_bytes: int) -> None:
        self.app = app
        self._keys = [k.encode() for k in api_keys if k]
        self.require_key_for_reads = require_key_for_reads
        self.max_bytes = max_bytes

    def _key_status(self, headers: dict[bytes, bytes]) -> int | None:
        given = headers.get(b"x-api-key")
        if given is None:
            return 401
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(given, key)
        return None if ok else 403

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/readyz" and scope.get("method") == "GET":
            await self._readiness(send)
            return
        protected_write = _matches(path, WRITE_ROUTES)
        protected_read = self.require_key_for_reads and _matches(path, READ_ROUTES)
        if not (protected_write or _matches(path, READ_ROUTES)):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if protected_write or protected_read:
            if not self._keys:
                await _send_json(send, 403, {"error": "this route needs an API key, and the service has none "
                                                      "configured (serving.api_keys)"})
                return
            status = self._key_status(headers)
            if status is not None:
                await _send_json(send, status, {"error": "missing X-API-Key header" if status == 401 else "invalid API key"})
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_json(send, 413, {"error": f"request body over {self.max_bytes} bytes"})
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _send_json(send, 413, {"error": f"request body over {self.max_bytes} bytes"})
                return
            chunks.append(body)
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if not raw.strip() and path.startswith("/admin/"):
            raw = b"{}"
        try:
            parsed = json.loads(raw or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            await _send_json(send, 400, {"error": "malformed JSON", "detail": [{"msg": str(exc)}]})
            return
        if not isinstance(parsed, dict):
            await _send_json(send, 400, {"error": "the body must be a JSON object",
                                         "detail": [{"msg": f"got {type(parsed).__name__}"}]})
            return
        if await self.answer(path, parsed, send):
            return
        # the body is JSON whatever the client declared (curl -d sends form encoding by default)
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope.get("headers") or [] if k not in (b"content-type", b"content-length")]
        scope["headers"] += [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def answer(self, path: str, body: dict, send) -> bool:
        """Answer a checked, parsed request here instead of passing it on; True when answered.

        The default answers nothing (every request goes on to the app).
        """
        return False

    async def _readiness(self, send) -> None:
        import anyio
        import bentoml

        try:
            service = bentoml.get_current_service()
            state = await anyio.to_thread.run_sync(service.readiness)
        except Exception as exc:  # noqa: BLE001  not started yet, or no readiness method
            state = {"ready": False, "reason": f"service not initialised: {type(exc).__name__}"}
        await _send_json(send, 200 if state.get("ready") else 503, state)
