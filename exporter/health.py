"""The daemon's own counters, kept as plain attributes by the layers that own them.

Source, frames and pipeline update these without importing prometheus_client; the metrics collector reads
them at scrape time. Plain int/float stores are atomic under the GIL, so no lock is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Known label values start at 0, so rate()/increase() and alerts see the first occurrence.
DECODE_ERRORS = (
    "desync",
    "bad_length",
    "bad_msgpack",
    "bad_envelope",
    "frame_too_large",
    "no_separator",
    "bad_tag",
    "bad_data",
    "not_a_map",
    "bad_fields",
    "internal",
)
DROP_REASONS = ("buffer_full",)
GAP_CAUSES = ("disconnect", "buffer_full", "desync")
SPAN_DROP_REASONS = ("queue_full", "export_failed", "sampled_out", "shutdown_timeout")
# Why minion and state spans were summarised on their job span instead of sent: the per-job budget
# (`traces.max-minion-spans`), or an export queue at least half full (a burst the exporter is behind on).
SPAN_SUMMARY_REASONS = ("budget", "export_backlog")


def _zeros(keys: tuple[str, ...]) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


@dataclass(slots=True)
class Health:
    connected: bool = False
    connections: int = 0
    bytes_read: int = 0
    dropped_bytes: dict[str, int] = field(default_factory=lambda: _zeros(DROP_REASONS))
    frames: dict[str, int] = field(default_factory=dict)
    decode_errors: dict[str, int] = field(default_factory=lambda: _zeros(DECODE_ERRORS))
    resyncs: int = 0
    buffer_bytes: int = 0
    last_event: float = 0.0
    spans_exported: int = 0
    spans_dropped: dict[str, int] = field(default_factory=lambda: _zeros(SPAN_DROP_REASONS))
    spans_summarised: dict[str, int] = field(default_factory=lambda: _zeros(SPAN_SUMMARY_REASONS))
    last_error: str = ""
    disconnected_at: float = 0.0  # wall clock when the connection was lost (0 while connected)
    first_drop_at: float = 0.0  # wall clock of the first chunk dropped since the last one kept
    gaps: dict[str, int] = field(default_factory=lambda: _zeros(GAP_CAUSES))
    gap_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GAP_CAUSES, 0.0))

    def count_gap(self, cause: str, seconds: float) -> None:
        self.gaps[cause] = self.gaps.get(cause, 0) + 1
        self.gap_seconds[cause] = self.gap_seconds.get(cause, 0.0) + max(seconds, 0.0)

    def count_error(self, reason: str) -> None:
        self.decode_errors[reason] = self.decode_errors.get(reason, 0) + 1

    def count_drop(self, reason: str, nbytes: int) -> None:
        self.dropped_bytes[reason] = self.dropped_bytes.get(reason, 0) + nbytes
