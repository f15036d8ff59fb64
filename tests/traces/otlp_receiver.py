"""A real OTLP receiver process for the trace tests: OTLP/HTTP (protobuf) and OTLP/gRPC on free ports.

Every received span is appended to a JSON-lines file. Usage:
    python -m tests.traces.otlp_receiver OUT.jsonl PORTS_FILE
It writes "<http_port> <grpc_port>" to PORTS_FILE once both listen, and runs until killed.
"""

from __future__ import annotations

import gzip
import json
import sys
import threading
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

LOCK = threading.Lock()
RECORDED_HEADERS = ("authorization", "x-tenant", "content-encoding", "content-type")


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def record(
    out: str,
    request: trace_service_pb2.ExportTraceServiceRequest,
    transport: str,
    headers: dict[str, str] | None = None,
) -> None:
    rows = []
    for rs in request.resource_spans:
        resource = {a.key: _value(a.value) for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for span in ss.spans:
                rows.append(
                    {
                        "transport": transport,
                        "headers": headers or {},
                        "resource": resource,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "status": span.status.code,
                        "status_message": span.status.message,
                        "attributes": {a.key: _value(a.value) for a in span.attributes},
                        "events": [
                            {
                                "name": e.name,
                                "time": e.time_unix_nano,
                                "attributes": {a.key: _value(a.value) for a in e.attributes},
                            }
                            for e in span.events
                        ],
                    }
                )
    with LOCK, open(out, "a", encoding="utf-8") as fh:  # noqa: PTH123
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def main() -> None:
    out, ports_file = sys.argv[1], sys.argv[2]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding", "")
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            request = trace_service_pb2.ExportTraceServiceRequest()
            request.ParseFromString(body)
            seen = {k.lower(): v for k, v in self.headers.items() if k.lower() in RECORDED_HEADERS}
            record(out, request, "http", seen)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            record(out, request, "grpc")
            return trace_service_pb2.ExportTraceServiceResponse()

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(ports_file, "w", encoding="utf-8") as fh:  # noqa: PTH123
        fh.write(f"{http.server_address[1]} {grpc_port}")
    http.serve_forever()


if __name__ == "__main__":
    main()
