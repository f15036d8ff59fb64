"""Event bodies (`tag\\n\\n` + msgpack data) to typed Salt events, tag first.

The tag is classified before any data is decoded, so events nobody needs (the 3007+ `publish` twin of
`new`, progress events, custom tags, syndic copies) cost a few byte comparisons. Returns and publishes,
almost the whole stream, are decoded by msgspec into structs holding only the fields read, with the
payloads (`return`, `fun_args`, `arg`) left as raw bytes. A body the typed decoder refuses (invalid UTF-8
from a 2015.8 master, non-string keys, odd field types) takes the generic decoder instead, so typed
decoding never loses an event real masters send. Parsing is total: anything malformed returns a
decode-error reason instead of raising.
"""

from __future__ import annotations

from sys import intern
from typing import Any

import msgspec

from exporter.salt.events import (
    FIND_JOB,
    UNKNOWN,
    ActEvent,
    BatchEvent,
    Beacon,
    Event,
    JobNew,
    JobReturn,
    JobStart,
    MasterStats,
    MinionStart,
    PeerJobNew,
    Presence,
    Raw,
    RunEvent,
    SyndicEvent,
    decode_any,
    first_str,
    lazy,
)
from exporter.salt.stamps import jid_time, parse_stamp

# What one body became: (category, event or None, decode-error reason or None). A tuple, not an object:
# this is built once per event on the hot path.
Parsed = tuple[str, Event | None, str | None]

_ABSENT = Raw(b"")


class _NewData(msgspec.Struct, rename={"stamp": "_stamp", "peer": "__peer_id"}, gc=False):
    fun: Any = None
    tgt: Any = None
    tgt_type: Any = None
    user: Any = None
    minions: Any = None
    missing: Any = None
    arg: Raw = _ABSENT
    stamp: Any = None
    traceparent: Any = None
    metadata: Raw = _ABSENT
    jid: Any = None
    peer: Raw = _ABSENT


_decode_return = msgspec.msgpack.Decoder(JobReturn).decode
_decode_new = msgspec.msgpack.Decoder(_NewData).decode


def parse(body: bytes) -> Parsed:
    """Classify one event body by tag and decode only what the job layer reads."""
    sep = body.find(b"\n\n")
    if sep < 0:
        return ("malformed", None, "no_separator")
    if body.startswith(b"salt/job/"):
        # The hot path, inlined: most events are returns (salt/job/<jid>/ret/<minion>).
        slash = body.find(b"/", 9, sep)
        if not (slash > 9 and body.startswith(b"/ret/", slash) and sep > slash + 5):
            return _job(body[:sep], body, sep)
    else:
        return _other(body[:sep], body, sep)
    try:
        ret = _decode_return(body[sep + 2 :])
    except Exception:  # not shaped as the typed decoder expects: the generic one decides
        return _return_generic(body, slash, sep)
    if type(ret.fun) is not str:
        ret.fun = UNKNOWN
    ret.stamp = parse_stamp(ret.raw_stamp) or 0.0
    try:
        ret.jid = body[9:slash].decode()
        ret.minion = body[slash + 5 : sep].decode()
    except UnicodeDecodeError:
        ret.jid = body[9:slash].decode("utf-8", "replace")
        ret.minion = body[slash + 5 : sep].decode("utf-8", "replace")
    return ("cluster_peer" if ret.peer else "job_return", ret, None)


_PRESENT = Raw(b"\xc0")


def _return_generic(body: bytes, slash: int, sep: int) -> Parsed:
    """A return the typed decoder refused: decoded whole, invalid UTF-8 kept as surrogate escapes."""
    try:
        data = decode_any(body[sep + 2 :])
    except Exception:
        return ("job_return", None, "bad_data")
    if type(data) is not dict:
        return ("job_return", None, "not_a_map")
    fun = data.get("fun")
    ret = JobReturn(
        fun=fun if type(fun) is str else UNKNOWN,
        retcode=data.get("retcode", 0),
        success=data.get("success"),
        jid=body[9:slash].decode("utf-8", "replace"),
        minion=body[slash + 5 : sep].decode("utf-8", "replace"),
        stamp=parse_stamp(data.get("_stamp")) or 0.0,
        decoded_ret=data.get("return"),
        decoded_fun_args=data.get("fun_args"),
        **{name: _PRESENT for key, name in _MARKERS if key in data},
    )
    return ("cluster_peer" if ret.peer else "job_return", ret, None)


_MARKERS = (("schedule", "schedule"), ("user", "user"), ("cmd", "cmd"), ("__peer_id", "peer"))


def _other(tag: bytes, body: bytes, sep: int) -> Parsed:  # noqa: C901, PLR0911, PLR0912
    """One flat branch per Salt tag family, commonest first: a table of prefixes would cost more."""
    if tag.startswith(b"salt/presence/"):
        return _with_data(body, sep, "presence", _presence, tag[14:])
    if tag.startswith((b"salt/run/", b"salt/wheel/")):
        return _run(tag, body, sep)
    if tag in {b"salt/auth", b"salt/key"}:
        return _with_data(body, sep, tag[5:].decode(), _act, tag[5:])
    if tag.startswith(b"salt/minion/"):
        parts = tag.split(b"/")
        if len(parts) == 4 and parts[3] == b"start":
            return _with_data(body, sep, "minion_start", _minion_start, parts[2])
        return ("minion", None, None)
    if tag.startswith(b"salt/beacon/"):
        if len(tag.split(b"/", 4)) < 4:
            return ("beacon", None, "bad_tag")
        return _with_data(body, sep, "beacon", _beacon, tag)
    if tag.startswith(b"salt/batch/"):
        if len(tag.split(b"/")) < 4:
            return ("batch", None, "bad_tag")
        return _with_data(body, sep, "batch", _batch, tag)
    if tag.startswith(b"salt/stats/"):
        return _with_data(body, sep, "stats", _stats, tag[11:])
    if tag.startswith(b"syndic/"):
        return _syndic(tag, body, sep)
    if tag.startswith(b"cluster/"):
        return ("cluster", None, None)
    if tag == b"new_job":
        # The pre-2016 twin of salt/job/<jid>/new; a repeated publish of a known jid counts once.
        return _new(body, sep, b"", "job_new_legacy")
    if tag == b"minion_start":
        return ("minion_start_legacy", None, None)
    if tag.isdigit():
        return ("job_legacy", None, None)  # bare-jid duplicate of salt/job/<jid>/new, up to 3007
    if tag.startswith(b"salt/"):
        return ("salt_other", None, None)
    return ("custom", None, None)


def _job(tag: bytes, body: bytes, sep: int) -> Parsed:  # noqa: PLR0911 (one return per job tag kind)
    rest = tag[9:]
    slash = rest.find(b"/")
    if slash <= 0:
        return ("job_other", None, "bad_tag")
    action = rest[slash + 1 :]
    if action[:4] == b"ret/":
        return ("job_return", None, "bad_tag")  # well-formed returns took the fast path in parse()
    if action == b"new":
        return _new(body, sep, rest[:slash], "job_new")
    if action == b"publish":
        return ("job_publish", None, None)
    if action[:5] == b"prog/":
        return ("job_progress", None, None)
    if action[:6] == b"start/" and len(action) > 6:
        return _start(body, sep, rest[:slash], action[6:])
    return ("job_other", None, None)


class _StampData(msgspec.Struct, rename={"stamp": "_stamp", "peer": "__peer_id"}, gc=False):
    stamp: Any = None
    peer: Raw = _ABSENT


_decode_stamp = msgspec.msgpack.Decoder(_StampData).decode


def _start(body: bytes, sep: int, jid: bytes, minion: bytes) -> Parsed:
    """A start event: only its `_stamp` is read (jid and minion are in the tag)."""
    try:
        d = _decode_stamp(body[sep + 2 :])
    except Exception:
        return ("job_start", None, "bad_data")
    if d.peer:
        return ("cluster_peer", None, None)  # the peer's exporter owns that job
    stamp = parse_stamp(d.stamp)
    if stamp is None:
        return ("job_start", None, "bad_fields")
    return (
        "job_start",
        JobStart(jid.decode("utf-8", "replace"), minion.decode("utf-8", "replace"), stamp),
        None,
    )


# ---------------------------------------------------------------------------------------------------------
# Publishes


def _new(body: bytes, sep: int, jid_b: bytes, category: str) -> Parsed:
    """`salt/job/<jid>/new` (jid from the tag) or the legacy `new_job` (jid in the data)."""
    try:
        d: Any = _decode_new(body[sep + 2 :])
        get = _struct_get
    except Exception:
        try:
            d = decode_any(body[sep + 2 :])
        except Exception:
            return (category, None, "bad_data")
        if type(d) is not dict:
            return (category, None, "not_a_map")
        get = _dict_get
    if not jid_b:
        jid_v = get(d, "jid")
        if type(jid_v) is not str or not jid_v:
            return (category, None, "bad_fields")
        jid_b = jid_v.encode("utf-8", "surrogateescape")
    peer = bool(get(d, "__peer_id"))
    cls = PeerJobNew if peer else JobNew
    return ("cluster_peer" if peer else category, _job_new(get, d, jid_b, cls), None)


_STRUCT_NAMES = {"_stamp": "stamp", "__peer_id": "peer"}


def _struct_get(d: Any, key: str) -> Any:
    value = getattr(d, _STRUCT_NAMES.get(key, key))
    return None if value is _ABSENT else value


def _dict_get(d: Any, key: str) -> Any:
    return d.get(key)


def _job_new(get: Any, d: Any, jid_b: bytes, cls: type[JobNew]) -> JobNew:
    jid = jid_b.decode("utf-8", "replace")
    fun = _str(get(d, "fun"))
    raw_arg = get(d, "arg")
    stamp = parse_stamp(get(d, "_stamp")) or jid_time(jid) or 0.0
    tp = get(d, "traceparent")
    if tp is None:
        meta = lazy(get(d, "metadata"))
        if type(meta) is dict:
            tp = meta.get("traceparent")
    return cls(
        jid,
        fun,
        _tgt(get(d, "tgt")),
        _str(get(d, "tgt_type"), "glob"),
        _str(get(d, "user"), ""),
        _targets(get(d, "minions")),
        _str_list(get(d, "missing")),
        first_str(lazy(raw_arg)) if fun == FIND_JOB else None,
        stamp,
        tp if type(tp) is str else None,
        raw_arg,
    )


# ---------------------------------------------------------------------------------------------------------
# Everything else: rare enough for a generic decode of the whole map.


def _with_data(body: bytes, sep: int, category: str, build: Any, extra: bytes) -> Parsed:
    try:
        data = decode_any(body[sep + 2 :])
    except Exception:  # hostile input raises several unrelated types
        return (category, None, "bad_data")
    if type(data) is not dict:
        return (category, None, "not_a_map")
    if "__peer_id" in data:
        return ("cluster_peer", None, None)  # a 3007+ cluster peer's event: its own exporter counts it
    stamp = parse_stamp(data.get("_stamp"))
    event = build(data, extra, 0.0 if stamp is None else stamp)
    if event is None:
        return (category, None, "bad_fields")
    return (category, event, None)


def _syndic(tag: bytes, body: bytes, sep: int) -> Parsed:
    """The master of masters fires each event a syndic forwards twice: as-is, then under this prefix.

    Only job announcements and presence lists are decoded; every other forwarded tag just names the
    syndic (its as-is twin is counted where it belongs).
    """
    slash = tag.find(b"/", 7)
    if slash <= 7 or slash == len(tag) - 1:
        return ("syndic", None, "bad_tag")
    rest = tag[slash + 1 :]
    if rest.isdigit() or (rest.startswith(b"salt/job/") and rest.endswith(b"/new")):
        return _with_data(body, sep, "syndic", _syndic_job, tag[7:])
    if rest.startswith(b"salt/presence/"):
        return _with_data(body, sep, "syndic", _syndic_presence, tag[7:])
    return ("syndic", SyndicEvent(tag[7:slash].decode("utf-8", "replace"), None, [], None, 0.0), None)


def _syndic_job(d: dict[str, Any], tag: bytes, stamp: float) -> SyndicEvent | None:
    syndic, _, rest = tag.partition(b"/")
    jid = rest if rest.isdigit() else rest[9:-4]
    if not jid or b"/" in jid:
        return None
    return SyndicEvent(
        syndic.decode("utf-8", "replace"), jid.decode(), _str_list(d.get("minions")), None, stamp
    )


def _syndic_presence(d: dict[str, Any], tag: bytes, stamp: float) -> SyndicEvent | None:
    syndic, _, rest = tag.partition(b"/")
    presence = _presence(d, rest[14:], stamp)
    if presence is None:
        return None
    return SyndicEvent(syndic.decode("utf-8", "replace"), None, [], presence, stamp)


def _run(tag: bytes, body: bytes, sep: int) -> Parsed:
    parts = tag.split(b"/")
    kind = "runner" if parts[1] == b"run" else "wheel"
    if len(parts) != 4 or parts[3] not in (b"new", b"ret"):
        return (kind, None, None)
    return _with_data(body, sep, kind, _run_event, tag)


def _run_event(d: dict[str, Any], tag: bytes, stamp: float) -> RunEvent:
    parts = tag.split(b"/")
    success = d.get("success")
    return RunEvent(
        "runner" if parts[1] == b"run" else "wheel",
        parts[2].decode("utf-8", "replace"),
        _str(d.get("fun")),
        parts[3] == b"ret",
        success if type(success) is bool else None,
        stamp,
    )


def _act(d: dict[str, Any], kind: bytes, stamp: float) -> ActEvent:
    return ActEvent(kind.decode(), _str(d.get("act")), _str(d.get("id"), ""), stamp)


def _minion_start(d: dict[str, Any], minion: bytes, stamp: float) -> MinionStart:
    return MinionStart(minion.decode("utf-8", "replace"), stamp)


def _presence(d: dict[str, Any], which: bytes, stamp: float) -> Presence | None:
    if which == b"present":
        return Presence(_str_list(d.get("present")), [], [], stamp)
    if which == b"change":
        return Presence(None, _str_list(d.get("new")), _str_list(d.get("lost")), stamp)
    return None


def _beacon(d: dict[str, Any], tag: bytes, stamp: float) -> Beacon:
    parts = tag.split(b"/", 4)
    return Beacon(parts[2].decode("utf-8", "replace"), parts[3].decode("utf-8", "replace"), stamp)


def _batch(d: dict[str, Any], tag: bytes, stamp: float) -> BatchEvent:
    parts = tag.split(b"/")
    return BatchEvent(parts[2].decode("utf-8", "replace"), parts[3].decode("utf-8", "replace"), stamp)


def _stats(d: dict[str, Any], worker: bytes, stamp: float) -> MasterStats:
    """`{"time", "worker", "stats": {command: {"runs", "mean"}}}` (salt.master's _post_stats)."""
    stats: dict[str, tuple[float, float]] = {}
    per_command = d.get("stats")
    for cmd, value in per_command.items() if type(per_command) is dict else ():
        if type(cmd) is str and type(value) is dict:
            runs, mean = value.get("runs"), value.get("mean")
            if isinstance(runs, int | float) and isinstance(mean, int | float):
                stats[cmd] = (float(runs), float(mean))
    return MasterStats(worker.decode("utf-8", "replace"), stats, stamp)


# ---------------------------------------------------------------------------------------------------------
# Field helpers: every field of the wrong type becomes a safe default.


def _str(value: object, default: str = UNKNOWN) -> str:
    return value if type(value) is str else default


def _str_list(value: object) -> list[str]:
    if type(value) is not list:
        return []
    return [v for v in value if type(v) is str]


INTERN_TARGETS = 1024  # a job's minion ids are interned up to this many targets


def _targets(value: object) -> list[str]:
    """The minion ids of a publish. The tracker remembers closed jobs (late and duplicate returns); with
    interned ids every remembered job to the same fleet shares one copy of each id. Not for fleet-wide jobs:
    the interning table would cost each of their pending minions another ~60 bytes."""
    if type(value) is not list:
        return []
    if len(value) > INTERN_TARGETS:
        return [v for v in value if type(v) is str]
    return [intern(v) for v in value if type(v) is str]


def _tgt(value: object) -> str:
    if type(value) is str:
        return value
    if type(value) is list:
        return ",".join(v for v in value if type(v) is str)
    return ""
