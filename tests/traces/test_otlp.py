"""The project's own OTLP/HTTP encoder and transport (exporter.sinks.otlp).

The oracle for the bytes is the OpenTelemetry SDK's own encoder: for generated spans, what this project
sends parses to exactly the message `encode_spans` builds. The transport is checked against the real OTLP
receiver process (headers, compression, the spans a replay produced) and, for the faults a real receiver
does not produce on demand (503 then 200, a 400), against a small HTTP server that answers as told.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from exporter.sinks.otlp import OtlpHttpExporter, encode_request
from tests.daemon import EXE
from tests.traces.test_traces import FIXTURES, spans_of

# -- the bytes: equal to the SDK's encoder -------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)  # no lone surrogates
SCALAR = st.one_of(
    TEXT,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.binary(max_size=8),
)
VALUE = st.one_of(
    SCALAR,
    st.none(),
    st.lists(st.one_of(TEXT, st.integers(-5, 5)), max_size=3),
    st.dictionaries(TEXT, st.integers(-5, 5), max_size=2),
)
ATTRIBUTES = st.dictionaries(TEXT, VALUE, max_size=5)
IDS = st.integers(min_value=1, max_value=2**64 - 1)
TIMES = st.integers(min_value=0, max_value=2**63)
RESOURCES = [Resource({"service.name": "a"}), Resource({"service.name": "b", "n": 1}, "https://schema/1")]
SCOPES = [InstrumentationScope("s", "1.0"), InstrumentationScope("t", None, "https://schema/2"), None]


@st.composite
def spans(draw: Any) -> ReadableSpan:
    context = SpanContext(
        draw(st.integers(1, 2**128 - 1)),
        draw(IDS),
        is_remote=False,
        trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
        trace_state=TraceState(
            draw(
                st.lists(
                    st.tuples(st.sampled_from("abc"), st.sampled_from("xyz")),
                    max_size=2,
                    unique_by=lambda kv: kv[0],
                )
            )
        ),
    )
    parent = draw(
        st.one_of(st.none(), st.builds(SpanContext, st.integers(1, 2**128 - 1), IDS, is_remote=st.booleans()))
    )
    events = draw(st.lists(st.builds(Event, TEXT, ATTRIBUTES, TIMES), max_size=2))
    links = draw(
        st.lists(
            st.builds(
                Link,
                st.builds(SpanContext, st.integers(1, 2**128 - 1), IDS, is_remote=st.booleans()),
                ATTRIBUTES,
            ),
            max_size=1,
        )
    )
    code = draw(st.sampled_from(list(StatusCode)))
    description = draw(st.one_of(st.none(), TEXT)) if code is StatusCode.ERROR else None
    return ReadableSpan(
        draw(TEXT),
        context,
        parent,
        draw(st.sampled_from(RESOURCES)),
        draw(ATTRIBUTES),
        events,
        links,
        draw(st.sampled_from(list(SpanKind))),
        status=Status(code, description),
        start_time=draw(TIMES),
        end_time=draw(TIMES),
        instrumentation_scope=draw(st.sampled_from(SCOPES)),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), max_size=6))
def test_the_bytes_parse_to_the_message_the_sdk_builds(batch: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode_request(batch))
    assert ours == encode_spans(batch)


def test_real_spans_of_a_recording_encode_like_the_sdk() -> None:
    """The spans a real-master recording produces (job, minion, silent, probe events, states)."""
    for capture in ("killed_minion", "state_fail", "find_job"):
        batch = spans_of(FIXTURES / "3008.4" / f"{capture}.bin")
        assert len(batch) >= 4
        assert ExportTraceServiceRequest.FromString(encode_request(batch)) == encode_spans(batch)


def test_a_string_utf8_cannot_carry_is_sent_with_replacement_characters() -> None:
    """A 2015.8 minion id with undecodable bytes is kept as surrogate escapes; the span still goes out."""
    name = b"minion-\xff".decode("utf-8", "surrogateescape")
    span = ReadableSpan(name, SpanContext(1, 2, False), attributes={"salt.minion": name})
    (sent,) = (
        ExportTraceServiceRequest.FromString(encode_request([span])).resource_spans[0].scope_spans[0].spans
    )
    assert sent.name == "minion-?"
    assert sent.attributes[0].value.string_value == "minion-?"


# -- the transport: the real receiver ------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "deflate", "none"])
def test_headers_and_compression_from_the_standard_environment(receiver: Any, compression: str) -> None:
    receiver.clear()
    capture = FIXTURES / "3008.4" / "killed_minion.bin"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.http,
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20t0ken,x-tenant=salt",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION": compression,
    }
    run = subprocess.run(
        [EXE, "replay", str(capture)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert run.returncode == 0, run.stderr
    expected = {(f"{s.context.span_id:016x}", s.name) for s in spans_of(capture)}
    got = receiver.wait(lambda s: len(s) >= len(expected))
    assert {(s["span_id"], s["name"]) for s in got} == expected
    for span in got:
        assert span["headers"]["authorization"] == "Bearer t0ken"
        assert span["headers"]["x-tenant"] == "salt"
        assert span["headers"]["content-type"] == "application/x-protobuf"
        assert span["headers"].get("content-encoding", "none") == compression


# -- the transport: faults -----------------------------------------------------------------------------


class _Scripted:
    """An HTTP server answering POSTs with the next status of a script (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.posts: list[float] = []
        self.targets: list[str] = []  # the request target of each POST (absolute when sent to a proxy)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.posts.append(time.monotonic())
                outer.targets.append(self.path)
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def scripted() -> Iterator[type[_Scripted]]:
    servers: list[_Scripted] = []

    def make(statuses: list[int]) -> _Scripted:
        server = _Scripted(statuses)
        servers.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in servers:
        server.server.shutdown()


BATCH = [ReadableSpan("s", SpanContext(1, 2, False), start_time=1, end_time=2)]


def test_a_busy_receiver_is_retried_with_backoff(scripted: Any) -> None:
    server = scripted([503, 429])
    result = OtlpHttpExporter(server.url, timeout=10).export(BATCH)
    assert result is SpanExportResult.SUCCESS
    assert len(server.posts) == 3
    assert server.posts[1] - server.posts[0] >= 0.8 and server.posts[2] - server.posts[1] >= 1.6


def test_a_rejected_batch_is_not_retried(scripted: Any) -> None:
    server = scripted([400])
    assert OtlpHttpExporter(server.url, timeout=10).export(BATCH) is SpanExportResult.FAILURE
    assert len(server.posts) == 1


def test_an_unreachable_receiver_fails_within_the_timeout(scripted: Any) -> None:
    server = scripted([])
    url = server.url
    server.server.shutdown()
    server.server.server_close()
    started = time.monotonic()
    assert OtlpHttpExporter(url, timeout=2).export(BATCH) is SpanExportResult.FAILURE
    assert time.monotonic() - started < 2.5


def test_a_proxy_from_the_environment_is_used_and_no_proxy_bypasses_it(
    scripted: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is read once at start (not per POST), and still honoured: a real HTTP client sends
    the batch to the proxy, in absolute form, unless NO_PROXY names the receiver."""
    proxy = scripted([])
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/v1/traces"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    via_proxy = OtlpHttpExporter("http://collector.invalid:4318/v1/traces", timeout=5)
    assert via_proxy.export(BATCH) is SpanExportResult.SUCCESS
    assert proxy.targets == ["http://collector.invalid:4318/v1/traces"]

    direct = scripted([])
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert OtlpHttpExporter(direct.url, timeout=5).export(BATCH) is SpanExportResult.SUCCESS
    assert direct.targets == ["/v1/traces"] and len(proxy.targets) == 1


def test_the_endpoint_and_settings_are_read_like_the_specification_says() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_EXPORTER_OTLP_TIMEOUT": "3"}
    exporter = OtlpHttpExporter.from_env(env)
    assert exporter.endpoint == "http://collector:4318/v1/traces"
    assert exporter.timeout == 3.0
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "https://traces.example/custom"  # used as given
    env["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "7"
    env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = "/etc/ca.pem"
    exporter = OtlpHttpExporter.from_env(env)
    assert (exporter.endpoint, exporter.timeout, exporter.verify) == (
        "https://traces.example/custom",
        7.0,
        "/etc/ca.pem",
    )
    assert OtlpHttpExporter.from_env(env, "http://flag:4318").endpoint == "http://flag:4318/v1/traces"
    assert OtlpHttpExporter.from_env({}).endpoint == "http://localhost:4318/v1/traces"
    bad = OtlpHttpExporter.from_env(
        {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon", "OTEL_EXPORTER_OTLP_COMPRESSION": "br"}
    )
    assert (bad.timeout, bad.compression) == (10.0, "none")
