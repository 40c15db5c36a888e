"""Erasure in the serving room's stores, on their files: the serving room's own ``forget``.

- the durable event log (``events-*.jsonl``): the person's lines are blanked in place (byte
  offsets stay valid for the id index and the feature updater's checkpoint); their event ids
  leave the id index (``accepted_ids.sqlite``);
- the feature updater's checkpoint and shared tables (``feature_state.sqlite``), after an
  erasure request that a running updater process applies to its memory;
- prediction logs (``prediction_log_dir``): matched by raw id and by the log pseudonym;
- the trigger state and outbox (``triggers.sqlite``: band rows by pseudonym, messages by the id
  in their body) and the dead-letter files (``*dead-letter*.jsonl``);
- with ``triggers.redis_stream`` set: the person's entries in that Redis stream (``XDEL``) and
  their delivery keys (``<stream>:sent:<customer_id>:...``). Consumers that already read an entry
  hold their own copy: erasing it there is theirs to do.

A running service also holds some of this in memory; its ``DELETE /customers/{id}`` runs these
and clears its memory too (:meth:`serving.service.TenureService.forget_customers`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tenure.erase import blank_json_lines, count_json_lines, sqlite_rows
from tenure.privacy.stores import Store
from tenure.pseudonym import customer_ref
from tenure.serving.feature_updater import request_forget


def _log_files(folder: Path, pattern: str) -> list[Path]:
    folder = Path(folder)
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _sum(files: list[Path], ids: list[str], refs: dict[str, str] | None = None) -> dict[str, int]:
    refs = refs or {}
    back = {ref: cid for cid, ref in refs.items()}
    total: dict[str, int] = {}
    for path in files:
        for hit, n in count_json_lines(path, [*ids, *refs.values()]).items():
            cid = back.get(hit, hit)
            total[cid] = total.get(cid, 0) + n
    return total


def _records(files: list[Path], cid: str, refs: tuple[str, ...] = ()) -> list[dict]:
    import json

    out = []
    wanted = {cid, *refs}
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if any(w in line for w in wanted):
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and (record.get("customer_id") in wanted
                                                     or (record.get("message") or {}).get("customer_id") in wanted):
                        out.append(record)
    return out


def forget_event_log(folder: Path, ids: list[str]) -> int:
    """Blank the person's lines in the event log and drop their event ids from the id index."""
    removed: list[dict] = []
    n = sum(blank_json_lines(path, ids, removed) for path in _log_files(folder, "events-*.jsonl"))
    index = Path(folder) / "accepted_ids.sqlite"
    event_ids = [r.get("event_id") for r in removed if isinstance(r, dict) and r.get("event_id")]
    if event_ids and index.is_file():
        db = sqlite3.connect(index, timeout=30)
        try:
            db.execute("PRAGMA secure_delete=ON")
            with db:
                db.executemany("DELETE FROM accepted WHERE event_id = ?", [(e,) for e in event_ids])
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
    return n


_STREAM_PAGE = 10_000


def _redis_glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis ``MATCH`` pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


def _stream_entries(client, stream: str, ids: set[str]):
    """The stream's entries of these customers, page by page: ``(entry_id, customer_id, message)``."""
    import json

    start = "-"
    while True:
        page = client.xrange(stream, min=start, max="+", count=_STREAM_PAGE)
        for entry_id, fields in page:
            try:
                message = json.loads(fields.get(b"message", b"{}"))
            except ValueError:
                message = {}
            cid = message.get("customer_id") if isinstance(message, dict) else None
            if cid in ids:
                yield entry_id, cid, message
        if len(page) < _STREAM_PAGE:
            return
        start = "(" + page[-1][0].decode()


def trigger_stream_store(settings, client=None) -> Store:
    """The Redis stream the triggers deliver to (``triggers.redis_stream``) and its delivery keys.

    ``client``: a ``redis.Redis`` client (default: one on ``feast.redis_connection_string``).
    """
    stream = settings.triggers.redis_stream

    def redis():
        nonlocal client
        if client is None:
            from tenure.serving.redis_link import redis_client

            client = redis_client(settings.feast.redis_connection_string, settings.triggers.timeout_s)
        return client

    def sent_keys(cid: str) -> list[bytes]:
        return list(redis().scan_iter(match=f"{_redis_glob_escape(stream)}:sent:{_redis_glob_escape(cid)}:*",
                                      count=1000))

    def count(ids: list[str]) -> dict[str, int]:
        total: dict[str, int] = {}
        for _, cid, _ in _stream_entries(redis(), stream, set(ids)):
            total[cid] = total.get(cid, 0) + 1
        for cid in ids:
            if n := len(sent_keys(cid)):
                total[cid] = total.get(cid, 0) + n
        return total

    def forget(ids: list[str]) -> int:
        entries = [entry_id for entry_id, _, _ in _stream_entries(redis(), stream, set(ids))]
        keys = [key for cid in ids for key in sent_keys(cid)]
        removed = 0
        for start in range(0, len(entries), 1000):
            removed += int(redis().xdel(stream, *entries[start:start + 1000]))
        for start in range(0, len(keys), 1000):
            removed += int(redis().delete(*keys[start:start + 1000]))
        return removed

    def export(cid: str) -> list[dict]:
        return [{"stream": stream, "entry_id": entry_id.decode(), "message": message}
                for entry_id, _, message in _stream_entries(redis(), stream, {cid})]

    return Store("serving.trigger_stream", f"Redis stream {stream} (+ {stream}:sent:<customer_id>:* keys)",
                 count, forget, export)


def serving_stores(settings, log_key: bytes | None) -> list[Store]:
    """The serving room's stores of one workspace (files; the service's memory is not among them)."""
    events_dir, predictions_dir = Path(settings.paths.event_log_dir), Path(settings.paths.prediction_log_dir)
    dead_letters = sorted({*_log_files(events_dir, "*dead-letter*.jsonl"),
                           *([Path(settings.triggers.dead_letter_path)] if settings.triggers.dead_letter_path else [])})

    def refs(ids: list[str]) -> dict[str, str]:
        return {cid: customer_ref(log_key, cid) for cid in ids} if log_key is not None else {}

    def sqlite_store(path: Path, with_refs: bool):
        def count(ids: list[str]) -> dict[str, int]:
            total = sum(sqlite_rows(path, [*ids, *refs(ids).values()] if with_refs else ids).values())
            return {"(all)": total} if total else {}

        def forget(ids: list[str]) -> int:
            return sum(sqlite_rows(path, [*ids, *refs(ids).values()] if with_refs else ids, delete=True).values())
        return count, forget

    state_count, state_rows_forget = sqlite_store(events_dir / "feature_state.sqlite", False)

    def state_forget(ids: list[str]) -> int:
        # a running updater process holds states in memory: ask it to drop them first (it applies the
        # request before its next micro-batch and before every checkpoint), then delete the rows
        if (events_dir / "feature_state.sqlite").is_file():
            request_forget(events_dir, ids)
        return state_rows_forget(ids)
    trig_count, trig_forget = sqlite_store(events_dir / "triggers.sqlite", True)
    return [
        Store("serving.event_log", f"{events_dir}/events-*.jsonl + accepted_ids.sqlite",
              lambda ids: _sum(_log_files(events_dir, "events-*.jsonl"), ids),
              lambda ids: forget_event_log(events_dir, ids),
              lambda cid: _records(_log_files(events_dir, "events-*.jsonl"), cid)),
        Store("serving.feature_state", f"{events_dir}/feature_state.sqlite", state_count, state_forget),
        Store("serving.prediction_log", f"{predictions_dir}/*.jsonl (raw ids and pseudonyms)",
              lambda ids: _sum(_log_files(predictions_dir, "*.jsonl"), ids, refs(ids)),
              lambda ids: sum(blank_json_lines(p, [*ids, *refs(ids).values()]) for p in _log_files(predictions_dir, "*.jsonl")),
              lambda cid: _records(_log_files(predictions_dir, "*.jsonl"), cid, tuple(refs([cid]).values()))),
        Store("serving.triggers", f"{events_dir}/triggers.sqlite", trig_count, trig_forget),
        Store("serving.dead_letters", ", ".join(map(str, dead_letters)) or f"{events_dir}/*dead-letter*.jsonl",
              lambda ids: _sum(dead_letters, ids), lambda ids: sum(blank_json_lines(p, ids) for p in dead_letters),
              lambda cid: _records(dead_letters, cid)),
        *([trigger_stream_store(settings)] if settings.triggers.redis_stream else []),
    ]
