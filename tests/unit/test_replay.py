"""Replays of real-master recordings: golden expositions, and the salt CLI's own output as the oracle.

Fixtures are recorded by scripts/record-fixtures from real masters (tests/fixtures/README.md). A capture
without its `.prom` golden fails; set UPDATE_GOLDEN=1 to (re)write the goldens after recording or after an
intended change, and review the diff. Counts the CLI output does not show (find_job probes, scheduled
returns) come from decoding the capture independently, with plain `msgpack`, not the exporter's decoder.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from exporter.replay import replay
from tests.helpers import check_golden, samples, settings

FIXTURES = Path(__file__).parents[1] / "fixtures"
CAPTURES = sorted(FIXTURES.glob("*/*.bin"))
VERSIONS = sorted({p.parent.name for p in CAPTURES})
SCENARIOS = ("ping", "find_job", "killed_minion", "no_key", "state_fail", "schedule", "async_batch", "runner")
SILENT = re.compile(r"Minion did not return\. \[(Not connected|No response)\]")
MINION_HEADER = re.compile(r"^(lab-minion-\d+|nosuch):\s*$")
STATE_SUMMARY = re.compile(r"^(Succeeded|Failed):\s+(\d+)", re.MULTILINE)
# Lines that depend on the machine, not on the capture.
VOLATILE = ("salt_exporter_build_info",)


def run(path: Path, **overrides: object) -> str:
    out = io.StringIO()
    replay(settings(**overrides), str(path), out=out)
    return out.getvalue()


def stable(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(VOLATILE)) + "\n"


def bus_events(capture: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(tag, data) of every event in a capture, decoded with plain msgpack: independent of the exporter.

    A frame is a msgpack map whose `body` is `tag + b"\\n\\n" + msgpack(data)`; 3006.26+ puts a 4-byte
    big-endian length before every frame, so a capture starting with a fixmap byte is unprefixed.
    """
    raw = capture.read_bytes()
    frames: list[dict[bytes, Any]] = []
    if 0x80 <= raw[0] <= 0x8F:
        frames = list(msgpack.Unpacker(io.BytesIO(raw), raw=True))
    else:
        offset = 0
        while offset < len(raw):
            size = int.from_bytes(raw[offset : offset + 4], "big")
            frames.append(msgpack.unpackb(raw[offset + 4 : offset + 4 + size], raw=True))
            offset += 4 + size
        assert offset == len(raw), f"{capture}: truncated length-prefixed frame"
    for frame in frames:
        tag, _, payload = frame[b"body"].partition(b"\n\n")
        yield tag.decode(), msgpack.unpackb(payload, raw=False, strict_map_key=False)


def job_events(capture: Path) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Publishes by jid (`salt/job/<jid>/new`) and returns (`salt/job/<jid>/ret/<minion>`) of a capture."""
    published: dict[str, dict[str, Any]] = {}
    returns: list[dict[str, Any]] = []
    for tag, data in bus_events(capture):
        parts = tag.split("/")
        if len(parts) == 4 and parts[:2] == ["salt", "job"] and parts[3] == "new":
            published[parts[2]] = data
        elif len(parts) == 5 and parts[:2] == ["salt", "job"] and parts[3] == "ret":
            returns.append({**data, "jid": parts[2]})
    return published, returns


def cli_oracle(cli_text: str) -> tuple[set[str], dict[str, str]]:
    """Minions the CLI printed a result for, and the silent ones with the CLI's reason."""
    headers: list[str] = []
    silent: dict[str, str] = {}
    current = None
    for line in cli_text.splitlines():
        match = MINION_HEADER.match(line)
        if match:
            current = match.group(1)
            headers.append(current)
            continue
        reason = SILENT.search(line)
        if reason and current:
            silent[current] = reason.group(1)
    return set(headers) - set(silent), silent


def test_fixtures_exist_for_two_framings() -> None:
    versions = {p.parent.name for p in CAPTURES}
    assert {"3006.29", "3006.30", "3007.16", "3007.17", "3008.4", "3008.5"} <= versions
    for version in versions:
        assert {p.stem for p in (FIXTURES / version).glob("*.bin")} == set(SCENARIOS), version
    for version in ("3006.29", "3006.30"):
        assert (FIXTURES / version / "ping.bin").read_bytes()[:1] == b"\x00"  # 4-byte length prefix
    for version in ("3007.16", "3007.17", "3008.4", "3008.5"):
        assert (FIXTURES / version / "ping.bin").read_bytes()[:1] == b"\x82"  # plain msgpack map


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_golden_exposition(capture: Path) -> None:
    text = stable(run(capture))
    check_golden(capture.with_suffix(".prom"), text)
    again = stable(run(capture))
    assert again == text, "replay must be deterministic"
    m = samples(text)
    assert sum(v for k, v in m.items() if k.startswith("salt_exporter_decode_errors_total")) == 0


@pytest.mark.parametrize(
    "capture",
    [p for p in CAPTURES if p.stem in ("ping", "find_job", "killed_minion", "no_key", "state_fail")],
    ids=lambda p: f"{p.parent.name}-{p.stem}",
)
def test_matches_what_the_cli_printed(capture: Path) -> None:
    """One `salt` command per scenario: our returns and verdicts are what the CLI printed."""
    returned, silent = cli_oracle(capture.with_suffix(".cli.txt").read_text())
    m = samples(run(capture))
    returns = sum(v for k, v in m.items() if k.startswith("salt_job_returns_total{"))
    assert returns == len(returned)
    by_reason = {
        r: sum(
            v
            for k, v in m.items()
            if k.startswith("salt_job_minions_no_return_total{") and f'reason="{r}"' in k
        )
        for r in ("not_connected", "no_response", "no_key", "deadline")
    }
    assert by_reason["not_connected"] == sum(1 for r in silent.values() if r == "Not connected")
    # The CLI prints [No response] both for a connected-but-silent minion and for an id without a key.
    assert by_reason["no_response"] + by_reason["no_key"] == sum(
        1 for r in silent.values() if r == "No response"
    )
    assert by_reason["deadline"] == 0
    assert m["salt_jobs_in_flight"] == 0


def fixture(version: str, name: str) -> Path:
    path = FIXTURES / version / f"{name}.bin"
    if not path.exists():
        pytest.fail(f"missing fixture {path}: record it with scripts/record-fixtures")
    return path


@pytest.mark.parametrize("version", VERSIONS)
def test_find_job_probes_linked_not_counted_as_jobs(version: str) -> None:
    capture = fixture(version, "find_job")
    m = samples(run(capture))
    published, returns = job_events(capture)
    probes = {jid for jid, data in published.items() if data.get("fun") == "saltutil.find_job"}
    answers = [r for r in returns if r["jid"] in probes]
    running = sum(1 for r in answers if r.get("return"))
    assert probes and running >= 3, "the recording must hold a probe answered by every minion"
    assert m['salt_find_job_probes_total{function="cmd.run"}'] == len(probes)
    assert m['salt_find_job_answers_total{answer="running",function="cmd.run"}'] == running
    assert m.get('salt_find_job_answers_total{answer="not_running",function="cmd.run"}', 0) == (
        len(answers) - running
    )
    assert not any(
        "saltutil.find_job" in k for k in m if k.startswith(("salt_jobs_published", "salt_job_returns"))
    )
    assert m['salt_jobs_published_total{function="cmd.run",tgt_type="glob"}'] == 1
    assert m['salt_job_returns_total{function="cmd.run",outcome="success"}'] == 3
    assert not any(k.startswith("salt_job_minions_no_return_total{") for k in m)


@pytest.mark.parametrize("version", VERSIONS)
def test_killed_minion_is_the_only_silent_one(version: str) -> None:
    text = run(fixture(version, "killed_minion"))
    m = samples(text)
    assert m['salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}'] == 1
    assert m['salt_job_returns_total{function="cmd.run",outcome="success"}'] == 2
    # The verdict lands when the CLI gave up: within a few seconds of its elapsed time.
    cli = fixture(version, "killed_minion").with_suffix(".cli.txt").read_text()
    elapsed = float(re.search(r"elapsed=([\d.]+)s", cli).group(1))  # type: ignore[union-attr]
    assert abs(m['salt_job_duration_seconds_sum{function="cmd.run"}'] - elapsed) < 3.0


@pytest.mark.parametrize("version", VERSIONS)
def test_state_failure_counted_with_reason(version: str) -> None:
    capture = fixture(version, "state_fail")
    m = samples(run(capture))
    # The CLI's per-minion summaries ("Succeeded: 2 (changed=2)", "Failed:    1") are the exact counts.
    summary = {"Succeeded": 0, "Failed": 0}
    for kind, count in STATE_SUMMARY.findall(capture.with_suffix(".cli.txt").read_text()):
        summary[kind] += int(count)
    assert summary == {"Succeeded": 6, "Failed": 3}
    assert m['salt_job_return_failures_total{function="state.apply",reason="state"}'] == 3
    assert m['salt_state_results_total{function="state.apply",result="failed"}'] == summary["Failed"]
    assert m['salt_state_results_total{function="state.apply",result="succeeded"}'] == summary["Succeeded"]
    assert m['salt_state_run_duration_seconds_count{function="state.apply"}'] == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_schedule_async_batch_runner_families(version: str) -> None:
    capture = fixture(version, "schedule")
    sched = samples(run(capture))
    published, returns = job_events(capture)
    unpublished = [r for r in returns if r["jid"] not in published]
    for fun in ("test.ping", "test.retcode"):
        scheduled = sum(1 for r in unpublished if r.get("fun") == fun and r.get("schedule"))
        assert scheduled >= 2, f"the recording must hold scheduled {fun} returns"
        assert sched[f'salt_job_returns_unpublished_total{{function="{fun}",kind="scheduled"}}'] == scheduled
    salt_call = [r for r in unpublished if not r.get("schedule")]
    assert [r.get("fun") for r in salt_call] == ["test.ping"]
    assert sched['salt_job_returns_unpublished_total{function="test.ping",kind="salt_call"}'] == 1
    batch = samples(run(fixture(version, "async_batch")))
    assert batch['salt_job_returns_total{function="test.sleep",outcome="success"}'] == 3
    assert batch['salt_jobs_published_total{function="test.sleep",tgt_type="glob"}'] == 1
    assert not any(k.startswith("salt_job_minions_no_return_total{") for k in batch)
    runner = samples(run(fixture(version, "runner")))
    assert runner['salt_runner_jobs_total{function="runner.jobs.active"}'] == 1
    assert runner['salt_runner_returns_total{function="runner.manage.up",outcome="success"}'] == 1
