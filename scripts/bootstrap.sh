#!/usr/bin/env bash
# Set up the locked environment (.venv) from uv.lock; installs uv itself when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION="0.13.8"
if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
fi
uv sync --frozen --python 3.11 --quiet
