# syntax=docker/dockerfile:1
# The one image: `python -m worker TASK` (collect, feed, images), run by AWS Batch, the local
# executor's --docker mode, or by hand:
#   docker build -t catalog-batch .
#   docker run --rm -e SHOP_ID=… -e DATABASE_URL=… -e OUTPUT_URL=… catalog-batch collect
# The base is pinned to a patch release; pin its digest too where the build can resolve it
# (docs/infra.md), then update both on purpose.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: the project and every dependency as wheels (psycopg, Pillow: binary wheels)
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY submitter ./submitter
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- runtime: no compilers, no build tools, no source tree; just the installed wheels
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="catalog-batch worker" \
      org.opencontainers.image.description="Catalog feeds and images for ad platforms, one AWS Batch array child per shop"
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels are bind-mounted, not copied, so that no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
    && groupadd --system --gid 10001 catalog \
    && useradd --system --uid 10001 --gid catalog --create-home --home-dir /home/catalog \
       --shell /usr/sbin/nologin catalog
# The default OUTPUT_URL (./out) and temporary files land in the user's own folder.
WORKDIR /home/catalog
USER 10001:10001
ENTRYPOINT ["python", "-m", "worker"]
