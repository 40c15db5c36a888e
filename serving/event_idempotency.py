"""Idempotency of ``POST /events`` across machines: a shared index of accepted event ids in Redis.

On one machine the event log's SQLite id index, read and written under the log's commit lock,
is enough: every worker of the service appends to the same log and checks the same index in
turn (:class:`tenure.serving.event_intake.DurableEventLog`). Replicas on several machines each
have their own log, so a replay sent to another machine would be accepted twice; with
``events.idempotency: redis`` (the production profile's default) the ids are also claimed in
Redis, which every replica shares:

1. before the write, each new id is *claimed* (``SET tenure:event:<id> <token> NX PX lease``);
   an id already ``logged`` is a duplicate; an id claimed by another request still in flight is
   waited for (at most ``wait_s``: normally it is logged within milliseconds), and if it is still
   in flight then, the event is answered "send it again" (not acknowledged, so nothing is lost);
2. after the fsync, the claimed ids are marked ``logged`` (kept ``ttl_s``);
3. when the write fails, the claims are released; when the process dies between the claim and
   the fsync, the claim expires after ``lease_s`` and a retry is accepted then.

A process that dies after the fsync but before step 2 marks its logged ids at its next start
(the log's start-up catch-up); a replay sent elsewhere within ``lease_s`` .. that restart may be
logged twice (at least once, never lost), and the incremental features still count it once
(their state is de-duplicated on ``event_id``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

LOGGED = b"1"

# delete a claim only when it is still ours (a claim that expired may belong to another request now)
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    n = n + redis.call('DEL', key)
  end
end
return n
"""


@dataclass
class Claims:
    """The outcome of :meth:`RedisIdempotency.claim`.

    Attributes
    ----------
    claimed: ids this request may log (and must then :meth:`~RedisIdempotency.confirm`).
    logged: ids accepted before (duplicates).
    busy: ids another request is logging right now and did not finish within ``wait_s``.
    token: this request's claim value (for :meth:`~RedisIdempotency.release`).
    """

    claimed: list[str] = field(default_factory=list)
    logged: set[str] = field(default_factory=set)
    busy: set[str] = field(default_factory=set)
    token: bytes = b""


class RedisIdempotency:
    """Accepted event ids in Redis, shared by every replica (see the module docstring).

    Parameters
    ----------
    client:
        A ``redis.Redis`` client (:func:`tenure.serving.redis_link.redis_client`).
    prefix:
        Key prefix (``tenure:event:<event_id>``).
    ttl_s:
        How long an accepted id is remembered (``events.idempotency_ttl_days``).
    lease_s:
        How long a claim holds when its process dies before logging.
    wait_s:
        How long a request waits for an id another request is logging.
    """

    def __init__(self, client, prefix: str = "tenure:event:", ttl_s: float = 30 * 86_400, lease_s: float = 30.0,
                 wait_s: float = 2.0) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.lease_s = lease_s
        self.wait_s = wait_s
        self._release = client.register_script(_RELEASE)

    def _keys(self, ids: Iterable[str]) -> list[str]:
        return [self.prefix + i for i in ids]

    def claim(self, ids: Sequence[str]) -> Claims:
        """Claim the ids not accepted before; see :class:`Claims`. Raises ``redis.RedisError`` when Redis fails."""
        token = uuid.uuid4().hex.encode()
        out = Claims(token=token)
        waiting = list(dict.fromkeys(ids))
        deadline = time.monotonic() + self.wait_s
        while waiting:
            pipe = self.client.pipeline(transaction=False)
            for key in self._keys(waiting):
                pipe.set(key, token, nx=True, px=int(self.lease_s * 1000))
            taken = pipe.execute()
            others = [i for i, ok in zip(waiting, taken) if not ok]
            out.claimed.extend(i for i, ok in zip(waiting, taken) if ok)
            if not others:
                break
            values = self.client.mget(self._keys(others))
            out.logged.update(i for i, v in zip(others, values) if v == LOGGED)
            waiting = [i for i, v in zip(others, values) if v != LOGGED]  # in flight elsewhere (or just expired)
            if waiting and time.monotonic() >= deadline:
                out.busy.update(waiting)
                break
            if waiting:
                time.sleep(0.005)
        return out

    def confirm(self, ids: Sequence[str]) -> None:
        """Mark ids as logged (after the fsync)."""
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        for key in self._keys(ids):
            pipe.set(key, LOGGED, ex=max(1, int(self.ttl_s)))
        pipe.execute()

    def release(self, claims: Claims) -> None:
        """Drop a request's claims (its write failed): a retry may claim them at once."""
        if claims.claimed:
            self._release(keys=self._keys(claims.claimed), args=[claims.token])

    def forget(self, ids: Sequence[str]) -> None:
        """Remove ids from the index (an erasure of their events); a later replay is accepted as new."""
        if ids:
            self.client.delete(*self._keys(ids))
