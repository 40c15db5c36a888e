"""Trigger delivery under faults: a replay of risk changes, kill -9 mid-replay, the webhook down, then up.

What it checks (issue 15's trigger benchmark), with the real outbox and senders
(``serving/triggers.py``) in a child process, a real HTTP receiver in this process and, when
Redis answers on ``--redis``, the Redis stream sink too:

1. a seeded stream of micro-batches moves customers' churn risk up and down; the crossings into
   the ``high`` band it holds are counted here, offline (``expected``);
2. a child process applies the micro-batches in order (``Triggers.consider``, as the feature
   updater does before each online write) and delivers with the configured sinks; it records its
   progress every ``--checkpoint-every`` batches, like the updater's checkpoint, so a restart
   replays the batches after the last checkpoint;
3. the receiver answers 503 for the first ``--down-s`` seconds (the webhook is down), then 200;
4. at ``--kill-at`` of the replay the child gets SIGKILL, and is started again: it resumes from
   its checkpoint (replaying what followed) and runs until every message is delivered.

Results: the dedupe keys received (distinct), lost (expected but never received), unexpected,
and the raw deliveries (at least once: a message POSTed just before the kill is POSTed again;
the receiver sees the same key twice); for the stream: entries and distinct keys (exactly once).

    .venv/bin/python benchmarks/trigger_delivery.py            # ~1-2 minutes with --down-s 30
    .venv/bin/python benchmarks/trigger_delivery.py --down-s 5 --customers 500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "trigger_delivery.json"
HIGH = 0.6


def band(p: float) -> str:
    """low < 0.3 <= medium < 0.6 <= high (the stand-in scorer's bands)."""
    return "high" if p >= HIGH else "medium" if p >= 0.3 else "low"


class RiskScorer:
    """The churn scorer's interface with probability = the row's ``risk`` (no model needed)."""

    def vectorize(self, rows):
        import numpy as np

        return np.array([[row["risk"]] for row in rows], dtype=float)

    def predict_proba(self, X):
        return X[:, 0]

    def score(self, X, k: int = 3):
        return X[:, 0], [[{"feature": "risk", "value": float(x)}] for x in X[:, 0]]

    def risk_bands(self, p):
        return [band(float(x)) for x in p]

    def percentiles(self, p):
        return p * 100


def make_stream(customers: int, batches: int, per_batch: int, seed: int) -> tuple[dict, list[dict]]:
    """Initial risk per customer and the micro-batches (``{customer: new risk}``), seeded."""
    rng = random.Random(seed)
    risk = {f"c{i:05d}": rng.uniform(0.0, 0.55) for i in range(customers)}
    start = dict(risk)
    stream = []
    for _ in range(batches):
        batch = {}
        for cid in rng.sample(sorted(risk), per_batch):
            risk[cid] = min(0.99, max(0.0, risk[cid] + rng.gauss(0.0, 0.18)))
            batch[cid] = risk[cid]
        stream.append(batch)
    return start, stream


def expected_crossings(start: dict, stream: list[dict]) -> int:
    """Entries into ``high`` in the stream (each one message, with no rate limit)."""
    current, n = dict(start), 0
    for batch in stream:
        for cid, p in batch.items():
            if band(p) == "high" and band(current[cid]) != "high":
                n += 1
            current[cid] = p
    return n


# --- the child: apply the stream, deliver --------------------------------------------------------


def child(args) -> None:
    from tenure.serving.redis_link import redis_client
    from tenure.serving.triggers import RedisStreamSender, Senders, Triggers, WebhookSender

    folder = Path(args.folder)
    start, stream = make_stream(args.customers, args.batches, args.per_batch, args.seed)
    sinks = ["webhook"] + (["redis_stream"] if args.stream else [])
    triggers = Triggers(folder, ["high"], min_interval_s=0, sinks=sinks)
    dead = folder / "dead-letter.jsonl"
    senders = [WebhookSender(triggers, args.url, dead, max_attempts=20, backoff_s=0.5, timeout_s=2)]
    if args.stream:
        senders.append(RedisStreamSender(triggers, redis_client(args.redis), args.stream, dead, max_attempts=20,
                                         backoff_s=0.5))
    group = Senders(senders)
    group.start()
    progress = folder / "progress.json"
    done = json.loads(progress.read_text())["batch"] if progress.exists() else 0
    current = dict(start)
    for batch in stream[:done]:
        current.update(batch)
    scorer = RiskScorer()
    for i in range(done, len(stream)):
        batch = stream[i]
        before = {cid: {"risk": current[cid], "consent_personalization": 1} for cid in batch}
        triggers.consider(scorer, "1", before, {cid: {"risk": p} for cid, p in batch.items()}, "t", seq=i)
        group.wake()
        current.update(batch)
        if (i + 1) % args.checkpoint_every == 0:  # the updater's checkpoint: a restart replays what follows
            tmp = progress.with_suffix(".tmp")
            tmp.write_text(json.dumps({"batch": i + 1}))
            os.replace(tmp, progress)
        time.sleep(args.batch_pause_s)
    while triggers.counts().get("pending"):
        time.sleep(0.1)
    group.stop()
    print(json.dumps(triggers.counts()))


# --- the parent: receiver, kill, restart, count ---------------------------------------------------


class Receiver:
    """A webhook that answers 503 until ``up_at``, then 200, and records every key it accepted."""

    def __init__(self, up_at: float) -> None:
        self.up_at = up_at
        self.received: list[str] = []
        self.refused = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if time.time() < owner.up_at:
                    owner.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                owner.received.append(json.loads(body)["dedupe_key"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def redis_up(address: str) -> bool:
    host, _, port = address.partition(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--per-batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--batch-pause-s", type=float, default=0.02)
    parser.add_argument("--kill-at", type=float, default=0.4, help="Share of the replay after which the child is killed.")
    parser.add_argument("--down-s", type=float, default=30.0, help="Seconds the webhook answers 503 from the start.")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="Redis for the stream sink (skipped when down).")
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    start, stream = make_stream(args.customers, args.batches, args.per_batch, args.seed)
    expected = expected_crossings(start, stream)
    use_stream = redis_up(args.redis)
    stream_key = f"tenure-bench:triggers:{uuid.uuid4().hex}" if use_stream else None
    began = time.time()
    receiver = Receiver(up_at=began + args.down_s)
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, __file__, "--child", "--folder", folder, "--url", receiver.url,
                   "--customers", str(args.customers), "--batches", str(args.batches), "--per-batch",
                   str(args.per_batch), "--seed", str(args.seed), "--checkpoint-every", str(args.checkpoint_every),
                   "--batch-pause-s", str(args.batch_pause_s), "--redis", args.redis]
        if stream_key:
            command += ["--stream", stream_key]
        first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        progress = Path(folder) / "progress.json"
        kill_batch = int(args.kill_at * args.batches)
        while first.poll() is None:
            if progress.exists() and json.loads(progress.read_text() or '{"batch": 0}')["batch"] >= kill_batch:
                break
            time.sleep(0.01)
        time.sleep(args.batch_pause_s * args.checkpoint_every / 2)  # mid-way between two checkpoints
        killed_at_batch = json.loads(progress.read_text())["batch"] if progress.exists() else 0
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        second = subprocess.run(command, stdout=subprocess.PIPE, text=True, timeout=args.timeout_s, check=False)
        outbox = json.loads(second.stdout.strip().splitlines()[-1]) if second.returncode == 0 else None
    elapsed = time.time() - began
    received = Counter(receiver.received)
    keys = set(received)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "folder", "url", "stream")},
        "expected_crossings": expected,
        "killed": {"signal": "SIGKILL", "after_checkpoint_batch": killed_at_batch, "of_batches": args.batches},
        "webhook": {"distinct_keys": len(keys), "deliveries": sum(received.values()),
                    "redelivered_keys": sum(1 for n in received.values() if n > 1), "refused_while_down": receiver.refused,
                    "lost": expected - len(keys) if len(keys) <= expected else 0},
        "outbox_after": outbox,
        "seconds": round(elapsed, 1),
    }
    if stream_key:
        from tenure.serving.redis_link import redis_client

        client = redis_client(args.redis)
        entries = client.xrange(stream_key)
        stream_keys = Counter(fields[b"dedupe_key"].decode() for _, fields in entries)
        result["redis_stream"] = {"entries": len(entries), "distinct_keys": len(stream_keys),
                                  "duplicates": len(entries) - len(stream_keys),
                                  "same_keys_as_webhook": set(stream_keys) == keys}
        client.delete(stream_key, *client.keys(f"{stream_key}:sent:*"))
    result["ok"] = (len(keys) == expected and (outbox == {"delivered": expected * (2 if stream_key else 1)})
                    and (not stream_key or result["redis_stream"]["entries"] == expected))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
