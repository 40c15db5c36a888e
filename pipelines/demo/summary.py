"""The demo's summary: where it goes, headline metric lines, and what to explore next.

The summary is a JSON-ready dict (``reports_dir/demo_summary.json``, also what ``run_demo``
returns). Its top-level keys: ``started_at``, ``config``, ``claims`` (the story's checkable
statements: ``champions_exist``, ``service_answered``, ``event_changed_score``,
``quiet_pass_alerted``, ``alert_raised``, ``retrain_decision``, ``served_new_champion``),
``data``, ``steps``, ``initial_training``, ``champions`` (``initial``/``final``), ``service``,
``calls``, ``quiet_monitoring``, ``replay``, ``nightly``, ``monitoring``, ``reload``,
``scores``, ``audience``, ``explore``, ``plots``, ``timings_s``, ``wall_s``, ``finished_at``
and, after a failure, ``failed_stage``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tenure.jsonable import to_jsonable
from tenure.pipelines.steps import atomic_write_text
from tenure.settings import Settings

SUMMARY_FILE = "demo_summary.json"
SHOWN_METRICS = ("roc_auc", "pr_auc", "lift_top10", "ece", "ndcg_at_k", "recall_at_k", "coverage_at_k")


def summary_path(settings: Settings) -> Path:
    """Where the demo writes its machine-readable summary."""
    return Path(settings.paths.reports_dir) / SUMMARY_FILE


def write_summary(settings: Settings, summary: dict[str, Any]) -> dict[str, Any]:
    """Write ``summary`` to :func:`summary_path` atomically; returns it as plain JSON types
    (NaN and infinities become None, so the file is strict JSON)."""
    plain = to_jsonable(summary)
    atomic_write_text(summary_path(settings), json.dumps(plain, indent=2))
    return plain


def metric_lines(train_details: dict[str, Any]) -> list[str]:
    """Readable "model vs baselines" lines from the train step's details.

    ``train_details`` is ``{kind: {"result": {"metrics": {model: {metric: value}}}, "gate": {...}}}``
    as ``pipelines.flows.train_step`` records it; only :data:`SHOWN_METRICS` are shown.
    """
    lines = []
    for kind, info in train_details.items():
        metrics = (info.get("result") or {}).get("metrics") or {}
        for model, values in metrics.items():
            if isinstance(values, dict):
                shown = ", ".join(f"{k} {values[k]:.3f}" for k in SHOWN_METRICS if isinstance(values.get(k), float))
                lines.append(f"{kind} {model}: {shown}")
        gate = info.get("gate")
        if gate:
            lines.append(f"{kind} gate: version {gate['challenger_version']} "
                         f"{'promoted' if gate['promoted'] else 'kept out'} ({gate['reason']})")
    return lines


def explore(settings: Settings, service_url: str) -> dict[str, str]:
    """Commands and paths to look at after the demo."""
    return {
        "mlflow_ui": f"uv run mlflow ui --backend-store-uri {settings.mlflow.tracking_uri} --port 5000",
        "reports_index": str(Path(settings.paths.reports_dir) / "index.html"),
        "service": service_url,
        "dashboard": f"{service_url}/dashboard",
        "serve_again": "uv run tenure serve",
        "steps": "uv run tenure run --status",
        "audience": "uv run tenure export audience --risk high --with-recommendations 5 --format csv",
    }
