"""The quarantine: broken event batches are held back from the tables until someone accepts them.

At ingestion (:func:`hold_if_broken`, called by :class:`tenure.features.ingest.IngestRun` once a
batch's rows are validated and staged) the batch is checked by :mod:`tenure.features.quality`
against the stored events before it. A batch with a finding is moved, not stored::

    <paths.data_dir>/quarantine/<batch>/manifest.json     source, rows, findings, status
    <paths.data_dir>/quarantine/<batch>/events/*.parquet  the batch's valid rows, as staged

Nothing reads the quarantine but this module, so features, training and retraining never see a
held batch. ``tenure data accept BATCH`` appends it to the tables (event ids stored meanwhile are
skipped), ``tenure data discard BATCH`` drops it; both keep the manifest as the record.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tenure.features.quality import QualityReport, check_events_batch
from tenure.settings import Settings

logger = logging.getLogger(__name__)

STATUSES = ("quarantined", "accepted", "discarded")


def quarantine_root(settings: Settings) -> Path:
    """The quarantine folder, ``<paths.data_dir>/quarantine``."""
    return Path(settings.paths.data_dir) / "quarantine"


def check_staged(settings: Settings, writer, rejected_rows: int = 0) -> QualityReport | None:
    """The quality report of what ``writer`` (an :class:`~tenure.features.tables.EventWriter`) staged.

    None when nothing is staged. The baseline is the stored events of the
    ``settings.quality.baseline_days`` days before the batch's first event.
    """
    from tenure.features.tables import read_events

    files = [src for src, _ in writer.staged_files]
    if not files:
        return None
    batch = _read(files)
    first = batch["event_at"].min()
    baseline = read_events(settings, start=first - pd.Timedelta(days=settings.quality.baseline_days),
                           end=first - pd.Timedelta(microseconds=1))
    return check_events_batch(batch, baseline, settings.quality, rejected_rows=rejected_rows)


def hold_if_broken(settings: Settings, writer, report, batch_id: str) -> bool:
    """Check the staged batch; move it to the quarantine when broken. True when held back.

    Parameters
    ----------
    settings: the settings (``quality`` section; ``paths.data_dir``).
    writer: the run's EventWriter, its rows staged and not committed.
    report: the file's :class:`~tenure.features.ingest.FileReport`; ``quality`` and
        ``quarantined`` are filled in.
    batch_id: the quarantine name of this batch (run id + file number).
    """
    if not settings.quality.enabled:
        return False
    quality = check_staged(settings, writer, rejected_rows=report.rejected)
    if quality is None:
        return False
    report.quality = quality.as_dict()
    if not quality.broken:
        return False
    for finding in quality.findings:
        logger.warning("pipeline break in %s: %s", report.source, finding.message)
    if not settings.quality.quarantine:
        return False
    folder = quarantine_root(settings) / batch_id
    data = folder / "events"
    data.mkdir(parents=True, exist_ok=True)
    files = []
    for src, dst in writer.staged_files:
        os.replace(src, data / src.name)
        files.append({"file": src.name, "partition": dst.parent.name, "name": dst.name})
    writer.abort()  # the staging folder, now empty
    manifest = {
        "batch": batch_id, "table": "events", "source": report.source, "status": "quarantined",
        "quarantined_at": _now(), "rows": quality.rows, "columns": quality.columns(),
        "quality": quality.as_dict(), "files": files,
    }
    _write_manifest(folder, manifest)
    report.quarantined = batch_id
    logger.error("batch %s (%s, %d rows) quarantined: %s; accept with `tenure data accept %s`",
                 batch_id, report.source, quality.rows, ", ".join(quality.columns()), batch_id)
    return True


def list_batches(settings: Settings, status: str | None = None) -> list[dict[str, Any]]:
    """Manifests of every batch in the quarantine (newest first), optionally of one status."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    root = quarantine_root(settings)
    out = []
    for path in sorted(root.glob("*/manifest.json"), reverse=True) if root.is_dir() else []:
        manifest = json.loads(path.read_text())
        if status is None or manifest.get("status") == status:
            out.append(manifest)
    return out


def read_batch(settings: Settings, batch_id: str) -> tuple[dict[str, Any], pd.DataFrame]:
    """The manifest and the held rows of one quarantined batch."""
    folder, manifest = _folder(settings, batch_id)
    paths = [folder / "events" / f["file"] for f in manifest["files"]]
    return manifest, _read([p for p in paths if p.is_file()])


def accept_batch(settings: Settings, batch_id: str, by: str | None = None) -> dict[str, Any]:
    """Append a quarantined batch to the tables (ids stored meanwhile are skipped); returns the manifest."""
    from tenure.features.tables import append_events

    folder, manifest = _folder(settings, batch_id)
    _must_be_held(manifest, batch_id)
    _, frame = read_batch(settings, batch_id)
    result = append_events(settings, frame, run_id=f"accepted-{batch_id}")
    manifest.update(status="accepted", decided_at=_now(), decided_by=by or os.environ.get("USER", "unknown"),
                    written=result.written, skipped_duplicates=result.skipped_duplicates)
    _write_manifest(folder, manifest)
    shutil.rmtree(folder / "events", ignore_errors=True)
    logger.info("batch %s accepted: %d events stored (%d already stored)", batch_id, result.written,
                result.skipped_duplicates)
    return manifest


def discard_batch(settings: Settings, batch_id: str, by: str | None = None) -> dict[str, Any]:
    """Drop a quarantined batch's rows (the manifest stays as the record); returns the manifest."""
    folder, manifest = _folder(settings, batch_id)
    _must_be_held(manifest, batch_id)
    manifest.update(status="discarded", decided_at=_now(), decided_by=by or os.environ.get("USER", "unknown"))
    _write_manifest(folder, manifest)
    shutil.rmtree(folder / "events", ignore_errors=True)
    return manifest


def _folder(settings: Settings, batch_id: str) -> tuple[Path, dict[str, Any]]:
    if not batch_id or "/" in batch_id or batch_id.startswith("."):
        raise ValueError(f"not a batch id: {batch_id!r}")
    folder = quarantine_root(settings) / batch_id
    path = folder / "manifest.json"
    if not path.is_file():
        known = [m["batch"] for m in list_batches(settings, "quarantined")]
        raise FileNotFoundError(f"no quarantined batch {batch_id!r} under {quarantine_root(settings)}; "
                                f"held now: {', '.join(known) or 'none'}")
    return folder, json.loads(path.read_text())


def _must_be_held(manifest: dict[str, Any], batch_id: str) -> None:
    if manifest.get("status") != "quarantined":
        raise ValueError(f"batch {batch_id} is {manifest.get('status')} already ({manifest.get('decided_at')})")


def _read(paths: list[Path]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    from tenure.features.schema import conform, empty_frame

    if not paths:
        return empty_frame("events")
    frame = pd.concat([pq.read_table(p).to_pandas() for p in paths], ignore_index=True)
    return conform(frame.sort_values("event_at", kind="stable").reset_index(drop=True), "events")


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    tmp.replace(folder / "manifest.json")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
