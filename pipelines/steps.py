"""Idempotent, resumable pipeline steps: run a function once per input fingerprint, record it.

A step is a plain function returning its row counts. :class:`StepRunner` runs it only
when no *done marker* exists for ``(step name, input fingerprint)``; the marker is a small
JSON file under ``state_dir/steps/`` written atomically (temporary file, fsync, rename)
only after the function returned. So after a failure the finished steps are skipped
on the next run and the failed one starts again; a step whose inputs changed (new raw
files, new events, a new champion) runs again because its fingerprint changed.
Every attempt, done, skipped or failed, is appended to ``state_dir/steps/history.jsonl``
with its duration and row counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

_MARKER_DIR = "steps"
_TRANSIENT_SUFFIXES = ("-journal", "-wal", "-shm", ".tmp", ".lock")  # SQLite side files, half-written files
_HISTORY_FILE = "history.jsonl"


@dataclasses.dataclass(frozen=True)
class StepOutput:
    """What a step function returns: row counts by output name, and JSON-ready details."""

    rows: dict[str, int] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class StepResult:
    """The record of one step attempt (also the content of its done marker)."""

    step: str
    fingerprint: str
    status: Literal["done", "skipped", "failed"]
    duration_s: float
    rows: dict[str, int]
    details: dict[str, Any]
    started_at: str
    finished_at: str
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


class StepFailed(RuntimeError):
    """A step raised; the message names the step, and ``__cause__`` holds the original error."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"step '{step}' failed: {type(cause).__name__}: {cause}")
        self.step = step


class StepLocked(RuntimeError):
    """Another process is running the same step right now."""


def _stat_entries(path: Path) -> Iterator[tuple[str, int, int]]:
    if path.is_file():
        st = path.stat()
        yield (path.name, st.st_size, st.st_mtime_ns)
        return
    if not path.is_dir():
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name.endswith(_TRANSIENT_SUFFIXES):
                continue
            full = Path(root) / name
            try:
                st = full.stat()
            except FileNotFoundError:  # removed while walking
                continue
            yield (str(full.relative_to(path)), st.st_size, st.st_mtime_ns)


def fingerprint(*parts: Any) -> str:
    """A stable hex digest of a step's inputs.

    Parameters
    ----------
    *parts:
        ``Path`` values stand for their content as seen by the file system (every file's
        relative name, size and modification time, recursively; hidden files, SQLite side
        files and temporary files are ignored; a missing path counts as empty); anything else is hashed through its JSON form (dicts with sorted keys;
        pydantic models through ``model_dump``).

    Returns
    -------
    str
        40 hex characters (SHA-1).
    """
    digest = hashlib.sha1()
    for part in parts:
        if isinstance(part, Path):
            digest.update(b"path:" + str(part).encode())
            for entry in _stat_entries(part):
                digest.update(json.dumps(entry).encode())
        else:
            if hasattr(part, "model_dump"):
                part = part.model_dump(mode="json")
            digest.update(b"value:" + json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _normalise_output(value: Any, step: str) -> StepOutput:
    if value is None:
        return StepOutput()
    if isinstance(value, StepOutput):
        return value
    if isinstance(value, Mapping):
        rows = {str(k): int(v) for k, v in value.items() if isinstance(v, (int,)) and not isinstance(v, bool)}
        details = {str(k): v for k, v in value.items() if str(k) not in rows}
        return StepOutput(rows=rows, details=details)
    raise TypeError(f"step '{step}' must return a StepOutput, a dict of row counts or None, got {type(value).__name__}")


class StepRunner:
    """Runs steps once per input fingerprint and keeps their markers and history.

    Parameters
    ----------
    state_dir:
        Folder for the markers (``<state_dir>/steps/<step>-<fingerprint16>.json``), the lock
        files and ``history.jsonl``; usually ``settings.paths.state_dir``.
    force:
        ``True`` re-runs every step; an iterable of names re-runs just those.
    """

    def __init__(self, state_dir: Path | str, force: bool | Iterable[str] = False) -> None:
        self.state_dir = Path(state_dir)
        self.force = force if isinstance(force, bool) else frozenset(force)

    @property
    def marker_dir(self) -> Path:
        """Folder of the done markers."""
        return self.state_dir / _MARKER_DIR

    def marker_path(self, step: str, fp: str) -> Path:
        """Path of the done marker of ``step`` for inputs ``fp``."""
        _check_step_name(step)
        return self.marker_dir / f"{step}-{fp[:16]}.json"

    def is_done(self, step: str, fp: str) -> bool:
        """Whether ``step`` already finished for these inputs."""
        return self.marker_path(step, fp).is_file()

    def _forced(self, step: str) -> bool:
        return self.force is True or (isinstance(self.force, frozenset) and step in self.force)

    def run(
        self,
        step: str,
        func: Callable[[], Any],
        fp: str | Callable[[], str],
        force: bool = False,
    ) -> StepResult:
        """Run ``func`` unless ``step`` is already done for fingerprint ``fp``.

        Parameters
        ----------
        step:
            Step name (letters, digits and ``_``).
        func:
            No-argument callable returning a :class:`StepOutput`, a dict of row counts or None.
        fp:
            The input fingerprint, or a callable computing it (called once, before ``func``).
        force:
            Run even when a done marker exists (the marker is replaced).

        Returns
        -------
        StepResult
            ``status="skipped"`` with the recorded rows when the marker existed, else ``"done"``.

        Raises
        ------
        StepFailed
            When ``func`` raised; no marker is written, so the next run tries again.
        StepLocked
            When another process holds this step's lock.
        """
        _check_step_name(step)
        fp_value = fp() if callable(fp) else str(fp)
        marker = self.marker_path(step, fp_value)
        if marker.is_file() and not (force or self._forced(step)):
            recorded = json.loads(marker.read_text(encoding="utf-8"))
            result = StepResult(
                step=step,
                fingerprint=fp_value,
                status="skipped",
                duration_s=0.0,
                rows=dict(recorded.get("rows", {})),
                details=dict(recorded.get("details", {})),
                started_at=_now(),
                finished_at=_now(),
            )
            logger.info("step %s: already done for these inputs (%s), skipped", step, marker.name)
            self._append_history(result)
            return result

        with self._lock(step):
            started, t0 = _now(), time.perf_counter()
            logger.info("step %s: running (inputs %s)", step, fp_value[:16])
            try:
                output = _normalise_output(func(), step)
            except BaseException as exc:
                failed = StepResult(
                    step=step,
                    fingerprint=fp_value,
                    status="failed",
                    duration_s=round(time.perf_counter() - t0, 3),
                    rows={},
                    details={},
                    started_at=started,
                    finished_at=_now(),
                    error=f"{type(exc).__name__}: {exc}",
                )
                self._append_history(failed)
                logger.error("step %s: failed after %.1f s: %s", step, failed.duration_s, failed.error)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise StepFailed(step, exc) from exc
            result = StepResult(
                step=step,
                fingerprint=fp_value,
                status="done",
                duration_s=round(time.perf_counter() - t0, 3),
                rows=output.rows,
                details=output.details,
                started_at=started,
                finished_at=_now(),
            )
            atomic_write_text(marker, json.dumps(result.as_dict(), indent=2, sort_keys=True, default=str))
            self._append_history(result)
            logger.info(
                "step %s: done in %.1f s (%s)",
                step,
                result.duration_s,
                ", ".join(f"{k}={v}" for k, v in result.rows.items()) or "no row counts",
            )
            return result

    @contextmanager
    def _lock(self, step: str) -> Iterator[None]:
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        path = self.marker_dir / f".{step}.lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the lock, closed in finally
        try:
            try:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - not on POSIX: no cross-process lock
                pass
            except BlockingIOError as exc:
                raise StepLocked(
                    f"step '{step}' is running in another process (lock {path}); wait for it to finish"
                ) from exc
            yield
        finally:
            handle.close()

    def _append_history(self, result: StepResult) -> None:
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps(result.as_dict(), sort_keys=True, default=str)
        with open(self.marker_dir / _HISTORY_FILE, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def history(self, step: str | None = None) -> list[dict[str, Any]]:
        """Every recorded attempt, oldest first (optionally of one step only)."""
        path = self.marker_dir / _HISTORY_FILE
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a torn last line after a crash
                continue
            if step is None or row.get("step") == step:
                rows.append(row)
        return rows

    def markers(self) -> list[dict[str, Any]]:
        """The done markers, newest first."""
        if not self.marker_dir.is_dir():
            return []
        found = []
        for path in self.marker_dir.glob("*.json"):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, OSError):
                continue
        found.sort(key=lambda r: r.get("finished_at", ""), reverse=True)
        return found

    def clear(self, step: str | None = None) -> int:
        """Delete the done markers (of one step, or all); returns how many were removed."""
        if not self.marker_dir.is_dir():
            return 0
        pattern = f"{step}-*.json" if step else "*.json"
        removed = 0
        for path in self.marker_dir.glob(pattern):
            path.unlink(missing_ok=True)
            removed += 1
        return removed


def _check_step_name(step: str) -> None:
    if not step or not all(c.isalnum() or c == "_" for c in step):
        raise ValueError(f"step name must be letters, digits or '_', got {step!r}")
