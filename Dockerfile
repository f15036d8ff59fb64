# The exporter image. Two stages on one base (a build ARG, so CI can pass a locally made base image):
#   build:   installs the exporter's wheel (dist/salt_event_exporter-<VERSION>-py3-none-any.whl from `uv build`,
#            or, when absent, a wheel built here from the sources) into a virtualenv; nothing else.
#   runtime: that virtualenv only, no compilers, no pip, no tests, no lab/. Runs as uid/gid 10001, needs no
#            writable path (works with a read-only root file system), and the exporter is PID 1: it handles
#            SIGTERM itself and exits 0.
#   VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' exporter/__init__.py)
#   uv build --wheel -o dist && docker build --build-arg VERSION="$VERSION" \
#     -t ghcr.io/salt-event-exporter/salt-event-exporter:"$VERSION" .
# scripts/tools/build-images.sh builds it this way with podman (tests/deploy/test_image.py runs it).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG VERSION=0.1.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# .dockerignore lets through only pyproject.toml, README.md, LICENSE, exporter/ and dist/*.whl.
COPY . .
RUN set -eu; \
    wheel="dist/salt_event_exporter-${VERSION}-py3-none-any.whl"; \
    if [ ! -f "$wheel" ]; then \
      python3 -m venv /tmp/wheel-builder; \
      /tmp/wheel-builder/bin/pip install --quiet build; \
      /tmp/wheel-builder/bin/python -m build --wheel --outdir dist .; \
    fi; \
    test -f "$wheel" || { echo "no $wheel: VERSION does not match exporter/__init__.py" >&2; exit 1; }; \
    python3 -m venv /opt/salt-event-exporter; \
    /opt/salt-event-exporter/bin/pip install --quiet "$wheel"; \
    /opt/salt-event-exporter/bin/pip uninstall --quiet --yes pip setuptools 2>/dev/null || true; \
    /opt/salt-event-exporter/bin/python -m compileall -q /opt/salt-event-exporter >/dev/null; \
    /opt/salt-event-exporter/bin/salt-event-exporter --version

FROM ${BASE}
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/salt-event-exporter/salt-event-exporter
LABEL org.opencontainers.image.title="salt-event-exporter" \
      org.opencontainers.image.description="Prometheus metrics and OpenTelemetry traces from the Salt master event bus" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# No RUN in this stage: nothing a build mounts (the CA bundle, pip.conf) can leave a trace here.
COPY --from=build /opt/salt-event-exporter /opt/salt-event-exporter
ENV PATH=/opt/salt-event-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALT_EXPORTER_WEB_LISTEN_ADDRESS=:9646
# A fixed non-root uid/gid (no passwd entry needed); add the salt group's gid as a supplementary group at run
# time (--group-add, or the chart's saltGroupId) so the exporter can read master_event_pub.ipc (0660, group salt).
USER 10001:10001
EXPOSE 9646
STOPSIGNAL SIGTERM
ENTRYPOINT ["salt-event-exporter"]
CMD ["run"]
