"""A small synchronous client of the tenure HTTP API, for the demo, the tests and scripts.

It sends the API key on every request, splits large requests the way the service wants
them (``/churn-score`` in batches, ``/events`` with each customer's events together), and
raises :class:`ServiceError` with the status and the answer's text on any 4xx/5xx.
The load benchmark has its own raw client (lighter per request); everything else uses this.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Self


class ServiceError(RuntimeError):
    """The service answered 4xx/5xx; ``status`` holds the code."""

    def __init__(self, route: str, status: int, text: str) -> None:
        super().__init__(f"{route} answered {status}: {text[:500]}")
        self.route = route
        self.status = status


def customer_batches(records: list[dict[str, Any]], max_events: int,
                     max_customers: int) -> Iterator[list[dict[str, Any]]]:
    """Split events into requests that keep each customer's events together (in time order).

    The service refreshes the online features of every customer in a request once, so a
    customer split over two requests would cost two refreshes; ``max_customers`` bounds the
    refreshes (the work) of one request, ``max_events`` its size.
    """
    if max_events < 1 or max_customers < 1:
        raise ValueError(f"max_events and max_customers must be at least 1, got {max_events} and {max_customers}")
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_customer.setdefault(str(record["customer_id"]), []).append(record)
    batch: list[dict[str, Any]] = []
    customers = 0
    for group in by_customer.values():
        group.sort(key=lambda r: r["event_at"])
        if batch and (len(batch) + len(group) > max_events or customers >= max_customers):
            yield batch
            batch, customers = [], 0
        batch.extend(group)  # a customer with more than max_events events gets requests of their own
        customers += 1
        while len(batch) > max_events:
            yield batch[:max_events]
            batch = batch[max_events:]
    if batch:
        yield batch


class ServiceClient:
    """The tenure API at ``base_url``, with ``api_key`` sent as ``X-API-Key`` (when given).

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout_s: float = 120.0) -> None:
        import httpx

        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, route: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.post(route, json=body)
        if response.status_code >= 400:
            raise ServiceError(route, response.status_code, response.text)
        return response.json()

    def health(self) -> bool:
        """Whether the service answers ``/healthz`` (alive; models loaded or not)."""
        import httpx

        try:
            return self._http.get("/healthz", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def readiness(self) -> dict[str, Any]:
        """The ``/readyz`` body: ``ready``, the loaded model versions and any ``problems``."""
        return self._http.get("/readyz", timeout=10.0).json()

    def churn_score(self, customer_ids: Sequence[str], batch: int = 100) -> list[dict[str, Any]]:
        """``POST /churn-score`` in batches of at most ``batch`` customers; the per-customer results in order."""
        ids = list(customer_ids)
        results: list[dict[str, Any]] = []
        for start in range(0, len(ids), batch):
            results.extend(self._post("/churn-score", {"customer_ids": ids[start : start + batch]})["results"])
        return results

    def recommend(self, customer_id: str, k: int = 10, exclude_purchased: bool = True) -> dict[str, Any]:
        """``POST /recommend``: ``items`` (``item_id``, ``score``, ``because``), ``strategy``, ``model_version``."""
        return self._post("/recommend", {"customer_id": customer_id, "k": k, "exclude_purchased": exclude_purchased})

    def post_events(self, records: list[dict[str, Any]], max_events: int = 1000, max_customers: int = 100) -> int:
        """``POST /events``, customers kept together (see :func:`customer_batches`); returns how many were sent."""
        sent = 0
        for chunk in customer_batches(records, max_events, max_customers):
            self._post("/events", {"events": chunk})
            sent += len(chunk)
        return sent

    def send_events(self, events: list[dict[str, Any]], wait_for_features: bool = False) -> dict[str, Any]:
        """One ``POST /events`` request; the per-event acknowledgement (``accepted``, ``duplicates``, ...).

        With ``wait_for_features`` the answer comes once the customers' online features include
        the events (``features_updated``), so a score asked for next sees them.
        """
        body: dict[str, Any] = {"events": events}
        if wait_for_features:
            body["wait_for_features"] = True
        return self._post("/events", body)

    def consent(self, customer_id: str, scopes: dict[str, bool], channel: str | None = None) -> dict[str, Any]:
        """``POST /consent``: record a consent decision per scope; the customer's explicit consent after it."""
        return self._post("/consent", {"customer_id": customer_id, "scopes": scopes, "channel": channel})

    def forget(self, customer_id: str) -> dict[str, Any]:
        """``DELETE /customers/{id}``: erase one customer; the receipt's summary."""
        from urllib.parse import quote

        route = f"/customers/{quote(customer_id, safe='')}"
        response = self._http.delete(route)
        if response.status_code >= 400:
            raise ServiceError(route, response.status_code, response.text)
        return response.json()

    def reload(self) -> dict[str, Any]:
        """``POST /admin/reload``: the model versions now served and whether they ``changed``."""
        return self._post("/admin/reload")
