"""Alert sinks (log, JSON lines, Slack-compatible webhook) and duplicate suppression per episode.

A sink that fails is logged and reported, never raised: monitoring goes on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from tenure.monitoring.state import load_json_state, save_json_state

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Alert:
    """What ops need to act: what drifted, by how much, against which thresholds, and what happens next."""

    model: str
    model_version: str | None
    title: str
    findings: list[str]
    report_path: str | None
    next_action: str
    severity: str = "warning"
    raised_at: str = dataclasses.field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    kind: str = "drift"
    """pipeline (the data is broken), drift (the world changed), performance, recommender or retrain."""
    confidence: str | None = None
    """How sure, in words (e.g. "12 of 30 features over their thresholds", "95% interval 0.08-0.11")."""
    route: str | None = None
    """The team it goes to (``monitoring.alert_routes``); sinks with ``routes`` take only theirs."""

    def text(self) -> str:
        """Plain text for logs and the webhook's ``text``."""
        lines = [f"[tenure] {self.title} (model {self.model} v{self.model_version}; {self.kind}, {self.severity}"
                 + (f", for {self.route}" if self.route else "") + ")"]
        lines += [f"- {f}" for f in self.findings]
        if self.confidence:
            lines.append(f"how sure: {self.confidence}")
        if self.report_path:
            lines.append(f"report: {self.report_path}")
        lines.append(f"next: {self.next_action}")
        return "\n".join(lines)

    def slack_payload(self) -> dict[str, Any]:
        """Slack-compatible JSON: ``text`` fallback plus blocks."""
        return {
            "text": self.text(),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(f"• {f}" for f in self.findings)[:2900]}},
                {"type": "context", "elements": [
                    {"type": "mrkdwn", "text": f"model *{self.model}* v{self.model_version} · {self.kind} · {self.severity}"
                                               f" · {self.route or 'all'} · {self.raised_at}"},
                    {"type": "mrkdwn", "text": f"how sure: {self.confidence or '-'}"},
                    {"type": "mrkdwn", "text": f"report: {self.report_path or '-'}"},
                ]},
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*Next:* {self.next_action}"}},
            ],
        }


class AlertSink(Protocol):
    """Where alerts go."""

    name: str

    def send(self, alert: Alert) -> None: ...


class LogSink:
    """Alerts as WARNING log records."""

    name = "log"

    def send(self, alert: Alert) -> None:
        logger.warning("%s", alert.text())


class JsonlSink:
    """Alerts appended to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"jsonl:{self.path}"

    def send(self, alert: Alert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(dataclasses.asdict(alert)) + "\n")


class WebhookSink:
    """POST the Slack-compatible payload, with a timeout and retries with exponential back-off."""

    def __init__(self, url: str, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 0.5) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.name = "webhook"

    def send(self, alert: Alert) -> None:
        import httpx

        payload = alert.slack_payload()
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                response = httpx.post(self.url, json=payload, timeout=self.timeout_s)
                if response.status_code < 300:
                    return
                last = RuntimeError(f"webhook answered HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                last = exc
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
        raise RuntimeError(f"webhook failed after {self.retries + 1} attempts: {last}")


def sinks_from_settings(sink_settings: Sequence[Any], reports_dir: Path) -> list[AlertSink]:
    """Build the sinks named in ``settings.monitoring.alert_sinks`` (a JSON-lines sink without a path
    writes ``reports_dir/alerts.jsonl``)."""
    sinks: list[AlertSink] = []
    for s in sink_settings:
        if s.kind == "log":
            sink: Any = LogSink()
        elif s.kind == "jsonl":
            sink = JsonlSink(s.path or Path(reports_dir) / "alerts.jsonl")
        else:
            sink = WebhookSink(s.url, s.timeout_s, s.retries)
        sink.routes = tuple(getattr(s, "routes", None) or ())
        sinks.append(sink)
    return sinks


def routed(alert: Alert, routes: dict[str, Any] | None) -> Alert:
    """``alert`` with the severity and route of its kind from ``monitoring.alert_routes``."""
    rule = (routes or {}).get(alert.kind)
    if rule is not None:
        alert.severity, alert.route = rule.severity, rule.route
    return alert


def dispatch(alert: Alert, sinks: Sequence[AlertSink]) -> dict[str, str]:
    """Send ``alert`` to every sink that takes its route; returns ``{sink: "ok" | "failed: ..."}``, never raises."""
    outcome = {}
    for sink in sinks:
        wanted = getattr(sink, "routes", ())
        if wanted and alert.route not in wanted:
            continue
        try:
            sink.send(alert)
            outcome[sink.name] = "ok"
        except Exception as exc:  # noqa: BLE001 (a broken sink must not stop monitoring)
            logger.error("alert sink %s failed: %s", sink.name, exc)
            outcome[sink.name] = f"failed: {exc}"
    return outcome


class EpisodeTracker:
    """Suppresses repeats: one alert per ongoing drift episode, again only if it gets materially worse.

    State lives in a small JSON file (``state_dir/monitoring_episodes.json``).
    """

    def __init__(self, path: Path, worsening: float = 0.2) -> None:
        self.path = Path(path)
        self.worsening = worsening

    def _load(self) -> dict[str, Any]:
        return load_json_state(self.path)

    def _save(self, state: dict[str, Any]) -> None:
        save_json_state(self.path, state)

    def should_alert(self, key: str, severity_value: float, triggers: Sequence[str] = ()) -> bool:
        """True when no episode ``key`` is open, it worsened by ``worsening`` since its last alert,
        or a trigger not alerted before in this episode appeared (e.g. a realised ROC-AUC drop
        on top of drift)."""
        state = self._load()
        episode = state.get(key)
        known = set((episode or {}).get("triggers", []))
        if (episode is not None and severity_value < episode["alerted_value"] + self.worsening
                and set(triggers) <= known):
            return False
        state[key] = {**(episode or {}),
                      "opened_at": (episode or {}).get("opened_at", datetime.now(UTC).isoformat(timespec="seconds")),
                      "alerted_value": severity_value, "triggers": sorted(known | set(triggers))}
        self._save(state)
        return True

    def episode(self, key: str) -> dict[str, Any] | None:
        """The open episode ``key`` (what :meth:`should_alert` and :meth:`note` stored), or None."""
        return self._load().get(key)

    def note(self, key: str, **fields: Any) -> None:
        """Keep ``fields`` with the open episode ``key`` (e.g. the recent reference it started with)."""
        state = self._load()
        if key in state:
            state[key].update(fields)
            self._save(state)

    def close(self, key: str) -> bool:
        """End episode ``key`` (the condition cleared); returns whether one was open."""
        state = self._load()
        if key in state:
            del state[key]
            self._save(state)
            return True
        return False
