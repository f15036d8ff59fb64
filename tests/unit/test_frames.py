"""Frame decoding: both framings, every split point, hostile bytes, resynchronisation."""

from __future__ import annotations

import pytest

from exporter.bus.frames import PLAIN, PREFIXED, FrameDecoder
from tests import wire


def stream(prefixed: bool, n: int = 5) -> tuple[bytes, list[bytes]]:
    bodies = [
        wire.body(f"salt/job/2026112418151020142{i}/new", {"fun": "test.ping", "i": i, "blob": b"\x82\xa4"})
        for i in range(n)
    ]
    return b"".join(wire.wrap(b, prefixed) for b in bodies), bodies


def decoder() -> tuple[FrameDecoder, list[str]]:
    errors: list[str] = []
    return FrameDecoder(errors.append), errors


@pytest.mark.parametrize("prefixed", [False, True])
def test_framing_detected_from_first_byte(prefixed: bool) -> None:
    data, bodies = stream(prefixed)
    dec, errors = decoder()
    assert dec.feed(data) == bodies
    assert dec.framing == (PREFIXED if prefixed else PLAIN)
    assert errors == []


@pytest.mark.parametrize("prefixed", [False, True])
def test_split_at_every_byte_boundary(prefixed: bool) -> None:
    data, bodies = stream(prefixed, 3)
    for cut in range(len(data) + 1):
        dec, errors = decoder()
        got = dec.feed(data[:cut]) + dec.feed(data[cut:])
        assert got == bodies, f"split at {cut}"
        assert errors == []


@pytest.mark.parametrize("prefixed", [False, True])
def test_byte_by_byte(prefixed: bool) -> None:
    data, bodies = stream(prefixed, 3)
    dec, _ = decoder()
    got: list[bytes] = []
    for i in range(len(data)):
        got += dec.feed(data[i : i + 1])
    assert got == bodies


def test_reset_detects_framing_again() -> None:
    plain, plain_bodies = stream(False, 2)
    prefixed, prefixed_bodies = stream(True, 2)
    dec, _ = decoder()
    assert dec.feed(plain[:-3]) == plain_bodies[:1]
    dec.reset()  # reconnect: a half frame from the old connection is forgotten
    assert dec.feed(prefixed) == prefixed_bodies


@pytest.mark.parametrize("prefixed", [False, True])
def test_gap_resynchronises_on_next_frame(prefixed: bool) -> None:
    _, bodies = stream(prefixed, 6)
    frames = [wire.wrap(b, prefixed) for b in bodies]
    dec, _ = decoder()
    assert dec.feed(frames[0]) == bodies[:1]
    dec.gap()  # the reader dropped bytes: frame 1 and half of frame 2 are lost
    rest = frames[2][len(frames[2]) // 2 :] + b"".join(frames[3:])
    assert dec.feed(rest) == bodies[3:]
    assert dec.resyncs == 1


def test_plain_garbage_is_counted_and_recovered() -> None:
    data, bodies = stream(False, 3)
    dec, errors = decoder()
    assert dec.feed(b"\x82\xc1\xc1garbage" + data[:5]) == []
    assert errors == ["desync"]
    assert dec.feed(data[5:] + data) == bodies + bodies
    assert dec.resyncs == 1


def test_prefixed_bad_length_and_bad_payload() -> None:
    data, bodies = stream(True, 2)
    dec, errors = decoder()
    bad_payload = (3).to_bytes(4, "big") + b"\xc1\xc1\xc1"
    assert dec.feed(data[:1] + data[1:] + bad_payload + data) == bodies + bodies
    assert errors == ["bad_msgpack"]
    dec2, errors2 = decoder()
    huge = (0x01FFFFFF).to_bytes(4, "big") + b"xx"  # over the 16 MiB frame limit
    assert dec2.feed(huge + data) == bodies
    assert errors2 == ["bad_length"]


@pytest.mark.parametrize("prefixed", [False, True])
def test_envelope_without_bytes_body(prefixed: bool) -> None:
    import msgpack

    bad = msgpack.packb({"head": {}, "body": 42})
    bad = len(bad).to_bytes(4, "big") + bad if prefixed else bad
    data, bodies = stream(prefixed, 1)
    dec, errors = decoder()
    assert dec.feed(data + bad + data) == bodies + bodies
    assert errors == ["bad_envelope"]


def test_unterminated_plain_frame_is_bounded() -> None:
    """A bin32 header announcing 1 GiB would make the buffer grow forever: it is dropped instead."""
    data, bodies = stream(False, 2)
    dec, errors = decoder()
    hostile = b"\x82\xa4head\x80\xa4body\xc6\x40\x00\x00\x00" + b"x" * (1024 * 1024)
    got = dec.feed(hostile)
    for _ in range(79):  # 80 MiB of a frame that never ends, then real frames
        got += dec.feed(b"x" * (1024 * 1024))
    got += dec.feed(data)
    assert got == bodies
    assert "frame_too_large" in errors
