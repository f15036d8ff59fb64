"""OTLP over HTTP/protobuf for the SDK's finished spans, with the protobuf written here.

The SDK's OTLP encoder builds a protobuf object for every span, attribute and value before serialising
them: with every job traced that was over a quarter of the daemon's CPU (about 30 µs a span on the bench
machine). The message is simple enough to write directly (varints, length-delimited fields, fixed64
times), with the attribute keys' bytes cached. The output parses to exactly the message the SDK's
`encode_spans` builds (a property test compares them on generated spans); one deliberate difference: a
string that cannot be UTF-8 encoded (a 2015.8 minion id kept as surrogate escapes) is sent with
replacement characters instead of failing the batch.

The transport follows the OTLP exporter specification's environment (`OTEL_EXPORTER_OTLP_[TRACES_]`
ENDPOINT, HEADERS, TIMEOUT in seconds as the Python SDK reads it, COMPRESSION gzip/deflate/none,
CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY) and retries 429, 502, 503, 504 and connection errors with
exponential backoff within the timeout. gRPC stays with the SDK's exporter.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import requests
import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

log = structlog.get_logger("exporter.sinks.otlp")

_double = struct.Struct("<d").pack
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_SMALL = [bytes((i,)) for i in range(128)]
_INT64 = 1 << 63
_MASK64 = (1 << 64) - 1
_REMOTE_KNOWN, _REMOTE = 0x100, 0x200  # SpanFlags: the parent's is_remote is known / is true

# Field tags (field number << 3 | wire type) of the OTLP trace messages.
_SPAN_TRACE_ID, _SPAN_ID, _SPAN_TRACE_STATE, _SPAN_PARENT = b"\x0a\x10", b"\x12\x08", b"\x1a", b"\x22\x08"
_SPAN_NAME, _SPAN_KIND, _SPAN_START, _SPAN_END = b"\x2a", b"\x30", b"\x39", b"\x41"
_SPAN_ATTR, _SPAN_DROPPED_ATTRS, _SPAN_EVENT, _SPAN_DROPPED_EVENTS = b"\x4a", b"\x50", b"\x5a", b"\x60"
_SPAN_LINK, _SPAN_DROPPED_LINKS, _SPAN_STATUS, _SPAN_FLAGS = b"\x6a", b"\x70", b"\x7a", b"\x85\x01"

RETRYABLE = frozenset((429, 502, 503, 504))
DEFAULT_ENDPOINT = "http://localhost:4318"
TRACES_PATH = "/v1/traces"


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _bytes_field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _text_field(tag: bytes, text: str) -> bytes:
    return _bytes_field(tag, _utf8(text)) if text else b""


def _count_field(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""


def _any_value(value: Any) -> bytes | None:
    """An AnyValue message, in the SDK's order of type checks; None for a value the SDK cannot encode
    either (the attribute is left out, as the SDK does)."""
    kind = type(value)
    if kind is str:
        data = _utf8(value)
        return b"\x0a" + _varint(len(data)) + data
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value & _MASK64) if -_INT64 <= value < _INT64 else None
    if kind is float:
        return b"\x21" + _double(value)
    return _other_value(value)


_BASES = (bool, str, int, float)  # subclasses, in the SDK's order of checks


def _other_value(value: object) -> bytes | None:
    if value is None:
        return b""
    for base in _BASES:
        if isinstance(value, base):
            return _any_value(base(value))
    if isinstance(value, bytes):
        return _bytes_field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _nested(b"\x2a", [_any_value(item) for item in value])
    if isinstance(value, Mapping):
        return _nested(b"\x32", [_key_value(str(key), item) for key, item in value.items()])
    return None


def _nested(tag: bytes, items: list[bytes | None]) -> bytes | None:
    """An ArrayValue or KeyValueList: all items, or None (the attribute is left out) if one cannot be."""
    if any(item is None for item in items):
        return None
    return _bytes_field(tag, b"".join(_bytes_field(b"\x0a", item) for item in items if item is not None))


_keys: dict[str, bytes] = {}


def _key_value(key: str, value: object) -> bytes | None:
    encoded = _any_value(value)
    if encoded is None:
        return None
    head = _keys.get(key)
    if head is None:
        if len(_keys) > 4096:  # attribute keys are a small fixed set; a bound all the same
            _keys.clear()
        head = _keys[key] = _text_field(b"\x0a", key)
    return head + b"\x12" + _varint(len(encoded)) + encoded


def _attributes(tag: bytes, attributes: Mapping[str, object] | None) -> bytes:
    """Repeated KeyValue fields. The common value types are written inline: a span has a dozen attributes
    and a function call per value was most of the encoder's time."""
    if not attributes:
        return b""
    out: list[bytes] = []
    append = out.append
    keys = _keys
    for key, value in attributes.items():
        head = keys.get(key)
        if head is None:
            if len(keys) > 4096:  # attribute keys are a small fixed set; a bound all the same
                keys.clear()
            head = keys[key] = _text_field(b"\x0a", key)
        kind = type(value)
        if kind is str:
            data = _utf8(value)  # type: ignore[arg-type]
            size = len(data)
            encoded = b"\x0a" + (_SMALL[size] if size < 0x80 else _varint(size)) + data
        elif kind is bool:
            encoded = b"\x10\x01" if value else b"\x10\x00"
        else:
            maybe = _any_value(value)
            if maybe is None:
                continue
            encoded = maybe
        size = len(encoded)
        pair = head + b"\x12" + (_SMALL[size] if size < 0x80 else _varint(size)) + encoded
        size = len(pair)
        append(tag + (_SMALL[size] if size < 0x80 else _varint(size)) + pair)
    return b"".join(out)


def _span(span: ReadableSpan) -> bytes:
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    parts = [
        _SPAN_TRACE_ID,
        ctx.trace_id.to_bytes(16, "big"),
        _SPAN_ID,
        ctx.span_id.to_bytes(8, "big"),
    ]
    if ctx.trace_state:
        parts.append(_text_field(_SPAN_TRACE_STATE, ",".join(f"{k}={v}" for k, v in ctx.trace_state.items())))
    if parent is not None:
        parts += (_SPAN_PARENT, parent.span_id.to_bytes(8, "big"))
    parts += (
        _text_field(_SPAN_NAME, span.name),
        _SPAN_KIND,
        _SMALL[span.kind.value + 1],  # SpanKind INTERNAL (0) is OTLP's SPAN_KIND_INTERNAL (1), and so on
        _SPAN_START,
        _fixed64(span.start_time or 0),
        _SPAN_END,
        _fixed64(span.end_time or 0),
        _attributes(_SPAN_ATTR, span.attributes),
        _count_field(_SPAN_DROPPED_ATTRS, span.dropped_attributes),
    )
    for event in span.events:
        body = (
            b"\x09"
            + _fixed64(event.timestamp)
            + _text_field(b"\x12", event.name)
            + _attributes(b"\x1a", event.attributes)
            + _count_field(b"\x20", event.dropped_attributes)
        )
        parts.append(_bytes_field(_SPAN_EVENT, body))
    parts.append(_count_field(_SPAN_DROPPED_EVENTS, span.dropped_events))
    for link in span.links:
        body = (
            b"\x0a\x10"
            + link.context.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + link.context.span_id.to_bytes(8, "big")
            + _attributes(b"\x22", link.attributes)
            + _count_field(b"\x28", link.dropped_attributes)
            + b"\x35"
            + _fixed32(_REMOTE_KNOWN | (_REMOTE if link.context.is_remote else 0))
        )
        parts.append(_bytes_field(_SPAN_LINK, body))
    parts.append(_count_field(_SPAN_DROPPED_LINKS, span.dropped_links))
    status = span.status
    if status is not None:
        code = status.status_code.value
        body = _text_field(b"\x12", status.description or "") + (b"\x18" + _SMALL[code] if code else b"")
        parts.append(_bytes_field(_SPAN_STATUS, body))
    parts += (
        _SPAN_FLAGS,
        _fixed32(_REMOTE_KNOWN | (_REMOTE if parent is not None and parent.is_remote else 0)),
    )
    return b"".join(parts)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    return (
        _text_field(b"\x0a", scope.name)
        + _text_field(b"\x12", scope.version or "")
        + _attributes(b"\x1a", scope.attributes)
    )


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest: spans grouped by resource, then by instrumentation scope, in the order
    first seen (as the SDK groups them)."""
    groups: dict[Any, dict[Any, list[bytes]]] = {}
    for span in spans:
        by_scope = groups.get(span.resource)
        if by_scope is None:
            by_scope = groups[span.resource] = {}
        scope = span.instrumentation_scope or None
        encoded = by_scope.get(scope)
        if encoded is None:
            encoded = by_scope[scope] = []
        body = _span(span)
        encoded.append(b"\x12" + _varint(len(body)) + body)
    out = []
    for resource, by_scope in groups.items():
        scope_spans = [
            _bytes_field(b"\x0a", _scope(scope))
            + b"".join(encoded)
            + _text_field(b"\x1a", getattr(scope, "schema_url", "") or "")
            for scope, encoded in by_scope.items()
        ]
        body = (
            _bytes_field(b"\x0a", _attributes(b"\x0a", resource.attributes))
            + b"".join(_bytes_field(b"\x12", s) for s in scope_spans)
            + _text_field(b"\x1a", resource.schema_url or "")
        )
        out.append(_bytes_field(b"\x0a", body))
    return b"".join(out)


def _env(env: Mapping[str, str], name: str) -> str:
    """OTEL_EXPORTER_OTLP_TRACES_<name>, else OTEL_EXPORTER_OTLP_<name>."""
    return (
        env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or ""
    ).strip()


class OtlpHttpExporter(SpanExporter):
    """POSTs encoded spans; a failed batch is retried within the timeout, then reported as failed (the
    caller counts it: `salt_exporter_spans_dropped_total{reason="export_failed"}`)."""

    def __init__(
        self,
        endpoint: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        compression: str = "none",
        certificate: str | None = None,
        client_cert: str | tuple[str, str] | None = None,
    ) -> None:
        if compression not in ("none", "gzip", "deflate"):
            raise ValueError(f"OTLP compression {compression!r}: use gzip, deflate or none")
        self.endpoint = endpoint
        self.timeout = timeout
        self.compression = compression
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        self.session.headers["Content-Type"] = "application/x-protobuf"
        if compression != "none":
            self.session.headers["Content-Encoding"] = compression
        # The process environment is read once, here: requests would look up proxies, CA bundle variables
        # and ~/.netrc again on every POST (~5% of the daemon's CPU with every job traced). Proxies
        # (HTTP(S)_PROXY, NO_PROXY) and REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE keep working; netrc is not read.
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(endpoint))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self.verify: str | bool = certificate or bundle or True
        self.cert = client_cert
        self._stopping = threading.Event()

    @classmethod
    def from_env(cls, env: Mapping[str, str], endpoint: str | None = None) -> OtlpHttpExporter:
        """`endpoint` (the --otlp.endpoint base URL) wins; then the standard environment."""
        if endpoint:
            url = endpoint.rstrip("/") + TRACES_PATH
        else:
            url = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or (
                (env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT).rstrip("/")
                + TRACES_PATH
            )
        raw_timeout = _env(env, "TIMEOUT") or "10"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            log.warning("bad_otlp_timeout", value=raw_timeout, using=10.0, fix="seconds, e.g. 10")
            timeout = 10.0
        compression = (_env(env, "COMPRESSION") or "none").lower()
        if compression not in ("none", "gzip", "deflate"):
            log.warning(
                "bad_otlp_compression", value=compression, using="none", known=["gzip", "deflate", "none"]
            )
            compression = "none"
        client_cert, client_key = _env(env, "CLIENT_CERTIFICATE"), _env(env, "CLIENT_KEY")
        return cls(
            url,
            headers=parse_env_headers(_env(env, "HEADERS"), liberal=True),
            timeout=timeout,
            compression=compression,
            certificate=_env(env, "CERTIFICATE") or None,
            client_cert=(client_cert, client_key) if client_cert and client_key else (client_cert or None),
        )

    def _body(self, spans: Sequence[ReadableSpan]) -> bytes:
        data = encode_request(spans)
        if self.compression == "gzip":
            return gzip.compress(data, compresslevel=6)
        if self.compression == "deflate":
            return zlib.compress(data)
        return data

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopping.is_set():
            return SpanExportResult.FAILURE
        data = self._body(spans)
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            problem = self._post(data, max(deadline - time.monotonic(), 0.001))
            if problem is None:
                return SpanExportResult.SUCCESS
            retry, why = problem
            delay = (2**attempt) * random.uniform(0.8, 1.2)
            if not retry or time.monotonic() + delay > deadline or self._stopping.wait(delay):
                log.warning("span_export_failed", endpoint=self.endpoint, spans=len(spans), error=why)
                return SpanExportResult.FAILURE
            attempt += 1

    def _post(self, data: bytes, timeout: float) -> tuple[bool, str] | None:
        """None when the receiver took the batch; else (worth retrying, what happened)."""
        try:
            resp = self.session.post(
                self.endpoint, data=data, timeout=timeout, verify=self.verify, cert=self.cert
            )
        except requests.RequestException as exc:
            return True, f"{type(exc).__name__}: {exc}"
        if resp.ok:
            return None
        return resp.status_code in RETRYABLE, f"HTTP {resp.status_code}"

    def shutdown(self) -> None:
        self._stopping.set()
        self.session.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
