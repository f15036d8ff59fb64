"""The hot path: chunks of bus bytes through frames and events into the tracker.

One `feed` call per chunk takes the metrics lock once for the whole batch of frames in it. A bug in a
later layer must not stop the exporter either: an unexpected exception on one event is counted as
`internal` and the stream goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import structlog

from exporter.bus.frames import FrameDecoder
from exporter.health import Health
from exporter.jobs.tracker import Tracker
from exporter.salt.events import parse
from exporter.sinks.metrics import MetricsSink

log = structlog.get_logger("exporter.pipeline")


class Pipeline:
    def __init__(
        self,
        tracker: Tracker,
        sink: MetricsSink,
        health: Health,
        clock: Callable[[], float] | None = None,
        framing: str | None = None,
    ) -> None:
        """`clock` is the wall clock in live mode; None means event time only (replay).

        `framing` forces one (ZeroMQ delivers bare bodies); None detects it per connection.
        """
        self.tracker = tracker
        self.sink = sink
        self.health = health
        self.clock = clock
        self.fixed_framing = framing
        self.decoder = FrameDecoder(health.count_error)
        self.generation = -1
        self._internal_logged = False

    def chunk(self, gen: int, gap: bool, data: bytes) -> None:
        """Feed one buffered chunk; a new generation is a new connection, so framing is detected anew."""
        if self.fixed_framing is not None:
            # Message transports (ZeroMQ) deliver one event body per chunk.
            frames = self.health.frames
            frames[self.fixed_framing] = frames.get(self.fixed_framing, 0) + 1
            self.bodies([data])
            return
        if gen != self.generation:
            if self.generation != -1 and self.clock is None:
                self.tracker.new_epoch()  # a recording replayed in a loop starts over
            self.generation = gen
            self.decoder.reset()
        elif gap:
            self.decoder.gap()
        decoder = self.decoder
        before = decoder.resyncs
        bodies = decoder.feed(data)
        if decoder.resyncs != before:
            self.health.resyncs += decoder.resyncs - before
        if bodies:
            framing = decoder.framing or "unknown"
            frames = self.health.frames
            frames[framing] = frames.get(framing, 0) + len(bodies)
            self.bodies(bodies)
        elif self.clock is not None:
            self.tick()

    def bodies(self, bodies: list[bytes]) -> None:
        """Process event bodies (`tag\\n\\n` + msgpack data): frames from a stream, or ZeroMQ messages."""
        tracker = self.tracker
        handle = tracker.handle
        sink = self.sink
        count_error = self.health.count_error
        categories: list[str] = []
        seen = categories.append
        with sink.lock:
            for body in bodies:
                try:
                    category, event, error = parse(body)
                    seen(category)
                    if event is not None:
                        handle(event)
                    elif error is not None:
                        count_error(error)
                except Exception:
                    count_error("internal")
                    if not self._internal_logged:
                        self._internal_logged = True
                        log.exception("internal_error_on_event", note="counted and skipped; logged once")
            events = sink.counters["salt_events_total"]
            for category, n in Counter(categories).items():
                key = (category,)
                events[key] = events.get(key, 0) + n
            if self.clock is not None:
                tracker.advance(self.clock())
        self.health.last_event = self.clock() if self.clock is not None else tracker.now

    def tick(self) -> None:
        """Let verdicts fire while the bus is quiet (live mode)."""
        if self.clock is not None:
            with self.sink.lock:
                self.tracker.advance(self.clock())

    def finish(self, horizon: float) -> None:
        """End of a replay: run the clock `horizon` seconds past the last event, as the CLI would wait."""
        with self.sink.lock:
            self.tracker.advance(self.tracker.now + horizon)
