"""The trace sink: one trace per jid, a span per minion, built when the tracker closes a job.

Ids are derived, not random, so exporters on several masters (or a restarted one, or a replay) put the
same job into the same trace with the same span ids:

    trace id = the first 16 bytes of SHA-256(jid)
    span id  = the first 8 bytes of SHA-256(jid + "/" + kind + "/" + name), kind in job, minion, state

unless the publish carries a W3C `traceparent`, in which case the job joins that trace under that span.
Sampling (OTEL_TRACES_SAMPLER) is decided on the trace id, so every exporter keeps the same jobs.

`arg`, `fun_args` and `return` can carry pillar data and secrets: they are never put on spans unless
`traces.include-args` is on, and then only redacted and capped.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from exporter import __version__
from exporter.health import Health
from exporter.jobs.model import CLOSED, DEADLINE, SHUTDOWN, Job, RunRecord
from exporter.salt.events import lazy
from exporter.salt.results import FAILURE
from exporter.sinks.otlp import OtlpHttpExporter

log = structlog.get_logger("exporter.sinks.traces")

REDACTED = "[REDACTED]"
NS = 1_000_000_000
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def trace_id_for(jid: str) -> int:
    return int.from_bytes(hashlib.sha256(jid.encode()).digest()[:16], "big") or 1


def span_id_for(jid: str, kind: str, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{jid}/{kind}/{name}".encode()).digest()[:8], "big") or 1


class _Span:
    """A span under construction. Spans are built after the fact with known ids and times, so this skips the
    SDK's live-span machinery (contexts, locks, attribute re-validation): ~10x cheaper per span, and the
    result is the SDK's own ReadableSpan, handed to the span processor on end()."""

    __slots__ = ("attributes", "context", "events", "name", "parent", "sink", "start", "status")

    def __init__(
        self,
        sink: TraceSink,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start: int,
        attributes: dict[str, Any],
    ) -> None:
        self.sink = sink
        self.name = name
        self.context = context
        self.parent = parent
        self.start = start
        self.attributes = attributes
        self.events: list[Event] = []
        self.status = Status(StatusCode.UNSET)

    def get_span_context(self) -> SpanContext:
        return self.context

    def add_event(self, name: str, attributes: dict[str, Any], timestamp: int | None = None) -> None:
        self.events.append(Event(name, attributes, timestamp))

    def set_status(self, status: Status) -> None:
        self.status = status

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def end(self, end_time: int) -> None:
        if self.context.trace_flags.sampled:
            sink = self.sink
            sink.processor.on_end(
                ReadableSpan(
                    self.name,
                    self.context,
                    self.parent,
                    sink.resource,
                    self.attributes,
                    self.events,
                    kind=SpanKind.INTERNAL,
                    status=self.status,
                    start_time=self.start,
                    end_time=end_time,
                    instrumentation_scope=sink.scope,
                )
            )


class _CountingExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, health: Health, pending: list[int]) -> None:
        self.inner = inner
        self.health = health
        self.pending = pending

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.health.spans_exported += len(spans)
        else:
            dropped = self.health.spans_dropped
            dropped["export_failed"] = dropped.get("export_failed", 0) + len(spans)
        self.pending[0] -= len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _BoundedBatch(SpanProcessor):
    """BatchSpanProcessor behind an exact bound: spans beyond `limit` waiting for export are dropped
    here and counted, so the queue is bounded and every loss shows in salt_exporter_spans_dropped_total."""

    def __init__(self, exporter: SpanExporter, health: Health, limit: int) -> None:
        self.health = health
        self.limit = limit
        self.pending = [0]
        self._lock = threading.Lock()
        self.batch = BatchSpanProcessor(
            _CountingExporter(exporter, health, self.pending),
            max_queue_size=limit + 512,
            schedule_delay_millis=1000,
            max_export_batch_size=512,
        )

    def backlogged(self) -> bool:
        """At least half the queue waits for export: the exporter is behind (a burst, a slow backend)."""
        return self.pending[0] * 2 >= self.limit

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        return

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            if self.pending[0] >= self.limit:
                dropped = self.health.spans_dropped
                dropped["queue_full"] = dropped.get("queue_full", 0) + 1
                return
            self.pending[0] += 1
        self.batch.on_end(span)

    def shutdown(self) -> None:
        self.batch.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.batch.force_flush(timeout_millis)


class Redactor:
    """Redacts keys and `key=value` text matching the patterns, then caps the JSON text."""

    def __init__(self, patterns: Sequence[str], cap: int) -> None:
        joined = "|".join(f"(?:{p})" for p in patterns) or r"(?!)"
        self.key = re.compile(joined, re.I)
        self.inline = re.compile(rf"((?:{joined})\w*\s*[=:]\s*)(\S+)", re.I)
        self.cap = cap

    def clean(self, value: Any, depth: int = 0) -> Any:
        if depth > 20:
            return "..."
        if isinstance(value, Mapping):
            return {
                str(k): REDACTED if self.key.search(str(k)) else self.clean(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.clean(v, depth + 1) for v in value]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            return self.inline.sub(lambda m: m.group(1) + REDACTED, value)
        return value if isinstance(value, int | float | bool) or value is None else str(value)

    def text(self, value: Any) -> str:
        out = json.dumps(self.clean(value), default=str, ensure_ascii=False)
        return out if len(out) <= self.cap else out[: self.cap] + "...(truncated)"


# (metric, function, observed value, trace id hex, span id hex, time): the metrics sink's exemplar hook.
ExemplarSink = Callable[[str, str, float, str, str, float], None]


@dataclass(slots=True)
class SpanSummary:
    """The returned minions kept out of a job's trace by the span budget: how many, and their latencies."""

    count: int = 0
    low: float = 0.0
    high: float = 0.0
    total: float = 0.0

    def add(self, latency: float) -> None:
        if not self.count or latency < self.low:
            self.low = latency
        if latency > self.high:
            self.high = latency
        self.count += 1
        self.total += latency


SLOWEST_KEPT = 10  # of a job's ordinary returns, the slowest ones always get spans


def select_minion_spans(
    job: Job, answers: Mapping[str, object], budget: int
) -> tuple[list[str], SpanSummary]:
    """Which returned minions get a span: every failed, late or probed one, then the slowest few, then a
    sample (the same on every exporter and replay: by a hash of the minion id) up to `budget`. The rest are
    summarised on the job span. Silent and pending minions always get a span (see _minion_spans)."""
    must: list[str] = []
    ordinary: list[tuple[float, str]] = []
    for minion, result in job.results.items():
        if result.outcome is FAILURE or result.late or minion in answers:
            must.append(minion)
        else:
            ordinary.append((result.stamp, minion))
    room = budget - len(must) - len(job.silent)
    summary = SpanSummary()
    if len(ordinary) <= room:
        return must + [m for _, m in ordinary], summary
    room = max(room, 0)
    ordinary.sort(reverse=True)
    slowest = min(SLOWEST_KEPT, room)
    rest = sorted(ordinary[slowest:], key=lambda item: zlib.crc32(item[1].encode("utf-8", "replace")))
    kept = must + [m for _, m in ordinary[:slowest]] + [m for _, m in rest[: room - slowest]]
    for stamp, _ in rest[room - slowest :]:
        summary.add(max(stamp - job.start, 0.0))
    return kept, summary


class TraceSink:
    """Turns closed jobs (and finished runner/wheel jobs) into spans."""

    def __init__(
        self,
        processor: _BoundedBatch,
        sampler: Sampler,
        resource: Resource,
        master_id: str,
        redactor: Redactor | None,
        health: Health,
        state_cap: int,
        max_minion_spans: int = 100,
        on_exemplar: ExemplarSink | None = None,
    ) -> None:
        self.on_exemplar = on_exemplar
        self.state_cap = state_cap
        self.max_minion_spans = max_minion_spans
        self.processor = processor
        self.sampler = sampler
        self.resource = resource
        self.scope = InstrumentationScope("salt-event-exporter", __version__)
        self.master_id = master_id
        self.redactor = redactor
        self.health = health
        self._lock = threading.Lock()

    # -- span building -------------------------------------------------------------------------------

    def _start(
        self,
        name: str,
        trace_id: int,
        span_id: int,
        parent: _Span | SpanContext | None,
        start: float,
        attributes: dict[str, Any],
    ) -> _Span:
        if isinstance(parent, _Span):
            flags = parent.context.trace_flags  # children follow their root's sampling decision
            parent_context: SpanContext | None = parent.context
        else:
            # A root: the sampler decides on the trace id (and a remote traceparent, if any).
            ctx = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None
            decision = self.sampler.should_sample(ctx, trace_id, name, SpanKind.INTERNAL, attributes)
            sampled = decision.decision.is_sampled()  # type: ignore[no-untyped-call]
            flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
            parent_context = parent
        context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags)
        return _Span(self, name, context, parent_context, int(start * NS), attributes)

    def _root_parent(self, job: Job) -> tuple[int, SpanContext | None]:
        match = TRACEPARENT.match(job.traceparent or "")
        if match and int(match.group(1), 16) and int(match.group(2), 16):
            parent = SpanContext(
                int(match.group(1), 16),
                int(match.group(2), 16),
                is_remote=True,
                trace_flags=TraceFlags(int(match.group(3), 16)),
            )
            return parent.trace_id, parent
        return trace_id_for(job.jid), None

    def on_close(self, job: Job, status: str) -> None:
        with self._lock:
            self._job_spans(job, status)

    def _job_spans(self, job: Job, status: str) -> None:
        trace_id, parent = self._root_parent(job)
        end = max(job.last, job.start)
        pending = sorted(job.pending_minions()) if status != CLOSED else []
        root = self._start(
            f"salt.job {job.fun}",
            trace_id,
            span_id_for(job.jid, "job", ""),
            parent,
            job.start,
            self._job_attributes(job, status),
        )
        if not root.get_span_context().trace_flags.sampled:
            self._sampled_out(1 + len(job.results) + len(job.silent) + len(pending) + len(job.states))
            root.end(end_time=int(end * NS))
            return
        answers = self._probe_events(job, root)
        # Behind on export: only the minions worth a look (failed, silent, late, probed) get spans, the
        # rest are summarised here, so a burst costs detail on the successes instead of dropped spans.
        backlog = self.processor.backlogged()
        reason = "export_backlog" if backlog else "budget"
        budget = 0 if backlog else self.max_minion_spans
        kept, summary = select_minion_spans(job, answers, budget)
        root.set_attribute("salt.minion_spans.kept", len(kept) + len(job.silent) + len(pending))
        root.set_attribute("salt.minion_spans.summarised", summary.count)
        if summary.count:
            root.set_attribute("salt.minion_spans.summarised_reason", reason)
            root.set_attribute("salt.minion_spans.summarised_latency_min", summary.low)
            root.set_attribute("salt.minion_spans.summarised_latency_max", summary.high)
            root.set_attribute("salt.minion_spans.summarised_latency_mean", summary.total / summary.count)
        minion_spans = self._minion_spans(job, status, trace_id, root, answers, kept, pending, end)
        if self.on_exemplar is not None and status == CLOSED:
            self._exemplars(job, root, minion_spans, end)
        states_summarised = self._state_spans(job, trace_id, minion_spans)
        if job.states_dropped or job.states:
            root.set_attribute("salt.state_spans.cap", self.state_cap)
            root.set_attribute("salt.state_spans.dropped", job.states_dropped)
            root.set_attribute("salt.state_spans.summarised", states_summarised)
        if summary.count or states_summarised:
            summarised = self.health.spans_summarised
            summarised[reason] = summarised.get(reason, 0) + summary.count + states_summarised
        failed, silent = job.failed, len(job.silent)
        if status != CLOSED:
            root.set_status(Status(StatusCode.ERROR, status))
        elif failed or silent:
            root.set_status(Status(StatusCode.ERROR, f"{failed} failed, {silent} did not return"))
        root.end(end_time=int(end * NS))

    def _exemplars(self, job: Job, root: _Span, minion_spans: dict[str, _Span], end: float) -> None:
        """Link the histogram buckets these observations fell in to their spans."""
        emit = self.on_exemplar
        assert emit is not None
        trace_hex = f"{root.context.trace_id:032x}"
        emit(
            "salt_job_duration_seconds",
            job.fun,
            end - job.start,
            trace_hex,
            f"{root.context.span_id:016x}",
            end,
        )
        for minion, span in minion_spans.items():
            result = job.results[minion]
            emit(
                "salt_job_return_latency_seconds",
                job.fun,
                result.stamp - job.start,
                trace_hex,
                f"{span.context.span_id:016x}",
                result.stamp,
            )

    def _job_attributes(self, job: Job, status: str) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "salt.jid": job.jid,
            "salt.function": job.fun,
            "salt.target": job.tgt,
            "salt.target_type": job.tgt_type,
            "salt.user": job.user,
            "salt.master.id": self.master_id,
            "salt.minions.targeted": job.targeted,
            "salt.minions.returned": len(job.results),
            "salt.minions.failed": job.failed,
            "salt.minions.no_return": len(job.silent),
            "salt.find_job.probes": job.probes,
            "salt.job.status": status,
        }
        if job.gap:
            attributes["salt.bus_gap"] = True  # the exporter lost events while this job was open
        arg = lazy(job.raw_arg) if self.redactor is not None else None
        if self.redactor is not None and arg is not None:
            attributes["salt.arg"] = self.redactor.text(arg)
        return attributes

    @staticmethod
    def _probe_events(job: Job, root: _Span) -> dict[str, list[tuple[float, str]]]:
        """Probes become events on the job span; the answers, by minion, events on the minions' spans."""
        answers: dict[str, list[tuple[float, str]]] = {}
        for ev in job.events:
            if ev.kind == "find_job":
                root.add_event(
                    "saltutil.find_job",
                    {"salt.minions": ev.value.split(",") if ev.value else []},
                    timestamp=int(ev.stamp * NS),
                )
            else:
                answers.setdefault(ev.minion, []).append((ev.stamp, ev.value))
        return answers

    def _minion_spans(
        self,
        job: Job,
        status: str,
        trace_id: int,
        root: _Span,
        answers: dict[str, list[tuple[float, str]]],
        kept: list[str],
        pending: list[str],
        end: float,
    ) -> dict[str, _Span]:
        started = job.started

        def minion_span(
            minion: str, attrs: dict[str, Any], at: float, error: str | None, silent_at: float | None = None
        ) -> _Span:
            attrs = self._minion_attributes(job, minion, attrs)
            span = self._start(
                minion, trace_id, span_id_for(job.jid, "minion", minion), root, job.start, attrs
            )
            for stamp, answer in answers.get(minion, ()):
                span.add_event("find_job answer", {"salt.find_job.answer": answer}, timestamp=int(stamp * NS))
            if silent_at is not None and minion not in answers:
                span.add_event(
                    "find_job answer", {"salt.find_job.answer": "no_answer"}, timestamp=int(silent_at * NS)
                )
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
            span.end(end_time=int(max(at, job.start) * NS))
            if started is not None and minion in started:
                self._dispatch_and_run(job, trace_id, span, minion, started[minion], at)
            return span

        spans: dict[str, _Span] = {}
        for minion in kept:
            result = job.results[minion]
            failed_error = f"failed: {result.reason}" if result.outcome is FAILURE else None
            spans[minion] = minion_span(
                minion, self._result_attributes(job, minion), result.stamp, failed_error
            )
        for minion, (at, reason) in job.silent.items():
            minion_span(
                minion,
                {"salt.outcome": "no_return", "salt.no_return.reason": reason},
                at,
                f"did not return: {reason}",
                silent_at=at if job.probes and reason != DEADLINE else None,
            )
        for minion in pending:
            error = "exporter shutdown" if status == SHUTDOWN else status
            minion_span(minion, {"salt.outcome": "pending"}, end, error)
        return spans

    @staticmethod
    def _minion_attributes(job: Job, minion: str, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["salt.minion"] = minion
        if job.started is not None:
            attrs["salt.minion.started"] = minion in job.started  # announced the job (salt --start-event)
        syndic = (job.via or {}).get(minion)
        if syndic is not None:
            attrs["salt.syndic"] = syndic
        return attrs

    def _dispatch_and_run(
        self, job: Job, trace_id: int, parent: _Span, minion: str, started: float, end: float
    ) -> None:
        """With start events, a minion's span splits in two: waiting for the minion, then running."""
        for kind, begin, finish in (("dispatch", job.start, started), ("run", started, max(end, started))):
            span = self._start(
                kind, trace_id, span_id_for(job.jid, kind, minion), parent, begin, {"salt.minion": minion}
            )
            span.end(end_time=int(finish * NS))

    def _result_attributes(self, job: Job, minion: str) -> dict[str, Any]:
        result = job.results[minion]
        attrs: dict[str, Any] = {
            "salt.outcome": result.outcome,
            "salt.retcode": result.retcode,
            "salt.late": result.late,
        }
        if result.success is not None:
            attrs["salt.success"] = result.success
        if result.reason:
            attrs["salt.failure_reason"] = result.reason
        if self.redactor is not None:
            if minion in job.fun_args:
                attrs["salt.fun_args"] = self.redactor.text(job.fun_args[minion])
            if minion in job.returns:
                attrs["salt.return"] = self.redactor.text(job.returns[minion])
        return attrs

    def _state_spans(self, job: Job, trace_id: int, parents: dict[str, _Span]) -> int:
        """State spans under the minion spans sent; returns how many states were summarised instead (their
        minion's span was summarised)."""
        by_minion: dict[str, list[tuple[str, str, float, bool | None]]] = {}
        for st in job.states:
            by_minion.setdefault(st.minion, []).append((st.name, st.start, st.duration_ms, st.result))
        summarised = 0
        for minion, states in by_minion.items():
            parent = parents.get(minion)
            result = job.results.get(minion)
            if parent is None or result is None:
                summarised += len(states) if result is not None else 0
                continue
            known = [
                (begin, dur / 1000.0, name, ok)
                for name, start, dur, ok in states
                if (begin := _clock_seconds(start)) is not None
            ]
            if not known:
                continue
            first = min(k[0] for k in known)
            last_end = max(k[0] + k[1] for k in known)
            anchor = result.stamp - (last_end - first)  # the run ends when the return was sent
            for begin, dur, name, ok in known:
                begin_at = anchor + (begin - first)
                span = self._start(
                    f"state {name}",
                    trace_id,
                    span_id_for(job.jid, "state", f"{minion}/{name}"),
                    parent,
                    begin_at,
                    {
                        "salt.minion": minion,
                        "salt.state.id": name,
                        "salt.state.result": "none" if ok is None else str(ok),
                    },
                )
                if ok is False:
                    span.set_status(Status(StatusCode.ERROR, "state failed"))
                span.end(end_time=int((begin_at + dur) * NS))
        return summarised

    def run_closed(self, run: RunRecord) -> None:
        """A runner or wheel job finished: one span."""
        with self._lock:
            attrs = {
                "salt.jid": run.jid,
                "salt.function": run.fun,
                "salt.kind": run.kind,
                "salt.master.id": self.master_id,
                "salt.outcome": run.outcome,
            }
            span = self._start(
                f"salt.{run.kind} {run.fun}",
                trace_id_for(run.jid),
                span_id_for(run.jid, run.kind, ""),
                None,
                run.start,
                attrs,
            )
            if not span.get_span_context().trace_flags.sampled:
                self._sampled_out(1)
            if run.outcome is FAILURE:
                span.set_status(Status(StatusCode.ERROR, "failed"))
            span.end(end_time=int(max(run.end, run.start) * NS))

    def _sampled_out(self, count: int) -> None:
        dropped = self.health.spans_dropped
        dropped["sampled_out"] = dropped.get("sampled_out", 0) + count

    def shutdown(self, timeout: float) -> None:
        """Flush and stop within `timeout` seconds, whatever the backend does: the SDK's shutdown waits for
        an export in flight, which only the OTLP client's own timeout ends. Spans still queued then are
        counted as dropped (`shutdown_timeout`)."""
        done = threading.Event()

        def flush_and_stop() -> None:
            if not self.processor.force_flush(int(timeout * 1000)):
                log.warning("span_flush_incomplete", timeout_seconds=timeout)
            self.processor.shutdown()
            done.set()

        threading.Thread(target=flush_and_stop, name="span-shutdown", daemon=True).start()
        if not done.wait(timeout):
            left = max(self.processor.pending[0], 0)
            dropped = self.health.spans_dropped
            dropped["shutdown_timeout"] = dropped.get("shutdown_timeout", 0) + left
            log.warning("span_flush_abandoned", timeout_seconds=timeout, spans_dropped=left)


class _Resource(Resource):
    """The SDK's Resource with its hash computed once. The OTLP encoder groups every span by its resource,
    and Resource hashes by JSON-dumping its attributes: ~7% of the daemon's CPU with tracing on."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return other is self or super().__eq__(other)


def _clock_seconds(text: str) -> float | None:
    """Salt's per-state `start_time` is a time of day ("18:15:10.201922") on the minion's clock."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (ValueError, AttributeError):
        return None


def _otlp_exporter(cfg: TracesConfig, env: Mapping[str, str]) -> SpanExporter:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if cfg.protocol_set or not protocol:
        protocol = cfg.otlp_protocol
    endpoint = cfg.otlp_endpoint
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint) if endpoint else GrpcExporter()
    # Like OTEL_EXPORTER_OTLP_ENDPOINT, --otlp.endpoint is a base URL that gets the signal path appended.
    return OtlpHttpExporter.from_env(env, endpoint)


@dataclass(frozen=True, slots=True)
class TracesConfig:
    master_id: str
    otlp_endpoint: str | None = None
    otlp_protocol: str = "http/protobuf"
    protocol_set: bool = False  # --otlp.protocol given: it wins over OTEL_EXPORTER_OTLP_PROTOCOL
    include_args: bool = False
    redact: tuple[str, ...] = ("password", "passwd", "token", "key", "secret")
    max_attribute_size: int = 1024
    max_state_spans: int = 100
    max_minion_spans: int = 100
    max_queue: int = 8192


_SAMPLERS: dict[str, Sampler] = {
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parentbased_always_on": DEFAULT_ON,
    "parentbased_always_off": DEFAULT_OFF,
}


def sampler_from_env(env: Mapping[str, str]) -> Sampler:
    """OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG as the OpenTelemetry spec defines them (the SDK's own
    reader is private); an unknown value is logged and the default, parentbased_always_on, is used."""
    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if name in _SAMPLERS:
        return _SAMPLERS[name]
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
        except ValueError:
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            log.warning(
                "bad_sampler_arg", value=env.get("OTEL_TRACES_SAMPLER_ARG"), fix="a ratio from 0 to 1"
            )
            ratio = 1.0
        return TraceIdRatioBased(ratio) if name == "traceidratio" else ParentBasedTraceIdRatio(ratio)
    log.warning(
        "unknown_sampler", value=name, using="parentbased_always_on", known=[*_SAMPLERS, "traceidratio"]
    )
    return DEFAULT_ON


def build_trace_sink(
    cfg: TracesConfig,
    health: Health,
    env: Mapping[str, str],
    exporter: SpanExporter | None = None,
    on_exemplar: ExemplarSink | None = None,
) -> TraceSink:
    """The composition root's entry: provider, sampler, resource, bounded batching, OTLP exporter."""
    resource = _Resource(
        Resource.create(
            {
                "service.name": env.get("OTEL_SERVICE_NAME") or "salt-event-exporter",
                "salt.master.id": cfg.master_id,
            }
        )
    )
    sampler = sampler_from_env(env)
    processor = _BoundedBatch(exporter or _otlp_exporter(cfg, env), health, cfg.max_queue)
    redactor = Redactor(cfg.redact, cfg.max_attribute_size) if cfg.include_args else None
    return TraceSink(
        processor,
        sampler,
        resource,
        cfg.master_id,
        redactor,
        health,
        cfg.max_state_spans,
        cfg.max_minion_spans,
        on_exemplar,
    )
