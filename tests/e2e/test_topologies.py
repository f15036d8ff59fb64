"""Masters in `ipc_mode: tcp`: the exporter reads the TCP event publisher of a real master."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from exporter.saltlab import SaltLab, SaltUnavailable, ensure_salt
from tests.daemon import RunningDaemon
from tests.e2e.conftest import salt_versions, started_lab


@pytest.fixture(scope="module", params=salt_versions(), ids=lambda v: f"salt-{v}")
def tcp_lab(request: pytest.FixtureRequest) -> Iterator[SaltLab]:
    try:
        venv = ensure_salt(request.param)
    except SaltUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Salt {request.param} cannot be installed: {exc}")
        pytest.skip(str(exc))
    lab = started_lab(request.param, venv, ipc_mode="tcp")
    try:
        yield lab
    finally:
        lab.close()


def test_tcp_ipc_mode_master(tcp_lab: SaltLab) -> None:
    assert tcp_lab.bus_path.startswith("tcp://127.0.0.1:")
    daemon = RunningDaemon("--bus", tcp_lab.bus_path)
    try:
        daemon.wait_for("salt_exporter_bus_connected", 1)
        tcp_lab.salt("*", "test.ping", timeout=60)
        out = tcp_lab.salt("*", "cmd.run", "sleep 7; echo hi", "-t", "3", timeout=120)
        assert out.stdout.count("hi") == 3, out.stdout
        m = daemon.wait_for('salt_job_returns_total{function="cmd.run",outcome="success"}', 3)
        assert m['salt_job_returns_total{function="test.ping",outcome="success"}'] == 3
        assert m['salt_find_job_probes_total{function="cmd.run"}'] >= 1
        assert not any(k.startswith('salt_jobs_published_total{function="saltutil.find_job"') for k in m)
        framing = "length_prefixed" if tcp_lab.version.startswith("3006") else "plain"
        assert m[f'salt_exporter_frames_total{{framing="{framing}"}}'] > 0
    finally:
        code, err = daemon.stop()
    assert code == 0, err
