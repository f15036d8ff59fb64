"""The composition root: builds every part once, wires them, runs, and shuts down in order.

Order on SIGTERM/SIGINT: stop reading, drain what was read, close open jobs (spans get the "exporter
shutdown" status), flush spans within `shutdown.timeout`, stop HTTP.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, generate_latest

from exporter.bus.source import ByteBuffer, Source, open_source
from exporter.config import Settings
from exporter.health import Health
from exporter.jobs.model import CloseListener, Job, RunRecord
from exporter.jobs.tracker import Tracker
from exporter.pipeline import Pipeline
from exporter.serving.web import WebServer
from exporter.sinks.metrics import MetricsSink, SaltCollector

log = structlog.get_logger("exporter.app")


class TraceHooks(Protocol):
    """What the trace side offers the app (built by exporter.sinks.traces; no OpenTelemetry import here)."""

    def on_close(self, job: Job, status: str) -> None: ...
    def run_closed(self, run: RunRecord) -> None: ...
    def shutdown(self, timeout: float) -> None: ...


def tracing_enabled(settings: Settings, environ: dict[str, str]) -> bool:
    return (
        bool(
            settings.otlp_endpoint
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        )
        and environ.get("OTEL_SDK_DISABLED", "").lower() != "true"
    )


@dataclass
class Core:
    """Everything between bytes and metrics; shared by the daemon and `replay`."""

    health: Health
    sink: MetricsSink
    tracker: Tracker
    pipeline: Pipeline
    registry: CollectorRegistry
    traces: TraceHooks | None = None

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def build_core(
    settings: Settings,
    clock: Callable[[], float] | None,
    environ: dict[str, str] | None = None,
    trace_exporter: Any = None,
    framing: str | None = None,
    health: Health | None = None,
    detail: bool = False,
    listeners: list[CloseListener] | None = None,
) -> Core:
    """`clock` None means event time only (replay); `trace_exporter` lets tests capture spans in memory.

    `detail` keeps per-minion detail on jobs even without tracing (the live view reads it); `listeners`
    get every closed job after the trace sink (the job log, the live view).
    """
    env = dict(os.environ) if environ is None else environ
    health = health or Health()
    sink = MetricsSink(settings.metrics_config(), clock=clock or time.time)
    traces: TraceHooks | None = None
    if trace_exporter is not None or tracing_enabled(settings, env):
        from exporter.sinks.traces import build_trace_sink  # OpenTelemetry only when tracing

        traces = build_trace_sink(
            settings.traces_config(), health, env, exporter=trace_exporter, on_exemplar=sink.exemplar
        )
    tracker = Tracker(
        settings.jobs_config(tracing=traces is not None, detail=detail),
        sink,
        ([traces.on_close] if traces is not None else []) + (listeners or []),
        [traces.run_closed] if traces is not None else [],
    )
    registry = CollectorRegistry(auto_describe=False)
    pipeline = Pipeline(tracker, sink, health, clock=clock, framing=framing)
    registry.register(SaltCollector(sink, tracker, health, pipeline.lock))
    return Core(health, sink, tracker, pipeline, registry, traces)


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stop = threading.Event()
        self.reload = threading.Event()
        health = Health()
        self.source: Source = open_source(
            settings.bus,
            health,
            loop=settings.replay_loop,
            max_backoff=settings.reconnect_max_backoff,
        )
        listeners: list[CloseListener] = []
        if settings.log_jobs:
            from exporter.sinks.joblog import JobLog

            listeners.append(JobLog())
        self.core = build_core(
            settings,
            time.time if self.source.live else None,
            framing=getattr(self.source, "framing", None),
            health=health,
            listeners=listeners,
        )
        self.buffer = ByteBuffer(settings.buffer_size, self.core.health)
        self.web = WebServer(
            settings.web_listen_address,
            settings.web_telemetry_path,
            self.core.registry,
            ready=lambda: self.core.health.connected,
            web_config_file=settings.web_config_file,
        )
        self._reader: threading.Thread | None = None

    def _read(self) -> None:
        live = self.source.live
        buffer = self.buffer

        def emit(gen: int, data: bytes) -> None:
            buffer.put(gen, data, block=not live)

        try:
            self.source.run(emit, self.stop)
        except Exception:
            log.exception("reader_failed", bus=self.settings.bus)
            self.core.health.connected = False
        if not live:
            log.info("replay_finished", bus=self.settings.bus, note="serving the final state")

    def install_signals(self) -> None:
        def on_stop(signum: int, frame: Any) -> None:
            self.stop.set()

        def on_hup(signum: int, frame: Any) -> None:
            self.reload.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def run(self) -> int:
        settings = self.settings
        self.web.start()
        log.info(
            "started",
            bus=settings.bus,
            listen=f"{self.web.host}:{self.web.port}",
            telemetry_path=settings.web_telemetry_path,
            tracing=self.core.traces is not None,
        )
        self._reader = threading.Thread(target=self._read, name="reader", daemon=True)
        self._reader.start()
        pipeline = self.core.pipeline
        last_config_check = time.monotonic()
        while not self.stop.is_set():
            items = self.buffer.get(0.5)
            for gen, gap, data in items:
                pipeline.chunk(gen, gap, data)
            if not items:
                pipeline.tick()
            now = time.monotonic()
            if self.reload.is_set():
                self.reload.clear()
                self.web.reload()
            elif now - last_config_check > 5:
                last_config_check = now
                self.web.maybe_reload()
        return self.shutdown()

    def shutdown(self) -> int:
        log.info("stopping", step="reader")
        self.buffer.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        for gen, gap, data in self.buffer.get(0):
            self.core.pipeline.chunk(gen, gap, data)
        core = self.core
        open_jobs = core.pipeline.close_all()
        log.info("stopping", step="jobs", open_jobs_closed=open_jobs)
        if core.traces is not None:
            core.traces.shutdown(self.settings.shutdown_timeout)
        self.web.stop()
        log.info("stopped")
        return 0


def record(bus: str, output: str, max_backoff: float = 30.0) -> int:
    """Write the raw bytes read from the bus to `output` until SIGINT/SIGTERM (flushed per chunk)."""
    health = Health()
    source = open_source(bus, health, max_backoff=max_backoff)
    if not source.live:
        print(f"record: {bus} is a file, not a bus", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    with open(output, "wb") as fh:  # noqa: PTH123

        def emit(gen: int, data: bytes) -> None:
            fh.write(data)
            fh.flush()

        source.run(emit, stop)
    log.info("recorded", bus=bus, output=output, bytes=health.bytes_read, connections=health.connections)
    return 0
