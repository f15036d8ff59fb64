"""What a minion's return says: its outcome, the reason for a failure, and a state run's per-state results.

A return is a failure if any state result is False, or `success` is False, or `retcode` is non-zero, and
the reason kept is the first of those (`state`, `success`, `retcode`): Salt reports `success: true` for
failed scheduled highstates, so the state results are the stronger evidence.

A `state.*` return is a map of state id to result. It is decoded typed, reading per state only `result`,
`changes` (for emptiness, left undecoded), `duration`, `start_time` and `__id__`; any other shape (a
rendering error's list of strings, `state.show_*` output) falls back to a generic decode and counts only
entries that are maps with a `result`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from exporter.salt.events import JobReturn, Raw

SUCCESS: Final = "success"
FAILURE: Final = "failure"
STATE_PREFIX: Final = "state."

_ABSENT = Raw(b"")
_UNSET = msgspec.UNSET
# msgpack encodings of the empty or false values an unchanged state reports as `changes`.
_NO_CHANGES = frozenset(
    (b"", b"\x80", b"\x90", b"\xc0", b"\xa0", b"\xc2", b"\x00", b"\xc4\x00", b"\xd9\x00", b"\xde\x00\x00")
)


class _State(msgspec.Struct, rename={"name": "__id__"}, gc=False):
    result: Any = msgspec.UNSET
    changes: Raw = _ABSENT
    duration: Any = None
    start_time: Any = None
    name: Any = None


_decode_states = msgspec.msgpack.Decoder(dict[str, _State]).decode


@dataclass(slots=True)
class StateDetail:
    """One state of a run, kept for spans."""

    minion: str
    name: str
    start: str
    duration_ms: float
    result: bool | None


@dataclass(slots=True)
class StateRun:
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # result None (test=True, or requisites not met)
    changed: int = 0
    duration_ms: float = 0.0  # sum of the per-state durations
    details: list[StateDetail] = field(default_factory=list)


def classify(ret: JobReturn, minion_details: str | None = None) -> tuple[str, str | None, StateRun | None]:
    """Outcome, failure reason and, for state functions, the run (with details for `minion_details`)."""
    run = read_state_run(ret, minion_details) if ret.fun.startswith(STATE_PREFIX) else None
    if run is not None and run.failed:
        return FAILURE, "state", run
    reason = ret.failure_reason
    return (SUCCESS, None, run) if reason is None else (FAILURE, reason, run)


def read_state_run(ret: JobReturn, minion_details: str | None = None) -> StateRun | None:
    """The state results in a return, or None if it holds none; `minion_details` also keeps each state."""
    raw = ret.raw_ret
    if raw:
        try:
            states = _decode_states(raw)
        except Exception:  # not a map of state results: look at it generically
            return _generic_run(ret.ret, minion_details)
        return _typed_run(states, minion_details)
    return _generic_run(ret.ret, minion_details)


def _typed_run(states: dict[str, _State], minion: str | None) -> StateRun | None:
    run = StateRun()
    seen = False
    for sid, st in states.items():
        result = st.result
        if result is _UNSET:
            continue
        seen = True
        if result is True:
            run.succeeded += 1
            ok: bool | None = True
        elif result is False:
            run.failed += 1
            ok = False
        else:
            run.skipped += 1
            ok = None
        changes = st.changes
        if len(changes) > 3 or (changes and bytes(changes) not in _NO_CHANGES):
            run.changed += 1
        duration = st.duration
        if isinstance(duration, int | float):
            run.duration_ms += duration
        if minion is not None:
            run.details.append(_detail(minion, st.name or sid, st.start_time, duration, ok))
    return run if seen else None


def _generic_run(ret: object, minion: str | None) -> StateRun | None:
    if type(ret) is not dict:
        return None
    run = StateRun()
    seen = False
    for sid, value in ret.items():
        if type(value) is not dict or "result" not in value:
            continue
        seen = True
        result = value["result"]
        if result is True:
            run.succeeded += 1
        elif result is False:
            run.failed += 1
        else:
            run.skipped += 1
        if value.get("changes"):
            run.changed += 1
        duration = value.get("duration")
        if isinstance(duration, int | float):
            run.duration_ms += duration
        if minion is not None:
            ok = result if type(result) is bool else None
            run.details.append(
                _detail(minion, value.get("__id__") or sid, value.get("start_time"), duration, ok)
            )
    return run if seen else None


def _detail(minion: str, name: object, start: object, duration: object, ok: bool | None) -> StateDetail:
    return StateDetail(
        minion,
        str(name)[:200],
        start if type(start) is str else "",
        float(duration) if isinstance(duration, int | float) else 0.0,
        ok,
    )


def find_job_running(ret: JobReturn) -> bool:
    """A find_job answer says "running" when its return is a non-empty map (the job's proc data)."""
    value = ret.ret
    return type(value) is dict and bool(value)
