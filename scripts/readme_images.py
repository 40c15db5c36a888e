"""Copy the churn champion's calibration and lift plots of the last demo run into docs/img/ (README images).

Usage: .venv/bin/python scripts/readme_images.py [--summary reports/demo_summary.json] [--out docs/img]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

WANTED = {"calibration.png": "churn-calibration.png", "lift.png": "churn-lift.png"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--summary", type=Path, default=Path("reports/demo_summary.json"))
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args(argv)
    if not args.summary.is_file():
        print(f"error: {args.summary} not found; run `tenure demo` first", file=sys.stderr)
        return 1
    plots = json.loads(args.summary.read_text()).get("plots", {}).get("churn", [])
    args.out.mkdir(parents=True, exist_ok=True)
    copied = 0
    for path in map(Path, plots):
        if path.name in WANTED and path.is_file():
            shutil.copyfile(path, args.out / WANTED[path.name])
            print(f"{path} -> {args.out / WANTED[path.name]}")
            copied += 1
    if copied < len(WANTED):
        print(f"error: found {copied} of {sorted(WANTED)} among the churn plots of {args.summary}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
