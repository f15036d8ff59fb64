"""Replays of a real syndic topology: a master of masters (top-master, one direct minion) and a syndic master
(syndic-1, two minions), recorded on both buses at once by `scripts/record-fixtures --topology syndic`.

Oracles: what the top master's `salt` CLI printed, and times read straight from the recorded frames.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

from exporter.bus.frames import FrameDecoder
from exporter.replay import replay
from exporter.salt.stamps import parse_stamp
from exporter.sinks.traces import trace_id_for
from tests.helpers import check_golden, samples, settings
from tests.unit.test_replay import stable

ROOT = Path(__file__).parents[1] / "fixtures" / "syndic"
VERSIONS = sorted(p.name for p in ROOT.iterdir() if p.is_dir())
TOP_JOBS = ("mom_ping", "mom_find_job", "mom_killed_minion")
HEADER = re.compile(r"^((?:top|syn)-minion-\d+):\s*$")
SILENT = re.compile(r"Minion did not return\. \[(Not connected|No response)\]")


def capture(version: str, name: str, lower: bool = False) -> Path:
    path = ROOT / version / f"{name}{'.lower' if lower else ''}.bin"
    if not path.exists():
        pytest.fail(f"missing {path}: scripts/record-fixtures --topology syndic")
    return path


def metrics(path: Path, **overrides: Any) -> dict[str, float]:
    out = io.StringIO()
    replay(settings(**overrides), str(path), out=out)
    return samples(out.getvalue())


def cli(version: str, name: str) -> tuple[set[str], dict[str, str]]:
    """Minions the top master's CLI printed a result for, and the silent ones with its reason."""
    answered: set[str] = set()
    silent: dict[str, str] = {}
    current = None
    for line in capture(version, name).with_suffix(".cli.txt").read_text().splitlines():
        if match := HEADER.match(line):
            current = match.group(1)
            answered.add(current)
        elif (reason := SILENT.search(line)) and current:
            silent[current] = reason.group(1)
    return answered - set(silent), silent


def events(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(tag, data) of every recorded event, decoded independently of the exporter's parser."""
    out = []
    for body in FrameDecoder(pytest.fail).feed(path.read_bytes()):
        tag, _, data = body.partition(b"\n\n")
        out.append((tag.decode(), msgpack.unpackb(data, raw=False)))
    return out


def total(m: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in m.items() if k.startswith(prefix))


@pytest.mark.parametrize("name", TOP_JOBS)
@pytest.mark.parametrize("version", VERSIONS)
def test_top_master_matches_its_cli(version: str, name: str) -> None:
    """The top master's `new` lists syndic-1 as if it were a minion; its minions come from the syndic's
    announcement. Returns count once each, and the syndic itself is never a silent minion."""
    returned, silent = cli(version, name)
    m = metrics(capture(version, name))
    top_new = [d for t, d in events(capture(version, name)) if t.endswith("/new") and d["fun"] == "cmd.run"]
    assert all("syndic-1" in d["minions"] for d in top_new)  # the recorded fact this handles
    assert total(m, "salt_job_returns_total{") == len(returned)
    assert total(m, "salt_job_minions_targeted_total{") == len(returned) + len(silent) == 3
    assert m['salt_syndic_minions_targeted_total{syndic="syndic-1"}'] == 2
    assert total(m, "salt_job_minions_no_return_total{") == len(silent)
    no_response = total(m, "salt_job_minions_no_return_total{") - total(
        m, 'salt_job_minions_no_return_total{function="cmd.run",reason="not_connected"}'
    )
    assert no_response == sum(1 for r in silent.values() if r == "No response")
    assert total(m, "salt_job_returns_unpublished_total{") == 0
    assert total(m, "salt_job_duplicate_returns_total{") == 0
    assert m["salt_jobs_in_flight"] == 0 and m["salt_job_minions_pending"] == 0
    assert m['salt_syndic_events_total{syndic="syndic-1"}'] >= 2


@pytest.mark.parametrize("version", VERSIONS)
def test_duration_ends_at_the_last_return_of_a_syndic_minion(version: str) -> None:
    """Without the syndic's announcement the job closed at the direct minion's return; it must end at the
    last return of all three minions, read straight from the frames."""
    for name in ("mom_ping", "mom_find_job"):
        recorded = events(capture(version, name))
        fun = "test.ping" if name == "mom_ping" else "cmd.run"
        new = next(d for t, d in recorded if t.endswith("/new") and d["fun"] == fun)
        last = max(
            stamp(d) for t, d in recorded if t.startswith(f"salt/job/{new['jid']}/ret/") and d["fun"] == fun
        )
        m = metrics(capture(version, name))
        assert m[f'salt_job_duration_seconds_sum{{function="{fun}"}}'] == pytest.approx(
            last - stamp(new), abs=1e-3
        )


@pytest.mark.parametrize("version", VERSIONS)
def test_silent_syndic_minion_verdict_when_the_top_cli_gave_up(version: str) -> None:
    """A master of masters' CLI waits `syndic_wait` longer per find_job round."""
    text = capture(version, "mom_killed_minion").with_suffix(".cli.txt").read_text()
    elapsed = float(re.search(r"elapsed=([\d.]+)s", text).group(1))  # type: ignore[union-attr]
    m = metrics(capture(version, "mom_killed_minion"))
    assert m['salt_job_minions_no_return_total{function="cmd.run",reason="no_response"}'] == 1
    assert abs(m['salt_job_duration_seconds_sum{function="cmd.run"}'] - elapsed) < 3.0
    early = metrics(capture(version, "mom_killed_minion"), syndic_wait=0.0)
    assert m['salt_job_duration_seconds_sum{function="cmd.run"}'] - early[
        'salt_job_duration_seconds_sum{function="cmd.run"}'
    ] == pytest.approx(5.0, abs=0.5)


@pytest.mark.parametrize("version", VERSIONS)
def test_presence_is_the_top_master_s_own(version: str) -> None:
    """The syndic master's presence events arrive under the plain tag too, each followed by its
    `syndic/syndic-1/` copy: the gauge must show the top master's own list (top-minion-01, syndic-1)."""
    recorded = events(capture(version, "mom_killed_minion"))
    own = [d["present"] for t, d in recorded if t == "salt/presence/present" and "syndic-1" in d["present"]]
    foreign = [d for t, d in recorded if t == "syndic/syndic-1/salt/presence/change"]
    assert own and foreign  # both kinds are in the recording
    m = metrics(capture(version, "mom_killed_minion"))
    assert m["salt_presence_minions"] == len(own[-1]) == 2
    # syn-minion-02's loss happened on the syndic master, not here
    assert total(m, "salt_presence_changes_total{") == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_jobs_of_the_syndic_master_itself(version: str) -> None:
    """A job published on syndic-1: its returns reach the top master without a publish (kind syndic); the
    syndic master's exporter counts the job itself."""
    top = metrics(capture(version, "mom_lower_job"))
    assert top['salt_job_returns_unpublished_total{function="test.ping",kind="syndic"}'] == 2
    assert total(top, "salt_jobs_published_total{") == 0
    lower = metrics(capture(version, "mom_lower_job", lower=True))
    assert lower['salt_jobs_published_total{function="test.ping",tgt_type="glob"}'] == 1
    assert lower['salt_job_returns_total{function="test.ping",outcome="success"}'] == 2
    assert total(lower, "salt_job_returns_unpublished_total{") == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_the_syndic_master_s_exporter_sees_its_own_minions(version: str) -> None:
    """One exporter per master: on syndic-1 the relayed job is an ordinary job of two minions, under the
    same jid as on the top master (so both exporters' spans land in one trace)."""
    top_jids = {d["jid"] for t, d in events(capture(version, "mom_find_job")) if t.endswith("/new")}
    lower_events = events(capture(version, "mom_find_job", lower=True))
    lower_jids = {d["jid"] for t, d in lower_events if t.endswith("/new") and d["fun"] == "cmd.run"}
    assert lower_jids and lower_jids <= top_jids
    assert {trace_id_for(j) for j in lower_jids} <= {trace_id_for(j) for j in top_jids}
    m = metrics(capture(version, "mom_find_job", lower=True))
    assert m['salt_job_returns_total{function="cmd.run",outcome="success"}'] == 2
    assert m['salt_job_minions_targeted_total{function="cmd.run"}'] == 2
    assert total(m, "salt_job_minions_no_return_total{") == 0
    assert total(m, "salt_syndic_events_total{") == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_list_target_names_the_syndics_minions_as_missing(version: str) -> None:
    """`salt --static` runs as a batch: a discovery ping, then the job on a list of the minions that
    answered. The top master has no keys for the syndic's minions and lists them as `missing`; they are
    not no_key, the syndic runs them. On the syndic master the relayed list names top-minion-01 as missing:
    no_key there unless --syndic-master says that this master relays jobs."""
    recorded = events(capture(version, "mom_static"))
    listed = [
        d for t, d in recorded if t.endswith("/new") and d["tgt_type"] == "list" and d["fun"] == "test.ping"
    ]
    assert listed and set(listed[0]["missing"]) == {"syn-minion-01", "syn-minion-02"}  # the recorded fact
    first_new = next(i for i, (t, _) in enumerate(recorded) if t.endswith("/new"))
    known_early = any(t.startswith("syndic/syndic-1/") for t, _ in recorded[:first_new])
    m = metrics(capture(version, "mom_static"))
    assert total(m, "salt_job_returns_total{") == 6
    assert total(m, "salt_job_minions_no_return_total{") == 0
    assert total(m, "salt_job_late_returns_total{") == 0
    assert m['salt_job_minions_targeted_total{function="test.ping"}'] == 6 + (0 if known_early else 1)
    assert m['salt_syndic_minions_targeted_total{syndic="syndic-1"}'] == 4
    lower = capture(version, "mom_static", lower=True)
    assert metrics(lower)['salt_job_minions_no_return_total{function="test.ping",reason="no_key"}'] == 1
    relaying = metrics(lower, syndic_master=True)
    assert total(relaying, "salt_job_minions_no_return_total{") == 0
    assert relaying['salt_job_minions_targeted_total{function="test.ping"}'] == 4
    assert relaying['salt_job_returns_total{function="test.ping",outcome="success"}'] == 4


@pytest.mark.parametrize("path", sorted(ROOT.glob("*/*.bin")), ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_golden_exposition(path: Path) -> None:
    out = io.StringIO()
    replay(settings(), str(path), out=out)
    text = stable(out.getvalue())
    check_golden(path.with_suffix(".prom"), text)
    assert total(samples(text), "salt_exporter_decode_errors_total") == 0


def stamp(data: dict[str, Any]) -> float:
    value = parse_stamp(data["_stamp"])
    assert value is not None
    return value
