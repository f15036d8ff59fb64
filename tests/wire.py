"""Build bus bytes in Salt's wire format (docs/design.md, "The wire") for unit tests."""

from __future__ import annotations

from typing import Any

import msgpack


def body(tag: str, data: dict[str, Any]) -> bytes:
    return tag.encode() + b"\n\n" + msgpack.packb(data, use_bin_type=True)


def frame(tag: str, data: dict[str, Any], prefixed: bool = False) -> bytes:
    return wrap(body(tag, data), prefixed)


def wrap(raw_body: bytes, prefixed: bool = False) -> bytes:
    packed = msgpack.packb({"head": {}, "body": raw_body}, use_bin_type=True)
    return len(packed).to_bytes(4, "big") + packed if prefixed else packed


def stamp(t: float) -> str:
    """A 3006/3007-style `_stamp` (no timezone) for Unix time t."""
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None).isoformat()


def new(jid: str, fun: str, minions: list[str], t: float, **extra: Any) -> bytes:
    data = {
        "jid": jid,
        "fun": fun,
        "tgt": "*",
        "tgt_type": "glob",
        "user": "root",
        "arg": [],
        "minions": minions,
        "missing": [],
        "_stamp": stamp(t),
    }
    data.update(extra)
    return body(f"salt/job/{jid}/new", data)


def ret(
    jid: str,
    minion: str,
    fun: str,
    t: float,
    retcode: int = 0,
    success: bool | None = True,
    ret_value: Any = True,
    **extra: Any,
) -> bytes:
    data: dict[str, Any] = {
        "cmd": "_return",
        "id": minion,
        "jid": jid,
        "fun": fun,
        "fun_args": [],
        "return": ret_value,
        "retcode": retcode,
        "user": "root",
        "_stamp": stamp(t),
    }
    if success is not None:
        data["success"] = success
    data.update(extra)
    return body(f"salt/job/{jid}/ret/{minion}", data)


def probe(jid: str, target_jid: str, minions: list[str], t: float) -> bytes:
    return new(jid, "saltutil.find_job", minions, t, arg=[target_jid], tgt=minions, tgt_type="list")


def answer(jid: str, target_jid: str, minion: str, t: float, running: bool) -> bytes:
    value = {"pid": 1, "fun": "cmd.run", "jid": target_jid} if running else {}
    return ret(jid, minion, "saltutil.find_job", t, ret_value=value, fun_args=[target_jid])
