"""Topologies on real masters: `ipc_mode: tcp`, a syndic hierarchy, a 3007+ master cluster."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.saltlab import SaltLab, SaltUnavailable, _free_ports, ensure_salt
from tests.daemon import RunningDaemon
from tests.e2e.conftest import salt_versions, started_lab
from tests.helpers import running_jobs, wait_until


def _salt_venv(version: str) -> Path:
    """Salt ``version`` installed; CI fails where a developer's machine skips."""
    try:
        return ensure_salt(version)
    except SaltUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Salt {version} cannot be installed: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=salt_versions(), ids=lambda v: f"salt-{v}")
def tcp_lab(request: pytest.FixtureRequest) -> Iterator[SaltLab]:
    venv = _salt_venv(request.param)
    with contextlib.closing(started_lab(request.param, venv, ipc_mode="tcp")) as lab:
        yield lab


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


SYNDIC_VERSIONS = [
    v.strip() for v in os.environ.get("SALT_SYNDIC_E2E_VERSIONS", "3006.29,3007.16").split(",") if v.strip()
]


@pytest.fixture(scope="module", params=SYNDIC_VERSIONS, ids=lambda v: f"salt-{v}")
def syndic_labs(request: pytest.FixtureRequest) -> Iterator[tuple[SaltLab, SaltLab]]:
    """A master of masters (top-master, one direct minion) and a syndic master (syndic-1 running salt-syndic,
    two minions): real daemons, one job from the top reaches all three minions."""
    venv = _salt_venv(request.param)
    top = started_lab(
        request.param, venv, minions=1, minion_prefix="top-minion",
        master_opts={"order_masters": True, "id": "top-master"},
    )  # fmt: skip
    with contextlib.closing(top):
        lower = started_lab(
            request.param, venv, minions=2, minion_prefix="syn-minion", address_base=30,
            syndic_of=top, syndic_id="syndic-1",
        )  # fmt: skip
        with contextlib.closing(lower):
            yield top, lower


def test_syndic_topology(syndic_labs: tuple[SaltLab, SaltLab]) -> None:
    top, lower = syndic_labs
    on_top = RunningDaemon("--bus", top.bus_path, "--master-id", "top-master")
    on_lower = RunningDaemon("--bus", lower.bus_path, "--master-id", "syndic-1", "--syndic-master")
    try:
        on_top.wait_for("salt_exporter_bus_connected", 1)
        on_lower.wait_for("salt_exporter_bus_connected", 1)
        # The syndic forwards its master's presence events every loop_interval: from then on syndic-1 is
        # known as a relay when a publish lists it.
        on_top.wait_for('salt_syndic_events_total{syndic="syndic-1"}', 1, timeout=30)
        # --static runs as a batch: a discovery ping, then the job on a list that names the syndic's minions,
        # which the top master has no keys for (`missing`). They are not no_key: the syndic runs them.
        out = top.salt("--static", "*", "test.ping", "--out=json", timeout=120)
        assert set(json.loads(out.stdout)) == {"top-minion-01", "syn-minion-01", "syn-minion-02"}, out
        m = on_top.wait_for('salt_job_returns_total{function="test.ping",outcome="success"}', 6)
        assert m['salt_jobs_published_total{function="test.ping",tgt_type="glob"}'] == 1
        assert m['salt_jobs_published_total{function="test.ping",tgt_type="list"}'] == 1
        assert m['salt_job_minions_targeted_total{function="test.ping"}'] == 6  # syndic-1 is not a minion
        assert m['salt_syndic_minions_targeted_total{syndic="syndic-1"}'] == 4
        assert not any(
            k.startswith(("salt_job_minions_no_return_total{", "salt_job_late_returns")) for k in m
        )
        assert m["salt_jobs_in_flight"] == 0
        low = on_lower.wait_for('salt_job_returns_total{function="test.ping",outcome="success"}', 4)
        assert low['salt_job_minions_targeted_total{function="test.ping"}'] == 4

        # A syndic minion dies mid-job: the top CLI says [No response], and so does the top's exporter.
        proc = top.popen("salt", "*", "cmd.run", "sleep 10; echo done", "-t", "5", stdout=subprocess.PIPE)
        wait_until(
            lambda: running_jobs(lower, "syn-minion-02"), 60, "the cmd.run job running on syn-minion-02"
        )
        lower.stop_minion("syn-minion-02", kill=True)
        stdout, _ = proc.communicate(timeout=180)
        assert "Minion did not return. [No response]" in stdout and stdout.count("done") == 2, stdout
        m = on_top.wait_for(
            'salt_job_minions_no_return_total{function="cmd.run",reason="no_response"}', 1, 30
        )
        assert m['salt_job_returns_total{function="cmd.run",outcome="success"}'] == 2
        assert not any(k.startswith("salt_job_minions_no_return_total{") and "not_connected" in k for k in m)
        assert m["salt_jobs_in_flight"] == 0

        # A job of the syndic master itself reaches the top master as returns without a publish.
        lower.start_minion("syn-minion-02")
        lower.salt("*", "test.ping", timeout=60)
        m = on_top.wait_for('salt_job_returns_unpublished_total{function="test.ping",kind="syndic"}', 2)
        assert m['salt_jobs_published_total{function="test.ping",tgt_type="glob"}'] == 1  # still only ours
        assert m['salt_syndic_events_total{syndic="syndic-1"}'] > 0
        assert sum(v for k, v in m.items() if k.startswith("salt_exporter_decode_errors_total")) == 0
    finally:
        for daemon in (on_top, on_lower):
            code, err = daemon.stop()
            assert code == 0, err


CLUSTER_VERSIONS = [
    v.strip() for v in os.environ.get("SALT_CLUSTER_E2E_VERSIONS", "3007.16,3008.4").split(",") if v.strip()
]


@pytest.fixture(scope="module", params=CLUSTER_VERSIONS, ids=lambda v: f"salt-{v}")
def cluster_labs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SaltLab, SaltLab]]:
    """A 3007+ master cluster: masters 127.0.0.1 and 127.0.0.2 (their cluster ids are their addresses) on a
    shared pki, cache and file tree, one minion connected to each. Every event of one master is fired on
    the other too, with `__peer_id`."""
    venv = _salt_venv(request.param)
    shared = tmp_path_factory.mktemp("cluster")
    for sub in ("pki", "cache", "srv/salt", "srv/pillar"):
        (shared / sub).mkdir(parents=True)
    pool_port = _free_ports(1)[0]

    def opts(me: str, peer: str) -> dict[str, object]:
        # root_dir "/": Salt prepends root_dir to cachedir, which would give each master a cache of its own
        # (and the CLI no minion data to tell [Not connected] from [No response]). Every lab path is absolute.
        return {
            "root_dir": "/", "id": me, "cluster_id": "lab_cluster", "cluster_peers": [peer],
            "cluster_pool_port": pool_port,
            "cluster_pki_dir": str(shared / "pki"), "cachedir": str(shared / "cache"),
            "file_roots": {"base": [str(shared / "srv/salt")]},
            "pillar_roots": {"base": [str(shared / "srv/pillar")]},
        }  # fmt: skip

    a = SaltLab(
        request.param, venv=venv, minions=1, minion_prefix="clu-a", interface="127.0.0.1",
        master_opts=opts("127.0.0.1", "127.0.0.2"),
    )  # fmt: skip
    b = SaltLab(
        request.param, venv=venv, minions=1, minion_prefix="clu-b", interface="127.0.0.2", address_base=20,
        master_opts=opts("127.0.0.2", "127.0.0.1"),
    )  # fmt: skip
    with contextlib.closing(a), contextlib.closing(b):
        # Both masters first: a 3008 cluster master serves no minion while its peer is missing.
        a.start(minions=False)
        b.start(minions=False)
        a.start_minions()
        b.start_minions()
        yield a, b


def _returns(m: dict[str, float]) -> float:
    return sum(v for k, v in m.items() if k.startswith("salt_job_returns_total{"))


def test_master_cluster(cluster_labs: tuple[SaltLab, SaltLab]) -> None:
    """One exporter per cluster master: each job is counted by the exporter of the master that published it
    (with every minion's return, forwarded or not), never twice across the cluster."""
    a, b = cluster_labs
    on_a = RunningDaemon("--bus", a.bus_path, "--master-id", "127.0.0.1")
    on_b = RunningDaemon("--bus", b.bus_path, "--master-id", "127.0.0.2")
    try:
        on_a.wait_for("salt_exporter_bus_connected", 1)
        on_b.wait_for("salt_exporter_bus_connected", 1)
        both = {"clu-a-01", "clu-b-01"}
        for lab in (a, b):
            out = lab.salt("*", "test.ping", "--out=txt", timeout=120)
            assert set(out.stdout.split()) == {f"{m}:" for m in both} | {"True"}, out
        ma = on_a.wait_for('salt_job_returns_total{function="test.ping",outcome="success"}', 2)
        mb = on_b.wait_for('salt_job_returns_total{function="test.ping",outcome="success"}', 2)
        for m in (ma, mb):
            assert m['salt_jobs_published_total{function="test.ping",tgt_type="glob"}'] == 1
            assert m['salt_job_minions_targeted_total{function="test.ping"}'] == 2
            assert m["salt_jobs_in_flight"] == 0
            assert m['salt_events_total{category="cluster_peer"}'] > 0
            assert not any(
                k.startswith(("salt_job_returns_unpublished_total{", "salt_job_minions_no_return_total{"))
                for k in m
            ), m
            assert sum(v for k, v in m.items() if k.startswith("salt_exporter_decode_errors_total")) == 0
        assert _returns(ma) + _returns(mb) == 4  # two jobs, two minions each: once across the cluster

        # A minion of master B dies; a job from master A waits for it: A's CLI and A's exporter agree.
        b.stop_minion("clu-b-01", kill=True)
        out = a.salt("*", "test.ping", timeout=180)
        reason = "not_connected" if "[Not connected]" in out.stdout else "no_response"
        assert "Minion did not return" in out.stdout, out.stdout
        ma = on_a.wait_for(
            f'salt_job_minions_no_return_total{{function="test.ping",reason="{reason}"}}', 1, 60
        )
        assert ma['salt_job_returns_total{function="test.ping",outcome="success"}'] == 3
        assert ma["salt_jobs_in_flight"] == 0
        mb = on_b.metrics()
        assert _returns(mb) == 2 and not any(k.startswith("salt_job_minions_no_return_total{") for k in mb)
        print(f"salt {a.version} cluster: CLI of master A says {reason} for a dead minion of master B")
    finally:
        for daemon in (on_a, on_b):
            code, err = daemon.stop()
            assert code == 0, err
