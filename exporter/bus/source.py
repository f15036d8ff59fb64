"""Bus sources: bytes from a Unix socket, a TCP publisher, a ZeroMQ SUB socket or a recorded file.

A live reader never waits on processing: it drains the socket into a bounded `ByteBuffer` and drops (and
counts) what does not fit, because a subscriber that stops reading makes the master buffer for it or
disconnect it (docs/design.md, "The wire"). Connection failures are retried forever with capped exponential
backoff and jitter; each state change is logged once, not per attempt.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from exporter.health import Health

log = structlog.get_logger("exporter.bus.source")

CHUNK = 256 * 1024

# Items in the buffer: (connection generation, gap before this chunk, bytes).
Item = tuple[int, bool, bytes]


class ByteBuffer:
    """A bounded FIFO of chunks between the reader thread and the pipeline, bounded in bytes."""

    def __init__(self, limit: int, health: Health) -> None:
        self.limit = limit
        self.health = health
        self._items: deque[Item] = deque()
        self._size = 0
        self._cond = threading.Condition()
        self._gap = False
        self.closed = False

    def put(self, gen: int, data: bytes, block: bool = False) -> bool:
        """Queue a chunk; when full, drop it (live) or wait (files). Returns False when dropped."""
        with self._cond:
            while block and self._size + len(data) > self.limit and self._items and not self.closed:
                self._cond.wait(0.5)
            if self._size + len(data) > self.limit and self._items:
                if not self._gap:
                    self.health.first_drop_at = time.time()
                self._gap = True
                self.health.count_drop("buffer_full", len(data))
                return False
            self._items.append((gen, self._gap, data))
            self._gap = False
            self._size += len(data)
            self.health.buffer_bytes = self._size
            self._cond.notify_all()
            return True

    def get(self, timeout: float) -> list[Item]:
        """Everything queued (possibly nothing after `timeout` seconds)."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            items = list(self._items)
            self._items.clear()
            self._size = 0
            self.health.buffer_bytes = 0
            self._cond.notify_all()
            return items

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Source(Protocol):
    """Reads until `stop` is set (or, for a file without looping, until its end)."""

    description: str
    live: bool

    def run(self, emit: Callable[[int, bytes], None], stop: threading.Event) -> None: ...


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with full jitter."""

    initial: float = 0.1
    cap: float = 30.0
    attempt: int = 0

    def next(self) -> float:
        delay = min(self.cap, self.initial * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


def _permission_hint(path: str) -> str:
    return (
        f"cannot read {path}: add the exporter's user to the master's group (Salt 3007.2+ creates the "
        "socket 0660) or run it as the master's user; on 3006.x the socket is 0600 unless publisher_acl "
        "or external_auth is set"
    )


class StreamSource:
    """A Unix-socket or TCP event publisher (tornado IPC or the 3007+ TCP PublishServer)."""

    live = True

    def __init__(self, address: str, health: Health, max_backoff: float = 30.0) -> None:
        self.address = address
        self.health = health
        self.backoff = Backoff(cap=max_backoff)
        if address.startswith("tcp://"):
            host, _, port = address[6:].rpartition(":")
            self._family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
            self._target: Any = (host.strip("[]"), int(port))
        else:
            self._family = socket.AF_UNIX
            self._target = address
        self.description = address

    def _connect(self) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.settimeout(5.0)
            sock.connect(self._target)
            sock.settimeout(0.5)
            if self._family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with_buf = 4 * 1024 * 1024
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, with_buf)
        except BaseException:
            sock.close()
            raise
        return sock

    def run(self, emit: Callable[[int, bytes], None], stop: threading.Event) -> None:
        health = self.health
        last_problem = ""
        while not stop.is_set():
            try:
                sock = self._connect()
            except OSError as exc:
                problem = self._describe(exc)
                if problem != last_problem:
                    log.warning("bus_unavailable", bus=self.address, error=problem, retrying=True)
                    last_problem = problem
                health.last_error = problem
                stop.wait(self.backoff.next())
                continue
            health.connections += 1
            health.connected = True
            gen = health.connections
            log.info("bus_connected", bus=self.address, connection=gen)
            last_problem = ""
            self.backoff.reset()
            reason = self._read(sock, gen, emit, stop)
            sock.close()
            health.connected = False
            health.disconnected_at = time.time()
            if not stop.is_set():
                log.warning("bus_disconnected", bus=self.address, reason=reason, retrying=True)
                stop.wait(self.backoff.next())

    def _read(
        self, sock: socket.socket, gen: int, emit: Callable[[int, bytes], None], stop: threading.Event
    ) -> str:
        health = self.health
        recv = sock.recv
        while not stop.is_set():
            try:
                data = recv(CHUNK)
            except TimeoutError:
                continue
            except OSError as exc:
                return self._describe(exc)
            if not data:
                return "closed by the master"
            health.bytes_read += len(data)
            emit(gen, data)
        return "stopping"

    def _describe(self, exc: OSError) -> str:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return _permission_hint(self.address)
        if exc.errno == errno.ENOENT:
            return f"{self.address} does not exist (is the salt-master running, and is this its sock_dir?)"
        if exc.errno == errno.ECONNREFUSED:
            return f"connection refused at {self.address} (master not running or restarting)"
        return f"{type(exc).__name__}: {exc}"


class FileSource:
    """A recorded capture (the raw bytes `record` wrote): read once, or forever with `loop`."""

    live = False

    def __init__(self, path: str, health: Health, loop: bool = False) -> None:
        self.path = path
        self.health = health
        self.loop = loop
        self.description = f"file {path}"

    def run(self, emit: Callable[[int, bytes], None], stop: threading.Event) -> None:
        health = self.health
        while not stop.is_set():
            health.connections += 1
            health.connected = True
            gen = health.connections
            with Path(self.path).open("rb") as fh:
                while not stop.is_set():
                    data = fh.read(CHUNK)
                    if not data:
                        break
                    health.bytes_read += len(data)
                    emit(gen, data)
            if not self.loop:
                return
            stop.wait(0.5)


def open_source(address: str, health: Health, loop: bool = False, max_backoff: float = 30.0) -> Source:
    """Pick the source for a `--bus` address."""
    if address.startswith(("zmq+ipc://", "zmq+tcp://")):
        from exporter.bus.zmq import ZmqSource  # pyzmq only for 2015.8 masters

        return ZmqSource(address, health, max_backoff=max_backoff)
    if address.startswith("tcp://"):
        return StreamSource(address, health, max_backoff)
    if address.startswith("file://"):
        return FileSource(address[7:], health, loop)
    path = Path(address)
    if path.is_file():
        return FileSource(address, health, loop)
    return StreamSource(address, health, max_backoff)
