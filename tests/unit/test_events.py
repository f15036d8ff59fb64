"""Event parsing: timestamps of every Salt era, tag families, hostile fields."""

from __future__ import annotations

import calendar

import msgpack
import pytest

from exporter.salt.events import (
    ActEvent,
    BatchEvent,
    Beacon,
    JobNew,
    JobReturn,
    MasterStats,
    MinionStart,
    Presence,
    RunEvent,
    SyndicEvent,
)
from exporter.salt.parse import parse
from exporter.salt.stamps import jid_time, parse_stamp
from tests import wire

BASE = calendar.timegm((2026, 11, 24, 18, 15, 10, 0, 0, 0))


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-24T18:15:10.201922", BASE + 0.201922),  # up to 3007
        ("2026-11-24T18:15:10.201922+00:00", BASE + 0.201922),  # 3008
        ("2026-11-24T18:15:10", BASE),  # microsecond 0: no fraction
        ("2026-11-24T18:15:10+00:00", BASE),
        ("2026-11-24T18:15:10.5Z", BASE + 0.5),
        ("2026-11-24T20:15:10.000001+02:00", BASE + 0.000001),
    ],
)
def test_stamp_forms(stamp: str, expected: float) -> None:
    assert parse_stamp(stamp) == pytest.approx(expected, abs=1e-6)
    assert parse_stamp(stamp) == pytest.approx(expected, abs=1e-6)  # second call: cached minute


@pytest.mark.parametrize(
    "bad",
    [
        None,
        5,
        "",
        "yesterday",
        "2026-11-24 18:15:10",
        "2026-11-24T18:15:1x.000000",
        "2026-11-24T18:15:nan000000",
        "2026-13-45T99:99:99.000000",
    ],
)
def test_bad_stamps_are_none(bad: object) -> None:
    parse_stamp("2026-11-24T18:15:10.000000")  # warm the cache for the same minute
    assert parse_stamp(bad) is None


def test_jid_time() -> None:
    assert jid_time("20261124181510201922") == pytest.approx(BASE + 0.201922)
    assert jid_time("20261124181510201922_1234") == pytest.approx(BASE + 0.201922)
    assert jid_time("req") is None


def test_tag_families() -> None:
    s = {"_stamp": "2026-11-24T18:15:10.201922"}
    cases = [
        (wire.new("20261124181510201922", "test.ping", ["m1"], BASE), "job_new", JobNew),
        (wire.ret("20261124181510201922", "m1", "test.ping", BASE), "job_return", JobReturn),
        (wire.body("salt/run/1/new", {"fun": "runner.x", **s}), "runner", RunEvent),
        (wire.body("salt/wheel/1/ret", {"fun": "wheel.x", **s}), "wheel", RunEvent),
        (wire.body("salt/auth", {"act": "pend", **s}), "auth", ActEvent),
        (wire.body("salt/key", {"act": "accepted", **s}), "key", ActEvent),
        (wire.body("salt/minion/m1/start", s), "minion_start", MinionStart),
        (wire.body("salt/presence/present", {"present": ["a"], **s}), "presence", Presence),
        (wire.body("salt/presence/change", {"new": ["a"], "lost": [], **s}), "presence", Presence),
        (wire.body("salt/beacon/m1/diskusage/", s), "beacon", Beacon),
        (wire.body("salt/batch/1/complete", s), "batch", BatchEvent),
        (
            wire.body("salt/stats/w1", {"worker": "w1", "stats": {"_auth": {"runs": 3, "mean": 0.1}}, **s}),
            "stats",
            MasterStats,
        ),
    ]
    for body, category, kind in cases:
        cat, event, error = parse(body)
        assert (cat, type(event), error) == (category, kind, None), body[:40]
    for body, category in [
        (wire.body("salt/job/1/publish", s), "job_publish"),
        (wire.body("salt/job/1/prog/m1/0", s), "job_progress"),
        (wire.body("20261124181510201922", s), "job_legacy"),
        (wire.body("minion_start", s), "minion_start_legacy"),
        (wire.body("my/custom/tag", s), "custom"),
    ]:
        assert parse(body) == (category, None, None)


def test_syndic_forwarded_events() -> None:
    """Shapes seen on a real 3006.29 master of masters (tests/fixtures/syndic): the syndic's job
    announcement as a bare jid, presence copies, and any other tag, which only names the syndic."""
    s = {"_stamp": "2026-11-24T18:15:10.201922"}
    jid = "20261124181510201922"
    for tag in (f"syndic/syn-1/{jid}", f"syndic/syn-1/salt/job/{jid}/new"):
        cat, ev, error = parse(wire.body(tag, {"minions": ["a", "b", 3], **s}))
        assert (cat, error) == ("syndic", None), tag
        assert isinstance(ev, SyndicEvent)
        assert (ev.syndic, ev.jid, ev.minions, ev.presence) == ("syn-1", jid, ["a", "b"], None)
        assert ev.stamp == BASE + 0.201922
    _, ev, _ = parse(wire.body("syndic/syn-1/salt/presence/change", {"new": ["a"], "lost": ["b"], **s}))
    assert isinstance(ev, SyndicEvent) and ev.presence == Presence(None, ["a"], ["b"], ev.stamp)
    _, ev, _ = parse(wire.body("syndic/syn-1/salt/presence/present", {"present": ["a"], **s}))
    assert isinstance(ev, SyndicEvent) and ev.presence is not None and ev.presence.present == ["a"]
    _, ev, _ = parse(wire.body("syndic/syn-1/start", {"data": "Syndic syn-1 started", **s}))
    assert ev == SyndicEvent("syn-1", None, [], None, 0.0)  # not decoded: nothing in it is needed
    for bad in ("syndic//x", "syndic/syn-1/", "syndic/syn-1"):
        assert parse(wire.body(bad, s)) == ("syndic", None, "bad_tag"), bad
    assert parse(b"syndic/syn-1/" + jid.encode() + b"\n\n\xc1") == ("syndic", None, "bad_data")
    assert parse(wire.body(f"syndic/syn-1/salt/job/{jid}/x/new", s))[2] == "bad_fields"


def test_return_fields_of_the_wrong_type_fall_back() -> None:
    body = b"salt/job/1/ret/m1\n\n" + msgpack.packb(
        {"fun": 7, "retcode": "x", "success": "yes", "_stamp": 3, "fun_args": "no-list", "return": None}
    )
    _, ev, error = parse(body)
    assert error is None and isinstance(ev, JobReturn)
    assert (ev.fun, ev.retcode_int, ev.success_bool, ev.stamp) == ("unknown", 1, None, 0.0)
    assert ev.failure_reason == "retcode"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"salt/job/1/ret/m1", "no_separator"),
        (b"salt/job/1/ret/m1\n\n\xc1", "bad_data"),
        (b"salt/job/1/ret/m1\n\n" + msgpack.packb([1, 2]), "not_a_map"),
        (b"salt/job/1/new\n\n" + msgpack.packb("x"), "not_a_map"),
        (b"salt/auth\n\n\x92", "bad_data"),
        (b"salt/job/1/ret/\n\n" + msgpack.packb({}), "bad_tag"),
    ],
)
def test_malformed_bodies_give_a_reason(body: bytes, reason: str) -> None:
    assert parse(body)[2] == reason


def test_non_utf8_strings_survive() -> None:
    body = b"salt/job/1/ret/m\xff1\n\n" + msgpack.packb(
        {"fun": b"\xfftest".decode("latin-1"), "x": b"\xff"}, use_bin_type=False
    )
    raw = body.replace(b"\xc3\xbf", b"\xff")  # make the str field invalid UTF-8 on the wire
    cat, ev, error = parse(raw)
    assert cat == "job_return" and error is None and isinstance(ev, JobReturn)
    assert ev.minion == "m\ufffd1"


def test_master_stats_shape() -> None:
    """salt.master posts `{"time", "worker", "stats": {cmd: {"mean", "runs"}}}` with master_stats: True."""
    body = wire.body(
        "salt/stats/MWorker-1",
        {
            "time": 1.0,
            "worker": "MWorker-1",
            "_stamp": "2026-11-24T18:15:10",
            "stats": {"_return": {"mean": 0.002, "runs": 12}, "bad": "x"},
        },
    )
    _, event, _ = parse(body)
    assert isinstance(event, MasterStats)
    assert event.worker == "MWorker-1" and event.stats == {"_return": (12.0, 0.002)}
