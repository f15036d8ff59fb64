"""Event bodies to typed Salt events (DESIGN.md section 4).

The tag is classified before the data is decoded, so events nobody needs (the 3007+ `publish` twin of
`new`, progress events, custom tags, syndic copies) cost a few byte comparisons. Parsing is total: anything
malformed returns a decode-error reason instead of raising, and fields of the wrong type fall back to safe
defaults. Values of `arg`, `fun_args` and `return` are kept only where the tracker needs their shape (state
results, find_job answers); nothing here logs them.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import Any, Final

import msgpack

FIND_JOB: Final = "saltutil.find_job"
_unpackb = msgpack.unpackb
UNKNOWN: Final = "unknown"


@dataclass(slots=True)
class JobNew:
    jid: str
    fun: str
    tgt: str
    tgt_type: str
    user: str
    minions: list[str]
    missing: list[str]
    probed_jid: str | None  # arg[0] of a saltutil.find_job probe
    stamp: float
    traceparent: str | None
    arg: Any  # kept for opt-in span attributes only; never logged or labelled


class JobReturn:
    """One minion's return. Only the fields every return needs are set at parse time; the rest are read
    from the decoded data when the tracker asks (most returns never need them)."""

    __slots__ = ("data", "fun", "jid", "minion", "stamp")

    def __init__(self, jid: str, minion: str, fun: str, stamp: float, data: dict[str, Any]) -> None:
        self.jid = jid
        self.minion = minion
        self.fun = fun
        self.stamp = stamp
        self.data = data

    @property
    def retcode(self) -> int:
        retcode = self.data.get("retcode", 0)
        if type(retcode) is int:
            return retcode
        return 0 if retcode is None else 1

    @property
    def success(self) -> bool | None:
        success = self.data.get("success")
        return success if type(success) is bool else None

    @property
    def ret(self) -> Any:
        return self.data.get("return")

    @property
    def fun_args(self) -> Any:
        return self.data.get("fun_args")

    @property
    def schedule(self) -> bool:
        return "schedule" in self.data

    @property
    def has_user(self) -> bool:
        return "user" in self.data

    @property
    def probed_jid(self) -> str | None:
        """fun_args[0] of a find_job answer."""
        return _first_str(self.data.get("fun_args")) if self.fun == FIND_JOB else None


class PeerReturn(JobReturn):
    """A return a 3007+ cluster peer forwarded (`__peer_id`): the minion is connected to that peer, so this
    is the only copy the publishing master sees. Counted only for jobs published on this master."""

    __slots__ = ()


@dataclass(slots=True)
class PeerJobNew(JobNew):
    """A publish a 3007+ cluster peer forwarded: that peer's exporter owns the job, so returns reaching this
    master for it are left to that exporter (which sees them as PeerReturn)."""


@dataclass(slots=True)
class BatchEvent:
    jid: str
    action: str  # new, progress, complete, ...
    stamp: float


@dataclass(slots=True)
class RunEvent:
    """A runner or wheel job start (`ret` False) or finish (`ret` True)."""

    kind: str  # runner | wheel
    jid: str
    fun: str
    ret: bool
    success: bool | None
    stamp: float


@dataclass(slots=True)
class ActEvent:
    """salt/auth, salt/key: counted by `act`."""

    kind: str  # auth | key
    act: str
    minion: str
    stamp: float


@dataclass(slots=True)
class MinionStart:
    minion: str
    stamp: float


@dataclass(slots=True)
class Presence:
    present: list[str] | None  # salt/presence/present
    new: list[str]  # salt/presence/change
    lost: list[str]
    stamp: float


@dataclass(slots=True)
class Beacon:
    minion: str
    beacon: str
    stamp: float


@dataclass(slots=True)
class MasterStats:
    worker: str
    stats: dict[str, tuple[float, float]]  # command -> (runs, mean seconds)
    stamp: float


@dataclass(slots=True)
class SyndicEvent:
    """An event a syndic forwarded to this master of masters (`syndic/<syndic>/<tag>`).

    A syndic's job announcement (`<jid>` or `salt/job/<jid>/new` under the prefix) carries the minions it
    sent the job to: the top master's own `new` lists only the syndic's id. Presence copies carry the list
    so the tracker can tell them from this master's own presence events. Other tags only name the syndic.
    """

    syndic: str
    jid: str | None
    minions: list[str]
    presence: Presence | None
    stamp: float


Event = (
    JobNew
    | JobReturn
    | PeerJobNew
    | PeerReturn
    | BatchEvent
    | RunEvent
    | ActEvent
    | MinionStart
    | Presence
    | Beacon
    | MasterStats
    | SyndicEvent
)


# What one body became: (category, event or None, decode-error reason or None). A tuple, not an object:
# this is built once per event on the hot path.
Parsed = tuple[str, Event | None, str | None]


# ---------------------------------------------------------------------------------------------------------
# Timestamps

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


# ---------------------------------------------------------------------------------------------------------
# Field helpers: every field of the wrong type becomes a safe default.


def _str(value: object, default: str = UNKNOWN) -> str:
    return value if type(value) is str else default


def _str_list(value: object) -> list[str]:
    if type(value) is not list:
        return []
    return [v for v in value if type(v) is str]


def _first_str(value: object) -> str | None:
    if type(value) is list and value and type(value[0]) is str:
        return value[0]
    return None


def _tgt(value: object) -> str:
    if type(value) is str:
        return value
    if type(value) is list:
        return ",".join(v for v in value if type(v) is str)
    return ""


def _decode(data: bytes) -> Any:
    try:
        return _unpackb(data, raw=False, strict_map_key=False)
    except UnicodeDecodeError:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, unicode_errors="surrogateescape")


# ---------------------------------------------------------------------------------------------------------
# The parser


def parse(body: bytes) -> Parsed:
    """Classify one event body by tag and decode its data only when the tracker needs it."""
    sep = body.find(b"\n\n")
    if sep < 0:
        return ("malformed", None, "no_separator")
    if body.startswith(b"salt/job/"):
        # The hot path, inlined: most events are returns (salt/job/<jid>/ret/<minion>).
        slash = body.find(b"/", 9, sep)
        if slash > 9 and body.startswith(b"/ret/", slash) and sep > slash + 5:
            try:
                data = _unpackb(body[sep + 2 :], raw=False, strict_map_key=False)
            except Exception:
                try:
                    data = _decode(body[sep + 2 :])  # invalid UTF-8 survives; anything else is bad data
                except Exception:
                    return ("job_return", None, "bad_data")
            if type(data) is not dict:
                return ("job_return", None, "not_a_map")
            cls = PeerReturn if "__peer_id" in data else JobReturn  # a 3007+ cluster peer forwarded it
            fun = data.get("fun")
            stamp = parse_stamp(data.get("_stamp"))
            try:
                jid = body[9:slash].decode()
                minion = body[slash + 5 : sep].decode()
            except UnicodeDecodeError:
                jid = body[9:slash].decode("utf-8", "replace")
                minion = body[slash + 5 : sep].decode("utf-8", "replace")
            return (
                "job_return" if cls is JobReturn else "cluster_peer",
                cls(jid, minion, fun if type(fun) is str else UNKNOWN, stamp or 0.0, data),
                None,
            )
        return _job(body[:sep], body, sep)
    tag = body[:sep]
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
        parts = tag.split(b"/", 4)
        if len(parts) < 4:
            return ("beacon", None, "bad_tag")
        return _with_data(body, sep, "beacon", _beacon, tag)
    if tag.startswith(b"salt/batch/"):
        parts = tag.split(b"/")
        if len(parts) < 4:
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
        return _with_data(body, sep, "job_new_legacy", _job_new_by_data, b"")
    if tag == b"minion_start":
        return ("minion_start_legacy", None, None)
    if tag.isdigit():
        return ("job_legacy", None, None)  # bare-jid duplicate of salt/job/<jid>/new, up to 3007
    if tag.startswith(b"salt/"):
        return ("salt_other", None, None)
    return ("custom", None, None)


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


def _with_data(body: bytes, sep: int, category: str, build: Any, extra: bytes) -> Parsed:
    try:
        data = _decode(body[sep + 2 :])
    except Exception:  # msgpack raises several unrelated types on hostile input
        return (category, None, "bad_data")
    if type(data) is not dict:
        return (category, None, "not_a_map")
    if "__peer_id" in data:
        # A 3007+ cluster peer's event: its own exporter counts it. Only its publishes matter here, to
        # tell which jids that exporter owns.
        if build is _job_new:
            stamp = parse_stamp(data.get("_stamp"))
            return ("cluster_peer", _job_new(data, extra, stamp or 0.0, PeerJobNew), None)
        return ("cluster_peer", None, None)
    stamp = parse_stamp(data.get("_stamp"))
    event = build(data, extra, 0.0 if stamp is None else stamp)
    if event is None:
        return (category, None, "bad_fields")
    return (category, event, None)


def _job(tag: bytes, body: bytes, sep: int) -> Parsed:
    rest = tag[9:]
    slash = rest.find(b"/")
    if slash <= 0:
        return ("job_other", None, "bad_tag")
    action = rest[slash + 1 :]
    if action[:4] == b"ret/":
        return ("job_return", None, "bad_tag")  # well-formed returns took the fast path in parse()
    if action == b"new":
        return _with_data(body, sep, "job_new", _job_new, rest[:slash])
    if action == b"publish":
        return ("job_publish", None, None)
    if action[:5] == b"prog/":
        return ("job_progress", None, None)
    if action[:6] == b"start/":
        return ("job_start", None, None)
    return ("job_other", None, None)


def _job_new(d: dict[str, Any], jid_b: bytes, stamp: float, cls: type[JobNew] = JobNew) -> JobNew:
    jid = jid_b.decode("utf-8", "replace")
    fun = _str(d.get("fun"))
    arg = d.get("arg")
    if not stamp:
        stamp = jid_time(jid) or 0.0
    tp = d.get("traceparent")
    if tp is None:
        meta = d.get("metadata")
        if type(meta) is dict:
            tp = meta.get("traceparent")
    return cls(
        jid,
        fun,
        _tgt(d.get("tgt")),
        _str(d.get("tgt_type"), "glob"),
        _str(d.get("user"), ""),
        _str_list(d.get("minions")),
        _str_list(d.get("missing")),
        _first_str(arg) if fun == FIND_JOB else None,
        stamp,
        tp if type(tp) is str else None,
        arg,
    )


def _job_new_by_data(d: dict[str, Any], _: bytes, stamp: float) -> JobNew | None:
    jid = d.get("jid")
    return _job_new(d, jid.encode(), stamp) if type(jid) is str and jid else None


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
