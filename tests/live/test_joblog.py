"""`--log.jobs`: the daemon on a real-master recording logs one JSON record per finished job, with the
counts and verdicts the `salt` CLI printed, and never a payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import wire
from tests.daemon import RunningDaemon
from tests.helpers import wait_until
from tests.live.oracle import REASONS, capture, cli_run

SCENARIOS = ("ping", "find_job", "killed_minion", "no_key", "state_fail")
VERSIONS = ("3008.4", "3006.29")
CANARY = "canary-5f1e9b2c-never-log-me"


def job_records(path: Path, *extra: str) -> tuple[list[dict[str, Any]], str]:
    """Run the daemon on a recording with --log.jobs until it has read all of it, stop it (it drains what
    it read), and return the job records and the whole log."""
    daemon = RunningDaemon("--bus", str(path), "--log.jobs", *extra)
    size = path.stat().st_size
    wait_until(
        lambda: daemon.metrics().get("salt_exporter_bus_bytes_total", 0) >= size, 30, "the recording read"
    )
    code, err = daemon.stop()
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert len(records) == len(err.splitlines()), f"every log line is a JSON record:\n{err}"
    return [r for r in records if r["event"].startswith("job_")], err


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_one_record_per_job_matches_the_cli(version: str, scenario: str) -> None:
    cli = cli_run(version, scenario)
    jobs, _ = job_records(capture(version, scenario))
    assert len(jobs) == 1, jobs
    job = jobs[0]
    assert job["event"] == "job_finished"
    assert job["status"] == "closed"
    assert job["level"] == "info"
    assert job["function"] in cli.command
    assert job["jid"].isdigit() and len(job["jid"]) == 20
    assert job["targeted"] == cli.targeted
    assert job["returned"] == len(cli.returned)
    assert job["silent"] == len(cli.silent)
    assert job["failed"] == cli.failed
    assert job["duration"] >= 0
    silent = job.get("silent_minions", {})
    assert set(silent) == set(cli.silent)
    for minion, words in cli.silent.items():
        # The CLI prints [No response] for an id without a key too: the exporter names that no_key.
        expected = {"no_key", "no_response"} if words == "No response" else {REASONS[words]}
        assert silent[minion] in expected, (minion, silent[minion], words)
    if scenario == "find_job":
        assert job["probes"] >= 1
    if scenario == "killed_minion":
        assert silent == {"lab-minion-03": "not_connected"}
        assert job["duration"] > 20  # publish to the verdict, as the CLI waited (35 s)


def test_no_payload_reaches_the_log(tmp_path: Path) -> None:
    """A canary in the publish's arg and pillar, the returns' fun_args and return, at debug level."""
    t = 1_700_000_000.0
    jid, later = "20231114221320000000", "20231114222000000000"
    pillar = {"db_password": CANARY, "note": CANARY}
    frames = [
        wire.wrap(
            wire.new(jid, "cmd.run", ["m1", "m2", "m3"], t, arg=[f"echo {CANARY}", {"pillar": pillar}])
        ),
        wire.wrap(wire.ret(jid, "m1", "cmd.run", t + 1, ret_value=CANARY, fun_args=[f"echo {CANARY}"])),
        wire.wrap(
            wire.ret(jid, "m2", "cmd.run", t + 2, retcode=1, ret_value={"out": CANARY}, fun_args=[CANARY])
        ),
        # Nobody probes: m3 gets the deadline verdict once a later event moves time past it.
        wire.wrap(wire.new(later, "test.ping", ["m1"], t + 400)),
        wire.wrap(wire.ret(later, "m1", "test.ping", t + 400.5)),
    ]
    path = tmp_path / "canary.bin"
    path.write_bytes(b"".join(frames))
    jobs, log = job_records(path, "--log.level", "debug", "--job-deadline", "60")
    assert CANARY not in log
    assert "echo" not in log
    by_fun = {j["function"]: j for j in jobs}
    assert by_fun["cmd.run"]["targeted"] == 3
    assert by_fun["cmd.run"]["returned"] == 2
    assert by_fun["cmd.run"]["failed"] == 1
    assert by_fun["cmd.run"]["silent_minions"] == {"m3": "deadline"}
    assert by_fun["test.ping"]["returned"] == 1


def test_many_silent_minions_are_counted_not_all_named(tmp_path: Path) -> None:
    t = 1_700_000_000.0
    jid, later = "20231114221320000000", "20231114222000000000"
    minions = [f"m{i:03}" for i in range(120)]
    frames = [
        wire.wrap(wire.new(jid, "test.ping", minions, t)),
        wire.wrap(wire.ret(jid, "m000", "test.ping", t + 1)),
        wire.wrap(wire.new(later, "test.ping", ["m000"], t + 400)),
    ]
    path = tmp_path / "many.bin"
    path.write_bytes(b"".join(frames))
    jobs, _ = job_records(path, "--job-deadline", "60")
    first = next(j for j in jobs if j["jid"] == jid)
    assert first["silent"] == 119
    assert first["silent_reasons"] == {"deadline": 119}
    assert len(first["silent_minions"]) == 50
    assert first["silent_minions_not_named"] == 69
    # The job still open at shutdown is logged as unfinished, with its pending minion.
    last = next(j for j in jobs if j["jid"] == later)
    assert last["event"] == "job_unfinished"
    assert last["pending"] == 1
