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


_ABSENT = Raw(b"")
_UNDECODED = msgspec.UNSET


class JobReturn(
    msgspec.Struct,
    rename={
        "raw_stamp": "_stamp",
        "raw_ret": "return",
        "raw_fun_args": "fun_args",
        "peer": "__peer_id",
        # Set after decoding, from the tag: names no real return map has.
        "jid": "salt-event-exporter:jid",
        "minion": "salt-event-exporter:minion",
        "stamp": "salt-event-exporter:stamp",
        "decoded_ret": "salt-event-exporter:ret",
        "decoded_fun_args": "salt-event-exporter:fun_args",
    },
    gc=False,
):
    """One minion's return (`salt/job/<jid>/ret/<minion>`): the return map decoded straight into this
    struct, only the fields read; `return` and `fun_args` stay raw until asked for."""

    fun: Any = None  # parse() makes it a str
    raw_stamp: Any = None
    retcode: Any = 0  # an int, or a dict (state.orchestrate), or None
    success: Any = None
    raw_ret: Raw = _ABSENT
    raw_fun_args: Raw = _ABSENT
    schedule: Raw = _ABSENT  # present on a scheduled job's return
    user: Raw = _ABSENT  # present when published through the master; salt-call's returns have none
    cmd: Raw = _ABSENT  # every minion return has it; a syndic's relayed return (_syndic_return) does not
    peer: Raw = _ABSENT  # `__peer_id`: a 3007+ cluster peer forwarded it (the minion is connected there)
    jid: str = ""
    minion: str = ""
    stamp: float = 0.0
    decoded_ret: Any = _UNDECODED
    decoded_fun_args: Any = _UNDECODED  # set only by the generic decoder

    @property
    def failure_reason(self) -> str | None:
        """`success` False, else a non-zero `retcode` (any non-int other than None counts as non-zero)."""
        if self.success is False:
            return "success"
        retcode = self.retcode
        if (retcode != 0) if type(retcode) is int else (retcode is not None):
            return "retcode"
        return None

    @property
    def retcode_int(self) -> int:
        retcode = self.retcode
        if type(retcode) is int:
            return retcode
        return 0 if retcode is None else 1

    @property
    def success_bool(self) -> bool | None:
        return self.success if type(self.success) is bool else None

    @property
    def ret(self) -> Any:
        value = self.decoded_ret
        if value is _UNDECODED:
            value = self.decoded_ret = lazy(self.raw_ret)
        return value

    @property
    def fun_args(self) -> Any:
        value = self.decoded_fun_args
        return lazy(self.raw_fun_args) if value is _UNDECODED else value

    @property
    def probed_jid(self) -> str | None:
        """fun_args[0] of a find_job answer: the jid it was asked about."""
        return first_str(self.fun_args) if self.fun == FIND_JOB else None


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
class JobStart:
    """`salt/job/<jid>/start/<minion>`: the minion accepted the job and is about to run it (published with
    `salt --start-event`, Salt 3008+; `salt.minion.Minion._fire_start_event`)."""

    jid: str
    minion: str
    stamp: float


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
    | JobStart
    | PeerJobNew
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
