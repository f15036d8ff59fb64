"""Fixtures shared by every test package: a real OTLP receiver process; with CI=true, no test may skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[1]


class Receiver:
    def __init__(self, tmp: Path) -> None:
        self.out = tmp / "spans.jsonl"
        ports = tmp / "ports"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.traces.otlp_receiver", str(self.out), str(ports)], cwd=ROOT
        )
        deadline = time.monotonic() + 30
        while not ports.exists() or not ports.read_text().strip():
            assert self.proc.poll() is None, "receiver died"
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.05)
        http, grpc = ports.read_text().split()
        self.http = f"http://127.0.0.1:{http}"
        self.grpc = f"http://127.0.0.1:{grpc}"

    def spans(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def clear(self) -> None:
        self.out.unlink(missing_ok=True)

    def wait(self, predicate: Any, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            assert time.monotonic() < deadline, f"receiver got {len(spans)} spans, condition not met"
            time.sleep(0.2)


@pytest.fixture(scope="session")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    rec = Receiver(tmp_path_factory.mktemp("otlp"))
    yield rec
    rec.proc.terminate()
    rec.proc.wait(timeout=10)


# -- CI=true: a skip is a failure ------------------------------------------------------------------------
# A suite that skips what it cannot set up passes without testing anything. Under CI every skip (a marker, a
# fixture's pytest.skip, an importorskip at collection) fails the run with its test id and reason; xfail is
# not a skip and keeps its own meaning.

_CI_SKIPS: list[tuple[str, str]] = []


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if _ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report.longrepr)
        _CI_SKIPS.append((report.nodeid, reason))
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (a skip fails CI): {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    report = yield
    if _ci() and report.skipped:
        reason = _skip_reason(report.longrepr)
        _CI_SKIPS.append((report.nodeid, reason))
        report.outcome = "failed"
        report.longrepr = f"collection skipped under CI=true (a skip fails CI): {reason}"
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _CI_SKIPS:
        return
    terminalreporter.write_sep("=", f"CI=true: {len(_CI_SKIPS)} skip(s) turned into failures", red=True)
    for nodeid, reason in _CI_SKIPS:
        terminalreporter.write_line(f"SKIPPED-IN-CI {nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _CI_SKIPS and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
