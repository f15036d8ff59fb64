"""The exporter on a real master's socket, each scenario checked against what the real `salt` CLI printed.

One master + three minions per Salt version (module scope); counters accumulate across the tests of the
module, so every test compares deltas of the scraped `/metrics`.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from lab.demo import FAILING_STATE
from lab.saltlab import SaltLab
from tests.daemon import RunningDaemon
from tests.helpers import running_jobs, wait_until

pytestmark = pytest.mark.e2e

SILENT = re.compile(r"^(\S+):\s*\n\s+Minion did not return\. \[(Not connected|No response)\]", re.M)


@pytest.fixture(scope="module")
def exporter(salt_lab: SaltLab) -> Iterator[RunningDaemon]:
    daemon = RunningDaemon(
        "--bus",
        salt_lab.bus_path,
        "--timeout",
        "5",
        "--gather-job-timeout",
        "10",
        "--reconnect.max-backoff",
        "1",
    )
    daemon.wait_for("salt_exporter_bus_connected", 1)
    yield daemon
    code, err = daemon.stop()
    assert code == 0, err


def total(m: dict[str, float], prefix: str, **labels: str) -> float:
    out = 0.0
    for key, val in m.items():
        if (key.startswith(prefix + "{") or key == prefix) and all(
            f'{k}="{v}"' in key for k, v in labels.items()
        ):
            out += val
    return out


def settle(
    exporter: RunningDaemon, key: str, labels: dict[str, str], target: float, timeout: float = 30
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        m = exporter.metrics()
        if total(m, key, **labels) >= target:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{key}{labels} = {total(m, key, **labels)}, wanted {target}")
        time.sleep(0.2)


def test_ping(salt_lab: SaltLab, exporter: RunningDaemon) -> None:
    before = exporter.metrics()
    out = salt_lab.salt("*", "test.ping", timeout=60)
    assert out.returncode == 0, out.stdout
    ret = total(before, "salt_job_returns_total", function="test.ping", outcome="success")
    after = settle(
        exporter, "salt_job_returns_total", {"function": "test.ping", "outcome": "success"}, ret + 3
    )
    assert (
        total(after, "salt_jobs_published_total", function="test.ping")
        - total(before, "salt_jobs_published_total", function="test.ping")
        == 1
    )
    assert (
        total(after, "salt_job_return_latency_seconds_count", function="test.ping")
        - total(before, "salt_job_return_latency_seconds_count", function="test.ping")
        == 3
    )


def test_find_job_probes(salt_lab: SaltLab, exporter: RunningDaemon) -> None:
    before = exporter.metrics()
    out = salt_lab.salt("*", "cmd.run", "sleep 8; echo hello", "-t", "3", timeout=120)
    assert out.stdout.count("hello") == 3, out.stdout
    ret = total(before, "salt_job_returns_total", function="cmd.run")
    after = settle(exporter, "salt_job_returns_total", {"function": "cmd.run"}, ret + 3)
    assert total(after, "salt_find_job_probes_total", function="cmd.run") > total(
        before, "salt_find_job_probes_total", function="cmd.run"
    )
    assert total(after, "salt_jobs_published_total", function="saltutil.find_job") == 0
    assert total(after, "salt_job_returns_total", function="saltutil.find_job") == 0
    assert (
        total(after, "salt_jobs_published_total", function="cmd.run")
        - total(before, "salt_jobs_published_total", function="cmd.run")
        == 1
    )
    assert total(after, "salt_job_minions_no_return_total") == total(
        before, "salt_job_minions_no_return_total"
    )


def test_killed_minion_reported_like_the_cli(salt_lab: SaltLab, exporter: RunningDaemon) -> None:
    victim = salt_lab.minion_ids[-1]
    before = exporter.metrics()
    proc = salt_lab.popen(
        "salt",
        "*",
        "cmd.run",
        "sleep 20; echo done",
        "-t",
        "5",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # Killed mid-job: once the job runs on the victim (its proc file for the job exists), not after a guess.
    wait_until(lambda: running_jobs(salt_lab, victim), 60, f"the cmd.run job running on {victim}")
    salt_lab.stop_minion(victim, kill=True)
    out, _ = proc.communicate(timeout=180)
    silent = dict(SILENT.findall(out))
    assert silent == {victim: "Not connected"}, out
    key, labels = "salt_job_minions_no_return_total", {"function": "cmd.run"}
    after = settle(exporter, key, labels, total(before, key, **labels) + 1)
    delta = {
        r: total(after, key, function="cmd.run", reason=r) - total(before, key, function="cmd.run", reason=r)
        for r in ("not_connected", "no_response", "no_key", "deadline")
    }
    assert delta == {"not_connected": 1, "no_response": 0, "no_key": 0, "deadline": 0}
    assert (
        total(after, "salt_job_returns_total", function="cmd.run")
        - total(before, "salt_job_returns_total", function="cmd.run")
        == 2
    )
    salt_lab.start_minion(victim)


def test_list_target_without_key(salt_lab: SaltLab, exporter: RunningDaemon) -> None:
    before = exporter.metrics()
    out = salt_lab.salt("-L", f"nosuch,{salt_lab.minion_ids[0]}", "test.ping", timeout=60)
    assert "nosuch" in dict(SILENT.findall(out.stdout)), out.stdout
    key = "salt_job_minions_no_return_total"
    after = settle(exporter, key, {"reason": "no_key"}, total(before, key, reason="no_key") + 1)
    assert (
        total(after, key, function="test.ping", reason="no_key")
        - total(before, key, function="test.ping", reason="no_key")
        == 1
    )


def test_state_apply_with_failing_state(salt_lab: SaltLab, exporter: RunningDaemon) -> None:
    salt_lab.write_state("e2efail", FAILING_STATE.format(root=salt_lab.root))
    before = exporter.metrics()
    out = salt_lab.salt("*", "state.apply", "e2efail", timeout=180)
    assert out.stdout.count("Failed:    1") == 3, out.stdout
    key = "salt_job_return_failures_total"
    after = settle(
        exporter,
        key,
        {"function": "state.apply", "reason": "state"},
        total(before, key, function="state.apply", reason="state") + 3,
    )
    for result, n in (("failed", 3), ("succeeded", 6)):
        assert (
            total(after, "salt_state_results_total", function="state.apply", result=result)
            - total(before, "salt_state_results_total", function="state.apply", result=result)
            == n
        )


def test_schedule_async_batch_runner(salt_lab: SaltLab, exporter: RunningDaemon) -> None:
    m1 = salt_lab.minion_ids[0]
    before = exporter.metrics()
    salt_lab.salt(m1, "schedule.add", "e2e_ping", "function=test.ping", "seconds=2", timeout=60)
    key = "salt_job_returns_unpublished_total"
    settle(exporter, key, {"kind": "scheduled"}, total(before, key, kind="scheduled") + 1)
    salt_lab.salt(m1, "schedule.delete", "e2e_ping", timeout=60)

    out = salt_lab.salt("--async", "*", "test.sleep", "1", timeout=60)
    assert "job ID" in out.stdout
    settle(
        exporter,
        "salt_job_returns_total",
        {"function": "test.sleep"},
        total(before, "salt_job_returns_total", function="test.sleep") + 3,
    )

    mid = exporter.metrics()
    out = salt_lab.salt("-b", "1", "*", "test.version", timeout=120)
    assert out.returncode == 0, out.stdout
    after = settle(
        exporter,
        "salt_job_returns_total",
        {"function": "test.version"},
        total(mid, "salt_job_returns_total", function="test.version") + 3,
    )
    published = total(after, "salt_jobs_published_total", function="test.version") - total(
        mid, "salt_jobs_published_total", function="test.version"
    )
    # 3008 publishes every sub-batch under one jid (one job); 3006 gives each sub-batch its own jid.
    assert published == (1 if salt_lab.version.startswith("3008") else 3)

    salt_lab.salt_run("jobs.active", timeout=60)
    settle(
        exporter,
        "salt_runner_returns_total",
        {"function": "runner.jobs.active"},
        total(before, "salt_runner_returns_total", function="runner.jobs.active") + 1,
    )
    final = exporter.metrics()
    assert total(final, "salt_job_minions_no_return_total") == total(
        before, "salt_job_minions_no_return_total"
    )


@pytest.mark.parametrize("kill", [True, False], ids=["sigkill", "clean-stop"])
def test_master_restart(salt_lab: SaltLab, exporter: RunningDaemon, kill: bool) -> None:
    before = exporter.metrics()
    salt_lab.stop_master(kill=kill)
    deadline = time.monotonic() + 20
    while exporter.get("/-/ready").status_code != 503:
        assert time.monotonic() < deadline, "ready should drop when the master dies"
        time.sleep(0.1)
    salt_lab.start_master()
    after = exporter.wait_for("salt_exporter_bus_connected", 1, timeout=30)
    assert exporter.get("/-/ready").status_code == 200
    assert after["salt_exporter_bus_reconnects_total"] == before["salt_exporter_bus_reconnects_total"] + 1
    salt_lab.wait_ready()
    ret = total(after, "salt_job_returns_total", function="test.ping")
    salt_lab.salt("*", "test.ping", timeout=60)
    final = settle(exporter, "salt_job_returns_total", {"function": "test.ping"}, ret + 3)
    for key, val in before.items():
        if key.split("{")[0].endswith("_total") and not key.startswith("salt_exporter_build"):
            assert final.get(key, 0.0) >= val, f"{key} went backwards"
