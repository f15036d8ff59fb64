"""Run the real daemon as a subprocess on a free port and scrape it over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import samples

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).parent / "salt-event-exporter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningDaemon:
    def __init__(self, *args: str, env: dict[str, str] | None = None, scheme: str = "http") -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(
            [EXE, "--web.listen-address", f"127.0.0.1:{self.port}", "--log.format", "json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=ROOT,
        )
        self.wait_http()

    def wait_http(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("daemon did not listen")

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def metrics(self) -> dict[str, float]:
        return samples(self.get("/metrics").text)

    def wait_for(self, key: str, at_least: float, timeout: float = 20.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            if m.get(key, 0.0) >= at_least:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{key} = {m.get(key)} after {timeout}s, wanted >= {at_least}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err
