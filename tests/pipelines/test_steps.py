"""The step runner: once per input fingerprint, atomic markers, resume after a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tenure.pipelines.steps import StepFailed, StepOutput, StepRunner, fingerprint


class Counter:
    """A tiny fake step that counts its calls and can be told to fail once."""

    def __init__(self, rows: int = 3, fail_times: int = 0) -> None:
        self.calls = 0
        self.rows = rows
        self.fail_times = fail_times

    def __call__(self) -> StepOutput:
        self.calls += 1
        if self.fail_times > 0:
            self.fail_times -= 1
            raise OSError("disk full (injected)")
        return StepOutput(rows={"rows": self.rows}, details={"note": "ok"})


def test_step_runs_once_per_fingerprint(tmp_path: Path) -> None:
    runner = StepRunner(tmp_path)
    step = Counter(rows=7)
    first = runner.run("ingest", step, "fp-a")
    second = runner.run("ingest", step, "fp-a")
    assert step.calls == 1
    assert (first.status, second.status) == ("done", "skipped")
    assert second.rows == {"rows": 7}, "a skipped step reports the recorded row counts"
    assert first.duration_s >= 0
    runner.run("ingest", step, "fp-b")
    assert step.calls == 2, "new inputs run the step again"


def test_force_reruns(tmp_path: Path) -> None:
    step = Counter()
    StepRunner(tmp_path).run("features", step, "fp")
    StepRunner(tmp_path).run("features", step, "fp", force=True)
    StepRunner(tmp_path, force={"features"}).run("features", step, "fp")
    StepRunner(tmp_path, force={"train"}).run("features", step, "fp")
    assert step.calls == 3


def test_resume_after_injected_failure_skips_finished_steps(tmp_path: Path) -> None:
    a, b, c = Counter(), Counter(fail_times=1), Counter()

    def pipeline(runner: StepRunner) -> list[str]:
        return [runner.run(name, func, f"{name}-inputs").status for name, func in (("a", a), ("b", b), ("c", c))]

    with pytest.raises(StepFailed, match="step 'b' failed: OSError: disk full") as info:
        pipeline(StepRunner(tmp_path))
    assert isinstance(info.value.__cause__, OSError)
    runner = StepRunner(tmp_path)
    assert not runner.is_done("b", "b-inputs"), "a failed step leaves no marker"
    assert pipeline(runner) == ["skipped", "done", "done"]
    assert (a.calls, b.calls, c.calls) == (1, 2, 1)
    statuses = [(row["step"], row["status"]) for row in runner.history()]
    assert statuses == [("a", "done"), ("b", "failed"), ("a", "skipped"), ("b", "done"), ("c", "done")]
    failed = runner.history("b")[0]
    assert "disk full" in failed["error"]


def test_marker_is_complete_json_and_no_temp_files_remain(tmp_path: Path) -> None:
    runner = StepRunner(tmp_path)
    runner.run("score", lambda: {"customers": 5, "path": "x.parquet"}, "f" * 40)
    marker = runner.marker_path("score", "f" * 40)
    record = json.loads(marker.read_text())
    assert record["rows"] == {"customers": 5}
    assert record["details"] == {"path": "x.parquet"}
    assert record["status"] == "done"
    assert not [p for p in runner.marker_dir.iterdir() if p.name.endswith(".tmp")]
    assert runner.clear("score") == 1
    assert not runner.is_done("score", "f" * 40)


def test_fingerprint_follows_file_changes(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    empty = fingerprint(folder, {"k": 1})
    assert fingerprint(tmp_path / "missing") != fingerprint(folder), "the path itself is part of it"
    (folder / "events.csv").write_text("a\n")
    one = fingerprint(folder, {"k": 1})
    assert one != empty
    assert fingerprint(folder, {"k": 1}) == one, "stable while nothing changes"
    assert fingerprint(folder, {"k": 2}) != one, "parameters count"
    (folder / "events.csv").write_text("a\nb\n")
    assert fingerprint(folder, {"k": 1}) != one
    (folder / ".hidden").write_text("ignored")
    two = fingerprint(folder, {"k": 1})
    (folder / ".hidden").write_text("still ignored, other size")
    assert fingerprint(folder, {"k": 1}) == two


def test_bad_step_name_and_bad_return_value(tmp_path: Path) -> None:
    runner = StepRunner(tmp_path)
    with pytest.raises(ValueError, match="step name"):
        runner.run("../x", lambda: None, "fp")
    with pytest.raises(StepFailed, match="must return a StepOutput"):
        runner.run("bad", lambda: 42, "fp")
    assert not runner.is_done("bad", "fp")
