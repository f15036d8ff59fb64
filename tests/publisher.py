"""A stand-in for the master's event publisher, for faults a real master cannot be made to produce on cue
(a socket that appears late, connections cut mid-frame, hostile bytes). Real masters are in tests/e2e."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path


class FakePublisher:
    def __init__(self, path: str) -> None:
        self.path = path
        self.server: socket.socket | None = None
        self.clients: list[socket.socket] = []
        self.accepted = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> FakePublisher:
        with contextlib.suppress(FileNotFoundError):
            Path(self.path).unlink()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(self.path)
        server.listen(8)
        server.settimeout(0.2)
        self.server = server
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while self.server is not None:
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.clients.append(conn)
                self.accepted += 1

    def wait_clients(self, n: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.clients) >= n:
                    return
            time.sleep(0.02)
        raise TimeoutError(f"no subscriber connected to {self.path}")

    def send(self, data: bytes) -> None:
        with self._lock:
            for conn in self.clients:
                conn.sendall(data)

    def drop_clients(self) -> None:
        with self._lock:
            for conn in self.clients:
                conn.close()
            self.clients.clear()

    def stop(self) -> None:
        self.drop_clients()
        server, self.server = self.server, None
        if server is not None:
            server.close()
        with contextlib.suppress(FileNotFoundError):
            Path(self.path).unlink()
