"""Traces from real-master recordings: structure, timing, ids, privacy, and export to a real receiver."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
from io import BytesIO
from pathlib import Path
from typing import Any

import msgpack
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from exporter.replay import replay
from tests import wire
from tests.daemon import EXE
from tests.helpers import settings

FIXTURES = Path(__file__).parents[1] / "fixtures"
T0 = 1_800_000_000.0
CANARY = "CANARY-7f3a9c"


def spans_of(capture: Path, **overrides: object) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    replay(settings(**overrides), str(capture), trace_exporter=exporter)
    return list(exporter.get_finished_spans())


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


@pytest.mark.parametrize("version", ["3008.4", "3006.29"])
def test_killed_minion_has_exactly_one_error_span(version: str) -> None:
    spans = spans_of(FIXTURES / version / "killed_minion.bin")
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["salt.job cmd.run"]
    root = roots[0]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["salt.minions.no_return"] == 1
    minions = [s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id]
    assert sorted(s.name for s in minions) == ["lab-minion-01", "lab-minion-02", "lab-minion-03"]
    errors = [s for s in minions if s.status.status_code is StatusCode.ERROR]
    assert [s.name for s in errors] == ["lab-minion-03"]
    assert errors[0].attributes["salt.no_return.reason"] == "not_connected"
    assert errors[0].end_time == root.end_time  # ends at the verdict, like the job
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}


@pytest.mark.parametrize("version", ["3008.4", "3006.29"])
def test_find_job_probes_are_events_not_traces(version: str) -> None:
    capture = FIXTURES / version / "find_job.bin"
    spans = spans_of(capture)
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["salt.job cmd.run"], "probes must not become jobs of their own"
    root = roots[0]
    probes = [e for e in root.events if e.name == "saltutil.find_job"]
    assert probes and all(e.attributes["salt.minions"] for e in probes)
    answers = [e for s in spans for e in s.events if e.name == "find_job answer"]
    assert {e.attributes["salt.find_job.answer"] for e in answers} >= {"running"}
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)
    # The oracle is the capture itself, read here without the exporter's decoder: the one cmd.run publish.
    events = _wire_events(capture)
    publishes = [
        (tag.split("/")[2], data)
        for tag, data in events
        if tag.startswith("salt/job/") and tag.endswith("/new") and data.get("fun") == "cmd.run"
    ]
    assert len(publishes) == 1, [tag for tag, _ in events]
    jid, publish = publishes[0]
    assert root.attributes["salt.jid"] == jid
    assert root.context.trace_id == int.from_bytes(hashlib.sha256(jid.encode()).digest()[:16], "big")
    # Timing: the root starts at the publish _stamp; minion spans end at their return _stamps.
    assert abs(root.start_time / 1e9 - _unix(publish["_stamp"])) < 1e-6
    returns = {
        tag.rsplit("/", 1)[1]: _unix(data["_stamp"])
        for tag, data in events
        if tag.startswith(f"salt/job/{jid}/ret/")
    }
    minion_spans = {
        s.name: s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id
    }
    assert set(minion_spans) == set(returns)
    for minion, at in returns.items():
        assert abs(minion_spans[minion].end_time / 1e9 - at) < 1e-6, minion
    assert all(s.end_time <= root.end_time for s in spans)


def _wire_events(capture: Path) -> list[tuple[str, dict[str, Any]]]:
    """(tag, data) of every event in a recording, decoded with msgpack alone: plain back-to-back
    {"head", "body"} maps, or the 4-byte length prefix of 3006.26+."""
    raw = capture.read_bytes()
    frames: list[Any] = []
    if 0x80 <= raw[0] <= 0x8F:
        frames = list(msgpack.Unpacker(BytesIO(raw), raw=True, strict_map_key=False))
    else:
        pos = 0
        while pos < len(raw):
            size = int.from_bytes(raw[pos : pos + 4], "big")
            frames.append(msgpack.unpackb(raw[pos + 4 : pos + 4 + size], raw=True, strict_map_key=False))
            pos += 4 + size
    out = []
    for frame in frames:
        tag, _, data = frame[b"body"].partition(b"\n\n")
        out.append((tag.decode(), msgpack.unpackb(data, raw=False, strict_map_key=False)))
    return out


def _unix(stamp: str) -> float:
    """A Salt `_stamp` (ISO 8601, UTC; no offset before 3008) as Unix time."""
    parsed = dt.datetime.fromisoformat(stamp)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def test_trace_id_derivation_and_determinism() -> None:
    capture = FIXTURES / "3008.4" / "state_fail.bin"
    first, second = spans_of(capture), spans_of(capture)
    ids = sorted((s.context.trace_id, s.context.span_id) for s in first)
    assert ids == sorted((s.context.trace_id, s.context.span_id) for s in second)
    for span in first:
        jid = str(span.attributes.get("salt.jid") or "")
        if jid:
            assert span.context.trace_id == int.from_bytes(hashlib.sha256(jid.encode()).digest()[:16], "big")
    states = [s for s in first if s.name.startswith("state ")]
    assert states and any(s.status.status_code is StatusCode.ERROR for s in states)
    root = next(s for s in first if s.parent is None and s.name == "salt.job state.apply")
    assert root.attributes["salt.state_spans.dropped"] == 0


def test_state_span_cap() -> None:
    spans = spans_of(FIXTURES / "3008.4" / "state_fail.bin", traces_max_state_spans=2)
    root = next(s for s in spans if s.parent is None and s.name == "salt.job state.apply")
    assert len([s for s in spans if s.name.startswith("state ")]) == 2
    assert root.attributes["salt.state_spans.cap"] == 2
    assert root.attributes["salt.state_spans.dropped"] > 0


def test_runner_jobs_get_spans() -> None:
    spans = spans_of(FIXTURES / "3008.4" / "runner.bin")
    assert {"salt.runner runner.jobs.active", "salt.runner runner.manage.up"} <= {s.name for s in spans}


def secret_capture(tmp_path: Path) -> Path:
    jid = "20270115080000000001"
    frames = [
        wire.new(jid, "cmd.run", ["m1"], T0, arg=[f"echo {CANARY} password={CANARY}"], tgt="m1"),
        wire.ret(
            jid,
            "m1",
            "cmd.run",
            T0 + 0.2,
            ret_value=f"{CANARY} password={CANARY}",
            fun_args=[f"echo {CANARY} password={CANARY}"],
        ),
    ]
    path = tmp_path / "secret.bin"
    path.write_bytes(b"".join(wire.wrap(f) for f in frames))
    return path


def test_traceparent_is_joined(tmp_path: Path) -> None:
    jid = "20270115080000000002"
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    path = tmp_path / "tp.bin"
    path.write_bytes(
        wire.wrap(wire.new(jid, "test.ping", ["m1"], T0, traceparent=tp))
        + wire.wrap(wire.ret(jid, "m1", "test.ping", T0 + 0.1))
    )
    root = next(s for s in spans_of(path) if s.name == "salt.job test.ping")
    assert format(root.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert root.parent is not None and format(root.parent.span_id, "016x") == "b7ad6b7169203331"


def test_secrets_stay_out_of_spans_and_logs_by_default(tmp_path: Path) -> None:
    capture = secret_capture(tmp_path)
    spans = spans_of(capture)
    assert spans and CANARY not in repr([(s.name, dict(s.attributes), s.events) for s in spans])
    run = subprocess.run(
        [EXE, "replay", str(capture), "--log.level", "debug", "--otlp.endpoint", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert CANARY not in run.stdout + run.stderr


def test_opt_in_payload_is_redacted_and_capped(tmp_path: Path) -> None:
    spans = spans_of(secret_capture(tmp_path), traces_include_args=True, traces_max_attribute_size=60)
    root = next(s for s in spans if s.parent is None)
    minion = next(s for s in spans if s.name == "m1")
    assert "password=[REDACTED]" in root.attributes["salt.arg"]
    assert CANARY in root.attributes["salt.arg"]  # opted in: the argument itself is there, the password not
    assert minion.attributes["salt.return"].count(CANARY) == 1
    assert len(minion.attributes["salt.fun_args"]) <= 60 + len("...(truncated)")


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_export_to_a_real_receiver(receiver, protocol: str) -> None:
    receiver.clear()
    endpoint = receiver.grpc if protocol == "grpc" else receiver.http
    env = {
        **os.environ,
        "OTEL_SERVICE_NAME": "salt-test",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci",
    }
    run = subprocess.run(
        [
            EXE,
            "replay",
            str(FIXTURES / "3008.4" / "killed_minion.bin"),
            "--otlp.endpoint",
            endpoint,
            "--otlp.protocol",
            protocol,
            "--master-id",
            "master-a",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    spans = receiver.wait(lambda s: len(s) >= 4)
    assert {s["transport"] for s in spans} == {"grpc" if protocol == "grpc" else "http"}
    root = next(s for s in spans if s["name"] == "salt.job cmd.run")
    assert root["resource"]["service.name"] == "salt-test"
    assert root["resource"]["deployment.environment"] == "ci"
    assert root["resource"]["salt.master.id"] == "master-a"
    silent = [s for s in spans if s["status"] == 2 and s["parent_span_id"] == root["span_id"]]
    assert [s["name"] for s in silent] == ["lab-minion-03"]
    assert "salt_exporter_spans_exported_total 4.0" in run.stdout


def test_two_masters_one_trace(receiver) -> None:
    """Two exporters (two masters) seeing the same jid put their spans into one trace."""
    receiver.clear()
    capture = FIXTURES / "3008.4" / "ping.bin"
    for master in ("master-a", "master-b"):
        subprocess.run(
            [EXE, "replay", str(capture), "--otlp.endpoint", receiver.http, "--master-id", master],
            capture_output=True,
            timeout=60,
            check=True,
        )
    spans = receiver.wait(lambda s: len({x["resource"]["salt.master.id"] for x in s}) == 2)
    assert len({s["trace_id"] for s in spans if s["name"] == "salt.job test.ping"}) == 1


def _budget_spans(budget: int, latencies: dict[str, float], failed: set[str]) -> list[ReadableSpan]:
    from exporter.app import build_core

    exporter = InMemorySpanExporter()
    core = build_core(settings(traces_max_minion_spans=budget), None, environ={}, trace_exporter=exporter)
    jid = "20270115080000000777"
    bodies = [wire.new(jid, "test.ping", sorted(latencies), T0)]
    for minion, latency in sorted(latencies.items(), key=lambda kv: kv[1]):
        bodies.append(wire.ret(jid, minion, "test.ping", T0 + latency, retcode=1 if minion in failed else 0))
    core.pipeline.bodies(bodies)
    assert core.traces is not None
    core.traces.shutdown(10)
    return list(exporter.get_finished_spans())


def test_minion_span_budget_keeps_failed_and_slowest_and_counts_the_rest() -> None:
    """A job to 30 minions with a budget of 12: both failed minions and the 10 slowest of the others get
    spans; the other 18 are counted on the job span with their latencies, not dropped silently."""
    latencies = {f"m{i:02d}": 0.1 + 0.01 * ((i * 7) % 30) for i in range(30)}
    failed = {"m05", "m17"}
    spans = _budget_spans(12, latencies, failed)
    root = next(s for s in spans if s.parent is None)
    minion_spans = {s.name for s in spans if s.parent is not None}
    ordinary = sorted((m for m in latencies if m not in failed), key=lambda m: latencies[m], reverse=True)
    assert minion_spans == failed | set(ordinary[:10])
    assert root.attributes["salt.minion_spans.kept"] == 12
    assert root.attributes["salt.minion_spans.summarised"] == 18
    rest = [latencies[m] for m in ordinary[10:]]
    assert root.attributes["salt.minion_spans.summarised_latency_max"] == pytest.approx(max(rest), abs=1e-5)
    assert root.attributes["salt.minion_spans.summarised_latency_min"] == pytest.approx(min(rest), abs=1e-5)
    # Room beyond the slowest ten is filled with a sample that does not depend on arrival order.
    spans_again = _budget_spans(15, latencies, failed)
    sampled = {s.name for s in spans_again if s.parent is not None} - failed - set(ordinary[:10])
    assert len(sampled) == 3 and sampled <= set(ordinary[10:])
    assert {s.name for s in _budget_spans(15, dict(reversed(latencies.items())), failed) if s.parent} == (
        {s.name for s in spans_again if s.parent}
    )


def test_minion_span_budget_large_enough_keeps_every_minion() -> None:
    latencies = {f"m{i:02d}": 0.1 + 0.01 * i for i in range(30)}
    spans = _budget_spans(100, latencies, set())
    root = next(s for s in spans if s.parent is None)
    assert {s.name for s in spans if s.parent is not None} == set(latencies)
    assert root.attributes["salt.minion_spans.summarised"] == 0
