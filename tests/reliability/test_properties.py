"""Property-based tests (hypothesis): whatever arrives on the bus, the pipeline never raises, stays within
its bounds, counts what it skips, and recovers framing."""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.bus.frames import MARKER, FrameDecoder
from tests import wire
from tests.helpers import make_core

T0 = 1_800_000_000.0
FIELDS = [
    "jid",
    "fun",
    "tgt",
    "tgt_type",
    "user",
    "minions",
    "missing",
    "arg",
    "fun_args",
    "return",
    "retcode",
    "success",
    "id",
    "_stamp",
    "schedule",
    "act",
    "present",
    "new",
    "lost",
    "traceparent",
    "metadata",
]
TAGS = [
    "salt/job/20270115080000000001/new",
    "salt/job/20270115080000000001/ret/m1",
    "salt/job/req/ret/m1",
    "salt/run/1/new",
    "salt/run/1/ret",
    "salt/wheel/1/ret",
    "salt/auth",
    "salt/key",
    "salt/presence/present",
    "salt/presence/change",
    "salt/minion/m1/start",
    "salt/beacon/m1/x/",
    "salt/batch/1/complete",
    "salt/stats/w",
    "20270115080000000001",
    "new_job",
    "syndic/s/salt/job/1/new",
    "weird/tag",
]

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.just("VALUE_TRIMMED"),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
event_data = st.dictionaries(st.sampled_from(FIELDS), anything, max_size=len(FIELDS))
PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def core_small() -> Any:
    return make_core(
        max_jobs=20,
        max_closed_jobs=20,
        metrics_max_functions=10,
        metrics_minion_label=True,
        metrics_max_minions=10,
    )


def assert_sane(core: Any) -> None:
    assert core.health.decode_errors["internal"] == 0, "an exception escaped into the pipeline"
    assert len(core.tracker.open) <= 20 and len(core.tracker.closed) <= 20
    core.exposition()  # a scrape never fails, whatever the label values were


@PROFILE
@given(st.lists(st.tuples(st.sampled_from(TAGS), event_data), max_size=30))
def test_wrong_types_in_every_field(events: list[tuple[str, dict[str, Any]]]) -> None:
    core = core_small()
    core.pipeline.bodies([wire.body(tag, data) for tag, data in events])
    assert_sane(core)
    assert sum(n for k, n in core.sink.counters["salt_events_total"].items()) == len(events)


@PROFILE
@given(st.binary(max_size=2000), st.booleans())
def test_random_bytes(data: bytes, prefixed: bool) -> None:
    core = core_small()
    core.pipeline.chunk(1, False, (len(data).to_bytes(4, "big") if prefixed else b"") + data)
    core.pipeline.bodies([data])
    assert_sane(core)


@PROFILE
@given(
    st.binary(max_size=300).filter(lambda g: MARKER not in g),
    st.integers(1, 5),
    st.booleans(),
    st.integers(0, 40),
)
def test_framing_recovers_after_garbage(garbage: bytes, n: int, prefixed: bool, cut: int) -> None:
    """Valid frames, garbage, valid frames: everything after the garbage is decoded again."""
    bodies = [wire.ret(f"2027011508000000{i:04d}", "m1", "test.ping", T0) for i in range(n)]
    good = b"".join(wire.wrap(b, prefixed) for b in bodies)
    errors: list[str] = []
    dec = FrameDecoder(errors.append)
    first = dec.feed(good)
    assert first == bodies
    dec.gap()  # what the reader does after dropping bytes: the decoder may land anywhere
    got = dec.feed(garbage + good[:cut]) + dec.feed(good[cut:] + good)
    assert got[-n:] == bodies


@PROFILE
@given(st.integers(1, 2000), st.sampled_from(["list", "map"]))
def test_deep_nesting_is_a_counted_error(depth: int, kind: str) -> None:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    try:
        data = msgpack.packb({"fun": "test.ping", "return": value, "_stamp": wire.stamp(T0)})
    except (ValueError, msgpack.PackValueError):
        return  # deeper than msgpack itself will write
    core = core_small()
    core.pipeline.bodies([b"salt/job/20270115080000000001/ret/m1\n\n" + data])
    assert_sane(core)


@PROFILE
@given(st.binary(min_size=1, max_size=30), event_data)
def test_non_utf8_tags(tag: bytes, data: dict[str, Any]) -> None:
    core = core_small()
    core.pipeline.bodies(
        [
            tag.replace(b"\n\n", b"") + b"\n\n" + msgpack.packb(data, use_bin_type=True),
            b"salt/job/\xff\xfe/ret/\xc3\x28\n\n" + msgpack.packb(data),
        ]
    )
    assert_sane(core)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 127))
def test_bad_ext_types(code: int) -> None:
    data = msgpack.packb(
        {
            "fun": msgpack.ExtType(code, b"\x00\x01"),
            "return": msgpack.ExtType(78, b"garbage"),
            "_stamp": msgpack.ExtType(79, b"\x92\xa1x\x01"),
            "id": "m1",
        }
    )
    core = core_small()
    core.pipeline.bodies([b"salt/job/20270115080000000001/ret/m1\n\n" + data, b"salt/auth\n\n" + data])
    assert_sane(core)


def test_cardinality_attack_is_capped() -> None:
    """Thousands of distinct function names, acts, beacons and minion ids: series stay within the caps."""
    core = core_small()
    bodies = []
    for i in range(3000):
        bodies.append(wire.ret("req", f"minion-{i}", f"attack.fun{i}", T0))
        bodies.append(wire.body("salt/auth", {"act": f"act{i}", "_stamp": wire.stamp(T0)}))
        bodies.append(wire.body(f"salt/beacon/m/beacon{i}/", {"_stamp": wire.stamp(T0)}))
    core.pipeline.bodies(bodies)
    text = core.exposition().decode()
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    functions = {line.split('function="')[1].split('"')[0] for line in series if 'function="' in line}
    minions = {line.split('minion="')[1].split('"')[0] for line in series if 'minion="' in line}
    assert len(functions) <= 10 + 1 and "__other__" in functions
    assert len(minions) <= 10
    assert len([s for s in series if s.startswith("salt_auth_total")]) <= 200 + 1
    overflow = core.sink.counters["salt_exporter_label_overflow_total"]
    print(f"cardinality attack: 9000 events, {len(series)} series, overflow {dict(overflow)}")
    assert overflow[("function",)] >= 2990 and overflow[("act",)] >= 2800
    assert len(series) < 1000
