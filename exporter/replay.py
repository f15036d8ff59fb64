"""Recordings: `replay` runs one through the pipeline on event time, and `TimeShift` makes a recording
replayed in a loop (`--replay.loop`, the demo's offline mode) read as new activity each time round."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from exporter.salt.events import Event

if TYPE_CHECKING:
    from exporter.app import Core
    from exporter.config import Settings


class TimeShift:
    """Moves every event of an epoch by one offset, so its first event lands just after the last one."""

    __slots__ = ("_starting", "offset")

    def __init__(self) -> None:
        self.offset = 0.0
        self._starting = False

    def start_epoch(self) -> None:
        self._starting = True

    def apply(self, event: Event, now: float) -> None:
        if self._starting:
            self._starting = False
            self.offset = now + 1.0 - event.stamp
        event.stamp += self.offset


def replay(settings: Settings, path: str, out: Any = None, trace_exporter: Any = None) -> Core:
    """Run a capture through the pipeline on event time; the CLI prints the final exposition."""
    from exporter.app import build_core
    from exporter.bus.source import FileSource

    core = build_core(settings, None, trace_exporter=trace_exporter)
    stop = threading.Event()
    pipeline = core.pipeline
    FileSource(path, core.health).run(lambda gen, data: pipeline.chunk(gen, False, data), stop)
    # The CLI decides within timeout + gather_job_timeout (+ syndic_wait on a master of masters) of its last
    # probe; give the capture that long.
    pipeline.finish(settings.timeout + settings.gather_job_timeout + settings.syndic_wait + 1.0)
    if core.traces is not None:
        pipeline.close_all()
        core.traces.shutdown(settings.shutdown_timeout)
    if out is not None:
        out.write(core.exposition().decode())
        out.flush()
    return core
