"""Typed Salt events: what the job layer is told, with only the fields it reads.

Payloads the job layer rarely needs (a return's `return`, `fun_args`, a publish's `arg`) stay as the raw
msgpack bytes they arrived in and are decoded on first access: most returns never need them, and the ones
that do (state results, find_job answers, opt-in span payloads) pay for exactly what they read. Nothing
here logs a payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgpack
import msgspec

FIND_JOB: Final = "saltutil.find_job"
UNKNOWN: Final = "unknown"

# JobReturn.flags: keys whose presence (not value) tells where a return came from.
HAS_SCHEDULE: Final = 1  # a scheduled job's return names its schedule
HAS_USER: Final = 2  # a publish through the master carries the user; salt-call's returns do not
HAS_CMD: Final = (
    4  # every minion return has `cmd`; a syndic's relayed return (salt.master._syndic_return) not
)

Raw = msgspec.Raw
_decode_any = msgspec.msgpack.Decoder().decode


def decode_any(data: bytes | Raw) -> Any:
    """Decode one msgpack value whatever it holds; invalid UTF-8 survives as surrogate escapes (2015.8 packs
    strings as raw bytes, and a minion may return any bytes)."""
    try:
        return _decode_any(data)
    except msgspec.DecodeError:
        return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False, unicode_errors="surrogateescape")


def lazy(value: Any) -> Any:
    """A field kept raw at parse time, decoded now (None if it does not decode)."""
    if type(value) is not Raw:
        return value
    if not value:
        return None
    try:
        return decode_any(value)
    except Exception:  # hostile bytes inside an otherwise good event: the field is just absent
        return None


class JobReturn:
    """One minion's return (`salt/job/<jid>/ret/<minion>`)."""

    __slots__ = ("_fun_args", "_ret", "flags", "fun", "jid", "minion", "retcode", "stamp", "success")

    def __init__(
        self,
        jid: str,
        minion: str,
        fun: str,
        stamp: float,
        retcode: int,
        success: bool | None,
        ret: Any,
        fun_args: Any,
        flags: int,
    ) -> None:
        self.jid = jid
        self.minion = minion
        self.fun = fun
        self.stamp = stamp
        self.retcode = retcode  # 0, or non-zero when the minion's retcode was non-zero or not an int
        self.success = success
        self._ret = ret
        self._fun_args = fun_args
        self.flags = flags

    @property
    def ret(self) -> Any:
        value = self._ret = lazy(self._ret)
        return value

    @property
    def raw_ret(self) -> Any:
        """`return` as it arrived (msgspec.Raw on the fast path), for typed decoders."""
        return self._ret

    @property
    def fun_args(self) -> Any:
        value = self._fun_args = lazy(self._fun_args)
        return value

    @property
    def probed_jid(self) -> str | None:
        """fun_args[0] of a find_job answer: the jid it was asked about."""
        return first_str(self.fun_args) if self.fun == FIND_JOB else None


class PeerReturn(JobReturn):
    """A return a 3007+ cluster peer forwarded (`__peer_id`): the minion is connected to that peer, so this
    is the only copy the publishing master sees. Counted only for jobs published on this master."""

    __slots__ = ()


@dataclass(slots=True)
class JobNew:
    """A publish (`salt/job/<jid>/new`, or `new_job` before 2016.3)."""

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
    raw_arg: Any = None  # decoded only for opt-in span attributes; never logged or labelled

    @property
    def arg(self) -> Any:
        return lazy(self.raw_arg)


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
    so the job layer can tell them from this master's own presence events. Other tags only name the syndic.
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


def first_str(value: object) -> str | None:
    if type(value) is list and value and type(value[0]) is str:
        return value[0]
    return None
