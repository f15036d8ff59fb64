"""The README's first command, as a user runs it: `./scripts/demo` against the real master it starts.

One cycle (`--duration 1` stops after the first): a ping, a probed cmd.run, a state run with a failing
state, and a cmd.run with a minion killed under it. The oracle is the Salt CLI's own output, printed by the
demo in the same run: every minion the CLI says did not return, with its bracketed reason, is counted by
the exporter under that reason.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.daemon import free_port
from tests.e2e.conftest import salt_versions

pytestmark = pytest.mark.e2e

DEMO = str(Path(__file__).parents[2] / "scripts" / "demo")
CLI_REASONS = {"Not connected": "not_connected", "No response": "no_response"}


def _summary(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", line))


def test_the_demo_runs_jobs_on_a_real_master_and_agrees_with_the_cli() -> None:
    port = free_port()
    proc = subprocess.run(
        [
            DEMO,
            "--salt-version",
            salt_versions()[0],  # the README's command runs 3008.4, the first of the default versions
            "--duration",
            "1",
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert f"http://127.0.0.1:{port}/metrics" in out

    summaries = [_summary(line) for line in out.splitlines() if line.strip().startswith("jobs=")]
    assert len(summaries) == 4, out  # after the ping, the probed cmd.run, the state run, the killed minion
    first = summaries[0]
    assert int(first["jobs"]) >= 1 and int(first["returns"]) >= 3 and first["connected"] == "yes", out
    assert int(summaries[1]["find_job_probes"]) >= 1, out  # `-t 3` under a 7 s command: the CLI probed
    assert int(summaries[2]["failed"]) >= 3, out  # the failing state, on each of the three minions

    # The kill round comes last; by then the exporter has given its verdicts (the demo waits for them). Every
    # minion the CLI said did not return, in the whole run, is counted under the reason the CLI printed.
    said = re.findall(r"Minion did not return\. \[([^\]]+)\]", out)
    assert "killed: expect a did-not-return" in out and said, out
    expected: dict[str, int] = {}
    for reason in said:
        expected[CLI_REASONS[reason]] = expected.get(CLI_REASONS[reason], 0) + 1
    _, _, after_kill = out.partition("killed: expect a did-not-return")
    line = next(x for x in after_kill.splitlines() if x.strip().startswith("jobs="))
    counted = {reason: int(n) for reason, n in re.findall(r"(\w+): (\d+)", line.partition("no_return=")[2])}
    assert counted == expected, (line, said)
