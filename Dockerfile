# syntax=docker/dockerfile:1.7
# The tenure serving image: `tenure serve` (BentoML) on port 3000, models pulled from the MLflow
# registry at start (alias `champion`). Build:  docker build -t tenure-serving .
# Run: see docs/serving.md (mount or point at the registry, the Feast online store and a config).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: resolve the locked environment with uv ---------------------------------------------
FROM ${PYTHON_IMAGE} AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.8 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# dependencies first (cached until uv.lock changes), then the project itself
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
# the project is installed as its wheel (`uv sync --no-editable`): one package, `tenure`, whose
# tenure/<room> links point at the top-level room folders, so the rooms are copied beside it; the
# service imports tenure.{registry,features,feature_repo,serving}, and tenure.pipelines holds the
# `tenure` entry point (`tenure serve` supervises the BentoML process and its signals)
COPY tenure/ tenure/
COPY features/ features/
COPY feature_repo/ feature_repo/
COPY registry/ registry/
COPY training/ training/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY pipelines/ pipelines/
COPY experiments/ experiments/
COPY privacy/ privacy/
COPY insight/ insight/
COPY compute/ compute/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

# --- runtime: the environment and the code, a non-root user -----------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# LightGBM needs the OpenMP runtime; the Debian version follows the base image's security updates
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group tenure
WORKDIR /app
COPY --from=build --chown=tenure:tenure /app /app
RUN mkdir -p /app/data /app/mlruns && chown -R tenure:tenure /app/data /app/mlruns
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BENTOML_HOME=/app/data/state/bentoml \
    BENTOML_DO_NOT_TRACK=True \
    TENURE_SERVING__HOST=0.0.0.0 \
    TENURE_SERVING__PORT=3000
USER 10001:10001
EXPOSE 3000
VOLUME ["/app/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4)"]
ENTRYPOINT ["tenure"]
CMD ["serve"]
