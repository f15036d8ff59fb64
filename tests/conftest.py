"""Fixtures shared by every test package: a real OTLP receiver process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parents[2]


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
