"""`salt-event-exporter top`: a live view of jobs in flight, read from the bus by the daemon's own layers.

`exporter.live.feed` runs source, buffer, pipeline and tracker (with per-minion detail) in two threads;
`exporter.live.view` turns the tracker and the metrics sink into rows at the screen's pace;
`exporter.live.screen` is the Textual app. Logs go to a line at the bottom of the screen (structlog's
console rendering unless `--log.format json`) and are printed to stderr once the screen is gone.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from typing import Any

import structlog

from exporter.config import Settings


class LogLines:
    """A file-like sink for structlog that keeps the last lines for the screen."""

    def __init__(self, keep: int = 200) -> None:
        self.lines: deque[str] = deque(maxlen=keep)

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.lines.append(line)
        return len(text)

    def flush(self) -> None:
        return None


def log_to(lines: LogLines, level: str, fmt: str) -> None:
    """structlog into `lines`: the console rendering (the view is for a person) unless json was asked for."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(lines),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


def run(
    settings: Settings,
    speed: float = 1.0,
    refresh: float = 4.0,
    window: float = 300.0,
    stop: threading.Event | None = None,
) -> int:
    """Run the view until `q` (or until `stop` is set, for the demo)."""
    from exporter.live.feed import Feed
    from exporter.live.screen import LiveApp

    lines = LogLines()
    log_to(lines, settings.log_level, settings.log_format)
    feed = Feed(settings, speed=speed)
    app = LiveApp(feed, refresh_hz=refresh, window=window, logs=lines.lines, stop=stop)
    feed.start()
    try:
        app.run()
    finally:
        feed.stop()
        for line in lines.lines:
            print(line, file=sys.stderr)
    return 0
