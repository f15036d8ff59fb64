"""Signals no other Salt tool has, on real masters, each against what the real `salt` CLI printed:
dispatch vs run time (start events), honest verdicts across a cut connection, and the reason for a minion
that died just after a presence event.

The lab here fires presence events every 20 s (loop_interval) and gives up on a find_job round after 3 s,
so the CLI's verdict comes well before the next presence event: the window in which only the publish
port, not the bus, knows that a minion is gone.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.saltlab import SaltLab, ensure_salt
from tests.daemon import RunningDaemon
from tests.e2e.conftest import salt_versions, started_lab
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

SILENT = re.compile(r"^(\S+):\s*\n\s+Minion did not return\. \[(Not connected|No response)\]", re.M)
RETURNED = re.compile(r"^(lab-minion-\d+):\s*\n\s+(?!Minion did not return)", re.M)
LOOP_INTERVAL = 20
GATHER = 3


@pytest.fixture(scope="module", params=salt_versions(), ids=lambda v: f"salt-{v}")
def slow_presence_lab(request: pytest.FixtureRequest) -> Iterator[SaltLab]:
    version: str = request.param
    lab = started_lab(version, ensure_salt(version), loop_interval=LOOP_INTERVAL, gather_job_timeout=GATHER)
    try:
        yield lab
    finally:
        lab.close()


class Proxy:
    """A Unix-socket relay between the exporter and the master's publisher that can cut the connection."""

    def __init__(self, upstream: str, path: Path) -> None:
        self.upstream = upstream
        self.path = str(path)
        self.open = threading.Event()
        self.open.set()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self._stop = False
        self._listener: socket.socket | None = None
        self._listen()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        Path(self.path).unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(8)
        listener.settimeout(0.2)
        self._listener = listener

    def _accept(self) -> None:
        while not self._stop:
            listener = self._listener
            if listener is None or not self.open.is_set():
                time.sleep(0.05)
                continue
            try:
                client, _ = listener.accept()
            except OSError:
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones (the socket file is gone, as in a master restart)."""
        self.open.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        Path(self.path).unlink(missing_ok=True)
        for client, upstream in self.pairs:
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
        self.pairs.clear()

    def restore(self) -> None:
        self._listen()
        self.open.set()

    def close(self) -> None:
        self._stop = True
        self.cut()


def delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def no_returns(m: dict[str, float], fun: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for reason in ("no_key", "not_connected", "no_response", "deadline", "bus_gap"):
        out[reason] = m.get(f'salt_job_minions_no_return_total{{function="{fun}",reason="{reason}"}}', 0.0)
    return out


def test_cut_connection_mid_job_is_a_bus_gap_not_silence(slow_presence_lab: SaltLab, tmp_path: Path) -> None:
    """The exporter loses its connection while every minion returns: the CLI says all returned, and the
    exporter must not call any of them silent."""
    lab = slow_presence_lab
    proxy = Proxy(lab.bus_path, tmp_path / "relay.ipc")
    exporter = RunningDaemon(
        "--bus", proxy.path, "--job-deadline", "15", "--reconnect.max-backoff", "0.5", "--timeout", "2"
    )
    try:
        exporter.wait_for("salt_exporter_bus_connected", 1)
        before = exporter.metrics()
        published = before.get('salt_jobs_published_total{function="cmd.run",tgt_type="glob"}', 0.0)
        proc = lab.popen("salt", "*", "cmd.run", "sleep 3; echo ok", "-t", "30", stdout=subprocess.PIPE)
        exporter.wait_for('salt_jobs_published_total{function="cmd.run",tgt_type="glob"}', published + 1)
        proxy.cut()  # the returns come while the exporter is cut off
        out, _ = proc.communicate(timeout=120)
        returned = set(RETURNED.findall(out))
        assert returned == set(lab.minion_ids), out
        proxy.restore()
        exporter.wait_for(
            "salt_exporter_bus_reconnects_total", before["salt_exporter_bus_reconnects_total"] + 1
        )
        wait_until(
            lambda: (
                sum(no_returns(exporter.metrics(), "cmd.run").values())
                > sum(no_returns(before, "cmd.run").values())
            ),
            60,
            "the exporter's verdict on the job it lost track of",
        )
        after = exporter.metrics()
        got = {k: v - no_returns(before, "cmd.run")[k] for k, v in no_returns(after, "cmd.run").items()}
        assert got == {"no_key": 0, "not_connected": 0, "no_response": 0, "deadline": 0, "bus_gap": 3}, got
        assert delta(after, before, 'salt_exporter_bus_gaps_total{cause="disconnect"}') >= 1
        assert delta(after, before, 'salt_exporter_bus_gap_seconds_total{cause="disconnect"}') > 0
    finally:
        exporter.stop()
        proxy.close()


def test_minion_killed_just_after_a_presence_event(slow_presence_lab: SaltLab) -> None:
    """Killed right after a presence event, then a job at once: the CLI asks the publish port and says
    [Not connected]; the bus still lists the minion until the next presence event, which the exporter
    waits for before it counts the verdict."""
    lab = slow_presence_lab
    exporter = RunningDaemon(
        "--bus",
        lab.bus_path,
        "--timeout",
        "2",
        "--gather-job-timeout",
        str(GATHER),
        "--presence-interval",
        "30",
    )
    victim = lab.minion_ids[-1]
    try:
        exporter.wait_for("salt_exporter_bus_connected", 1)
        key = 'salt_events_total{category="presence"}'
        seen = exporter.metrics().get(key, 0.0)
        exporter.wait_for(key, seen + 1, timeout=LOOP_INTERVAL * 2 + 10)  # a presence event just went by
        before = exporter.metrics()
        lab.stop_minion(victim, kill=True)
        out = lab.salt("*", "test.ping", "-t", "2", timeout=120).stdout
        assert dict(SILENT.findall(out)) == {victim: "Not connected"}, out
        wait_until(
            lambda: (
                sum(no_returns(exporter.metrics(), "test.ping").values())
                > sum(no_returns(before, "test.ping").values())
            ),
            LOOP_INTERVAL * 2 + 15,
            "the exporter's verdict, after the next presence event",
        )
        after = exporter.metrics()
        got = {k: v - no_returns(before, "test.ping")[k] for k, v in no_returns(after, "test.ping").items()}
        assert got == {"no_key": 0, "not_connected": 1, "no_response": 0, "deadline": 0, "bus_gap": 0}, got
    finally:
        exporter.stop()
        if not lab.minion_running(victim):
            lab.start_minion(victim)


def test_start_events_split_dispatch_from_run(slow_presence_lab: SaltLab) -> None:
    """`salt --start-event` (3008+): every minion announces the job before it runs it. Before 3008 there
    are no start events, and nothing changes."""
    lab = slow_presence_lab
    exporter = RunningDaemon("--bus", lab.bus_path)
    try:
        exporter.wait_for("salt_exporter_bus_connected", 1)
        if not lab.version.startswith("3008"):
            out = lab.salt("*", "cmd.run", "sleep 1; echo ran", timeout=120).stdout
            m = exporter.wait_for('salt_job_returns_total{function="cmd.run",outcome="success"}', 3)
            assert set(RETURNED.findall(out)) == set(lab.minion_ids), out
            assert m.get('salt_job_dispatch_seconds_count{function="cmd.run"}', 0) == 0
            assert m.get('salt_events_total{category="job_start"}', 0) == 0
            return
        out = lab.salt("--start-event", "*", "cmd.run", "sleep 1; echo ran", timeout=120).stdout
        returned = set(RETURNED.findall(out))
        assert returned == set(lab.minion_ids), out
        m = exporter.wait_for('salt_job_run_seconds_count{function="cmd.run"}', len(returned))
        assert m['salt_job_dispatch_seconds_count{function="cmd.run"}'] == len(returned)
        # Each ran `sleep 1`: at least a second each between start and return; dispatch was far shorter.
        assert m['salt_job_run_seconds_sum{function="cmd.run"}'] >= len(returned) * 1.0
        assert (
            m['salt_job_dispatch_seconds_sum{function="cmd.run"}']
            < m['salt_job_run_seconds_sum{function="cmd.run"}']
        )
        assert m['salt_events_total{category="job_start"}'] == len(returned)
    finally:
        exporter.stop()
