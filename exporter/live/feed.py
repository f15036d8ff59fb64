"""The live view's engine: the daemon's source, buffer, pipeline and tracker, run in two threads.

A reader thread drains the bus (any `--bus`: socket, tcp://, zmq+..., a recording) into the same bounded
`ByteBuffer` the daemon uses; a feeder thread hands the chunks to `Pipeline.chunk`. The screen never sees
an event: it reads the tracker and the metrics sink at its own pace, under the pipeline's lock.

A recording is replayed at its recorded pace (`speed` 1, or N times faster): its frames are decoded by the
same `FrameDecoder`, each body parsed by the same `parse` for its `_stamp`, and the bodies are handed to
`Pipeline.bodies` when a virtual clock (`stamp of the first event + elapsed wall time * speed`) reaches
them; between events the tracker is advanced to that clock, never past the next event, so verdicts fire
as they did on the master. `speed` 0 reads a recording as fast as it can, as `replay` does.

The raw-event pane gets its events from a tap on the chunks (its own decoder, display only, with a byte
budget per second so a burst cannot make the tap cost more than the pipeline).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from exporter.app import Core, build_core
from exporter.bus.frames import FrameDecoder
from exporter.bus.source import ByteBuffer, Source, open_source
from exporter.config import Settings
from exporter.health import Health
from exporter.jobs.model import Job
from exporter.salt.events import ActEvent, MinionStart, Presence
from exporter.salt.parse import parse

RAW_KEPT: Final = 400  # raw bodies kept for the pane
CHANGES_KEPT: Final = 200  # presence and key changes kept
RECENT_KEPT: Final = 200  # closed jobs kept for "just finished"
TAP_BUDGET: Final = 4 * 1024 * 1024  # bytes per second the tap decodes; beyond it chunks are skipped


@dataclass(slots=True)
class Closed:
    job: Job
    status: str
    at: float  # the view's clock when it closed


@dataclass(slots=True)
class Change:
    at: float
    kind: str  # presence | key | auth | start
    text: str


class Recent:
    """Close listener: the jobs that just finished, newest last (called under the pipeline's lock)."""

    def __init__(self, clock: Callable[[], float], keep: int = RECENT_KEPT) -> None:
        self.clock = clock
        self.jobs: deque[Closed] = deque(maxlen=keep)

    def __call__(self, job: Job, status: str) -> None:
        self.jobs.append(Closed(job, status, self.clock()))


class Tap:
    """Raw events for the pane and named fleet changes, from a decoder of its own (display only)."""

    def __init__(
        self, clock: Callable[[], float], budget: int = TAP_BUDGET, framing: str | None = None
    ) -> None:
        self.clock = clock
        self.budget = budget
        self.framing = framing
        self.decoder = FrameDecoder(lambda reason: None)
        self.generation = -1
        self.raw: deque[tuple[float, bytes]] = deque(maxlen=RAW_KEPT)
        self.changes: deque[Change] = deque(maxlen=CHANGES_KEPT)
        self.events = 0
        self.skipped_bytes = 0
        self._window = 0.0
        self._spent = 0

    def chunk(self, gen: int, gap: bool, data: bytes) -> None:
        now = time.monotonic()
        if now - self._window >= 1.0:
            self._window, self._spent = now, 0
        if self._spent + len(data) > self.budget:
            self.skipped_bytes += len(data)
            self.decoder.gap()
            return
        self._spent += len(data)
        if self.framing is not None:
            self.bodies([data])
            return
        if gen != self.generation:
            self.generation = gen
            self.decoder.reset()
        elif gap:
            self.decoder.gap()
        self.bodies(self.decoder.feed(data))

    def bodies(self, bodies: list[bytes]) -> None:
        at = self.clock()
        raw = self.raw
        for body in bodies:
            raw.append((at, body))
            if body.startswith(
                (b"salt/presence/", b"salt/auth", b"salt/key", b"minion_start", b"salt/minion/")
            ):
                self.note(at, body)
        self.events += len(bodies)

    def note(self, at: float, body: bytes) -> None:
        """Name the minions of a presence, key or auth event (rare events: parsed here)."""
        _, event, _ = parse(body)
        if isinstance(event, Presence):
            if event.new:
                self.changes.append(Change(at, "presence", "new: " + _names(event.new)))
            if event.lost:
                self.changes.append(Change(at, "presence", "lost: " + _names(event.lost)))
        elif isinstance(event, ActEvent):
            self.changes.append(Change(at, event.kind, f"{event.act}: {event.minion}"))
        elif isinstance(event, MinionStart):
            self.changes.append(Change(at, "start", f"minion started: {event.minion}"))


def _names(minions: list[str], shown: int = 5) -> str:
    text = ", ".join(minions[:shown])
    return text + (f" (+{len(minions) - shown})" if len(minions) > shown else "")


class Feed:
    """Reads the bus into the core until `stop()`; the view reads `core` under `core.pipeline.lock`."""

    def __init__(self, settings: Settings, speed: float = 1.0, source: Source | None = None) -> None:
        self.settings = settings
        self.speed = speed
        self.health = Health()
        self.source = source or open_source(
            settings.bus, self.health, loop=settings.replay_loop, max_backoff=settings.reconnect_max_backoff
        )
        self.live = self.source.live
        self.paced = not self.live and speed > 0
        self.recent = Recent(self.now)
        self.core: Core = build_core(
            settings,
            time.time if self.live else None,
            environ={},
            framing=getattr(self.source, "framing", None),
            health=self.health,
            detail=True,
            listeners=[self.recent],
        )
        self.tap = Tap(self.now, framing=getattr(self.source, "framing", None))
        self.buffer = ByteBuffer(settings.buffer_size, self.health)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The virtual clock of a paced recording: (first event stamp, monotonic time then).
        self._base: tuple[float, float] | None = None
        self._offset = 0.0  # the current epoch's time shift (`--replay.loop`)
        self._epoch_start = False
        self.finished = False  # a recording was read to its end (and, paced, its verdict horizon passed)
        self.events_fed = 0

    # -- the clock the view shows ages with -----------------------------------------------------------------

    def now(self) -> float:
        if self.live:
            return time.time()
        if self._base is not None and self.paced:
            stamp, wall = self._base
            return stamp + (time.monotonic() - wall) * self.speed
        return self.core.tracker.now

    # -- threads --------------------------------------------------------------------------------------------

    def start(self) -> Feed:
        for name, target in (("reader", self._read), ("feeder", self._feed)):
            thread = threading.Thread(target=target, name=f"live-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.buffer.close()
        for thread in self._threads:
            thread.join(timeout)

    def _read(self) -> None:
        live = self.live
        buffer = self.buffer

        def emit(gen: int, data: bytes) -> None:
            buffer.put(gen, data, block=not live)

        try:
            self.source.run(emit, self._stop)
        finally:
            self.buffer.put(-1, b"", block=not live)  # end marker (an empty chunk is never read)

    def _feed(self) -> None:
        if self.paced:
            self._feed_paced()
            return
        pipeline = self.core.pipeline
        tap = self.tap
        while not self._stop.is_set():
            items = self.buffer.get(0.25)
            for gen, gap, data in items:
                if gen == -1:
                    self._end_of_recording()
                    continue
                tap.chunk(gen, gap, data)
                pipeline.chunk(gen, gap, data)
            if not items:
                pipeline.tick()

    def _end_of_recording(self) -> None:
        settings = self.settings
        if not self.live:
            self.core.pipeline.finish(
                settings.timeout + settings.gather_job_timeout + settings.syndic_wait + 1.0
            )
        self.finished = True

    # -- a recording at its recorded pace -------------------------------------------------------------------

    def _feed_paced(self) -> None:
        decoder = FrameDecoder(self.health.count_error)
        generation = -1
        last_stamp = 0.0
        while not self._stop.is_set():
            items = self.buffer.get(0.25)
            if not items:
                self._advance(None)
            for gen, gap, data in items:
                if gen == -1:
                    self._horizon(last_stamp)
                    return
                if gen != generation:
                    if generation != -1:
                        # `--replay.loop` starts over: the pipeline shifts the new epoch's stamps to follow
                        # on (exporter.replay.TimeShift); its first event shows by how much.
                        self.core.pipeline.chunk(gen, False, b"")
                        self._epoch_start = True
                    generation = gen
                    decoder.reset()
                elif gap:
                    decoder.gap()
                last_stamp = self._pace(decoder.feed(data), last_stamp)
                if self._stop.is_set():
                    return

    def _pace(self, bodies: list[bytes], last_stamp: float) -> float:
        """Hand the bodies to the pipeline, each when the virtual clock reaches its stamp."""
        batch: list[bytes] = []
        for body in bodies:
            _, event, _ = parse(body)
            if event is not None and self._epoch_start:
                self._epoch_start = False
                self._hand([body])  # the pipeline's TimeShift takes its offset from this one
                shift = self.core.pipeline.shift
                self._offset = shift.offset if shift is not None else 0.0
                last_stamp = max(last_stamp, event.stamp + self._offset)
                continue
            stamp = event.stamp + self._offset if event is not None else 0.0
            if stamp > 0:
                if self._base is None:
                    self._base = (stamp, time.monotonic())
                if stamp > self.now():
                    if batch:
                        self._hand(batch)
                        batch = []
                    self._wait_for(stamp)
                    if self._stop.is_set():
                        return last_stamp
                last_stamp = max(last_stamp, stamp)
            batch.append(body)
        if batch:
            self._hand(batch)
        return last_stamp

    def _hand(self, batch: list[bytes]) -> None:
        self.tap.bodies(batch)
        self.core.pipeline.bodies(batch)
        self.events_fed += len(batch)

    def _wait_for(self, stamp: float) -> None:
        """Sleep until the virtual clock reaches `stamp`, letting verdicts due before it fire meanwhile."""
        while not self._stop.is_set():
            now = self.now()
            if now >= stamp:
                return
            self._advance(stamp)
            self._stop.wait(min((stamp - now) / self.speed, 0.1))

    def _advance(self, limit: float | None) -> None:
        if self._base is None:
            return
        now = self.now() if limit is None else min(self.now(), limit)
        pipeline = self.core.pipeline
        with pipeline.lock:
            pipeline.tracker.advance(now)

    def _horizon(self, last_stamp: float) -> None:
        """After the last event, run the clock as long as the CLI would wait, then settle held verdicts."""
        settings = self.settings
        until = last_stamp + settings.timeout + settings.gather_job_timeout + settings.syndic_wait + 1.0
        while not self._stop.is_set() and self.now() < until:
            self._advance(None)
            self._stop.wait(0.1)
        pipeline = self.core.pipeline
        with pipeline.lock:
            pipeline.tracker.settle()
        self.finished = True
