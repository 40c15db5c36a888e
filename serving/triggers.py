"""Proactive triggers: tell marketing when new events move a customer into a watched risk band.

After each micro-batch of the online feature updater, before its push, :meth:`Triggers.consider`
scores the touched customers twice with the churn champion: on their online row as it is
(before) and with the new features laid over it (after; exactly the row the push will leave).
A customer whose band changes *into* one of ``triggers.bands`` gets one message; the band each
customer was last seen in, the message (outbox) and the per-customer counters are written in
one SQLite transaction (``<event_log_dir>/triggers.sqlite``) before the push, so a crash at any
point neither loses a crossing nor creates it twice: a replayed micro-batch finds the band
already stored.

Delivery: each message is queued once per configured sink, and each sink's sender (a thread)
delivers its share on its own, retries with exponential back-off, and after
``triggers.max_attempts`` writes it to the dead-letter file (JSON lines) instead:

- :class:`WebhookSender` POSTs it as JSON with its ``dedupe_key`` in the body and the
  ``Idempotency-Key`` header (delivery is at least once; the key makes it once for a receiver
  that remembers keys);
- :class:`RedisStreamSender` adds it to a Redis stream (``XADD``) in one server-side step with
  a ``SET NX`` of its dedupe key, so a message delivered again after a crash is not added twice
  (once per dedupe key in the stream, for ``triggers.redis_dedupe_days``).

Consent (``consent_personalization`` = 0: no message, the band is still recorded) and a
per-customer minimum interval between messages (``triggers.min_interval_s``) are respected.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tenure.files import open_sqlite_wal
from tenure.serving.background import BackgroundLoop

logger = logging.getLogger(__name__)


class Triggers:
    """Band-crossing detection and the outbox (see the module docstring).

    Parameters
    ----------
    folder:
        Where ``triggers.sqlite`` lives (``paths.event_log_dir``).
    bands:
        Entering one of these bands sends a message (e.g. ``["high"]``).
    min_interval_s:
        Least time between two messages to one customer (later crossings are recorded, not sent).
    count:
        ``count(outcome, n)`` for the metrics (``queued``, ``no_consent``, ``rate_limited``).
    customer_ref:
        How the band table names a customer (:func:`tenure.pseudonym.customer_ref` with the log key
        when logs are pseudonymous; the raw id otherwise). Messages carry the raw id: the receiver needs it.
    may_contact:
        ``may_contact(customer_id)``: False when the customer withdrew the ``marketing`` consent
        (privacy/consent.py): no message, counted as ``no_consent``; the band is still recorded.
    sinks:
        Names of the configured sinks (``webhook``, ``redis_stream``): each message is queued once
        per sink, and each sink's sender delivers, retries and dead-letters it on its own.
    """

    def __init__(self, folder: Path, bands: Sequence[str], min_interval_s: float,
                 count: Callable[[str, int], None] | None = None,
                 customer_ref: Callable[[str], str] | None = None,
                 may_contact: Callable[[str], bool] | None = None,
                 sinks: Sequence[str] = ("webhook",)) -> None:
        self.bands = frozenset(bands)
        self.sinks = tuple(sinks)
        self._may_contact = may_contact or (lambda customer_id: True)
        self._ref = customer_ref or (lambda customer_id: customer_id)
        self.min_interval_s = min_interval_s
        self._count = count or (lambda outcome, n: None)
        self._db = open_sqlite_wal(Path(folder) / "triggers.sqlite")
        self._db.execute("CREATE TABLE IF NOT EXISTS band (customer_id TEXT PRIMARY KEY, band TEXT, crossings INTEGER, "
                         "last_sent REAL, seq REAL)")
        if "seq" not in {row[1] for row in self._db.execute("PRAGMA table_info(band)")}:
            self._db.execute("ALTER TABLE band ADD COLUMN seq REAL")  # band tables of earlier versions
        self._db.execute("CREATE TABLE IF NOT EXISTS delivery (sink TEXT, dedupe_key TEXT, body TEXT, state TEXT, "
                         "attempts INTEGER, next_at REAL, PRIMARY KEY (sink, dedupe_key))")
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox'").fetchone():
            # the one-sink outbox of earlier versions: its messages were for the webhook
            self._db.execute("INSERT OR IGNORE INTO delivery SELECT 'webhook', dedupe_key, body, state, attempts, "
                             "next_at FROM outbox")
            self._db.execute("DROP TABLE outbox")
        self._db.commit()
        self._lock = threading.Lock()

    def consider(self, scorer, model_version: str | None, before: dict[str, dict[str, Any] | None],
                 updates: dict[str, dict[str, Any]], as_of: str, extras: Callable[[str], dict[str, Any]] | None = None,
                 now: float | None = None, seq: float | None = None) -> list[dict[str, Any]]:
        """Detect band crossings of ``updates`` and queue their messages; returns the queued messages.

        ``before`` holds each customer's online row before the update (None when absent: the
        new features alone are scored and the "before" band is unknown, so no crossing).
        ``seq`` orders the updates (the updater's event-time clock): a customer whose band was
        stored by a later update (``seq`` larger than this one's) is left alone, so replaying
        several micro-batches after a restart does not see a crossing back and forth again.
        """
        ids = [cid for cid in updates if before.get(cid) is not None]
        if not ids or scorer is None:
            return []
        old_rows = [before[cid] for cid in ids]
        new_rows = [{**before[cid], **{k: v for k, v in updates[cid].items() if k in before[cid]}} for cid in ids]
        X_old, X_new = scorer.vectorize(old_rows), scorer.vectorize(new_rows)
        p_old = scorer.predict_proba(X_old)
        p_new, reasons = scorer.score(X_new)
        bands_old, bands_new = scorer.risk_bands(p_old), scorer.risk_bands(p_new)
        percentiles = scorer.percentiles(p_new) if hasattr(scorer, "percentiles") else None
        now = time.time() if now is None else now
        queued: list[dict[str, Any]] = []
        with self._lock:
            marks = ",".join("?" * len(ids))
            refs = {cid: self._ref(cid) for cid in ids}
            by_ref = {r[0]: r[1:] for r in self._db.execute(
                f"SELECT customer_id, band, crossings, last_sent, seq FROM band WHERE customer_id IN ({marks})",
                list(refs.values()))}
            stored = {cid: by_ref[ref] for cid, ref in refs.items() if ref in by_ref}
            band_rows, outbox_rows = [], []
            skipped = {"no_consent": 0, "rate_limited": 0}
            for n, cid in enumerate(ids):
                previous, crossings, last_sent, stored_seq = stored.get(cid, (bands_old[n], 0, None, None))
                if seq is not None and stored_seq is not None and seq < stored_seq:
                    continue  # a replayed, older update: a later one already set this customer's band
                row_seq = seq if seq is not None else stored_seq
                band = bands_new[n]
                if band == previous:
                    if cid not in stored or row_seq != stored_seq:
                        band_rows.append((refs[cid], band, crossings, last_sent, row_seq))
                    continue
                if band in self.bands:
                    consent = new_rows[n].get("consent_personalization")
                    if (consent is not None and not (isinstance(consent, float) and math.isnan(consent)) and not consent
                            or not self._may_contact(cid)):
                        skipped["no_consent"] += 1
                    elif last_sent is not None and now - last_sent < self.min_interval_s:
                        skipped["rate_limited"] += 1
                    else:
                        crossings += 1
                        last_sent = now
                        message = {
                            "dedupe_key": f"{cid}:{previous}->{band}:{crossings}", "kind": "churn_band_crossing",
                            "customer_id": cid, "from_band": previous, "to_band": band,
                            "churn_probability": float(p_new[n]), "previous_probability": float(p_old[n]),
                            "percentile": None if percentiles is None else float(percentiles[n]),
                            "top_reasons": reasons[n], "model_version": model_version, "features_as_of": as_of,
                            "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
                            **(extras(cid) if extras else {}),
                        }
                        body = json.dumps(message, default=str)
                        outbox_rows.extend((sink, message["dedupe_key"], body, "pending", 0, now)
                                           for sink in self.sinks)
                        queued.append(message)
                band_rows.append((refs[cid], band, crossings, last_sent, row_seq))
            self._db.executemany("INSERT OR REPLACE INTO band (customer_id, band, crossings, last_sent, seq) "
                                 "VALUES (?, ?, ?, ?, ?)", band_rows)
            self._db.executemany("INSERT OR IGNORE INTO delivery VALUES (?, ?, ?, ?, ?, ?)", outbox_rows)
            self._db.commit()
        for outcome, n in (("queued", len(queued)), *skipped.items()):
            if n:
                self._count(outcome, n)
        return queued

    def due(self, now: float, limit: int = 100, sink: str = "webhook") -> list[tuple[str, str, int]]:
        """Pending messages of ``sink`` whose next attempt is due: ``(dedupe_key, body, attempts)``."""
        with self._lock:
            return list(self._db.execute("SELECT dedupe_key, body, attempts FROM delivery WHERE sink = ? AND "
                                         "state = 'pending' AND next_at <= ? ORDER BY next_at LIMIT ?",
                                         (sink, now, limit)))

    def mark(self, key: str, state: str, attempts: int, next_at: float = 0.0, sink: str = "webhook") -> None:
        """Record a delivery outcome (``delivered``, ``dead`` or still ``pending`` with its next attempt)."""
        with self._lock:
            self._db.execute("UPDATE delivery SET state = ?, attempts = ?, next_at = ? WHERE sink = ? AND "
                             "dedupe_key = ?", (state, attempts, next_at, sink, key))
            self._db.commit()

    def counts(self, sink: str | None = None) -> dict[str, int]:
        """Messages by state (of one sink, or of every sink together)."""
        with self._lock:
            if sink is None:
                return dict(self._db.execute("SELECT state, COUNT(*) FROM delivery GROUP BY state").fetchall())
            return dict(self._db.execute("SELECT state, COUNT(*) FROM delivery WHERE sink = ? GROUP BY state",
                                         (sink,)).fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()


class OutboxSender(BackgroundLoop):
    """Delivers one sink's share of the outbox: retries with exponential back-off, then a dead-letter file.

    Subclasses name the sink (:attr:`sink`, :attr:`target`) and send one message (:meth:`_send`).

    Parameters
    ----------
    triggers:
        The outbox.
    dead_letter:
        JSON-lines file for messages that failed ``max_attempts`` times.
    max_attempts, backoff_s:
        Attempts per message, the first retry's delay (doubling, at most 5 minutes).
    count:
        ``count(outcome, n)`` for the metrics (``delivered``, ``retried``, ``dead_letter``).
    """

    sink = "webhook"
    target = ""

    def __init__(self, triggers: Triggers, dead_letter: Path, max_attempts: int = 8, backoff_s: float = 1.0,
                 count: Callable[[str, int], None] | None = None) -> None:
        self.triggers = triggers
        self.dead_letter = Path(dead_letter)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._count = count or (lambda outcome, n: None)
        super().__init__(f"trigger-{self.sink}")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.deliver_due()
            except Exception:
                logger.exception("trigger delivery pass (%s) failed", self.sink)
                sent = 0
            if not sent:
                self._wake.wait(0.5)
                self._wake.clear()

    def deliver_due(self, now: float | None = None) -> int:
        """One pass over the due messages; returns how many were attempted."""
        due = self.triggers.due(time.time() if now is None else now, sink=self.sink)
        for key, body, attempts in due:
            if self._stop.is_set():
                break
            attempts += 1
            if self._send(key, body):
                self.triggers.mark(key, "delivered", attempts, sink=self.sink)
                self._count("delivered", 1)
            elif attempts >= self.max_attempts:
                self.dead_letter.parent.mkdir(parents=True, exist_ok=True)
                with open(self.dead_letter, "a") as f:
                    f.write(json.dumps({"dedupe_key": key, "attempts": attempts, "sink": self.sink,
                                        "url" if self.sink == "webhook" else "target": self.target,
                                        "message": json.loads(body)}) + "\n")
                self.triggers.mark(key, "dead", attempts, sink=self.sink)
                self._count("dead_letter", 1)
                logger.warning("trigger %s (%s) moved to the dead-letter file %s after %d attempts", key, self.sink,
                               self.dead_letter, attempts)
            else:
                delay = min(self.backoff_s * 2 ** (attempts - 1), 300.0)
                self.triggers.mark(key, "pending", attempts, time.time() + delay, sink=self.sink)
                self._count("retried", 1)
        return len(due)

    def _send(self, key: str, body: str) -> bool:  # pragma: no cover - subclasses send
        raise NotImplementedError


class WebhookSender(OutboxSender):
    """Delivers the outbox to a webhook: POST with the ``Idempotency-Key`` header (see :class:`OutboxSender`).

    Parameters
    ----------
    url:
        Where messages are POSTed (JSON).
    timeout_s:
        The HTTP timeout. Other parameters: :class:`OutboxSender`.
    """

    sink = "webhook"

    def __init__(self, triggers: Triggers, url: str, dead_letter: Path, max_attempts: int = 8, backoff_s: float = 1.0,
                 timeout_s: float = 5.0, count: Callable[[str, int], None] | None = None) -> None:
        self.url = self.target = url
        self.timeout_s = timeout_s
        super().__init__(triggers, dead_letter, max_attempts, backoff_s, count)

    def _send(self, key: str, body: str) -> bool:
        return self._post(key, body)

    def _post(self, key: str, body: str) -> bool:
        request = urllib.request.Request(self.url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json", "Idempotency-Key": key})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            logger.debug("trigger %s not delivered: %s", key, exc)
            return False


# XADD only when the dedupe key was not added before, in one atomic step: a message delivered again
# (the outbox was not yet marked delivered when the process died) does not appear twice in the stream.
_XADD_ONCE = """
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[3]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'dedupe_key', ARGV[1], 'message', ARGV[2])
end
return false
"""


class RedisStreamSender(OutboxSender):
    """Delivers the outbox to a Redis stream (``XADD``), once per dedupe key (see :data:`_XADD_ONCE`).

    Each entry has two fields: ``dedupe_key`` and ``message`` (the JSON body). A consumer group
    (``XREADGROUP``) lets several workers of the receiver share the stream.

    Parameters
    ----------
    client:
        A ``redis.Redis`` client (:func:`tenure.serving.redis_link.redis_client`).
    stream:
        The stream's key (``triggers.redis_stream``).
    maxlen:
        The stream is trimmed to about this many entries (``XADD MAXLEN ~``).
    dedupe_ttl_s:
        How long a delivered key is remembered (``<stream>:sent:<dedupe_key>``). Other
        parameters: :class:`OutboxSender`.
    """

    sink = "redis_stream"

    def __init__(self, triggers: Triggers, client, stream: str, dead_letter: Path, max_attempts: int = 8,
                 backoff_s: float = 1.0, maxlen: int = 1_000_000, dedupe_ttl_s: int = 30 * 86_400,
                 count: Callable[[str, int], None] | None = None) -> None:
        self.client = client
        self.stream = self.target = stream
        self.maxlen = maxlen
        self.dedupe_ttl_s = dedupe_ttl_s
        self._xadd_once = client.register_script(_XADD_ONCE)
        super().__init__(triggers, dead_letter, max_attempts, backoff_s, count)

    def _send(self, key: str, body: str) -> bool:
        import redis

        try:
            self._xadd_once(keys=[self.stream, f"{self.stream}:sent:{key}"],
                            args=[key, body, int(self.dedupe_ttl_s), int(self.maxlen)])
        except redis.RedisError as exc:
            logger.debug("trigger %s not added to the stream %s: %s", key, self.stream, exc)
            return False
        return True  # added now, or added before (a replay): delivered either way


class Senders:
    """The senders of every configured sink, started, woken and stopped together."""

    def __init__(self, senders: Sequence[OutboxSender]) -> None:
        self.senders = list(senders)

    def start(self) -> None:
        """Start every sender's thread."""
        for sender in self.senders:
            sender.start()

    def wake(self) -> None:
        """Deliver now (new messages were queued)."""
        for sender in self.senders:
            sender.wake()

    def stop(self) -> None:
        """End every sender after its current pass."""
        for sender in self.senders:
            sender.stop()


def sink_names(triggers_settings) -> list[str]:
    """The sinks ``settings.triggers`` configures: ``webhook`` (``webhook_url``), ``redis_stream`` (``redis_stream``)."""
    return [name for name, on in (("webhook", triggers_settings.webhook_url),
                                  ("redis_stream", triggers_settings.redis_stream)) if on]


def make_senders(triggers: Triggers, settings, folder: Path, count: Callable[[str, int], None] | None = None) -> Senders:
    """A sender per sink of ``triggers.sinks``, from ``settings.triggers`` (the stream on ``feast.redis_connection_string``)."""
    t = settings.triggers
    dead_letter = t.dead_letter_path or Path(folder) / "triggers-dead-letter.jsonl"
    senders: list[OutboxSender] = []
    if "webhook" in triggers.sinks:
        senders.append(WebhookSender(triggers, t.webhook_url, dead_letter, t.max_attempts, t.backoff_s, t.timeout_s,
                                     count))
    if "redis_stream" in triggers.sinks:
        from tenure.serving.redis_link import redis_client

        client = redis_client(settings.feast.redis_connection_string, t.timeout_s)
        senders.append(RedisStreamSender(triggers, client, t.redis_stream, dead_letter, t.max_attempts, t.backoff_s,
                                         t.redis_stream_maxlen, int(t.redis_dedupe_days * 86_400), count))
    return Senders(senders)
