"""Salt's timestamps to Unix seconds: `_stamp` of every era, and the jid for events without one."""

from __future__ import annotations

import calendar

_minute_cache: dict[str, float] = {}


def parse_stamp(value: object) -> float | None:
    """`_stamp` (UTC ISO-8601, optional fraction, optional +00:00) to Unix seconds.

    Events arrive in time order, so the minute prefix is almost always cached: the common 26-character
    form (32 with `+00:00`) costs one dict lookup and one float() of `SS.ffffff`.
    """
    if type(value) is not str:
        return None
    size = len(value)
    if size == 26 or (size == 32 and value[26:] == "+00:00"):
        base = _minute_cache.get(value[:17])
        if base is not None and value[19] == ".":
            try:
                seconds = float(value[17:26])
            except ValueError:
                return None
            if 0.0 <= seconds < 61.0:
                return base + seconds
    return _parse_stamp_slow(value)


def _parse_stamp_slow(value: str) -> float | None:
    if len(value) < 19 or value[10] != "T" or value[4] != "-" or value[13] != ":":
        return None
    try:
        base = float(
            calendar.timegm(
                (
                    int(value[0:4]),
                    int(value[5:7]),
                    int(value[8:10]),
                    int(value[11:13]),
                    int(value[14:16]),
                    int(value[17:19]),
                    0,
                    0,
                    0,
                )
            )
        )
        rest = value[19:]
        frac = 0.0
        if rest[:1] == ".":
            end = 1
            while end < len(rest) and rest[end].isdigit():
                end += 1
            if end == 1:
                return None
            frac = float(rest[:end])
            rest = rest[end:]
        offset = 0.0
        if rest and rest not in ("Z", "+00:00"):
            if len(rest) != 6 or rest[0] not in "+-" or rest[3] != ":":
                return None
            sign = -1.0 if rest[0] == "-" else 1.0
            offset = sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60)
        if len(_minute_cache) > 4096:
            _minute_cache.clear()
        _minute_cache[value[:17]] = base - int(value[17:19])
        return base + frac - offset
    except (ValueError, IndexError, OverflowError):
        return None


def jid_time(jid: str) -> float | None:
    """A jid (`%Y%m%d%H%M%S%f`, UTC since Salt 3000) as Unix seconds, for events without `_stamp`."""
    if len(jid) < 20 or not jid[:20].isdigit():
        return None
    return parse_stamp(f"{jid[0:4]}-{jid[4:6]}-{jid[6:8]}T{jid[8:10]}:{jid[10:12]}:{jid[12:14]}.{jid[14:20]}")
