"""The OpenAPI document of the service, generated from the request and response models it runs with.

BentoML's own document describes its internal input models (an array ``detail``, no errors
beyond 400/500, no security); this one describes what :class:`serving.security.ApiGuard` and
the endpoints really answer, so clients and ``schemathesis`` (tests/serving/test_openapi.py)
can hold the service to it. It is served at ``GET /docs.json`` and shown at ``/docs``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from tenure.serving.privacy_api import ConsentRequest, ConsentResponse
from tenure.serving.schemas import (
    ChurnScoreRequest,
    ChurnScoreResponse,
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    Readiness,
    RecommendRequest,
    RecommendResponse,
    ReloadRequest,
    ReloadResponse,
    SimilarItemsRequest,
    SimilarItemsResponse,
)

REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Malformed JSON, a non-finite or oversized number, too deep a nesting, or a body that does not fit the model.",
    "401": "X-API-Key is missing (write and admin routes; reads when serving.require_key_for_reads).",
    "403": "X-API-Key is wrong, or the service has no keys configured.",
    "413": "The body is over serving.max_request_bytes, or the batch over its limit.",
    "415": "The body is not sent as Content-Type: application/json.",
    "503": "No model (or feature store) loaded yet, or the registry failed: see GET /readyz.",
}

ROUTES: dict[str, dict[str, Any]] = {
    "/churn-score": {"request": ChurnScoreRequest, "response": ChurnScoreResponse, "write": False,
                     "summary": "Calibrated churn probability, risk band and top reasons per customer."},
    "/recommend": {"request": RecommendRequest, "response": RecommendResponse, "write": False,
                   "summary": "Top-k items for one customer, with the strategy used and the items behind each."},
    "/similar-items": {"request": SimilarItemsRequest, "response": SimilarItemsResponse, "write": False,
                       "summary": "Items like one item, by the recommender's item factors.", "extra": {"404": "Unknown item."}},
    "/events": {"request": EventsRequest, "response": EventsResponse, "write": True,
                "summary": "Validate, durably log and de-duplicate events; refresh those customers' features."},
    "/consent": {"request": ConsentRequest, "response": ConsentResponse, "write": True,
                 "summary": "Record a customer's consent per scope (append-only history); counts from the next request."},
    "/admin/reload": {"request": ReloadRequest, "response": ReloadResponse, "write": True, "optional_body": True,
                      "summary": "Check the registry now and swap in newly promoted champions; 503 when the check fails."},
}
"""The POST routes: request and response models, whether a key is always needed."""

REQUEST_MODELS: dict[str, type[BaseModel]] = {path: spec["request"] for path, spec in ROUTES.items()}
"""What :class:`serving.security.ApiGuard` validates each POST body against."""


def build_openapi(reads_need_key: bool, max_batch_size: int, max_events: int, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service.

    Parameters
    ----------
    reads_need_key: whether the read routes need ``X-API-Key`` (``Settings.reads_need_key``).
    max_batch_size, max_events: the configured batch limits (``maxItems`` of the lists).
    """
    models = [(m, "validation") for m in REQUEST_MODELS.values()]
    models += [(m, "serialization") for m in (ChurnScoreResponse, RecommendResponse, SimilarItemsResponse,
                                               EventsResponse, ReloadResponse, Readiness, ErrorResponse,
                                               ConsentResponse)]
    _, defs = models_json_schema(models, ref_template=REF)
    schemas = defs.get("$defs", {})
    schemas["ChurnScoreRequest"]["properties"]["customer_ids"]["maxItems"] = max_batch_size
    schemas["EventsRequest"]["properties"]["events"]["maxItems"] = max_events
    paths: dict[str, Any] = {}
    for path, spec in ROUTES.items():
        needs_key = spec["write"] or reads_need_key
        responses = {"200": _json_response("OK", spec["response"].__name__)}
        errors = dict(_ERRORS) | spec.get("extra", {})
        if not needs_key:
            errors.pop("401"), errors.pop("403")
        for status, text in sorted(errors.items()):
            responses[status] = _json_response(text, "ErrorResponse")
        paths[path] = {"post": {
            "operationId": path.strip("/").replace("/", "_").replace("-", "_"),
            "summary": spec["summary"],
            "requestBody": {"required": not spec.get("optional_body", False),
                            "content": {"application/json": {"schema": {"$ref": REF.format(model=spec["request"].__name__)}}}},
            "responses": responses,
            "security": [{"ApiKey": []}] if needs_key else [{}, {"ApiKey": []}],
        }}
    paths["/readyz"] = {"get": {
        "operationId": "readyz",
        "summary": "Whether both champions and the feature store are loaded, and what is wrong if not.",
        "responses": {"200": _json_response("Ready.", "Readiness"), "503": _json_response("Not ready.", "Readiness")},
        "security": [{}],
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tenure", "version": version,
                 "description": "Churn scores, recommendations and event intake. Errors are always "
                                "{\"error\": str, \"detail\": [...]}. Send bodies as application/json."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}},
    }


def _json_response(description: str, model: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}
