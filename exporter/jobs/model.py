"""The job layer's vocabulary: a job and its minions, the verdict reasons, and the Observer it reports to.

Nothing here knows Prometheus or OpenTelemetry: the metrics sink implements `Observer`, the trace sink
listens for closed jobs and runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from exporter.salt.results import StateDetail

# A targeted minion's state within a job: one dict entry per (job, minion), one lookup per return.
PENDING: Final = 0
RETURNED: Final = 1
SILENT: Final = 2  # got a did-not-return verdict; a return after it is late

# Reasons a targeted minion did not return.
NO_KEY: Final = "no_key"  # listed in the publish's `missing`: no accepted key, the CLI says so at once
NOT_CONNECTED: Final = "not_connected"  # the master does not see the minion connected (CLI: [Not connected])
NO_RESPONSE: Final = "no_response"  # connected, but never returned in time (CLI: [No response])
DEADLINE: Final = "deadline"  # nobody probed the job and the deadline passed (async and API jobs)
BUS_GAP: Final = "bus_gap"  # the exporter lost events while the job was open: the return may have been missed

# Why a job was closed, for close listeners.
CLOSED: Final = "closed"
EVICTED: Final = "evicted"
SHUTDOWN: Final = "exporter shutdown"


class Observer(Protocol):
    """What the job layer reports; the metrics sink implements it. Function names arrive raw."""

    def job_published(self, fun: str, tgt_type: str) -> None: ...
    def minions_targeted(self, fun: str, count: int) -> None: ...
    def job_return(
        self, fun: str, outcome: str, reason: str | None, latency: float | None, minion: str, stamp: float
    ) -> None: ...
    def unpublished_return(self, fun: str, kind: str) -> None: ...
    def state_results(
        self, fun: str, succeeded: int, failed: int, skipped: int, changed: int, seconds: float | None
    ) -> None: ...
    def duplicate_return(self, fun: str) -> None: ...
    def late_return(self, fun: str) -> None: ...
    def no_return(self, fun: str, reason: str, minion: str) -> None: ...
    def job_started(self, fun: str, dispatch: float) -> None: ...
    def job_ran(self, fun: str, run: float) -> None: ...
    def no_return_started(self, fun: str, reason: str) -> None: ...
    def job_closed(self, fun: str, duration: float) -> None: ...
    def probe(self, fun: str) -> None: ...
    def probe_answer(self, fun: str, answer: str) -> None: ...
    def run_started(self, kind: str, fun: str) -> None: ...
    def run_finished(self, kind: str, fun: str, outcome: str, duration: float | None) -> None: ...
    def act(self, kind: str, act: str) -> None: ...
    def minion_start(self) -> None: ...
    def presence(self, present: int | None, new: int, lost: int) -> None: ...
    def beacon(self, beacon: str) -> None: ...
    def master_stats(self, worker: str, stats: dict[str, tuple[float, float]]) -> None: ...
    def syndic_event(self, syndic: str) -> None: ...
    def syndic_minions(self, syndic: str, count: int) -> None: ...
    def evicted(self, kind: str) -> None: ...


@dataclass(frozen=True, slots=True)
class JobsConfig:
    timeout: float = 5.0
    gather_job_timeout: float = 10.0
    syndic_wait: float = 5.0  # a master of masters' CLI waits this much longer per find_job round
    syndic_master: bool = False  # this master's salt-syndic relays jobs naming other masters' minions
    job_deadline: float = 600.0  # jobs nobody probes
    max_jobs: int = 10_000  # open jobs
    max_closed_jobs: int = 10_000  # kept for late and duplicate returns
    max_probes: int = 10_000  # probe jid -> probed jid
    max_runs: int = 10_000  # runner/wheel jobs waiting for their ret, and batch jids
    max_unpublished: int = 10_000  # (jid, minion) of returns without publish, for dedupe
    max_syndics: int = 1_000  # syndic ids seen under syndic/<id>/ (they are not minions)
    max_peer_jobs: int = 10_000  # jids a 3007+ cluster peer published (its exporter owns them)
    grace: float = 1.0  # lag allowed between the CLI's decision and ours
    presence_interval: float = 60.0  # the master's loop_interval, until two presence events show it
    detail: bool = False  # keep per-minion detail for close listeners (traces)
    keep_payload: bool = False  # also keep fun_args and return per minion (traces.include-args opt-in)
    max_state_details: int = 100  # per job, when detail is on


@dataclass(slots=True)
class MinionResult:
    """One minion's return, kept only with `detail` (for spans)."""

    stamp: float
    outcome: str
    reason: str | None
    retcode: int
    success: bool | None
    late: bool = False


@dataclass(slots=True)
class SpanEvent:
    """A probe or a probe answer on a job, kept only with `detail` (span events)."""

    stamp: float
    kind: str  # find_job | find_job_answer
    minion: str  # "" for a probe
    value: str  # the probed minions, or the answer


@dataclass(slots=True)
class Job:
    jid: str
    fun: str
    tgt: str
    tgt_type: str
    user: str
    start: float
    traceparent: str | None = None
    raw_arg: Any = None  # detail only
    minions: dict[str, int] = field(default_factory=dict)  # minion -> PENDING | RETURNED | SILENT
    pending: int = 0
    targeted: int = 0
    failed: int = 0
    last: float = 0.0
    is_state: bool = False  # a state.* function: returns carry per-state results
    # The find_job rounds (exporter.jobs.verdict).
    probes: int = 0
    last_probe: float = 0.0
    first_probe_delay: float = 0.0
    round_running: bool = False
    extended: dict[str, float] | None = None  # minion -> deadline after answering "running"
    answered: set[str] | None = None  # minions that answered any probe
    check_at: float = 0.0
    batch: bool = False
    batch_done: bool = False
    closed: bool = False
    gap: bool = False  # the exporter lost events while this job was open
    started: dict[str, float] | None = None  # minion -> its start event (`salt --start-event`), if any
    held: dict[str, float] | None = None  # minion -> verdict time, its reason awaiting a presence event
    silent: dict[str, tuple[float, str]] = field(default_factory=dict)  # minion -> (verdict time, reason)
    # Topology (exporter.jobs.topology).
    via: dict[str, str] | None = None  # minion -> the syndic that announced it
    relays: tuple[str, ...] = ()  # known syndics in the publish: pending until they announce, not targeted
    unkeyed: tuple[str, ...] = ()  # `missing` on a master of masters: no_key unless a syndic announces them
    # Detail for spans only.
    results: dict[str, MinionResult] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    states: list[StateDetail] = field(default_factory=list)
    states_dropped: int = 0
    fun_args: dict[str, Any] = field(default_factory=dict)  # minion -> fun_args, opt-in payload only
    returns: dict[str, Any] = field(default_factory=dict)  # minion -> return, opt-in payload only

    def pending_minions(self) -> list[str]:
        return [m for m, state in self.minions.items() if state == PENDING]

    @property
    def returned(self) -> int:
        return sum(1 for state in self.minions.values() if state == RETURNED)


class _NoDetail(dict[Any, Any]):
    """The detail maps of a job when detail is off: empty, shared by every job, and never written (a write
    would be a bug, so it raises)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        raise TypeError("detail is off for this job")


class _NoDetailList(list[Any]):
    def append(self, value: Any) -> None:
        raise TypeError("detail is off for this job")

    def extend(self, values: Any) -> None:
        raise TypeError("detail is off for this job")


NO_DETAIL: dict[Any, Any] = _NoDetail()
NO_DETAIL_LIST: list[Any] = _NoDetailList()


def lean_job(
    jid: str, fun: str, tgt: str, tgt_type: str, user: str, start: float, traceparent: str | None
) -> Job:
    """A job without per-minion detail (no tracing, no live view): ~300 bytes less for each of the thousands
    of open and remembered jobs."""
    return Job(
        jid,
        fun,
        tgt,
        tgt_type,
        user,
        start,
        traceparent,
        results=NO_DETAIL,
        events=NO_DETAIL_LIST,
        states=NO_DETAIL_LIST,
        fun_args=NO_DETAIL,
        returns=NO_DETAIL,
    )


CloseListener = Callable[[Job, str], None]


@dataclass(slots=True)
class RunRecord:
    """A finished runner or wheel job, for run listeners (traces)."""

    kind: str
    jid: str
    fun: str
    start: float
    end: float
    outcome: str


RunListener = Callable[[RunRecord], None]
