"""Bytes from the bus to event bodies (`tag\\n\\n` + msgpack data), whatever the framing.

The framing is detected per connection from the first byte (docs/design.md, "The wire"): a msgpack fixmap
(0x80-0x8f) means back-to-back `{"head": {}, "body": ...}` maps (2016.3-3006.25, 3007, 3008); anything else is
the 4-byte big-endian length prefix of 3006.26+. Decoding is total: malformed input is counted by reason
and skipped; after dropped bytes or a desynchronised stream the decoder resynchronises on the next frame
marker instead of failing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgpack

PLAIN: Final = "plain"
PREFIXED: Final = "length_prefixed"

# Salt packs {"head": {}, "body": ...} with the head first: fixmap(2), fixstr(4) "head".
MARKER: Final = b"\x82\xa4head"
MAX_FRAME: Final = 16 * 1024 * 1024

ErrorSink = Callable[[str], None]


class FrameDecoder:
    """Incremental decoder: `feed(chunk)` returns the bodies of every complete frame in it.

    One instance per connection; call `reset()` on reconnect and `gap()` when bytes were dropped.
    """

    __slots__ = ("_buf", "_fed", "_on_error", "_unpacker", "frames", "framing", "resyncs")

    def __init__(self, on_error: ErrorSink) -> None:
        self._on_error = on_error
        self.framing: str | None = None
        self._unpacker: msgpack.Unpacker | None = None
        self._buf = b""
        self._fed = 0
        self.frames = 0
        self.resyncs = 0

    def reset(self) -> None:
        """Forget the connection: the next byte decides the framing again."""
        self.framing = None
        self._unpacker = None
        self._buf = b""
        self._fed = 0

    def gap(self) -> None:
        """Bytes were dropped before this decoder saw them: find the next frame start."""
        self._unpacker = None
        self._buf = b""
        self._fed = 0
        self.framing = "resync:" + (self.framing or "")

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        framing = self.framing
        if framing is None:
            framing = self.framing = PLAIN if 0x80 <= chunk[0] <= 0x8F else PREFIXED
        elif framing.startswith("resync:"):
            chunk = self._resync(framing[7:], self._buf + chunk)
            if not chunk:
                return []
            framing = self.framing or ""
        if framing == PLAIN:
            return self._feed_plain(chunk)
        return self._feed_prefixed(chunk)

    def _resync(self, previous: str, data: bytes) -> bytes:
        pos = data.find(MARKER)
        if pos < 0:
            self._buf = data[-(len(MARKER) + 3) :]
            return b""
        self.resyncs += 1
        self._buf = b""
        if previous == PREFIXED and pos >= 4 and 0 < int.from_bytes(data[pos - 4 : pos], "big") <= MAX_FRAME:
            self.framing = PREFIXED
            return data[pos - 4 :]
        self.framing = PLAIN
        return data[pos:]

    def _feed_plain(self, chunk: bytes) -> list[bytes]:
        unpacker = self._unpacker
        if unpacker is None:
            unpacker = self._unpacker = msgpack.Unpacker(
                raw=True, max_buffer_size=MAX_FRAME * 4, strict_map_key=False, use_list=True
            )
        start = self._fed
        self._fed = start + len(chunk)
        try:
            unpacker.feed(chunk)
        except msgpack.BufferFull:
            # An unterminated frame grew past any real frame size: drop it and look for the next one.
            self._on_error("frame_too_large")
            self.gap()
            self.framing = "resync:" + PLAIN
            return self.feed(chunk[1:])
        out: list[bytes] = []
        append = out.append
        try:
            for obj in unpacker:
                if type(obj) is not dict:
                    raise ValueError("not a frame")
                body = obj.get(b"body")
                if type(body) is bytes:
                    append(body)
                else:
                    self._on_error("bad_envelope")
        except (msgpack.UnpackException, ValueError, TypeError):
            # A plain stream has no boundaries to fall back on: resynchronise on the next marker after
            # the last good frame (within this chunk; earlier bytes are already gone).
            self._on_error("desync")
            good_end = max(unpacker.tell() - start, 0)
            self._unpacker = None
            self._fed = 0
            self._buf = b""
            self.framing = "resync:" + PLAIN
            self.frames += len(out)
            out.extend(self.feed(chunk[good_end + 1 :]))
            return out
        self.frames += len(out)
        return out

    def _feed_prefixed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        out: list[bytes] = []
        append = out.append
        unpackb = msgpack.unpackb
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big")
            if size > MAX_FRAME or size == 0:
                self._on_error("bad_length")
                self._buf = b""
                self.framing = "resync:" + PREFIXED
                rest = self._resync(PREFIXED, buf[pos + 1 :])
                self.frames += len(out)
                if rest:
                    out.extend(self.feed(rest))
                return out
            stop = pos + 4 + size
            if stop > end:
                break
            try:
                obj = unpackb(buf[pos + 4 : stop], raw=True, strict_map_key=False)
            except (msgpack.UnpackException, ValueError, TypeError):
                self._on_error("bad_msgpack")
                obj = None
            if obj is not None:
                body = obj.get(b"body") if type(obj) is dict else None
                if type(body) is bytes:
                    append(body)
                else:
                    self._on_error("bad_envelope")
            pos = stop
        self._buf = buf[pos:] if pos < end else b""
        self.frames += len(out)
        return out
