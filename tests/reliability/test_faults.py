"""Faults a production master inflicts, against real masters: a stalled pipeline under an event burst,
and an exporter restarted in the middle of a job."""

from __future__ import annotations

import subprocess
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from exporter import config
from exporter.app import Daemon
from lab.saltlab import SaltLab
from tests.daemon import RunningDaemon, free_port
from tests.helpers import samples, wait_until

pytestmark = pytest.mark.e2e

BURST = textwrap.dedent("""
    import sys, time
    import salt.config, salt.utils.event
    opts = salt.config.master_config(sys.argv[1])
    bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False)
    n, pad = int(sys.argv[2]), "x" * 1024
    start = time.monotonic()
    for i in range(n):
        bus.fire_event({"i": i, "pad": pad}, "lab/burst/%d" % i)
    print("%d events in %.2f s" % (n, time.monotonic() - start))
""")


def in_process_daemon(bus: str, **overrides: Any) -> tuple[Daemon, threading.Thread]:
    settings = config.defaults().replace(bus=bus, web_listen_address=f"127.0.0.1:{free_port()}", **overrides)
    daemon = Daemon(settings)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return daemon, thread


def scrape(daemon: Daemon) -> dict[str, float]:
    return samples(daemon.core.exposition())


def test_stalled_processing_never_stalls_the_master(salt_lab: SaltLab, tmp_path: Path) -> None:
    daemon, thread = in_process_daemon(salt_lab.bus_path, buffer_size=256 * 1024)
    stall = threading.Event()
    chunk = daemon.core.pipeline.chunk

    def slow_chunk(gen: int, gap: bool, data: bytes) -> None:
        while stall.is_set():  # processing stalls (fault injection); the reader keeps draining
            time.sleep(0.05)
        chunk(gen, gap, data)

    daemon.core.pipeline.chunk = slow_chunk  # type: ignore[method-assign]
    try:
        deadline = time.monotonic() + 20
        while not daemon.core.health.connected:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        script = tmp_path / "burst.py"
        script.write_text(BURST)
        python = str(salt_lab.venv / "bin" / "python")
        stall.set()
        burst = subprocess.run(
            [python, str(script), str(salt_lab.master_conf_dir / "master"), "5000"],
            capture_output=True,
            text=True,
            timeout=120,
            env=salt_lab.env,
            check=False,
        )
        assert burst.returncode == 0, burst.stderr
        # The reader drains the whole burst although processing is stalled: wait for that, not a second.
        wait_until(
            lambda: daemon.core.health.bytes_read >= 5000 * 1024,
            30,
            "the reader to drain the burst while stalled",
        )
        during = daemon.core.health
        dropped = during.dropped_bytes["buffer_full"]
        read = during.bytes_read
        stall.clear()
        salt_lab.salt("*", "test.ping", timeout=60)
        deadline = time.monotonic() + 30
        while True:
            m = scrape(daemon)
            if m.get('salt_job_returns_total{function="test.ping",outcome="success"}', 0) >= 3:
                break
            assert time.monotonic() < deadline, "processing did not recover after the stall"
            time.sleep(0.2)
        events = sum(v for k, v in m.items() if k.startswith("salt_events_total{"))
        print(
            f"burst: {burst.stdout.strip()}; read {read} bytes, dropped {dropped} bytes while stalled, "
            f"{int(events)} events counted, {int(m['salt_exporter_resyncs_total'])} resyncs"
        )
        assert dropped > 0, "a 256 KiB buffer must overflow under a 5 MB burst while processing is stalled"
        assert read >= 5000 * 1024, "the reader kept draining the socket during the stall"
        assert m["salt_exporter_bus_reconnects_total"] == 0, "the master never disconnected us"
        assert m["salt_exporter_bus_connected"] == 1
        assert m['salt_exporter_dropped_bytes_total{reason="buffer_full"}'] == dropped
    finally:
        stall.clear()
        daemon.stop.set()
        thread.join(timeout=30)


def test_exporter_restart_mid_job(salt_lab: SaltLab) -> None:
    first = RunningDaemon("--bus", salt_lab.bus_path)
    first.wait_for("salt_exporter_bus_connected", 1)
    proc = salt_lab.popen("salt", "*", "cmd.run", "sleep 4; echo late", stdout=subprocess.PIPE)
    first.wait_for('salt_jobs_published_total{function="cmd.run",tgt_type="glob"}', 1)  # the publish went by
    first.stop()
    second = RunningDaemon("--bus", salt_lab.bus_path)
    try:
        second.wait_for("salt_exporter_bus_connected", 1)
        proc.communicate(timeout=120)
        m = second.wait_for('salt_job_returns_unpublished_total{function="cmd.run",kind="unknown_jid"}', 3)
        assert m['salt_job_returns_total{function="cmd.run",outcome="success"}'] == 3
        assert m.get('salt_jobs_published_total{function="cmd.run",tgt_type="glob"}', 0) == 0
        assert m['salt_exporter_decode_errors_total{reason="internal"}'] == 0
    finally:
        code, err = second.stop()
    assert code == 0, err


def test_buffer_overflow_mid_job_is_a_bus_gap_not_silence(salt_lab: SaltLab, tmp_path: Path) -> None:
    """Processing stalls while a burst overflows the buffer and every minion returns: the CLI says all
    returned; the exporter, which dropped those returns, must not call any minion silent."""
    daemon, thread = in_process_daemon(salt_lab.bus_path, buffer_size=256 * 1024, job_deadline=12.0)
    stall = threading.Event()
    chunk = daemon.core.pipeline.chunk

    def slow_chunk(gen: int, gap: bool, data: bytes) -> None:
        while stall.is_set():
            time.sleep(0.05)
        chunk(gen, gap, data)

    daemon.core.pipeline.chunk = slow_chunk  # type: ignore[method-assign]
    key = 'salt_jobs_published_total{function="cmd.run",tgt_type="glob"}'
    try:
        wait_until(lambda: daemon.core.health.connected, 20, "the exporter to connect")
        before = scrape(daemon)
        proc = salt_lab.popen("salt", "*", "cmd.run", "sleep 2; echo ok", "-t", "30", stdout=subprocess.PIPE)
        wait_until(lambda: scrape(daemon).get(key, 0) > before.get(key, 0), 30, "the publish to be counted")
        stall.set()
        script = tmp_path / "burst.py"
        script.write_text(BURST)
        python = str(salt_lab.venv / "bin" / "python")
        subprocess.run(
            [python, str(script), str(salt_lab.master_conf_dir / "master"), "3000"],
            capture_output=True,
            text=True,
            timeout=120,
            env=salt_lab.env,
            check=True,
        )
        out, _ = proc.communicate(timeout=120)
        assert out.count("ok") == len(salt_lab.minion_ids), out  # the CLI: every minion returned
        wait_until(lambda: daemon.core.health.dropped_bytes["buffer_full"] > 0, 30, "the buffer to overflow")
        stall.clear()
        reasons = ("no_key", "not_connected", "no_response", "deadline", "bus_gap")

        def silent(m: dict[str, float]) -> dict[str, float]:
            return {
                r: m.get(f'salt_job_minions_no_return_total{{function="cmd.run",reason="{r}"}}', 0.0)
                for r in reasons
            }

        wait_until(
            lambda: sum(silent(scrape(daemon)).values()) > sum(silent(before).values()), 60, "a verdict"
        )
        after = scrape(daemon)
        got = {r: silent(after)[r] - silent(before)[r] for r in reasons}
        returned_seen = after.get(
            'salt_job_returns_total{function="cmd.run",outcome="success"}', 0
        ) - before.get('salt_job_returns_total{function="cmd.run",outcome="success"}', 0)
        late = after.get('salt_job_late_returns_total{function="cmd.run"}', 0) - before.get(
            'salt_job_late_returns_total{function="cmd.run"}', 0
        )
        # Every minion the exporter did not see return before its verdict is a bus gap (a return still in
        # the buffer when the deadline passed counts as late), none is called silent.
        missed = len(salt_lab.minion_ids) - (returned_seen - late)
        assert got == {**dict.fromkeys(reasons[:4], 0.0), "bus_gap": missed}
        assert got["bus_gap"] > 0
        assert after['salt_exporter_bus_gaps_total{cause="buffer_full"}'] > before.get(
            'salt_exporter_bus_gaps_total{cause="buffer_full"}', 0
        )
    finally:
        stall.clear()
        daemon.stop.set()
        thread.join(timeout=30)
