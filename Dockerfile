# Multi-stage build: a wheel-installed virtualenv in a builder, copied into a slim runtime with no build tools.
#   docker build -t ghcr.io/salt-event-exporter/salt-event-exporter:0.1.0 .
FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY exporter ./exporter
RUN python -m venv /opt/salt-event-exporter \
 && /opt/salt-event-exporter/bin/pip install --no-compile .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="salt-event-exporter" \
      org.opencontainers.image.description="Prometheus metrics and OpenTelemetry traces from the Salt master event bus" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed non-root uid/gid; add the salt group's gid as a supplementary group at run time (--group-add, or
# the chart's saltGroupId) so the exporter can read master_event_pub.ipc.
RUN groupadd --system --gid 10001 exporter \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin exporter
COPY --from=build /opt/salt-event-exporter /opt/salt-event-exporter
ENV PATH=/opt/salt-event-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALT_EXPORTER_WEB_LISTEN_ADDRESS=:9646
USER 10001:10001
EXPOSE 9646
ENTRYPOINT ["salt-event-exporter"]
CMD ["run"]
