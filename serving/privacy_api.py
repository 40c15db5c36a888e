"""The service's privacy endpoints: ``POST /consent`` and ``DELETE /customers/{id}`` (bodies and handlers).

Consent changes go into the append-only history (:mod:`tenure.privacy.consent`) and count from
the next request of every endpoint (the service's :class:`~tenure.privacy.consent.ConsentView`
notices the change). Erasure runs :func:`tenure.privacy.erasure.forget_customers` with the stores
this process holds (its event log, prediction log, trigger outbox and in-memory state) beside the
workspace's own, and answers with the receipt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from tenure.serving.schemas import ID_MAX, Id, _Strict

Scope = Literal["personalization", "profiling", "marketing"]


class ConsentRequest(_Strict):
    """One customer's consent decisions, per scope (purpose)."""

    customer_id: Id
    scopes: dict[Scope, bool] = Field(..., min_length=1, description="true = given, false = withdrawn; "
                                      "personalization (recommendations from history), profiling (churn scoring), "
                                      "marketing (audiences and triggers).")
    channel: Annotated[str, Field(max_length=64)] | None = Field(None, description="Where the customer decided "
                                                                              "(web, app, email, call centre, ...).")
    at: Annotated[str, Field(max_length=64, json_schema_extra={"format": "date-time"})] | None = Field(
        None, description="When the customer decided (RFC 3339 / ISO 8601 with offset); default: now.")


class ConsentResponse(BaseModel):
    """The customer's explicit consent after the change (null: never set, the default applies)."""

    customer_id: str
    consent: dict[str, bool | None]
    recorded: int = Field(..., description="Changes appended to the history.")
    recorded_at: str


class ForgetResponse(BaseModel):
    """The erasure receipt (no raw id: ``subject`` is a salted hash)."""

    receipt_id: str
    subject: str = Field(..., description="Salted hash of the (first) customer id (the tombstone).")
    subjects: list[str] = Field(default_factory=list, description="Salted hashes of every erased customer, in order.")
    removed: dict[str, int] = Field(..., description="Records removed per store.")
    remaining: dict[str, int] = Field(default_factory=dict, description="Records still found per store (should be empty).")
    seconds: float
    receipt_path: str


def record_consent(view, request: ConsentRequest) -> ConsentResponse:
    """Append the request's decisions to the history (ValueError for a bad ``at``)."""
    from tenure.privacy.consent import SCOPES, ConsentChange, parse_time

    at = parse_time(request.at, "at") if request.at else datetime.now(UTC)
    changes = [ConsentChange(request.customer_id, scope, granted, at, request.channel, "api")
               for scope, granted in request.scopes.items()]
    state = view.record(changes).get(request.customer_id, {})
    return ConsentResponse(customer_id=request.customer_id, consent={s: state.get(s) for s in SCOPES},
                           recorded=len(changes), recorded_at=datetime.now(UTC).isoformat(timespec="milliseconds"))


def customer_id_of(path: str) -> str | None:
    """The id in ``/customers/{id}`` (URL-decoded), or None for another path or an empty or too long id."""
    from urllib.parse import unquote

    prefix = "/customers/"
    if not path.startswith(prefix):
        return None
    cid = unquote(path[len(prefix):])
    return cid if 0 < len(cid) <= ID_MAX and "/" not in cid else None


def receipt_response(receipt: dict[str, Any]) -> ForgetResponse:
    """The HTTP answer of an erasure from its receipt."""
    return ForgetResponse(receipt_id=receipt["receipt_id"], subject=receipt["subjects"][0], subjects=receipt["subjects"],
                          removed={k: v["removed"] for k, v in receipt["stores"].items() if v["removed"]},
                          remaining={k: v for k, v in receipt.get("verification", {}).get("remaining", {}).items() if v},
                          seconds=receipt["seconds"], receipt_path=receipt["path"])


MAX_FORGET_BATCH = 1000
"""Most customers of one ``POST /customers/forget``."""


def forget_app():
    """The ASGI app mounted at ``/customers`` (API key: the guard checks it, as for every write route).

    - ``DELETE /customers/{id}`` erases one customer and answers with the receipt. The id is in
      the URL, so BentoML's per-path request metrics (``<data_dir>/state/bentoml``, cleared at
      each start) and any proxy's access log keep it;
    - ``POST /customers/forget {"customer_ids": [...]}`` does the same for up to 1,000 customers
      with the ids in the body only (the route to use when URLs are logged).
    """
    import anyio.to_thread
    import bentoml
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def delete_customer(request):
        cid = request.path_params["customer_id"]
        if not 0 < len(cid) <= ID_MAX:
            return JSONResponse({"error": f"customer id must be 1 to {ID_MAX} characters",
                                 "detail": [{"loc": ["path", "customer_id"], "msg": "bad length"}]}, status_code=400)
        service = bentoml.get_current_service()
        receipt = await anyio.to_thread.run_sync(service.forget_customers, [cid])
        return JSONResponse(receipt_response(receipt).model_dump())

    async def forget_customers(request):
        try:
            body = await request.json()
        except ValueError:
            body = None
        ids = body.get("customer_ids") if isinstance(body, dict) else None
        if (not isinstance(ids, list) or not 0 < len(ids) <= MAX_FORGET_BATCH
                or not all(isinstance(c, str) and 0 < len(c.strip()) and len(c) <= ID_MAX for c in ids)):
            return JSONResponse({"error": f"send {{\"customer_ids\": [...]}}: 1 to {MAX_FORGET_BATCH} non-empty ids "
                                          f"of at most {ID_MAX} characters",
                                 "detail": [{"loc": ["body", "customer_ids"], "msg": "invalid"}]}, status_code=400)
        service = bentoml.get_current_service()
        receipt = await anyio.to_thread.run_sync(service.forget_customers, ids)
        return JSONResponse(receipt_response(receipt).model_dump())

    return Starlette(routes=[Route("/forget", forget_customers, methods=["POST"]),
                             Route("/{customer_id:path}", delete_customer, methods=["DELETE"])])
