"""The ZeroMQ bus of Salt 2015.8-era masters: a real pyzmq PUB socket publishing bodies shaped like 2015.8's
(each message is `tag\\n\\n` + msgpack data packed without bin types, `_stamp` without timezone)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from tests import wire
from tests.daemon import RunningDaemon, free_port

T0 = time.time() - 60
MINIONS = ["web1", "web2", "db1"]


def msg(tag: str, data: dict[str, Any]) -> bytes:
    data = {**data, "_stamp": wire.stamp(data.pop("_t"))}
    return tag.encode() + b"\n\n" + msgpack.packb(data, use_bin_type=False)


def seed_scenario() -> list[bytes]:
    """test.ping, then a cmd.run that outlives the CLI timeout and is probed with saltutil.find_job."""
    ping, run, probe = "20270115080000000001", "20270115080001000002", "20270115080006000003"
    out = [
        msg(ping, {"minions": MINIONS, "_t": T0}),  # the bare-jid event of that era
        msg(
            "new_job",
            {
                "jid": ping,
                "fun": "test.ping",
                "tgt": "*",
                "tgt_type": "glob",
                "user": "root",
                "arg": [],
                "minions": MINIONS,
                "_t": T0,
            },
        ),
        msg(
            f"salt/job/{ping}/new",
            {
                "jid": ping,
                "fun": "test.ping",
                "tgt": "*",
                "tgt_type": "glob",
                "user": "root",
                "arg": [],
                "minions": MINIONS,
                "_t": T0,
            },
        ),
    ]
    out += [
        msg(
            f"salt/job/{ping}/ret/{m}",
            {
                "id": m,
                "jid": ping,
                "fun": "test.ping",
                "return": True,
                "retcode": 0,
                "success": True,
                "fun_args": [],
                "_t": T0 + 0.1,
            },
        )
        for m in MINIONS
    ]
    out.append(
        msg(
            f"salt/job/{run}/new",
            {
                "jid": run,
                "fun": "cmd.run",
                "tgt": "*",
                "tgt_type": "glob",
                "user": "root",
                "arg": ["sleep 8"],
                "minions": MINIONS,
                "_t": T0 + 1,
            },
        )
    )
    out.append(
        msg(
            f"salt/job/{probe}/new",
            {
                "jid": probe,
                "fun": "saltutil.find_job",
                "tgt": MINIONS,
                "tgt_type": "list",
                "user": "root",
                "arg": [run],
                "minions": MINIONS,
                "_t": T0 + 6,
            },
        )
    )
    out += [
        msg(
            f"salt/job/{probe}/ret/{m}",
            {
                "id": m,
                "jid": probe,
                "fun": "saltutil.find_job",
                "fun_args": [run],
                "return": {"jid": run, "pid": 7},
                "retcode": 0,
                "success": True,
                "_t": T0 + 6.1,
            },
        )
        for m in MINIONS
    ]
    out += [
        msg(
            f"salt/job/{run}/ret/{m}",
            {
                "id": m,
                "jid": run,
                "fun": "cmd.run",
                "return": "",
                "retcode": 0,
                "success": True,
                "fun_args": ["sleep 8"],
                "_t": T0 + 9,
            },
        )
        for m in MINIONS
    ]
    return out


def subscribed(pub: zmq.Socket[bytes]) -> bytes:
    """Wait for the exporter's subscription to reach the XPUB socket; return its topic prefix."""
    assert pub.poll(15_000, zmq.POLLIN), "the exporter never subscribed"
    frame = pub.recv()
    assert frame[:1] == b"\x01", frame
    return frame[1:]


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_zeromq_bus_seed_scenario(tmp_path: Path, transport: str) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    if transport == "ipc":
        endpoint = f"ipc://{tmp_path}/master_event_pub.ipc"
        bus = "zmq+" + endpoint
    else:
        port = free_port()
        endpoint = f"tcp://127.0.0.1:{port}"
        bus = f"zmq+tcp://127.0.0.1:{port}"
    pub.bind(endpoint)
    daemon = RunningDaemon("--bus", bus, "--timeout", "5", "--gather-job-timeout", "10")
    try:
        daemon.wait_for("salt_exporter_bus_connected", 1)
        subscribed(pub)  # a SUB socket misses what is published before its subscription arrives
        for body in seed_scenario():
            pub.send(body)
        m = daemon.wait_for('salt_job_returns_total{function="cmd.run",outcome="success"}', 3)
        assert m['salt_jobs_published_total{function="test.ping",tgt_type="glob"}'] == 1
        assert m['salt_job_returns_total{function="test.ping",outcome="success"}'] == 3
        assert m['salt_find_job_probes_total{function="cmd.run"}'] == 1
        assert m['salt_find_job_answers_total{answer="running",function="cmd.run"}'] == 3
        assert m['salt_jobs_published_total{function="cmd.run",tgt_type="glob"}'] == 1
        assert m['salt_exporter_frames_total{framing="zmq"}'] == len(seed_scenario())
        assert m['salt_events_total{category="job_legacy"}'] == 1
        assert m['salt_events_total{category="job_new_legacy"}'] == 1
        assert m['salt_job_return_latency_seconds_count{function="cmd.run"}'] == 3
        # The publisher goes away and comes back: the SUB socket reconnects and counting goes on.
        pub.close(0)
        deadline = time.monotonic() + 15
        while daemon.metrics()["salt_exporter_bus_connected"] != 0 and transport == "tcp":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        pub = ctx.socket(zmq.XPUB)
        pub.bind(endpoint)
        daemon.wait_for("salt_exporter_bus_connected", 1)
        subscribed(pub)
        jid = "20270115080100000009"
        pub.send(
            msg(
                f"salt/job/{jid}/new",
                {
                    "jid": jid,
                    "fun": "test.ping",
                    "tgt": "web1",
                    "tgt_type": "glob",
                    "user": "root",
                    "arg": [],
                    "minions": ["web1"],
                    "_t": T0 + 20,
                },
            )
        )
        pub.send(
            msg(
                f"salt/job/{jid}/ret/web1",
                {"id": "web1", "jid": jid, "fun": "test.ping", "return": True, "retcode": 0, "_t": T0 + 20.1},
            )
        )
        daemon.wait_for('salt_job_returns_total{function="test.ping",outcome="success"}', 4)
    finally:
        daemon.stop()
        pub.close(0)
        ctx.term()


def test_zeromq_subscription_prefix(tmp_path: Path) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    endpoint = f"ipc://{tmp_path}/pub.ipc"
    pub.bind(endpoint)
    daemon = RunningDaemon("--bus", f"zmq+{endpoint}?subscribe=salt/job/")
    try:
        daemon.wait_for("salt_exporter_bus_connected", 1)
        assert subscribed(pub) == b"salt/job/"
        for body in seed_scenario():
            pub.send(body)
        m = daemon.wait_for('salt_job_returns_total{function="cmd.run",outcome="success"}', 3)
        # The publisher filtered by tag prefix: the bare-jid and new_job events never arrived.
        assert m.get('salt_events_total{category="job_legacy"}', 0) == 0
        assert m.get('salt_events_total{category="job_new_legacy"}', 0) == 0
    finally:
        daemon.stop()
        pub.close(0)
        ctx.term()


def test_a_probe_published_twice_counts_once() -> None:
    """A 2015.8 master fires every publish as `new_job` and as `salt/job/<jid>/new`, the CLI's find_job
    probes included: one probe jid is one probe, and its answers count once each."""
    from tests.helpers import make_core, value

    run, probe = "20270115080001000002", "20270115080006000003"
    probe_data = {
        "jid": probe,
        "fun": "saltutil.find_job",
        "tgt": MINIONS,
        "tgt_type": "list",
        "user": "root",
        "arg": [run],
        "minions": MINIONS,
    }
    job = {"jid": run, "fun": "cmd.run", "tgt": "*", "tgt_type": "glob", "user": "root", "minions": MINIONS}
    core = make_core()
    core.pipeline.bodies(
        [
            msg("new_job", {**job, "_t": T0}),
            msg(f"salt/job/{run}/new", {**job, "_t": T0}),
            msg("new_job", {**probe_data, "_t": T0 + 6}),
            msg(f"salt/job/{probe}/new", {**probe_data, "_t": T0 + 6}),
            *(
                msg(
                    f"salt/job/{probe}/ret/{m}",
                    {
                        "id": m,
                        "fun": "saltutil.find_job",
                        "fun_args": [run],
                        "return": {"jid": run},
                        "_t": T0 + 6.1,
                    },
                )
                for m in MINIONS
            ),
        ]
    )
    assert value(core, 'salt_find_job_probes_total{function="cmd.run"}') == 1
    assert value(core, 'salt_find_job_answers_total{answer="running",function="cmd.run"}') == len(MINIONS)
    assert value(core, 'salt_jobs_published_total{function="cmd.run",tgt_type="glob"}') == 1
