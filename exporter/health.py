"""The daemon's own counters, kept as plain attributes by the layers that own them.

Source, frames and pipeline update these without importing prometheus_client; the metrics collector reads
them at scrape time. Plain int/float stores are atomic under the GIL, so no lock is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Health:
    connected: bool = False
    connections: int = 0
    bytes_read: int = 0
    dropped_bytes: dict[str, int] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=dict)
    resyncs: int = 0
    buffer_bytes: int = 0
    last_event: float = 0.0
    spans_exported: int = 0
    spans_dropped: dict[str, int] = field(default_factory=dict)
    last_error: str = ""

    def count_error(self, reason: str) -> None:
        self.decode_errors[reason] = self.decode_errors.get(reason, 0) + 1

    def count_drop(self, reason: str, nbytes: int) -> None:
        self.dropped_bytes[reason] = self.dropped_bytes.get(reason, 0) + nbytes
