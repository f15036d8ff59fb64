"""README claims that had no test that could fail: each test here breaks if the claimed feature does.

Everything goes through public seams: event bodies and raw chunks into a core's pipeline, its exposition,
an in-memory span exporter given to build_core, the real daemon process over real sockets, and the bus
source class (its reconnect loop against a socket path that does not exist).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.client
import ipaddress
import json
import signal
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from exporter.app import Core, build_core
from exporter.bus.source import Backoff, StreamSource
from exporter.health import Health
from tests import wire
from tests.daemon import RunningDaemon
from tests.helpers import samples, settings, value, wait_until
from tests.publisher import FakePublisher

T0 = 1_800_000_000.0
OTHER = "__other__"
# MetricsConfig.max_label_values in exporter/sinks/metrics.py: values kept per bus-sourced label (act, beacon,
# tgt_type, syndic, command, worker). The README names the labels and the __other__ rule, not the number.
LABEL_CAP = 200


def core_with(**overrides: Any) -> Core:
    return build_core(settings(**overrides), None, environ={})


def traced_core(exporter: Any, **overrides: Any) -> Core:
    return build_core(settings(**overrides), None, environ={}, trace_exporter=exporter)


def family(core: Core, name: str) -> dict[str, float]:
    """Samples of one family: `{label="value",...}` -> value."""
    return {k[len(name) :]: v for k, v in samples(core.exposition()).items() if k.startswith(name + "{")}


# -- framing: resynchronisation -------------------------------------------------------------------------


def test_plain_stream_desync_is_resynced_and_counted() -> None:
    """Garbage between back-to-back frames: counted as one resync, and every whole frame still counts."""
    core = core_with()
    first = [wire.new("20270115080000000001", "test.ping", ["m1"], T0)]
    first += [wire.ret("20270115080000000001", "m1", "test.ping", T0 + 0.1)]
    second = [wire.new("20270115080000000002", "test.ping", ["m1"], T0 + 1)]
    second += [wire.ret("20270115080000000002", "m1", "test.ping", T0 + 1.1)]
    garbage = b"\x00\xc1 not msgpack \xc1\xc1" * 3
    stream = b"".join(wire.wrap(b) for b in first) + garbage + b"".join(wire.wrap(b) for b in second)
    core.pipeline.chunk(1, False, stream)
    exposition = core.exposition()
    assert value(exposition, "salt_exporter_resyncs_total") == 1
    assert value(exposition, 'salt_exporter_decode_errors_total{reason="desync"}') == 1
    assert value(exposition, 'salt_exporter_frames_total{framing="plain"}') == 4
    assert value(exposition, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 2

    # The next frame header may only arrive in a later chunk: garbage now, the frame after it.
    later = [wire.new("20270115080000000003", "test.ping", ["m1"], T0 + 2)]
    later += [wire.ret("20270115080000000003", "m1", "test.ping", T0 + 2.1)]
    core.pipeline.chunk(1, False, b"\xc1\xc1 junk")
    framed = b"".join(wire.wrap(b) for b in later)
    core.pipeline.chunk(1, False, framed[:7])
    core.pipeline.chunk(1, False, framed[7:])
    exposition = core.exposition()
    assert value(exposition, "salt_exporter_resyncs_total") == 2
    assert value(exposition, 'salt_job_returns_total{function="test.ping",outcome="success"}') == 3


# -- reconnect backoff ----------------------------------------------------------------------------------


def test_backoff_is_exponential_capped_and_jittered() -> None:
    cap = 1.0
    backoff = Backoff(cap=cap)
    delays = [backoff.next() for _ in range(40)]
    # Exponential from 0.1 s: attempt k waits within [d/2, d], d = min(cap, 0.1 * 2**k).
    for k, delay in enumerate(delays):
        ceiling = min(cap, 0.1 * 2**k)
        assert ceiling / 2 <= delay <= ceiling, (k, delay)
    assert delays[3] > delays[0] * 2  # it grows: [0.4, 0.8] against [0.05, 0.1]
    assert max(delays) <= cap
    capped = delays[4:]
    assert len({round(d, 6) for d in capped}) > len(capped) // 2, "jitter: delays at the cap must differ"
    backoff.reset()
    assert 0.05 <= backoff.next() <= 0.1


class _TimedSource(StreamSource):
    """The real source against a real (missing) socket path, noting when each attempt starts."""

    def __init__(self, address: str, max_backoff: float) -> None:
        super().__init__(address, Health(), max_backoff)
        self.attempts: list[float] = []

    def _connect(self) -> socket.socket:
        self.attempts.append(time.monotonic())
        return super()._connect()


def _attempts(path: str, max_backoff: float, seconds: float) -> list[float]:
    source = _TimedSource(path, max_backoff)
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(lambda gen, data: None, stop), daemon=True)
    thread.start()
    time.sleep(seconds)  # the observation window itself: attempts are counted in it
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    return [b - a for a, b in zip(source.attempts, source.attempts[1:], strict=False)]


def test_reconnect_attempts_against_a_missing_socket_follow_the_cap(tmp_path: Path) -> None:
    missing = str(tmp_path / "master_event_pub.ipc")
    cap = 0.2
    gaps = _attempts(missing, cap, 2.5)
    # At a 0.2 s cap, 2.5 s hold at least 11 attempts (every gap <= 0.2 s); uncapped there would be ~5.
    assert len(gaps) >= 10, gaps
    slack = 0.15  # thread scheduling on a shared machine
    assert all(g <= cap + slack for g in gaps), gaps
    at_cap = gaps[3:]
    assert all(g >= cap / 2 - 0.01 for g in at_cap), at_cap  # full jitter stays within [cap/2, cap]
    assert max(at_cap) - min(at_cap) > 0.01, f"no jitter: {at_cap}"

    # Without a low cap the gaps keep doubling.
    growing = _attempts(missing, 30.0, 2.0)
    assert 3 <= len(growing) <= 6, growing
    for k, gap in enumerate(growing):
        assert gap >= 0.1 * 2**k / 2 - 0.01, (k, growing)


# -- find_job answers -----------------------------------------------------------------------------------


def test_find_job_answers_running_and_not_running() -> None:
    core = core_with()
    jid, probe = "20270115080000000010", "20270115080000000011"
    core.pipeline.bodies(
        [
            wire.new(jid, "cmd.run", ["m1", "m2"], T0),
            wire.probe(probe, jid, ["m1", "m2"], T0 + 5),
            wire.answer(probe, jid, "m1", T0 + 5.1, running=True),
            wire.answer(probe, jid, "m2", T0 + 5.2, running=False),  # an empty return: not running
        ]
    )
    answers = family(core, "salt_find_job_answers_total")
    assert answers == {
        '{answer="running",function="cmd.run"}': 1,
        '{answer="not_running",function="cmd.run"}': 1,
    }
    assert value(core, 'salt_find_job_probes_total{function="cmd.run"}') == 1
    assert family(core, "salt_job_returns_total") == {}  # answers are not returns


# -- bounded state: probe and runner evictions ----------------------------------------------------------

PROBE_AND_RUN_CAP = 10_000  # TrackerConfig.max_probes and max_runs; not settings


def test_probe_links_beyond_the_cap_are_evicted_and_counted() -> None:
    core = core_with()
    target = "20270115080000000020"
    bodies = [wire.new(target, "cmd.run", ["m1"], T0)]
    bodies += [
        wire.probe(f"2027011509{i:010d}", target, ["m1"], T0 + 1) for i in range(PROBE_AND_RUN_CAP + 3)
    ]
    core.pipeline.bodies(bodies)
    assert value(core, 'salt_exporter_evictions_total{kind="probe"}') == 3
    assert value(core, 'salt_find_job_probes_total{function="cmd.run"}') == PROBE_AND_RUN_CAP + 3
    assert value(core, 'salt_exporter_evictions_total{kind="job"}') == 0


def test_runner_starts_beyond_the_cap_are_evicted_and_counted() -> None:
    core = core_with()
    core.pipeline.bodies(
        [
            wire.body(
                f"salt/run/2027011510{i:010d}/new",
                {
                    "fun": "runner.test.sleep",
                    "jid": f"2027011510{i:010d}",
                    "user": "root",
                    "_stamp": wire.stamp(T0),
                },
            )
            for i in range(PROBE_AND_RUN_CAP + 4)
        ]
    )
    assert value(core, 'salt_exporter_evictions_total{kind="run"}') == 4
    assert value(core, 'salt_runner_jobs_total{function="runner.test.sleep"}') == PROBE_AND_RUN_CAP + 4


# -- label caps -----------------------------------------------------------------------------------------

EXTRA = 7


def _assert_capped(series: dict[str, float], label: str, per_value: float = 1) -> None:
    """LABEL_CAP own series, then every further value under __other__."""
    own = {k: v for k, v in series.items() if f'{label}="{OTHER}"' not in k}
    other = {k: v for k, v in series.items() if f'{label}="{OTHER}"' in k}
    assert len(own) == LABEL_CAP, f"{len(own)} distinct {label} series"
    assert all(v == per_value for v in own.values())
    assert list(other.values()) == [EXTRA * per_value], other


def _overflow(core: Core, label: str) -> float:
    return value(core, f'salt_exporter_label_overflow_total{{label="{label}"}}')


def test_act_label_cap() -> None:
    core = core_with()
    stamp = wire.stamp(T0)
    core.pipeline.bodies(
        [
            wire.body("salt/auth", {"act": f"act-{i:04d}", "id": "m1", "_stamp": stamp})
            for i in range(LABEL_CAP + EXTRA)
        ]
    )
    _assert_capped(family(core, "salt_auth_total"), "act")
    assert _overflow(core, "act") == EXTRA
    # A value seen before the cap keeps its own series; a new one after it is __other__, counted again.
    core.pipeline.bodies(
        [
            wire.body("salt/key", {"act": "act-0000", "id": "m1", "_stamp": stamp}),
            wire.body("salt/key", {"act": "brand-new", "id": "m1", "_stamp": stamp}),
        ]
    )
    assert family(core, "salt_key_events_total") == {'{act="act-0000"}': 1, f'{{act="{OTHER}"}}': 1}
    assert _overflow(core, "act") == EXTRA + 1


def test_beacon_label_cap() -> None:
    core = core_with()
    stamp = wire.stamp(T0)
    core.pipeline.bodies(
        [
            wire.body(f"salt/beacon/m1/bcn-{i:04d}/", {"_stamp": stamp, "id": "m1"})
            for i in range(LABEL_CAP + EXTRA)
        ]
    )
    _assert_capped(family(core, "salt_beacon_events_total"), "beacon")
    assert _overflow(core, "beacon") == EXTRA


def test_tgt_type_label_cap() -> None:
    core = core_with()
    core.pipeline.bodies(
        [
            wire.new(f"2027011511{i:010d}", "test.ping", [], T0, tgt_type=f"tt-{i:04d}")
            for i in range(LABEL_CAP + EXTRA)
        ]
    )
    _assert_capped(family(core, "salt_jobs_published_total"), "tgt_type")
    assert _overflow(core, "tgt_type") == EXTRA


def test_syndic_label_cap() -> None:
    core = core_with()
    stamp = wire.stamp(T0)
    core.pipeline.bodies(
        [
            wire.body(f"syndic/syn-{i:04d}/salt/auth", {"act": "accept", "_stamp": stamp})
            for i in range(LABEL_CAP + EXTRA)
        ]
    )
    _assert_capped(family(core, "salt_syndic_events_total"), "syndic")
    assert _overflow(core, "syndic") == EXTRA


def test_master_stats_command_and_worker_label_caps() -> None:
    core = core_with()
    stamp = wire.stamp(T0)
    commands = {f"cmd-{i:04d}": {"runs": 1, "mean": 0.5} for i in range(LABEL_CAP + EXTRA)}
    core.pipeline.bodies(
        [wire.body("salt/stats/worker-0000", {"time": 1, "worker": "w", "stats": commands, "_stamp": stamp})]
    )
    runs = family(core, "salt_master_command_runs")
    assert len(runs) == LABEL_CAP + 1 and f'{{command="{OTHER}"}}' in runs
    assert _overflow(core, "command") == EXTRA

    core = core_with()
    core.pipeline.bodies(
        [
            wire.body(
                f"salt/stats/worker-{i:04d}",
                {"time": 1, "worker": "w", "stats": {"cmd": {"runs": 1, "mean": 0.5}}, "_stamp": stamp},
            )
            for i in range(LABEL_CAP + EXTRA)
        ]
    )
    assert _overflow(core, "worker") == EXTRA
    # Every worker within the cap is summed; the overflowing workers share one __other__ slot.
    assert value(core, 'salt_master_command_runs{command="cmd"}') == LABEL_CAP + 1


# -- traces -----------------------------------------------------------------------------------------------


def _finished(core: Core, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    assert core.traces is not None
    core.traces.shutdown(10.0)
    return list(exporter.get_finished_spans())


def _everything(spans: Sequence[ReadableSpan]) -> str:
    return repr(
        [
            (s.name, dict(s.attributes or {}), [(e.name, dict(e.attributes or {})) for e in s.events])
            for s in spans
        ]
    )


def test_default_redaction_list_covers_keys_and_values() -> None:
    """traces.include-args on, traces.redact at its default: password, passwd, token, key and secret, as keys
    and as key=value / key: value text, in arg, fun_args and return."""
    words = ["password", "passwd", "token", "key", "secret"]
    canary = {
        f"{w}-{form}": f"CANARY-{w}-{form}-x9" for w in words for form in ("kv", "colon", "dict", "suffix")
    }
    text = " ".join(f"{w}={canary[f'{w}-kv']} {w}: {canary[f'{w}-colon']}" for w in words)
    kwargs = {w: canary[f"{w}-dict"] for w in words}
    kwargs.update({f"db_{w}_x": canary[f"{w}-suffix"] for w in words})  # a key that contains the word
    arg = [f"echo visible-arg {text}", {"__kwarg__": True, "visible_kw": "visible-kw", **kwargs}]
    returned = {"out": f"visible-ret {text}", "nested": [dict(kwargs)]}
    exporter = InMemorySpanExporter()
    core = traced_core(exporter, traces_include_args=True, traces_max_attribute_size=100_000)
    jid = "20270115080000000030"
    core.pipeline.bodies(
        [
            wire.new(jid, "cmd.run", ["m1"], T0, arg=arg),
            wire.ret(jid, "m1", "cmd.run", T0 + 0.5, ret_value=returned, fun_args=arg),
        ]
    )
    spans = _finished(core, exporter)
    root = next(s for s in spans if s.parent is None)
    minion = next(s for s in spans if s.name == "m1")
    assert root.attributes is not None and minion.attributes is not None
    payload = [
        str(root.attributes["salt.arg"]),
        str(minion.attributes["salt.fun_args"]),
        str(minion.attributes["salt.return"]),
    ]
    leaked = sorted(c for c in canary.values() if c in _everything(spans))
    assert leaked == [], f"not redacted: {leaked}"
    for attribute in payload:
        assert "[REDACTED]" in attribute
    assert "visible-arg" in payload[0] and "visible-kw" in payload[0]  # opted in: the rest is there
    assert "visible-arg" in payload[1] and "visible-ret" in payload[2]
    # 10 inline forms in the text, 10 kwarg keys: every one replaced.
    assert payload[0].count("[REDACTED]") == 20
    assert payload[2].count("[REDACTED]") == 20


def _id(text: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:size], "big")


def test_span_and_trace_ids_follow_the_readme_formula() -> None:
    """trace id: first 16 bytes of SHA-256(jid); span id: first 8 bytes of SHA-256(jid/kind/name), computed
    here from the jids written into the frames (the job's root has the empty name)."""
    exporter = InMemorySpanExporter()
    core = traced_core(exporter)
    jid, run_jid = "20270115080000000040", "20270115080000000041"
    core.pipeline.bodies(
        [
            wire.new(jid, "test.ping", ["alpha", "beta"], T0),
            wire.ret(jid, "alpha", "test.ping", T0 + 0.1),
            wire.ret(jid, "beta", "test.ping", T0 + 0.2),
            wire.body(
                f"salt/run/{run_jid}/new",
                {"fun": "runner.manage.up", "jid": run_jid, "_stamp": wire.stamp(T0)},
            ),
            wire.body(
                f"salt/run/{run_jid}/ret",
                {
                    "fun": "runner.manage.up",
                    "jid": run_jid,
                    "success": True,
                    "return": [],
                    "_stamp": wire.stamp(T0 + 1),
                },
            ),
        ]
    )
    spans = {s.name: s for s in _finished(core, exporter)}
    assert set(spans) == {"salt.job test.ping", "alpha", "beta", "salt.runner runner.manage.up"}
    root = spans["salt.job test.ping"]
    assert root.context.trace_id == _id(jid, 16)
    assert root.context.span_id == _id(f"{jid}/job/", 8)
    for minion in ("alpha", "beta"):
        span = spans[minion]
        assert span.context.trace_id == _id(jid, 16)
        assert span.context.span_id == _id(f"{jid}/minion/{minion}", 8)
        assert span.parent is not None and span.parent.span_id == _id(f"{jid}/job/", 8)
    runner = spans["salt.runner runner.manage.up"]
    assert runner.context.trace_id == _id(run_jid, 16)
    assert runner.context.span_id == _id(f"{run_jid}/runner/", 8)


class _GatedExporter(InMemorySpanExporter):
    """Holds every export until released, so what is waiting for export is exactly what was queued."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(30)
        return super().export(spans)


def test_spans_beyond_the_queue_are_dropped_and_counted() -> None:
    """Queue of 5, export held: the first two jobs send their job and minion spans (4 waiting); from then on
    the queue is at least half full, so a job sends its job span only and summarises its (successful)
    minion; the third job's span fills the queue, the 7 after it are dropped and counted."""
    exporter = _GatedExporter()
    core = traced_core(exporter, traces_max_queue=5)
    bodies = []
    for i in range(10):  # 10 jobs of one minion
        jid = f"2027011512{i:010d}"
        bodies += [wire.new(jid, "test.ping", ["m1"], T0 + i), wire.ret(jid, "m1", "test.ping", T0 + i + 0.1)]
    core.pipeline.bodies(bodies)
    assert value(core, 'salt_exporter_spans_dropped_total{reason="queue_full"}') == 7
    assert value(core, 'salt_exporter_spans_summarised_total{reason="export_backlog"}') == 8
    assert value(core, 'salt_exporter_spans_summarised_total{reason="budget"}') == 0
    exporter.gate.set()
    spans = _finished(core, exporter)
    assert sorted(s.name for s in spans) == ["m1", "m1", *["salt.job test.ping"] * 3]
    third = [s for s in spans if s.attributes and s.attributes.get("salt.minion_spans.summarised") == 1]
    assert len(third) == 1 and third[0].attributes is not None
    assert third[0].attributes["salt.minion_spans.summarised_reason"] == "export_backlog"
    assert value(core, "salt_exporter_spans_exported_total") == 5
    assert value(core, 'salt_exporter_spans_dropped_total{reason="queue_full"}') == 7


def _state_ret(jid: str, minion: str, t: float, states: list[tuple[str, bool]]) -> bytes:
    results = {
        f"test_|-{name}_|-{name}_|-succeed_without_changes": {
            "__id__": name,
            "name": name,
            "result": ok,
            "changes": {},
            "start_time": f"12:00:0{i}.000000",
            "duration": 10.0,
            "__run_num__": i,
        }
        for i, (name, ok) in enumerate(states)
    }
    failed = not all(ok for _, ok in states)
    return wire.ret(
        jid, minion, "state.apply", t, retcode=2 if failed else 0, success=not failed, ret_value=results
    )


def test_behind_on_export_the_minions_worth_a_look_keep_their_spans() -> None:
    """With the queue half full, a job's failed and silent minions still get spans (and a failed minion's
    state spans); its successful minions and their states are summarised on the job span and counted."""
    exporter = _GatedExporter()
    core = traced_core(exporter, traces_max_queue=10)
    warm = "20270115120000000001"  # a job span and 4 minion spans: the queue is half full from now on
    fleet = ["m1", "m2", "m3", "m4"]
    bodies = [
        wire.new(warm, "test.ping", fleet, T0),
        *(wire.ret(warm, m, "test.ping", T0 + 0.1) for m in fleet),
    ]
    jid = "20270115120000000002"
    bodies += [
        wire.new(jid, "state.apply", ["ok1", "ok2", "bad", "gone"], T0 + 1),
        _state_ret(jid, "ok1", T0 + 1.5, [("a", True), ("b", True)]),
        _state_ret(jid, "ok2", T0 + 1.6, [("a", True), ("b", True)]),
        _state_ret(jid, "bad", T0 + 1.7, [("a", True), ("b", False)]),
    ]
    core.pipeline.bodies(bodies)
    core.tracker.advance(T0 + 1000)  # past the timeout: "gone" gets its verdict, the job closes
    summarised = value(core, 'salt_exporter_spans_summarised_total{reason="export_backlog"}')
    assert summarised == 2 + 4  # ok1 and ok2, and their two states each
    exporter.gate.set()
    spans = _finished(core, exporter)
    names = sorted(s.name for s in spans if s.context.trace_id == _id(jid, 16))
    assert names == ["bad", "gone", "salt.job state.apply", "state a", "state b"]
    assert value(core, 'salt_exporter_spans_dropped_total{reason="queue_full"}') == 0
    (root,) = (s for s in spans if s.name == "salt.job state.apply")
    assert root.attributes is not None
    assert root.attributes["salt.minion_spans.summarised"] == 2
    assert root.attributes["salt.minion_spans.summarised_reason"] == "export_backlog"
    assert root.attributes["salt.state_spans.summarised"] == 4


def test_open_jobs_end_with_exporter_shutdown_status_and_are_flushed(tmp_path: Path, receiver: Any) -> None:
    """SIGTERM with a job still waiting for a minion: its spans reach a real OTLP receiver before the process
    exits (flushed, not left in the 1 s batch), with the "exporter shutdown" status."""
    path = str(tmp_path / "pub.ipc")
    pub = FakePublisher(path).start()
    daemon = RunningDaemon("--bus", path, "--otlp.endpoint", receiver.http, "--master-id", "claims-master")
    jid = "20270115080000000050"
    now = time.time()
    try:
        pub.wait_clients(1)
        pub.send(
            wire.wrap(wire.new(jid, "cmd.run", ["m1", "m2"], now))
            + wire.wrap(wire.ret(jid, "m1", "cmd.run", now + 0.1))
        )
        daemon.wait_for('salt_job_returns_total{function="cmd.run",outcome="success"}', 1)
        assert daemon.metrics()["salt_jobs_in_flight"] == 1
    finally:
        code, err = daemon.stop()
        pub.stop()
    assert code == 0, err
    mine = [s for s in receiver.spans() if s["trace_id"] == format(_id(jid, 16), "032x")]
    root = next(s for s in mine if s["parent_span_id"] == "")
    assert root["status"] == StatusCode.ERROR.value and root["status_message"] == "exporter shutdown"
    assert root["attributes"]["salt.job.status"] == "exporter shutdown"
    pending = next(s for s in mine if s["name"] == "m2")
    assert pending["status"] == StatusCode.ERROR.value and pending["status_message"] == "exporter shutdown"
    assert pending["attributes"]["salt.outcome"] == "pending"
    done = next(s for s in mine if s["name"] == "m1")
    assert done["status"] != StatusCode.ERROR.value
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(r.get("step") == "jobs" and r.get("open_jobs_closed") == 1 for r in records), err


def test_shutdown_flush_is_bounded_by_shutdown_timeout(tmp_path: Path) -> None:
    """A trace backend that accepts connections and never answers must not hold the exporter's shutdown
    beyond --shutdown.timeout (plus process start-up and teardown slack)."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(64)
    held: list[socket.socket] = []
    accepting = threading.Event()
    accepting.set()

    def hold() -> None:
        blackhole.settimeout(0.2)
        while accepting.is_set():
            with contextlib.suppress(OSError):
                conn, _ = blackhole.accept()
                held.append(conn)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    path = str(tmp_path / "pub.ipc")
    pub = FakePublisher(path).start()
    endpoint = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
    daemon = RunningDaemon("--bus", path, "--otlp.endpoint", endpoint, "--shutdown.timeout", "1")
    try:
        pub.wait_clients(1)
        jid = "20270115080000000060"
        now = time.time()
        pub.send(
            wire.wrap(wire.new(jid, "test.ping", ["m1"], now))
            + wire.wrap(wire.ret(jid, "m1", "test.ping", now))
        )
        daemon.wait_for('salt_job_returns_total{function="test.ping",outcome="success"}', 1)
        wait_until(lambda: bool(held), 10, "the exporter's first export to the silent backend")
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        daemon.stop()
        pub.stop()
        accepting.clear()
        thread.join(5)
        for conn in held:
            conn.close()
        blackhole.close()
    assert daemon.proc.returncode == 0
    assert took < 1 + 3, f"shutdown took {took:.1f} s with --shutdown.timeout 1"


# -- TLS certificate rotation -----------------------------------------------------------------------------


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(ca[1] if ca else key, hashes.SHA256()), key


def _write_pair(pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], crt: Path, key: Path) -> bytes:
    key.write_bytes(_key_pem(pair[1]))
    crt.write_bytes(pair[0].public_bytes(serialization.Encoding.PEM))
    return pair[0].public_bytes(serialization.Encoding.DER)


def _served_cert(port: int, ca_file: Path) -> bytes:
    """A real HTTPS request; returns the certificate the server presented."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", "/-/healthy")
        assert conn.getresponse().status == 200
        assert conn.sock is not None
        der = conn.sock.getpeercert(binary_form=True)
        assert der is not None
        return der
    finally:
        conn.close()


@pytest.fixture
def tls_daemon(tmp_path: Path) -> Any:
    ca = _issue(None, "claims-ca")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    first = _write_pair(_issue(ca, "server-1"), tmp_path / "server.crt", tmp_path / "server.key")
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    capture = str(Path(__file__).parents[1] / "fixtures" / "3008.4" / "ping.bin")
    daemon = RunningDaemon("--bus", capture, "--web.config.file", str(web), scheme="https")
    try:
        assert _served_cert(daemon.port, ca_file) == first
        yield daemon, ca, ca_file, web, tmp_path
    finally:
        daemon.stop()


RELOAD_DEADLINE = 12.0  # the daemon looks at the web config file's mtime every 5 s


def test_tls_rotation_by_a_changed_web_config_file(tls_daemon: Any) -> None:
    daemon, ca, ca_file, web, tmp = tls_daemon
    second = _write_pair(_issue(ca, "server-2"), tmp / "server-2.crt", tmp / "server-2.key")
    web.write_text("tls_server_config:\n  cert_file: server-2.crt\n  key_file: server-2.key\n")
    wait_until(
        lambda: _served_cert(daemon.port, ca_file) == second, RELOAD_DEADLINE, "the new certificate served"
    )


def test_tls_rotation_in_place_on_sighup(tls_daemon: Any) -> None:
    daemon, ca, ca_file, _, tmp = tls_daemon
    second = _write_pair(_issue(ca, "server-2"), tmp / "server.crt", tmp / "server.key")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(
        lambda: _served_cert(daemon.port, ca_file) == second, RELOAD_DEADLINE, "the new certificate served"
    )


def test_tls_rotation_in_place_without_sighup(tls_daemon: Any) -> None:
    daemon, ca, ca_file, _, tmp = tls_daemon
    second = _write_pair(_issue(ca, "server-2"), tmp / "server.crt", tmp / "server.key")
    wait_until(
        lambda: _served_cert(daemon.port, ca_file) == second, RELOAD_DEADLINE, "the new certificate served"
    )


def test_the_span_resource_hashes_once_and_groups_like_the_sdks() -> None:
    """The resource's hash is cached (the SDK re-dumps its attributes as JSON per span); it must still equal
    and hash like an SDK Resource with the same attributes, so the OTLP encoder puts every span of a batch
    under one resource."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource

    exporter = _GatedExporter()
    exporter.gate.set()
    core = traced_core(exporter)
    jid = "20270115120000000009"
    core.pipeline.bodies(
        [wire.new(jid, "test.ping", ["a", "b"], T0), *(wire.ret(jid, m, "test.ping", T0) for m in "ab")]
    )
    spans = _finished(core, exporter)
    resource = spans[0].resource
    plain = Resource(resource.attributes, resource.schema_url)
    assert resource == plain and hash(resource) == hash(plain)
    assert all(s.resource is resource for s in spans)
    request = encode_spans(spans)
    assert len(request.resource_spans) == 1 and len(request.resource_spans[0].scope_spans[0].spans) == 3
