"""What the `salt` CLI printed for a recorded scenario (`tests/fixtures/<version>/<scenario>.cli.txt`).

Parsed here with nothing from the exporter: the oracle the live view and the job log are compared to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).parents[1] / "fixtures"
MINION_HEADER = re.compile(r"^([A-Za-z0-9][\w.-]*):\s*$")
SILENT = re.compile(r"Minion did not return\. \[(Not connected|No response)\]")
FAILED = re.compile(r"^Failed:\s+(\d+)", re.MULTILINE)
COMMAND = re.compile(r"^\$ salt (.*)$", re.MULTILINE)
# The CLI's words for a silent minion, as the exporter's reasons (an id without a key: no_key).
REASONS = {"Not connected": "not_connected", "No response": "no_response"}


@dataclass
class CliRun:
    command: str
    returned: set[str] = field(default_factory=set)
    silent: dict[str, str] = field(default_factory=dict)  # minion -> the CLI's words
    failed: int = 0  # minions whose state summary shows failed states

    @property
    def targeted(self) -> int:
        return len(self.returned) + len(self.silent)


def cli_run(version: str, scenario: str) -> CliRun:
    """The one `salt` command of a single-command scenario and what it printed per minion."""
    text = (FIXTURES / version / f"{scenario}.cli.txt").read_text()
    commands = COMMAND.findall(text)
    assert len(commands) == 1, f"{scenario}: one salt command expected, got {commands}"
    return parse_output(commands[0], text.split(commands[0], 1)[1])


def parse_output(command: str, output: str) -> CliRun:
    run = CliRun(command)
    headers: list[str] = []
    current = None
    for line in output.splitlines():
        match = MINION_HEADER.match(line)
        if match:
            current = match.group(1)
            headers.append(current)
            continue
        reason = SILENT.search(line)
        if reason and current:
            run.silent[current] = reason.group(1)
    run.returned = set(headers) - set(run.silent)
    run.failed = sum(1 for n in FAILED.findall(output) if int(n) > 0)
    return run


def capture(version: str, scenario: str) -> Path:
    return FIXTURES / version / f"{scenario}.bin"
