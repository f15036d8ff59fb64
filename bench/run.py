"""End-to-end benchmark: the real daemon reading a generated stream from a real Unix socket.

    python -m bench.run --profile all --json bench-results/bench.json      # what `make bench` runs
    python -m bench.run --profile mixed --events 1100000 --runs 3
    python -m bench.run --profile mixed --tracing
    python -m bench.run --profile latency --rate 20000 --duration 10

For every run a fresh daemon (`salt-event-exporter --bus <socket> --web.listen-address 127.0.0.1:<free port>
--max-jobs <enough for the profile>`) is started as a subprocess and connects to a tiny publisher, which
sends the stream's bytes as fast as the daemon's reader takes them. The only flow control is a window:
the publisher stays at most `--window-mb` ahead of what `/metrics` shows processed, so the daemon's
bounded read buffer (64 MiB by default) never overflows. Otherwise a Python pipeline that is slower than
`recv` would drop (and count) bytes by design, and the counts could not be exact. The poll that drives the
window (`--poll-ms`, 20 ms) is also what detects the end.

Measured per run: events/s from the first byte sent until `/metrics` shows every event processed (the sum
of `salt_events_total`); the daemon's CPU seconds per million events (utime + stime of all its threads, from
/proc/PID/stat); its peak RSS (VmHWM) and final RSS (VmRSS); the tail visibility (last byte sent until
`/metrics` shows it processed, polled every millisecond at the end); and, in the bench process after the
daemon has stopped, the floor: the same bytes decoded with msgpack alone (an Unpacker over the outer
frames with raw=True, then unpackb of each inner data part with raw=False, strict_map_key=False). Figures
are medians over `--runs`. After every run the final `/metrics` is compared with the counts the generator
says the stream must produce; any difference is printed and makes the command exit 1. Goals are printed
as PASS/FAIL and never change the exit status.

`large-fleet` also measures memory: RSS of the connected, idle daemon; RSS after a warm-up job; RSS while
all N minions of one job are pending; bytes per pending (jid, minion) is (pending - idle) / N.
`latency` publishes the mixed stream at a steady `--rate` for `--duration` seconds in 5 ms batches and polls
`/metrics` every few milliseconds: an event is visible at the first poll whose processed count includes
it (events are processed in order), and its visibility latency is that poll's response time minus the
time its batch was sent. `--tracing` starts the daemon with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local
HTTP sink that answers every OTLP POST with 200 and discards it, and OTEL_TRACES_SAMPLER=always_on.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgpack

from bench.generate import (
    DEFAULT_EVENTS,
    DEFAULT_MAX_JOBS,
    SCALE_EVENTS,
    SCALE_STATES,
    SCALING,
    Stream,
    generate,
    generate_scale,
    sample_key,
)

MB = 1024 * 1024
SEND_CHUNK = 1 * MB
READ_CHUNK = 256 * 1024  # the daemon's recv size, used to feed the floor decoder the same way
CLK_TCK = os.sysconf("SC_CLK_TCK")
STALL_SECONDS = 120.0  # no progress for this long: the run failed

GOALS = {
    "mixed_ratio": 0.80,
    "ping_ratio": 0.45,
    "mixed_tracing_ratio": 0.30,
    "peak_rss_mb": 50.0,
    "bytes_per_pending": 100.0,
    "latency_p99_ms": 200.0,
    "scaling_growth": 1.5,
}


class BenchError(RuntimeError):
    """The daemon could not be run or stopped making progress."""


# ---------------------------------------------------------------------------------------------------------
# The daemon


def exporter_command() -> list[str]:
    script = Path(sys.executable).parent / "salt-event-exporter"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from exporter.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Scraper:
    """GET /metrics, one short-lived connection per request.

    Deliberately not keep-alive: the daemon's web server writes the response headers and body in two
    send() calls without TCP_NODELAY, so on a kept-alive connection every scrape waits ~40 ms for the
    client's delayed ACK (Nagle). A new connection starts in quick-ACK mode and answers in ~1 ms, so the
    poll measures the pipeline, not that artefact.
    """

    def __init__(self, port: int) -> None:
        self.port = port

    def metrics(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/metrics", headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise BenchError(f"/metrics answered {resp.status}")
        return body.decode()

    def close(self) -> None:
        return


class Daemon:
    """A `salt-event-exporter` subprocess and its /proc and /metrics views."""

    def __init__(
        self, bus: str, max_jobs: int, log_path: Path, env_extra: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALT_EXPORTER_"))}
        env.update(env_extra or {})
        cmd = [
            *exporter_command(),
            "--bus",
            bus,
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            "--max-jobs",
            str(max_jobs),
            "--log.format",
            "json",
        ]
        self.command = cmd
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        self.scraper = Scraper(self.port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchError(f"daemon exited with status {self.proc.returncode}:\n{self.log_tail()}")

    def metrics(self) -> str:
        return self.scraper.metrics()

    def wait_http(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                self.metrics()
                return
            except (OSError, http.client.HTTPException, BenchError):
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"/metrics not reachable after {timeout} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all threads), from /proc/PID/stat."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM in bytes."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
        return out

    def stop(self) -> None:
        self.scraper.close()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def quick_values(text: str) -> tuple[int, float]:
    """Sum of salt_events_total and salt_job_minions_pending, without a full exposition parse."""
    events = 0.0
    pending = 0.0
    for line in text.splitlines():
        if line.startswith("salt_events_total{"):
            events += float(line.rsplit(" ", 1)[1])
        elif line.startswith("salt_job_minions_pending "):
            pending = float(line.rsplit(" ", 1)[1])
    return int(events), pending


def all_samples(text: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[sample_key(s.name, **s.labels)] = s.value
    return out


def compare(stream: Stream, text: str) -> list[str]:
    """Every difference between `/metrics` and the stream's expected counts, in the exact families."""
    got = all_samples(text)
    problems = []
    families = set(stream.exact_families)
    for key, value in sorted(got.items()):
        name = key.split("{", 1)[0]
        if name in families and value and key not in stream.expected:
            problems.append(f"{key}: got {value:g}, expected 0 (absent)")
    for key, value in sorted(stream.expected.items()):
        if got.get(key, 0.0) != value:
            problems.append(f"{key}: got {got.get(key, 0.0):g}, expected {value:g}")
    return problems


# ---------------------------------------------------------------------------------------------------------
# The publisher and the OTLP sink


class Publisher:
    """A Unix stream socket where the master would publish; one subscriber, bytes as fast as it reads."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "master_event_pub.ipc")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(1)
        self.conn: socket.socket | None = None

    def accept(self, daemon: Daemon, timeout: float = 30.0) -> None:
        self.server.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while self.conn is None:
            daemon.check_alive()
            try:
                self.conn, _ = self.server.accept()
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise BenchError(f"the daemon did not connect within {timeout} s") from None
        self.conn.setblocking(True)

    def send(self, data: memoryview) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


class OtlpSink:
    """Accepts OTLP/HTTP POSTs, answers 200 with an empty protobuf response, discards the payload."""

    def __init__(self) -> None:
        sink = self
        self.requests = 0
        self.bytes = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                sink.requests += 1
                sink.bytes += length
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1})
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def harness(
    max_jobs: int, log_path: Path, tracing: bool
) -> Iterator[tuple[Daemon, Publisher, OtlpSink | None]]:
    """A publisher socket, an OTLP sink (tracing), and a connected daemon; all torn down afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="salt-bench-"))
    publisher = Publisher(directory)
    sink = OtlpSink() if tracing else None
    env = {}
    if sink is not None:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "always_on",
        }
    daemon = Daemon(publisher.path, max_jobs, log_path, env)
    try:
        publisher.accept(daemon)
        daemon.wait_http()
        yield daemon, publisher, sink
    finally:
        daemon.stop()
        publisher.close()
        if sink is not None:
            sink.close()
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Feeding with a window, and the floor


@dataclass
class Feed:
    t_first: float
    t_last_sent: float
    t_done: float
    polls: int
    starved_polls: int
    scrape_ms: list[float]


def feed(
    daemon: Daemon,
    publisher: Publisher,
    stream: Stream,
    first: int,
    last: int,
    window: int,
    poll: float,
    data: memoryview,
) -> Feed:
    """Send events [first, last) staying at most `window` bytes ahead of what `/metrics` shows processed.

    A polling thread scrapes `/metrics` every `poll` seconds (every millisecond once everything is sent:
    that is the tail-visibility measurement) while this thread sends whenever the window allows, so a slow
    scrape does not stall the sender. Returns when `/metrics` shows `last` events processed.
    """
    offsets = stream.offsets
    lo, hi = int(offsets[first]), int(offsets[last])
    cond = threading.Condition()
    shared = {"processed": first, "sent": lo, "starved": 0, "polls": 0}
    scrape_ms: list[float] = []
    done: list[float] = []
    failure: list[BaseException] = []
    sent_all = threading.Event()
    scraper = Scraper(daemon.port)

    def poller() -> None:
        last_progress = time.monotonic()
        try:
            while True:
                t0 = time.perf_counter()
                text = scraper.metrics()
                t1 = time.perf_counter()
                scrape_ms.append((t1 - t0) * 1000)
                count, _ = quick_values(text)
                with cond:
                    shared["polls"] += 1
                    if count > shared["processed"]:
                        shared["processed"] = count
                        last_progress = time.monotonic()
                    if not sent_all.is_set() and shared["sent"] - int(offsets[min(count, last)]) < READ_CHUNK:
                        shared["starved"] += 1
                    cond.notify_all()
                if count >= last:
                    done.append(t1)
                    return
                if time.monotonic() - last_progress > STALL_SECONDS:
                    daemon.check_alive()
                    raise BenchError(f"no progress for {STALL_SECONDS:.0f} s at {count} of {last} events")
                time.sleep(0.001 if sent_all.is_set() else poll)
        except BaseException as exc:  # handed to the sending thread
            failure.append(exc)
            with cond:
                cond.notify_all()

    thread = threading.Thread(target=poller, name="poller", daemon=True)
    t_first = time.perf_counter()
    thread.start()
    sent = lo
    while sent < hi:
        with cond:
            while not failure:
                allowed = min(hi, int(offsets[min(shared["processed"], last)]) + window)
                if sent < allowed:
                    break
                cond.wait(1.0)
        if failure:
            break
        n = min(allowed - sent, SEND_CHUNK)
        publisher.send(data[sent : sent + n])
        sent += n
        with cond:
            shared["sent"] = sent
    t_last_sent = time.perf_counter()
    sent_all.set()
    thread.join(STALL_SECONDS + 30)
    if failure:
        exc = failure[0]
        raise exc if isinstance(exc, BenchError) else BenchError(f"polling failed: {exc!r}")
    if not done:
        raise BenchError("the polling thread did not finish")
    return Feed(t_first, t_last_sent, done[0], shared["polls"], shared["starved"], scrape_ms)


def wait_count(daemon: Daemon, events: int, pending: float | None = None, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        count, pend = quick_values(daemon.metrics())
        if count >= events and (pending is None or pend == pending):
            return pend
        if time.monotonic() > deadline:
            daemon.check_alive()
            raise BenchError(
                f"waited {timeout:.0f} s: {count}/{events} events, pending {pend} (want {pending})"
            )
        time.sleep(0.005)


def floor_rate(data: bytes | memoryview, framing: str, events: int) -> float:
    """Events/s of msgpack alone: outer frames with raw=True, then every inner data part with raw=False."""
    unpackb = msgpack.unpackb
    view = memoryview(data)
    n = 0
    t = time.perf_counter()
    if framing == "plain":
        unpacker = msgpack.Unpacker(raw=True, max_buffer_size=64 * MB)
        for i in range(0, len(view), READ_CHUNK):
            unpacker.feed(view[i : i + READ_CHUNK])
            for frame in unpacker:
                body = frame[b"body"]
                unpackb(body[body.find(b"\n\n") + 2 :], raw=False, strict_map_key=False)
                n += 1
    else:
        pos, end = 0, len(view)
        while pos < end:
            size = int.from_bytes(view[pos : pos + 4], "big")
            frame = unpackb(view[pos + 4 : pos + 4 + size], raw=True)
            body = frame[b"body"]
            unpackb(body[body.find(b"\n\n") + 2 :], raw=False, strict_map_key=False)
            n += 1
            pos += 4 + size
    elapsed = time.perf_counter() - t
    if n != events:
        raise BenchError(f"floor decoded {n} events, expected {events}")
    return events / elapsed


# ---------------------------------------------------------------------------------------------------------
# Runs


@dataclass
class RunResult:
    events: int
    seconds: float
    events_per_s: float
    floor_events_per_s: float
    ratio: float
    cpu_seconds: float
    cpu_s_per_million: float
    peak_rss: int
    final_rss: int
    idle_rss: int
    tail_visibility_ms: float
    polls: int
    starved_polls: int
    mismatches: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def run_throughput(
    stream: Stream,
    log_path: Path,
    tracing: bool = False,
    window: int = 8 * MB,
    poll: float = 0.02,
) -> RunResult:
    """One run: a fresh daemon fed the whole stream (large-fleet in its three measured phases)."""
    data = memoryview(stream.data)
    offsets = stream.offsets
    extra: dict[str, Any] = {}
    with harness(stream.max_jobs, log_path, tracing) as (daemon, publisher, sink):
        time.sleep(0.3)
        idle = daemon.memory()["VmRSS"]
        first = 0
        if stream.profile == "large-fleet":
            minions = int(stream.notes["minions"])
            warm, new = stream.segment_events[0], stream.segment_events[1]
            publisher.send(data[: int(offsets[warm])])
            wait_count(daemon, warm, 0)
            time.sleep(0.5)
            warm_rss = daemon.memory()["VmRSS"]
            t = time.perf_counter()
            publisher.send(data[int(offsets[warm]) : int(offsets[warm + new])])
            wait_count(daemon, warm + new, float(minions))
            publish_visible = time.perf_counter() - t
            time.sleep(0.5)
            pending_rss = daemon.memory()["VmRSS"]
            extra.update(
                minions=minions,
                idle_rss=idle,
                warm_rss=warm_rss,
                pending_rss=pending_rss,
                bytes_per_pending=(pending_rss - idle) / minions,
                bytes_per_pending_vs_warm=(pending_rss - warm_rss) / minions,
                publish_event_bytes=int(offsets[warm + new] - offsets[warm]),
                publish_to_pending_visible_s=publish_visible,
            )
            first = warm + new
        cpu0 = daemon.cpu_seconds()
        fed = feed(daemon, publisher, stream, first, stream.events, window, poll, data)
        cpu = daemon.cpu_seconds() - cpu0
        mem = daemon.memory()
        text = daemon.metrics()
        mismatches = compare(stream, text)
        samples = all_samples(text)
        extra["dropped_bytes"] = sum(
            v for k, v in samples.items() if k.startswith("salt_exporter_dropped_bytes")
        )
        if sink is not None:
            extra["spans_exported"] = samples.get("salt_exporter_spans_exported_total", 0.0)
            extra["spans_dropped"] = sum(
                v for k, v in samples.items() if k.startswith("salt_exporter_spans_dropped_total")
            )
        if stream.profile == "flood":
            extra["jobs_in_flight"] = samples.get("salt_jobs_in_flight", 0.0)
            extra["job_cap"] = stream.max_jobs
            extra["evictions"] = samples.get('salt_exporter_evictions_total{kind="job"}', 0.0)
    if sink is not None:
        extra["otlp_posts"] = sink.requests
        extra["otlp_bytes"] = sink.bytes
    measured = stream.events - first
    phase = data[int(offsets[first]) :]
    floor = floor_rate(phase, stream.framing, measured)
    seconds = fed.t_done - fed.t_first
    rate = measured / seconds
    return RunResult(
        events=measured,
        seconds=seconds,
        events_per_s=rate,
        floor_events_per_s=floor,
        ratio=rate / floor,
        cpu_seconds=cpu,
        cpu_s_per_million=cpu / measured * 1e6,
        peak_rss=mem["VmHWM"],
        final_rss=mem["VmRSS"],
        idle_rss=idle,
        tail_visibility_ms=(fed.t_done - fed.t_last_sent) * 1000,
        polls=fed.polls,
        starved_polls=fed.starved_polls,
        mismatches=mismatches,
        extra={
            **extra,
            "scrape_ms_median": statistics.median(fed.scrape_ms),
            "scrape_ms_max": max(fed.scrape_ms),
        },
    )


def run_latency(
    stream: Stream, log_path: Path, rate: float, batch: float = 0.005, poll: float = 0.002
) -> RunResult:
    """Publish at a steady `rate` in `batch`-second batches; measure when each event shows in /metrics."""
    data = memoryview(stream.data)
    offsets = stream.offsets
    n = stream.events
    per_batch = max(1, round(rate * batch))
    batches = (n + per_batch - 1) // per_batch
    sent_at = [0.0] * batches
    seen: list[tuple[float, int]] = []
    stop = threading.Event()
    with harness(stream.max_jobs, log_path, False) as (daemon, publisher, _):
        poller = Scraper(daemon.port)  # the polling thread's own connection
        failure: list[BaseException] = []

        def poll_loop() -> None:
            try:
                while not stop.is_set():
                    text = poller.metrics()
                    t = time.perf_counter()
                    count, _ = quick_values(text)
                    seen.append((t, count))
                    if count >= n:
                        return
                    time.sleep(poll)
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)

        time.sleep(0.3)
        idle = daemon.memory()["VmRSS"]
        cpu0 = daemon.cpu_seconds()
        thread = threading.Thread(target=poll_loop, daemon=True)
        thread.start()
        t0 = time.perf_counter()
        for b in range(batches):
            target = t0 + b * batch
            now = time.perf_counter()
            if target > now:
                time.sleep(target - now)
            lo, hi = int(offsets[b * per_batch]), int(offsets[min((b + 1) * per_batch, n)])
            publisher.send(data[lo:hi])
            sent_at[b] = time.perf_counter()
        t_last = sent_at[-1]
        thread.join(timeout=STALL_SECONDS)
        stop.set()
        if failure:
            raise BenchError(f"polling failed: {failure[0]}")
        if not seen or seen[-1][1] < n:
            daemon.check_alive()
            raise BenchError(f"latency run: only {seen[-1][1] if seen else 0} of {n} events processed")
        cpu = daemon.cpu_seconds() - cpu0
        mem = daemon.memory()
        text = daemon.metrics()
        mismatches = compare(stream, text)
        poller.close()
    latencies: list[float] = []
    done = 0
    for t, shown in seen:
        upto = min(shown, n)
        for i in range(done, upto):
            latencies.append(t - sent_at[i // per_batch])
        done = max(done, upto)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    achieved = n / (t_last - t0) if t_last > t0 else float(n)
    return RunResult(
        events=n,
        seconds=seen[-1][0] - t0,
        events_per_s=achieved,
        floor_events_per_s=0.0,
        ratio=0.0,
        cpu_seconds=cpu,
        cpu_s_per_million=cpu / n * 1e6,
        peak_rss=mem["VmHWM"],
        final_rss=mem["VmRSS"],
        idle_rss=idle,
        tail_visibility_ms=(seen[-1][0] - t_last) * 1000,
        polls=len(seen),
        starved_polls=0,
        mismatches=mismatches,
        extra={
            "target_rate": rate,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": latencies[-1] * 1000,
            "batch_ms": batch * 1000,
            "poll_ms": poll * 1000,
        },
    )


# ---------------------------------------------------------------------------------------------------------
# Reporting


def median(runs: list[RunResult], get: Callable[[RunResult], float]) -> float:
    return float(statistics.median(get(r) for r in runs))


def summary(name: str, stream: Stream, runs: list[RunResult]) -> dict[str, Any]:
    med: dict[str, Any] = {
        "events_per_s": median(runs, lambda r: r.events_per_s),
        "floor_events_per_s": median(runs, lambda r: r.floor_events_per_s),
        "ratio": median(runs, lambda r: r.ratio),
        "cpu_s_per_million": median(runs, lambda r: r.cpu_s_per_million),
        "peak_rss_mb": median(runs, lambda r: r.peak_rss) / MB,
        "final_rss_mb": median(runs, lambda r: r.final_rss) / MB,
        "idle_rss_mb": median(runs, lambda r: r.idle_rss) / MB,
        "tail_visibility_ms": median(runs, lambda r: r.tail_visibility_ms),
    }
    for key in runs[0].extra:
        if all(isinstance(r.extra.get(key), int | float) for r in runs):
            med[key] = median(runs, lambda r, k=key: float(r.extra[k]))  # type: ignore[misc]
    return {
        "name": name,
        "profile": stream.profile,
        "framing": stream.framing,
        "events": stream.events,
        "bytes": stream.nbytes,
        "runs": [asdict(r) for r in runs],
        "median": med,
        "counts_exact": all(not r.mismatches for r in runs),
    }


def _fmt_rate(x: float) -> str:
    return f"{x:>12,.0f} ev/s"


def print_summary(s: dict[str, Any], out: Any = sys.stdout) -> None:
    m = s["median"]
    runs = s["runs"]
    print(
        f"\n== {s['name']}: {s['events']:,} events, {s['bytes'] / MB:,.1f} MiB, {s['framing']} framing, "
        f"{len(runs)} run(s), medians",
        file=out,
    )
    if m["floor_events_per_s"]:
        print(
            f"  pipeline      {_fmt_rate(m['events_per_s'])}   runs: "
            + ", ".join(f"{r['events_per_s']:,.0f}" for r in runs),
            file=out,
        )
        print(
            f"  msgpack floor {_fmt_rate(m['floor_events_per_s'])}   runs: "
            + ", ".join(f"{r['floor_events_per_s']:,.0f}" for r in runs),
            file=out,
        )
        print(f"  ratio         {m['ratio'] * 100:>12.1f} %", file=out)
    else:
        print(f"  sent at       {_fmt_rate(m['events_per_s'])}", file=out)
    print(f"  CPU           {m['cpu_s_per_million']:>12.2f} s per million events", file=out)
    print(
        f"  RSS           {m['peak_rss_mb']:>12.1f} MiB peak (VmHWM), "
        f"{m['final_rss_mb']:.1f} MiB at the end, {m['idle_rss_mb']:.1f} MiB idle",
        file=out,
    )
    print(f"  tail visible  {m['tail_visibility_ms']:>12.1f} ms after the last byte was sent", file=out)
    for key in ("p50_ms", "p99_ms", "max_ms"):
        if key in m:
            print(f"  visibility {key[:-3]:<4}{m[key]:>12.1f} ms", file=out)
    if "bytes_per_pending" in m:
        print(
            f"  pending       {m['bytes_per_pending']:>12.1f} B per pending minion vs idle "
            f"({m['bytes_per_pending_vs_warm']:.1f} vs warmed-up; idle {m['idle_rss'] / MB:.1f} MiB, "
            f"with {m['minions']:,.0f} pending {m['pending_rss'] / MB:.1f} MiB)",
            file=out,
        )
    if "jobs_in_flight" in m:
        print(
            f"  job cap       {m['jobs_in_flight']:>12,.0f} in flight (cap {m['job_cap']:,.0f}), "
            f"{m['evictions']:,.0f} evictions counted",
            file=out,
        )
    if "otlp_posts" in m:
        print(
            f"  tracing       {m['spans_exported']:>12,.0f} spans exported, "
            f"{m['spans_dropped']:,.0f} dropped, {m['otlp_posts']:,.0f} OTLP POSTs",
            file=out,
        )
    starved = sum(r["starved_polls"] for r in runs)
    polls = sum(r["polls"] for r in runs)
    scrape = (
        f"; scrape median {m['scrape_ms_median']:.1f} ms, max {m['scrape_ms_max']:.0f} ms"
        if "scrape_ms_max" in m
        else ""
    )
    print(
        f"  polls         {polls:>12,} ({starved} with under 256 KiB sent but unprocessed{scrape})",
        file=out,
    )
    if s["counts_exact"]:
        print("  counts        exact", file=out)
    for i, r in enumerate(runs):
        for problem in r["mismatches"][:20]:
            print(f"  COUNT MISMATCH (run {i + 1}): {problem}", file=out)


def goals(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []

    def add(goal: str, value: float | None, ok: bool | None, shown: str) -> None:
        out.append({"goal": goal, "value": value, "pass": ok, "shown": shown})

    def med(name: str, key: str) -> float | None:
        r = results.get(name)
        return None if r is None or key not in r["median"] else float(r["median"][key])

    for name, key, goal in (
        ("mixed", "mixed_ratio", "mixed pipeline >= 80% of the msgpack floor"),
        ("ping", "ping_ratio", "ping pipeline >= 45% of the msgpack floor"),
        ("mixed+tracing", "mixed_tracing_ratio", "tracing-on mixed >= 30% of the floor"),
    ):
        v = med(name, "ratio")
        if v is not None:
            add(goal, v, v >= GOALS[key], f"{v * 100:.1f} %")
    v = med("mixed+tracing", "spans_dropped")
    if v is not None:
        add("tracing-on mixed drops no span", v, v == 0, f"{v:,.0f} dropped")
    for name in ("mixed", "ping"):
        v = med(name, "peak_rss_mb")
        if v is not None:
            events = results[name]["events"]
            limit = GOALS["peak_rss_mb"]
            add(
                f"{name}: peak RSS <= {limit:.0f} MB after {events:,} events",
                v,
                v * MB <= limit * 1e6,
                f"{v * MB / 1e6:.1f} MB",
            )
    v = med("large-fleet", "bytes_per_pending")
    if v is not None:
        limit = GOALS["bytes_per_pending"]
        add(f"<= {limit:.0f} B per pending (jid, minion)", v, v <= limit, f"{v:.0f} B")
    v = med("latency", "p99_ms")
    if v is not None:
        rate = med("latency", "target_rate") or 0
        add(f"visibility p99 < 200 ms at {rate:,.0f} ev/s", v, v < GOALS["latency_p99_ms"], f"{v:.1f} ms")
    r = results.get("flood")
    if r is not None:
        inflight, cap = med("flood", "jobs_in_flight") or 0, med("flood", "job_cap") or 0
        add(
            "flood stays under the job cap, evictions counted",
            inflight,
            inflight <= cap and r["counts_exact"],
            f"{inflight:,.0f} <= {cap:,.0f}",
        )
    for dimension, rows in scaling_rows(results).items():
        if len(rows) < 2:
            continue
        key, unit = _scale_cost(dimension)
        growth = rows[-1]["median"][key] / rows[0]["median"][key]
        limit = GOALS["scaling_growth"]
        add(
            f"{dimension}: CPU {unit} at {rows[-1]['step']:,} <= {limit}x at {rows[0]['step']:,}",
            growth,
            growth <= limit,
            f"{growth:.2f}x",
        )
    return out


def _scale_cost(dimension: str) -> tuple[str, str]:
    """What stays flat when a dimension grows: per event, or per state for the states per run (a state run's
    cost is its states; per event it grows with them by design)."""
    if dimension == "states":
        return "cpu_s_per_million_states", "per state"
    return "cpu_s_per_million", "per event"


def scaling_rows(results: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in results.values():
        if "dimension" in r:
            rows.setdefault(r["dimension"], []).append(r)
    for steps in rows.values():
        steps.sort(key=lambda r: r["step"])
    return rows


def print_scaling(results: dict[str, dict[str, Any]], out: Any = sys.stdout) -> None:
    names = {"minions": "minions per job", "states": "states per state run", "inflight": "jobs in flight"}
    for dimension, rows in scaling_rows(results).items():
        print(f"\n== scaling: {names[dimension]} (medians)", file=out)
        print(
            f"  {'step':>8}  {'events':>9}  {'ev/s':>9}  {'of floor':>8}  {'CPU s/M ev':>10}"
            f"  {'CPU s/M states':>14}  {'peak RSS':>9}  counts",
            file=out,
        )
        for r in rows:
            m = r["median"]
            per_state = f"{m['cpu_s_per_million_states']:.2f}" if "cpu_s_per_million_states" in m else "-"
            print(
                f"  {r['step']:>8,}  {r['events']:>9,}  {m['events_per_s']:>9,.0f}  {m['ratio'] * 100:>7.1f}%"
                f"  {m['cpu_s_per_million']:>10.2f}  {per_state:>14}  {m['peak_rss_mb']:>5.1f} MiB"
                f"  {'exact' if r['counts_exact'] else 'WRONG'}",
                file=out,
            )


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False, timeout=5
        ).stdout.strip()
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "msgpack": ".".join(map(str, msgpack.version)),
        "kernel": platform.release(),
        "commit": commit,
    }


# ---------------------------------------------------------------------------------------------------------
# Command line


@dataclass
class Plan:
    name: str
    profile: str
    events: int | None
    tracing: bool = False
    latency: bool = False
    step: int = 0  # scaling profiles: the size of the growing dimension


def scaling_plans(events: int | None) -> list[Plan]:
    return [
        Plan(f"scale-{dimension}-{step}", f"scale-{dimension}", events, step=step)
        for dimension, steps in SCALING.items()
        for step in steps
    ]


def plans(args: argparse.Namespace) -> list[Plan]:
    if args.profile == "all":
        return [
            Plan("ping", "ping", None),
            Plan("mixed", "mixed", None),
            Plan("mixed+tracing", "mixed", None, tracing=True),
            Plan("large-fleet", "large-fleet", None),
            Plan("flood", "flood", None),
            Plan("latency", "mixed", None, latency=True),
            *scaling_plans(None),
        ]
    if args.profile == "scaling":
        return scaling_plans(args.events)
    if args.profile == "latency":
        return [Plan("latency", "mixed", args.events, latency=True)]
    name = args.profile + ("+tracing" if args.tracing else "")
    return [Plan(name, args.profile, args.events, tracing=args.tracing)]


def run_plan(plan: Plan, args: argparse.Namespace, logs: Path, out: Any = sys.stdout) -> dict[str, Any]:
    events = plan.events
    if plan.latency and events is None:
        events = int(args.rate * args.duration)
    max_jobs = args.max_jobs or DEFAULT_MAX_JOBS
    t = time.perf_counter()
    if plan.step:
        dimension = plan.profile.removeprefix("scale-")
        stream = generate_scale(dimension, plan.step, events, framing=args.framing, seed=args.seed)
    else:
        stream = generate(plan.profile, events, framing=args.framing, seed=args.seed, max_jobs=max_jobs)
    print(
        f"[{plan.name}] generated {stream.events:,} events ({stream.nbytes / MB:,.1f} MiB) in "
        f"{time.perf_counter() - t:.1f} s",
        file=out,
        flush=True,
    )
    runs: list[RunResult] = []
    for i in range(args.runs):
        log_path = logs / f"{plan.name}-{i + 1}.log"
        if plan.latency:
            result = run_latency(stream, log_path, args.rate)
        else:
            result = run_throughput(
                stream, log_path, plan.tracing, int(args.window_mb * MB), args.poll_ms / 1000
            )
            if stream.notes.get("states"):
                result.extra["cpu_s_per_million_states"] = result.cpu_seconds / stream.notes["states"] * 1e6
        runs.append(result)
        brief = (
            f"p99 {result.extra['p99_ms']:.1f} ms"
            if plan.latency
            else f"{result.events_per_s:,.0f} ev/s, floor {result.floor_events_per_s:,.0f} ev/s"
        )
        print(
            f"[{plan.name}] run {i + 1}: {brief}, counts {'exact' if not result.mismatches else 'WRONG'}",
            file=out,
            flush=True,
        )
    s = summary(plan.name, stream, runs)
    if plan.step:
        s.update(dimension=stream.notes["dimension"], step=plan.step)
    print_summary(s, out)
    return s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    p.add_argument(
        "--profile",
        default="all",
        choices=("ping", "mixed", "large-fleet", "flood", "latency", "scaling", "all"),
    )
    p.add_argument(
        "--events",
        type=int,
        default=None,
        help="events (approximate for ping/mixed; minions for large-fleet); default per profile: "
        + ", ".join(f"{k} {v:,}" for k, v in DEFAULT_EVENTS.items())
        + f"; scaling: events per step {SCALE_EVENTS:,} (states per run: states per step {SCALE_STATES:,})",
    )
    p.add_argument("--runs", type=int, default=3, help="runs per profile; medians are reported (default 3)")
    p.add_argument("--json", dest="json_out", default=None, help="write the results as JSON to this file")
    p.add_argument(
        "--tracing", action="store_true", help="start the daemon with OTLP tracing to a local sink"
    )
    p.add_argument("--rate", type=float, default=20_000, help="latency: events per second (default 20000)")
    p.add_argument("--duration", type=float, default=10, help="latency: seconds of publishing (default 10)")
    p.add_argument("--framing", choices=("plain", "prefixed"), default="plain")
    p.add_argument(
        "--window-mb", type=float, default=8.0, help="most bytes sent ahead of processing (default 8)"
    )
    p.add_argument(
        "--poll-ms", type=float, default=20.0, help="/metrics poll interval while feeding (default 20)"
    )
    p.add_argument(
        "--max-jobs", type=int, default=0, help="flood: the daemon's --max-jobs (default: its default)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--logs", default="bench-results/logs", help="daemon logs (default bench-results/logs)")
    args = p.parse_args(argv)
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(
        f"machine: {info['cpus']} CPU(s) {info['cpu']}, Python {info['python']}, msgpack {info['msgpack']}, "
        f"commit {info['commit']}",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for plan in plans(args):
        try:
            results[plan.name] = run_plan(plan, args, logs)
        except BenchError as exc:
            errors[plan.name] = str(exc)
            print(f"\n== {plan.name}: ERROR {exc}", flush=True)
    print_scaling(results)
    checked = goals(results)
    if checked:
        print("\n== goals")
        for g in checked:
            print(f"  {'PASS' if g['pass'] else 'FAIL'}  {g['goal']}: {g['shown']}")
    exact = all(r["counts_exact"] for r in results.values())
    print(
        f"\ncounts: {'all exact' if exact else 'MISMATCH (see above)'}"
        + (f"; errors in {', '.join(errors)}" if errors else "")
    )
    if args.json_out:
        out = Path(args.json_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.run", *(argv or sys.argv[1:])]),
            "machine": info,
            "settings": {k: v for k, v in vars(args).items() if k != "json_out"},
            "results": results,
            "goals": checked,
            "errors": errors,
        }
        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out}")
    return 0 if exact and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
