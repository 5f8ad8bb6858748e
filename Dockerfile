# syntax=docker/dockerfile:1
# The one image: `python -m worker TASK` (collect, feed, images, migrate), run by AWS Batch, the
# local executor's --docker mode, or by hand:
#   docker build --platform linux/amd64 -t catalog-batch .
#   docker run --rm --init -e SHOP_ID=… -e DATABASE_URL=… -e OUTPUT_URL=… catalog-batch collect
# Every stage is linux/amd64: the Batch instance families are x86_64, and a build on an arm64 Mac
# would otherwise make an image Batch cannot run. The base is pinned to a patch release; pin its
# digest too where the build can resolve it (docs/infra.md), then update both on purpose.
# The dependencies are requirements.lock's exact versions, hashes checked, installed in layers
# that only the lock changes: a code edit rebuilds the project's small wheel, nothing else.

ARG PYTHON_IMAGE=python:3.13.9-slim-bookworm

# ---- deps: the locked dependencies as wheels (psycopg, Pillow: binary wheels); only the lock enters
# hadolint ignore=DL3029
FROM --platform=linux/amd64 ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --no-deps --require-hashes --only-binary=:all: \
    --wheel-dir /wheels -r requirements.lock

# ---- project: the project's own pure-Python wheel, without its dependencies
# hadolint ignore=DL3029
FROM --platform=linux/amd64 ${PYTHON_IMAGE} AS project
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY submitter ./submitter
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- runtime: no compilers, no build tools, no source tree; just the installed wheels
# hadolint ignore=DL3029
FROM --platform=linux/amd64 ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="catalog-batch worker" \
      org.opencontainers.image.description="Catalog feeds and images for ad platforms, one AWS Batch array child per shop"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted, not copied, so that no layer keeps them. Dependencies first: this
# layer is reused until requirements.lock changes.
RUN --mount=type=bind,from=deps,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
    && groupadd --system --gid 10001 catalog \
    && useradd --system --uid 10001 --gid catalog --create-home --home-dir /home/catalog \
       --shell /usr/sbin/nologin catalog
# Then the code; `pip check` proves the lock satisfies the project's own requirements.
RUN --mount=type=bind,from=project,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
    && pip check
# The default OUTPUT_URL (./out) and temporary files land in the user's own folder.
WORKDIR /home/catalog
USER 10001:10001
# PID 1 is the job definition's init process (InitProcessEnabled), which forwards SIGTERM; by hand,
# `docker run --init` does the same.
ENTRYPOINT ["python", "-m", "worker"]
