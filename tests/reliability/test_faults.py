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
