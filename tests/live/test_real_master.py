"""The live view in a terminal on a REAL master's bus while a minion is killed mid-job: its row shows the
minion and the reason the `salt` CLI printed for it. One lab per Salt version (tests/e2e/conftest.py)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from lab.saltlab import SaltLab, SaltUnavailable, ensure_salt
from tests.e2e.conftest import salt_versions, started_lab
from tests.helpers import running_jobs, wait_until
from tests.live.oracle import REASONS, parse_output
from tests.live.terminal import Terminal, uv

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=salt_versions(), ids=lambda v: f"salt-{v}")
def salt_lab(request: pytest.FixtureRequest) -> Iterator[SaltLab]:
    version: str = request.param
    try:
        venv = ensure_salt(version)
    except SaltUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Salt {version} cannot be installed (CI=true, not skipping): {exc}")
        pytest.skip(f"Salt {version} cannot be installed: {exc}")
    lab = started_lab(version, venv)
    try:
        yield lab
    finally:
        lab.close()


def test_killed_minion_mid_job_shows_the_cli_reason(salt_lab: SaltLab) -> None:
    victim = salt_lab.minion_ids[-1]
    term = Terminal(
        [
            uv(),
            "run",
            "salt-event-exporter",
            "top",
            "--bus",
            salt_lab.bus_path,
            "--timeout",
            "5",
            "--gather-job-timeout",
            "10",
            "--reconnect.max-backoff",
            "1",
        ]
    )
    try:
        term.wait_for(lambda s: re.search(r"(?<!NOT )connected", s), 30, "the view connected to the bus")
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
        term.wait_for(
            lambda s: re.search(r"cmd\.run\s+\*\s+0/3\s+3\s+0\s+0\s+0\s+running", s), 30, "the job in flight"
        )
        wait_until(lambda: running_jobs(salt_lab, victim), 60, f"the cmd.run job running on {victim}")
        salt_lab.stop_minion(victim, kill=True)
        out, _ = proc.communicate(timeout=180)
        cli = parse_output("cmd.run", out)
        assert set(cli.silent) == {victim}, out
        reason = REASONS[cli.silent[victim]]
        screen = term.wait_for(f"{victim}: {reason}", 60, f"{victim} with the CLI's reason ({reason})")
        row = next(line for line in screen.splitlines() if "cmd.run" in line and victim in line)
        assert re.search(r"\b2/3\s+0\s+0\s+1\s+\d+\s+silent", row), row
        term.keys("Enter")
        screen = term.wait_for("minion filter:", 10, "the job screen")
        rows = {
            line.split()[0]: line.split()
            for line in screen.splitlines()
            if line.strip().startswith("lab-minion")
        }
        assert rows[victim][1:4] == ["silent", "-", reason], screen
        assert {m for m, r in rows.items() if r[1] == "ok"} == cli.returned
        term.keys("q")
        assert term.exit_code(20) == 0
    finally:
        term.close()
        salt_lab.start_minion(victim)
