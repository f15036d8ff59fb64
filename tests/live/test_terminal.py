"""The live view in a real terminal (tmux): `uv run salt-event-exporter top` on a real-master recording,
read back with capture-pane, driven with send-keys; and `record` logging in the console format there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live.oracle import REASONS, capture, cli_run
from tests.live.terminal import Terminal, uv

VERSIONS = ("3008.4", "3006.29")


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_killed_minion_row_shows_the_cli_reason(version: str, terminals: list[Terminal]) -> None:
    cli = cli_run(version, "killed_minion")
    ((victim, words),) = cli.silent.items()
    reason = REASONS[words]  # [Not connected] -> not_connected
    term = Terminal(
        [
            uv(),
            "run",
            "salt-event-exporter",
            "top",
            "--bus",
            str(capture(version, "killed_minion")),
            "--speed",
            "10",
        ]
    )
    terminals.append(term)
    # While it replays: the job is in flight, nobody returned yet.
    term.wait_for(lambda s: re.search(r"cmd\.run\s+\*\s+0/3\s+3\s", s), 30, "the job in flight")
    screen = term.wait_for(f"{victim}: {reason}", 30, f"{victim}'s verdict")
    row = next(line for line in screen.splitlines() if "cmd.run" in line and victim in line)
    assert re.search(r"\b2/3\s+0\s+0\s+1\s+3\s+silent", row), (
        row
    )  # returned 2/3, 0 pending, 0 failed, 1 silent, 3 probes
    assert "presence lost: " + victim in screen
    term.keys("Enter")
    screen = term.wait_for("minion filter:", 10, "the job screen")
    lines = {
        line.split()[0]: line.split() for line in screen.splitlines() if line.strip().startswith("lab-minion")
    }
    assert set(lines) == cli.returned | {victim}
    assert lines[victim][1:4] == ["silent", "-", reason]
    for minion in cli.returned:
        assert lines[minion][1] == "ok"
    term.keys("Escape")
    term.wait_for(lambda s: "minion filter:" not in s and "jobs in flight 0" in s, 10, "back to the jobs")
    term.keys("q")
    assert term.exit_code(20) == 0


def test_freeze_and_filter_keys_in_a_terminal(terminals: list[Terminal]) -> None:
    term = Terminal(
        [
            uv(),
            "run",
            "salt-event-exporter",
            "top",
            "--bus",
            str(capture("3008.4", "async_batch")),
            "--speed",
            "0",
        ]
    )
    terminals.append(term)
    term.wait_for("test.sleep", 30, "the jobs")
    term.keys("f")
    term.wait_for("enter to apply", 10, "the filter prompt")
    term.keys("-l", "test.sleep")
    term.keys("Enter")
    screen = term.wait_for("function=test.sleep", 10, "the function filter")
    assert " test.ping " not in screen
    term.keys("Space")
    term.wait_for("[FROZEN]", 10, "frozen")
    term.keys("Space", "c")
    screen = term.wait_for(lambda s: "[FROZEN]" not in s and "filter: none" in s, 10, "cleared")
    assert " test.ping " in screen
    term.keys("q")
    assert term.exit_code(20) == 0


def test_record_logs_in_the_console_format_on_a_terminal(tmp_path: Path, terminals: list[Terminal]) -> None:
    missing = tmp_path / "no-master" / "master_event_pub.ipc"
    term = Terminal(
        [
            uv(),
            "run",
            "salt-event-exporter",
            "record",
            "--bus",
            str(missing),
            "--output",
            str(tmp_path / "out.bin"),
        ]
    )
    terminals.append(term)
    screen = term.wait_for("bus_unavailable", 30, "the log line")
    line = next(line for line in screen.splitlines() if "bus_unavailable" in line)
    assert re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z \[warning\s*\] bus_unavailable\s+bus=", line), line
    assert not line.lstrip().startswith("{")  # not JSON
    term.keys("C-c")
    assert term.exit_code(20) == 0


def test_demo_shows_the_live_view(terminals: list[Terminal]) -> None:
    """`scripts/demo --replay --top`: the bundled real capture in the live view; --duration closes it."""
    term = Terminal(
        [
            uv(),
            "run",
            "python",
            "-m",
            "lab.demo",
            "--replay",
            "--top",
            "--duration",
            "8",
            "--web.listen-address",
            "127.0.0.1:0",
        ]
    )
    terminals.append(term)
    screen = term.wait_for(
        lambda s: "jobs in flight" in s and re.search(r"\d+/\d+", s), 30, "jobs in the view"
    )
    assert "demo.bin" in screen and "recording x1" in screen
    assert term.exit_code(60) == 0
