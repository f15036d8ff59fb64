"""Shared test helpers: a core built from default settings, parsed exposition samples, goldens."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import config
from exporter.app import Core, build_core


def settings(**overrides: Any) -> config.Settings:
    """Defaults with some settings changed, by attribute name (`metrics_max_functions=5`)."""
    return config.defaults().replace(**overrides)


def make_core(clock: Any = None, **overrides: Any) -> Core:
    return build_core(settings(**overrides), clock, environ={})


def samples(exposition: bytes | str) -> dict[str, float]:
    """`name{a="x",b="y"}` (labels sorted) -> value. Override keys: `__` for `.`, `_` for `-`."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def value(core_or_text: Core | bytes | str, key: str) -> float:
    text = core_or_text.exposition() if isinstance(core_or_text, Core) else core_or_text
    return samples(text).get(key, 0.0)


def check_golden(golden: Path, text: str) -> None:
    """`text` must equal the reviewed golden file; UPDATE_GOLDEN=1 (re)writes it, a missing one fails."""
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    elif not golden.exists():
        pytest.fail(f"no golden {golden}: run with UPDATE_GOLDEN=1 once after recording, and review it")
    assert text == golden.read_text(), f"{golden} changed; UPDATE_GOLDEN=1 if intended"


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (returned); fail naming `what` after `timeout` s.

    For tests that would otherwise sleep and hope: wait for the condition itself, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        time.sleep(interval)


class LogTail:
    """Reads a process's log pipe line by line in a thread, so a test can wait for a log event while the
    process runs and still have every line once it has exited (`close`)."""

    def __init__(self, stream: Any) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            with self._lock:
                self._lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        return wait_until(lambda: needle in self.text() and self.text(), timeout, f"{needle!r} in the log")

    def close(self, timeout: float = 20.0) -> str:
        """Every line, once the stream has ended (the process exited)."""
        self._thread.join(timeout)
        return self.text()


def running_jobs(lab: Any, minion: str) -> list[str]:
    """Jids a lab minion (lab.saltlab.SaltLab) is running now: its proc files, cachedir/proc/<jid>, which the
    minion writes when a job starts and removes when it ends."""
    proc = lab.minion_conf_dir(minion).parent / "cache" / "proc"
    return [p.name for p in proc.glob("*")] if proc.is_dir() else []
