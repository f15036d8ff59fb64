"""The hot path: chunks of bus bytes through frames and Salt events into the job layer.

The pipeline owns the one lock that guards the job layer and the metrics it writes: one `chunk` call takes
it once for the whole batch of frames in it, and the scrape takes it to read a consistent snapshot. A bug
in a later layer must not stop the exporter either: an unexpected exception on one event is counted as
`internal` and the stream goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

import structlog

from exporter.bus.frames import FrameDecoder
from exporter.health import Health
from exporter.jobs.tracker import Tracker
from exporter.replay import TimeShift
from exporter.salt.parse import parse

log = structlog.get_logger("exporter.pipeline")


class CategorySink(Protocol):
    def events_seen(self, counts: dict[str, int]) -> None: ...


class Pipeline:
    def __init__(
        self,
        tracker: Tracker,
        sink: CategorySink,
        health: Health,
        clock: Callable[[], float] | None = None,
        framing: str | None = None,
    ) -> None:
        """`clock` is the wall clock in live mode; None means event time only (replay).

        `framing` forces one (ZeroMQ delivers bare bodies); None detects it per connection.
        """
        self.lock = threading.Lock()
        self.tracker = tracker
        self.sink = sink
        self.health = health
        self.clock = clock
        self.fixed_framing = framing
        self.decoder = FrameDecoder(health.count_error)
        self.generation = -1
        self.shift: TimeShift | None = None  # a recording replayed in a loop reads as new activity
        self._internal_logged = False
        self._down = False  # live mode: the reader lost the connection and the jobs were marked
        self._down_connections = 0
        self._dropping = False  # live mode: the buffer dropped bytes and the jobs were marked

    def chunk(self, gen: int, gap: bool, data: bytes) -> None:
        """Feed one buffered chunk; a new generation is a new connection, so framing is detected anew."""
        if self.clock is not None:
            self._watch_reader()
        if gen != self.generation or gap:
            self._discontinuity(gen, gap)
        if self.fixed_framing is not None:
            # Message transports (ZeroMQ) deliver one event body per chunk.
            frames = self.health.frames
            frames[self.fixed_framing] = frames.get(self.fixed_framing, 0) + 1
            self.bodies([data])
            return
        decoder = self.decoder
        before = decoder.resyncs
        bodies = decoder.feed(data)
        if decoder.resyncs != before:
            self.health.resyncs += decoder.resyncs - before
            self._gap("desync", 0.0)
        if bodies:
            framing = decoder.framing or "unknown"
            frames = self.health.frames
            frames[framing] = frames.get(framing, 0) + len(bodies)
            self.bodies(bodies)
        elif self.clock is not None:
            self.tick()

    def _discontinuity(self, gen: int, gap: bool) -> None:
        """A new connection, or bytes dropped before this chunk: the stream has a hole."""
        health = self.health
        if gen != self.generation:
            first = self.generation == -1
            self.generation = gen
            self.decoder.reset()
            if first:
                return
            if self.clock is None:
                self._new_epoch()  # a recording replayed in a loop starts over
                return
            self._end_disconnect()
        elif gap:
            self.decoder.gap()
            if self.clock is not None:
                first_drop = health.first_drop_at
                seconds = max(self.clock() - first_drop, 0.0) if first_drop else 0.0
                if self._dropping:
                    health.gap_seconds["buffer_full"] += seconds  # counted, and the jobs marked, at the drop
                else:
                    self._gap("buffer_full", seconds)
                health.first_drop_at = 0.0
                self._dropping = False

    def _watch_reader(self) -> None:
        """Live mode: the moment the reader loses the connection or drops bytes, every open job may miss
        returns; mark them then, not at the next chunk (on a quiet bus a verdict may come first). The gap
        is counted, with its length, when the stream is whole again."""
        health = self.health
        if health.first_drop_at and not self._dropping:
            self._dropping = True
            self._gap("buffer_full", 0.0)
        if not self._down:
            if health.disconnected_at and not health.connected:
                self._down = True
                self._down_connections = health.connections
                self._gap("disconnect", 0.0)
        elif health.connected and health.connections != self._down_connections:
            self._end_disconnect()

    def _end_disconnect(self) -> None:
        """The connection is back: count the gap with its length (marking the jobs now if no tick saw the
        drop)."""
        health = self.health
        if not (self._down or health.disconnected_at):
            return  # already ended (a tick saw the reconnect before this chunk)
        down = health.disconnected_at
        seconds = max(self.clock() - down, 0.0) if down and self.clock is not None else 0.0
        if self._down:
            health.gap_seconds["disconnect"] += seconds  # counted, and the jobs marked, at the drop
        else:
            self._gap("disconnect", seconds)
        health.disconnected_at = 0.0
        self._down = False

    def _gap(self, cause: str, seconds: float) -> None:
        self.health.count_gap(cause, seconds)
        with self.lock:
            self.tracker.bus_gap()

    def _new_epoch(self) -> None:
        """A recording starts over (`--replay.loop`): close what is open, forget jids, shift time."""
        with self.lock:
            self.tracker.reset()
        if self.shift is None:
            self.shift = TimeShift()
        self.shift.start_epoch()

    def bodies(self, bodies: list[bytes]) -> None:
        """Process event bodies (`tag\\n\\n` + msgpack data): frames from a stream, or ZeroMQ messages."""
        tracker = self.tracker
        handle = tracker.handle
        count_error = self.health.count_error
        shift = self.shift
        counts: dict[str, int] = {}
        count = counts.get
        with self.lock:
            for body in bodies:
                try:
                    category, event, error = parse(body)
                    counts[category] = count(category, 0) + 1
                    if event is not None:
                        if shift is not None:
                            shift.apply(event, tracker.now)
                        handle(event)
                    elif error is not None:
                        count_error(error)
                except Exception:
                    count_error("internal")
                    if not self._internal_logged:
                        self._internal_logged = True
                        log.exception("internal_error_on_event", note="counted and skipped; logged once")
            self.sink.events_seen(counts)
            if self.clock is not None:
                tracker.advance(self.clock())
        self.health.last_event = self.clock() if self.clock is not None else tracker.now

    def tick(self) -> None:
        """Let verdicts fire while the bus is quiet (live mode)."""
        if self.clock is not None:
            self._watch_reader()
            with self.lock:
                self.tracker.advance(self.clock())

    def finish(self, horizon: float) -> None:
        """End of a replay: run the clock `horizon` seconds past the last event, as the CLI would wait; a
        verdict still waiting for a presence event gets its reason from the last one in the recording."""
        with self.lock:
            self.tracker.advance(self.tracker.now + horizon)
            self.tracker.settle()

    def close_all(self) -> int:
        """Shutdown: hand every open job to the close listeners (spans); returns how many there were."""
        with self.lock:
            count = len(self.tracker.open)
            self.tracker.close_all()
        return count
