"""The house rules: every room is imported as ``tenure.<room>``, imports flow one way, and the wheel
installs one top-level package (``tenure``) instead of a generic ``features`` or ``training``."""

from __future__ import annotations

import ast
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("features", "feature_repo", "registry", "training", "serving", "monitoring", "pipelines",
         "insight", "experiments", "privacy", "compute")
#: room -> rooms it must never import (DESIGN.md: data flows one way)
FORBIDDEN = {
    "features": set(ROOMS) - {"features"},  # features imports none of the others
    "feature_repo": {"registry", "training", "serving", "monitoring", "pipelines"},
    "registry": {"features", "feature_repo", "training", "serving", "monitoring", "pipelines"},
    "serving": {"training", "monitoring", "pipelines"},
    "training": {"serving", "monitoring", "pipelines"},
    "monitoring": {"training", "serving", "pipelines"},
    "insight": {"feature_repo", "training", "serving", "monitoring", "pipelines"},
    "experiments": {"feature_repo", "registry", "training", "serving", "monitoring", "pipelines"},
    "privacy": {"training", "serving", "monitoring", "pipelines"},
    "compute": {"feature_repo", "registry", "training", "serving", "monitoring", "pipelines"},
}


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_rooms_are_imported_as_tenure_subpackages_only():
    bare = [f"{path.relative_to(ROOT)}:{line}: import {module}"
            for path in _python_files("tenure", *ROOMS, "tests", "benchmarks", "scripts")
            for line, module in _imported_modules(path) if module.split(".")[0] in ROOMS]
    assert bare == [], "import rooms as tenure.<room> (a bare room name is not installed):\n" + "\n".join(bare)


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_imports_flow_one_way(room):
    wrong = [f"{path.relative_to(ROOT)}:{line}: import {module}" for path in _python_files(room)
             for line, module in _imported_modules(path)
             if module.startswith("tenure.") and module.split(".")[1] in FORBIDDEN[room]]
    assert wrong == [], f"{room}/ must not import {sorted(FORBIDDEN[room])}:\n" + "\n".join(wrong)


def test_each_room_is_linked_under_the_tenure_package():
    for room in ROOMS:
        link = ROOT / "tenure" / room
        assert link.is_symlink() and link.resolve() == (ROOT / room).resolve(), f"tenure/{room} -> ../{room} missing"


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv (installed by scripts/bootstrap.sh) builds the wheel")
def test_the_wheel_installs_one_top_level_package_with_every_room(tmp_path):
    subprocess.run(["uv", "build", "--wheel", "--out-dir", str(tmp_path), "--quiet", str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("tenure-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"tenure"}
    for room in ROOMS:  # real folders in the wheel, not links
        assert f"tenure/{room}/__init__.py" in names
    assert "tenure/pipelines/cli.py" in names and "tenure/feature_repo/definitions.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "tenure = tenure.pipelines.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_dockerfile_copies_every_room_the_wheel_links():
    """The image builds the wheel from tenure/ and its links: a room not copied is a dangling link."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    missing = [room for room in ROOMS if f"COPY {room}/ {room}/" not in dockerfile]
    assert missing == [], f"Dockerfile does not copy {missing}"
