"""Per-jid job state from publish to close, and the CLI's "did not return" verdict (DESIGN.md section 4).

The tracker is the only stateful layer. It knows nothing of Prometheus or OpenTelemetry: it reports what
happened to an `Observer` (the metrics sink) and hands closed jobs to close listeners (the trace sink).
Time is whatever the caller says it is (event `_stamp`s, plus wall-clock ticks in live mode), so replays are
deterministic and tests never sleep.

The verdict follows `salt.client.LocalClient.get_iter_returns`: after `timeout` the CLI probes the
pending minions with `saltutil.find_job`; a minion answering "running" gets `timeout` more; the CLI probes
again every `gather_job_timeout` while anyone answers "running", and gives up on the rest once a round has
no running answer and every extension has run out. Jobs nobody probes (`--async`, API) get a deadline.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from exporter.salt.events import (
    FIND_JOB,
    ActEvent,
    BatchEvent,
    Beacon,
    Event,
    JobNew,
    JobReturn,
    MasterStats,
    MinionStart,
    PeerJobNew,
    PeerReturn,
    Presence,
    RunEvent,
    SyndicEvent,
)

# Outcome of one minion return.
SUCCESS = "success"
FAILURE = "failure"

# Reasons a targeted minion did not return.
NO_KEY = "no_key"  # listed in the publish's `missing`: no accepted key, the CLI says so at once
NOT_CONNECTED = "not_connected"  # the master does not see the minion connected (CLI: [Not connected])
NO_RESPONSE = "no_response"  # connected, but never returned in time (CLI: [No response])
DEADLINE = "deadline"  # nobody probed the job and the deadline passed (async and API jobs)

# Why a job was closed, for close listeners.
CLOSED = "closed"
EVICTED = "evicted"
SHUTDOWN = "exporter shutdown"

STATE_PREFIX = "state."
# How long a presence event waits for its `syndic/<id>/` copy (the master fires both back to back).
PRESENCE_HOLD = 1.0


class Observer(Protocol):
    """What the tracker reports; the metrics sink implements it. Function names arrive raw."""

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


@dataclass(slots=True)
class TrackerConfig:
    timeout: float = 5.0
    gather_job_timeout: float = 10.0
    syndic_wait: float = 5.0  # a master of masters' CLI waits this much longer per find_job round
    syndic_master: bool = False  # this master's salt-syndic relays jobs naming other masters' minions
    job_deadline: float = 600.0  # jobs nobody probes
    max_jobs: int = 10_000  # open jobs
    max_closed_jobs: int = 10_000  # kept for late and duplicate returns
    max_probes: int = 10_000  # probe jid -> probed jid
    max_runs: int = 10_000  # runner/wheel jobs waiting for their ret
    max_unpublished: int = 10_000  # (jid, minion) of returns without publish, for dedupe
    max_syndics: int = 1_000  # syndic ids seen under syndic/<id>/ (they are not minions)
    max_peer_jobs: int = 10_000  # jids a 3007+ cluster peer published (its exporter owns them)
    grace: float = 1.0  # lag allowed between the CLI's decision and ours
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
class Job:
    jid: str
    fun: str
    tgt: str
    tgt_type: str
    user: str
    start: float
    traceparent: str | None = None
    arg: Any = None
    fun_args: dict[str, Any] = field(default_factory=dict)  # minion -> fun_args, detail + opt-in only
    returns: dict[str, Any] = field(default_factory=dict)  # minion -> return, detail + opt-in only
    targeted: int = 0
    pending: set[str] = field(default_factory=set)
    returned: dict[str, MinionResult | None] = field(default_factory=dict)
    no_return: dict[str, tuple[float, str]] = field(default_factory=dict)
    failed: int = 0
    last: float = 0.0
    probes: int = 0
    last_probe: float = 0.0
    first_probe_delay: float = 0.0
    round_running: bool = False
    extended: dict[str, float] = field(default_factory=dict)  # minion -> deadline after "running"
    answered: set[str] = field(default_factory=set)  # minions that answered any probe
    batch: bool = False
    batch_done: bool = False
    closed: bool = False
    check_at: float = 0.0
    # detail only: (stamp, kind, minion or "", value) for span events; per-state (minion, id, start, dur, ok)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    via: dict[str, str] = field(default_factory=dict)  # minion -> the syndic that announced it
    relays: tuple[str, ...] = ()  # known syndics in the publish: pending until they announce, not targeted
    unkeyed: tuple[str, ...] = ()  # `missing` on a master of masters: no_key unless a syndic announces them
    states: list[tuple[str, str, str, float, bool | None]] = field(default_factory=list)
    states_dropped: int = 0


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


def classify(ret: JobReturn) -> tuple[str, str | None, tuple[int, int, int, int, float] | None]:
    """Outcome, failure reason and, for state functions, (succeeded, failed, skipped, changed, ms)."""
    summary = state_summary(ret.ret) if ret.fun.startswith(STATE_PREFIX) else None
    if summary is not None and summary[1]:
        return FAILURE, "state", summary
    if ret.success is False:
        return FAILURE, "success", summary
    if ret.retcode != 0:
        return FAILURE, "retcode", summary
    return SUCCESS, None, summary


def state_summary(ret: object) -> tuple[int, int, int, int, float] | None:
    if type(ret) is not dict:
        return None
    ok = bad = skipped = changed = 0
    ms = 0.0
    seen = False
    for value in ret.values():
        if type(value) is not dict or "result" not in value:
            continue
        seen = True
        result = value["result"]
        if result is True:
            ok += 1
        elif result is False:
            bad += 1
        else:
            skipped += 1
        if value.get("changes"):
            changed += 1
        duration = value.get("duration")
        if isinstance(duration, int | float):
            ms += duration
    return (ok, bad, skipped, changed, ms) if seen else None


class Tracker:
    """Feeds events in stamp order; call `advance(now)` in live mode so verdicts fire without events."""

    def __init__(
        self,
        config: TrackerConfig,
        observer: Observer,
        listeners: list[CloseListener] | None = None,
        run_listeners: list[RunListener] | None = None,
    ) -> None:
        self.cfg = config
        self.obs = observer
        self.listeners = listeners or []
        self.run_listeners = run_listeners or []
        self.now = 0.0
        self.open: dict[str, Job] = {}
        self.closed: dict[str, Job] = {}
        self.probes: dict[str, str] = {}
        self.runs: dict[str, tuple[str, float]] = {}
        self.batches: set[str] = set()
        self.unpublished: dict[tuple[str, str], None] = {}
        self.present: set[str] | None = None
        # A master of masters also fires its syndics' presence events under their plain tags, each followed
        # at once by a `syndic/<id>/` copy: a presence event waits for the next event (at most PRESENCE_HOLD)
        # to tell which it is.
        self._held: Presence | None = None
        self.syndics: dict[str, None] = {}
        self.peer_jobs: dict[str, None] = {}
        self.pending_total = 0
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self.shift: float | None = None  # set by new_epoch() when a recording is replayed in a loop
        self._epoch_start = False
        self._dispatch: dict[type, Callable[[Any], None]] = {
            JobReturn: self._on_return,
            JobNew: self._on_new,
            Presence: self._on_presence,
            RunEvent: self._on_run,
            ActEvent: self._on_act,
            MinionStart: self._on_minion_start,
            BatchEvent: self._on_batch,
            Beacon: self._on_beacon,
            MasterStats: self._on_stats,
            SyndicEvent: self._on_syndic,
            PeerJobNew: self._on_peer_new,
            PeerReturn: self._on_peer_return,
        }

    # -- driving ------------------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if self.shift is not None:
            self._shift(event)
        if self._held is not None and not self._is_copy(event):
            self._apply_presence()
        stamp = event.stamp
        if stamp > self.now:
            self.now = stamp
            heap = self._heap
            if heap and heap[0][0] <= stamp:
                self.advance(stamp)
        self._dispatch[type(event)](event)

    def new_epoch(self) -> None:
        """A recording starts over (`--replay.loop`): close what is open, forget jids, and move the next
        events' stamps to just after the current time so the replay reads as new activity."""
        self.close_all(SHUTDOWN)
        self.closed.clear()
        self.probes.clear()
        self.runs.clear()
        self.unpublished.clear()
        self.peer_jobs.clear()
        self.shift = 0.0
        self._epoch_start = True

    def _shift(self, event: Event) -> None:
        if self._epoch_start:
            self._epoch_start = False
            self.shift = self.now + 1.0 - event.stamp
        event.stamp += self.shift  # type: ignore[operator]

    def advance(self, now: float) -> None:
        """Move time forward and fire every check that is due."""
        self.now = max(self.now, now)
        held = self._held
        if held is not None and self.now >= held.stamp + PRESENCE_HOLD:
            self._apply_presence()
        heap = self._heap
        while heap and heap[0][0] <= self.now:
            at, _, jid = heapq.heappop(heap)
            job = self.open.get(jid)
            if job is not None and job.check_at == at:
                self._check(job)

    def close_all(self, status: str = SHUTDOWN) -> None:
        """Hand every open job to the listeners (shutdown); metrics are not touched."""
        for job in list(self.open.values()):
            self._close(job, self.now, status)

    # -- jobs ---------------------------------------------------------------------------------------------

    def _schedule(self, job: Job, at: float) -> None:
        job.check_at = at
        self._seq += 1
        heap = self._heap
        heapq.heappush(heap, (at, self._seq, job.jid))
        if len(heap) > 2 * len(self.open) + 1024:
            # Closed and evicted jobs leave stale entries behind; drop them so the heap stays bounded.
            open_jobs = self.open
            self._heap = [e for e in heap if (j := open_jobs.get(e[2])) is not None and j.check_at == e[0]]
            heapq.heapify(self._heap)

    def _on_new(self, ev: JobNew) -> None:
        if ev.fun == FIND_JOB:
            self._on_probe(ev)
            return
        jid = ev.jid
        job = self.open.get(jid)
        if job is None:
            old = self.closed.get(jid)
            if old is not None:
                if not (old.batch or jid in self.batches):
                    return  # a repeated publish (syndic, retry): one job, not two
                del self.closed[jid]
                old.closed = False
                job = self.open[jid] = old
            else:
                job = Job(jid, ev.fun, ev.tgt, ev.tgt_type, ev.user, ev.stamp, ev.traceparent)
                job.last = ev.stamp
                job.batch = jid in self.batches
                if self.cfg.detail:
                    job.arg = ev.arg
                self.open[jid] = job
                self.obs.job_published(ev.fun, ev.tgt_type)
                if len(self.open) > self.cfg.max_jobs:
                    self._evict_oldest()
        added = 0
        syndics = self.syndics
        for minion in ev.minions:
            if minion not in job.pending and minion not in job.returned and minion not in job.no_return:
                job.pending.add(minion)
                if minion in syndics:
                    # A relay, not a minion: the job waits for its announcement of the minions it reached.
                    job.relays += (minion,)
                    self.pending_total += 1
                else:
                    added += 1
        self.pending_total += added
        for minion in ev.missing if not self.cfg.syndic_master else ():
            if minion in job.returned or minion in job.no_return:
                continue
            if syndics:
                # A master of masters has no keys for its syndics' minions (a list target names them as
                # missing), yet a syndic may announce and run them: no_key only if nobody does.
                if minion not in job.pending:
                    job.pending.add(minion)
                    self.pending_total += 1
                    added += 1
                job.unkeyed += (minion,)
                continue
            if minion in job.pending:
                job.pending.discard(minion)
                self.pending_total -= 1
            else:
                added += 1
            self._verdict(job, minion, ev.stamp, NO_KEY)
        if added:
            job.targeted += added
            self.obs.minions_targeted(job.fun, added)
        if self._finished(job):
            self._close(job, max(job.last, ev.stamp), CLOSED)
        else:
            self._schedule(job, ev.stamp + self.cfg.timeout + self.cfg.gather_job_timeout + self.cfg.grace)

    def _finished(self, job: Job) -> bool:
        return not job.pending and not (job.batch and not job.batch_done)

    def _on_probe(self, ev: JobNew) -> None:
        target = ev.probed_jid or ""
        self.probes[ev.jid] = target
        if len(self.probes) > self.cfg.max_probes:
            del self.probes[next(iter(self.probes))]
            self.obs.evicted("probe")
        job = self.open.get(target)
        if job is None:
            old = self.closed.get(target)
            self.obs.probe(old.fun if old is not None else "unknown")
            return
        self.obs.probe(job.fun)
        if job.probes == 0:
            job.first_probe_delay = ev.stamp - job.start
        job.probes += 1
        job.last_probe = ev.stamp
        job.round_running = False
        if self.cfg.detail:
            job.events.append((ev.stamp, "find_job", "", ",".join(ev.minions)))
        self._schedule(job, ev.stamp + self._round() + self.cfg.grace)

    def _round(self) -> float:
        """Length of one find_job round: a master of masters' CLI (order_masters) adds `syndic_wait`."""
        cfg = self.cfg
        return cfg.gather_job_timeout + cfg.syndic_wait if self.syndics else cfg.gather_job_timeout

    def _on_return(self, ev: JobReturn) -> None:
        if ev.fun == FIND_JOB:
            self._on_answer(ev)
            return
        jid, minion = ev.jid, ev.minion
        job = self.open.get(jid)
        if job is None:
            job = self.closed.get(jid)
            if job is None:
                if jid not in self.peer_jobs:
                    self._on_unpublished(ev)
                return
        fun = job.fun
        if minion in job.returned:
            self.obs.duplicate_return(fun)
            return
        if fun[:6] == STATE_PREFIX:
            outcome, reason, states = classify(ev)
        else:
            # classify() without the state part, inlined: this runs for almost every event.
            states = None
            data = ev.data
            retcode = data.get("retcode", 0)
            if data.get("success") is False:
                outcome, reason = FAILURE, "success"
            elif (retcode != 0) if type(retcode) is int else (retcode is not None):
                outcome, reason = FAILURE, "retcode"
            else:
                outcome, reason = SUCCESS, None
        late = minion in job.no_return
        if late:
            self.obs.late_return(fun)
        elif minion in job.pending:
            job.pending.discard(minion)
            self.pending_total -= 1
        detail = self.cfg.detail
        job.returned[minion] = (
            MinionResult(ev.stamp, outcome, reason, ev.retcode, ev.success, late) if detail else None
        )
        if outcome is FAILURE:
            job.failed += 1
        if self.cfg.keep_payload:
            job.fun_args[minion] = ev.fun_args
            job.returns[minion] = ev.ret
        self.obs.job_return(fun, outcome, reason, ev.stamp - job.start, minion, ev.stamp)
        if states is not None:
            self.obs.state_results(fun, states[0], states[1], states[2], states[3], states[4] / 1000.0)
            if detail:
                self._keep_states(job, minion, ev.ret)
        if job.closed:
            return
        if ev.stamp > job.last:
            job.last = ev.stamp
        if not job.pending and not (job.batch and not job.batch_done):
            self._close(job, job.last, CLOSED)

    def _keep_states(self, job: Job, minion: str, ret: dict[str, Any]) -> None:
        cap = self.cfg.max_state_details
        for sid, value in ret.items():
            if type(value) is not dict or "result" not in value:
                continue
            if len(job.states) >= cap:
                job.states_dropped += 1
                continue
            start = value.get("start_time")
            duration = value.get("duration")
            name = value.get("__id__") or sid
            job.states.append(
                (
                    minion,
                    str(name)[:200],
                    start if type(start) is str else "",
                    float(duration) if isinstance(duration, int | float) else 0.0,
                    value["result"] if type(value["result"]) is bool else None,
                )
            )

    def _on_unpublished(self, ev: JobReturn) -> None:
        key = (ev.jid, ev.minion)
        if key in self.unpublished:
            self.obs.duplicate_return(ev.fun)
            return
        self.unpublished[key] = None
        if len(self.unpublished) > self.cfg.max_unpublished:
            del self.unpublished[next(iter(self.unpublished))]
        if "cmd" not in ev.data:
            kind = "syndic"  # relayed by a syndic (salt.master._syndic_return): a job of a lower master
        elif ev.schedule:
            kind = "scheduled"
        elif ev.jid in ("req", "nocache") or not ev.has_user:
            kind = "salt_call"
        else:
            kind = "unknown_jid"
        outcome, reason, states = classify(ev)
        self.obs.unpublished_return(ev.fun, kind)
        self.obs.job_return(ev.fun, outcome, reason, None, ev.minion, ev.stamp)
        if states is not None:
            self.obs.state_results(ev.fun, states[0], states[1], states[2], states[3], states[4] / 1000.0)

    def _on_answer(self, ev: JobReturn) -> None:
        if ev.jid in self.peer_jobs:
            return  # a cluster peer's probe: its exporter counts the answer
        target = self.probes.get(ev.jid) or ev.probed_jid or ""
        job = self.open.get(target)
        running = type(ev.ret) is dict and bool(ev.ret)
        answer = "running" if running else "not_running"
        if job is None:
            old = self.closed.get(target)
            self.obs.probe_answer(old.fun if old is not None else "unknown", answer)
            return
        self.obs.probe_answer(job.fun, answer)
        minion = ev.minion
        job.answered.add(minion)
        if self.cfg.detail:
            job.events.append((ev.stamp, "find_job_answer", minion, answer))
        if running and minion in job.pending:
            job.round_running = True
            extension = job.first_probe_delay or self.cfg.timeout
            job.extended[minion] = ev.stamp + extension

    def _check(self, job: Job) -> None:
        now = self.now
        cfg = self.cfg
        deadline = job.start + cfg.job_deadline
        if job.probes == 0 or (job.batch and not job.batch_done):
            # Nobody is waiting on this job the way the CLI does: only the deadline can end it.
            if now >= deadline:
                self._give_up(job, deadline, DEADLINE)
            else:
                self._schedule(job, deadline)
            return
        round_length = self._round()
        round_end = job.last_probe + round_length
        if job.round_running:
            # The CLI probes again right after round_end; if it never does, it went away.
            if now >= round_end + round_length:
                if now >= deadline:
                    self._give_up(job, deadline, DEADLINE)
                else:
                    self._schedule(job, deadline)
            else:
                self._schedule(job, round_end + round_length)
            return
        verdict_at = round_end
        for minion in job.pending:
            extended = job.extended.get(minion)
            if extended is not None and extended > verdict_at:
                verdict_at = extended
        if now < verdict_at + cfg.grace:
            self._schedule(job, verdict_at + cfg.grace)
            return
        self._give_up(job, verdict_at, None)

    def _give_up(self, job: Job, at: float, reason: str | None) -> None:
        present = self.present
        for minion in list(job.pending):
            if minion in self.syndics:
                continue  # the CLI does not report syndics as silent minions either
            why = reason
            if why is None:
                if minion in job.via:
                    # This master has no connection or minion data of its own for a syndic's minion: the
                    # CLI says [No response] for it (seen on a real 3006.29 master of masters).
                    why = NO_RESPONSE
                elif minion in job.unkeyed:
                    why = NO_KEY
                elif present is not None:
                    why = NO_RESPONSE if minion in present else NOT_CONNECTED
                else:
                    why = NO_RESPONSE if minion in job.answered else NOT_CONNECTED
            self._verdict(job, minion, at, why)
        self.pending_total -= len(job.pending)
        job.pending.clear()
        job.last = max(job.last, at)
        self._close(job, job.last, CLOSED)

    def _verdict(self, job: Job, minion: str, at: float, reason: str) -> None:
        job.no_return[minion] = (at, reason)
        self.obs.no_return(job.fun, reason, minion)

    def _close(self, job: Job, at: float, status: str) -> None:
        job.closed = True
        self.open.pop(job.jid, None)
        if job.pending:
            self.pending_total -= len(job.pending)
        if status is CLOSED:
            self.obs.job_closed(job.fun, at - job.start)
            self.closed[job.jid] = job
            if len(self.closed) > self.cfg.max_closed_jobs:
                del self.closed[next(iter(self.closed))]
                self.obs.evicted("closed_job")
        for listener in self.listeners:
            listener(job, status)
        if status is not CLOSED:
            job.pending.clear()

    def _evict_oldest(self) -> None:
        job = next(iter(self.open.values()))
        self.obs.evicted("job")
        self._close(job, self.now, EVICTED)

    # -- batches, runners and the rest ------------------------------------------------------------------

    def _on_batch(self, ev: BatchEvent) -> None:
        if ev.action == "new":
            self.batches.add(ev.jid)
            if len(self.batches) > self.cfg.max_runs:
                self.batches.pop()
            job = self.open.get(ev.jid)
            if job is not None:
                job.batch = True
        elif ev.action in ("complete", "done", "stop"):
            self.batches.discard(ev.jid)
            job = self.open.get(ev.jid)
            if job is not None:
                job.batch_done = True
                if self._finished(job):
                    self._close(job, job.last, CLOSED)
            else:
                old = self.closed.get(ev.jid)
                if old is not None:
                    old.batch_done = True

    def _on_run(self, ev: RunEvent) -> None:
        if not ev.ret:
            self.runs[ev.jid] = (ev.fun, ev.stamp)
            if len(self.runs) > self.cfg.max_runs:
                del self.runs[next(iter(self.runs))]
                self.obs.evicted("run")
            self.obs.run_started(ev.kind, ev.fun)
            return
        started = self.runs.pop(ev.jid, None)
        duration = ev.stamp - started[1] if started is not None else None
        outcome = FAILURE if ev.success is False else SUCCESS
        self.obs.run_finished(ev.kind, ev.fun, outcome, duration)
        if self.run_listeners:
            record = RunRecord(
                ev.kind, ev.jid, ev.fun, started[1] if started else ev.stamp, ev.stamp, outcome
            )
            for listener in self.run_listeners:
                listener(record)

    def _on_act(self, ev: ActEvent) -> None:
        self.obs.act(ev.kind, ev.act)

    def _on_minion_start(self, ev: MinionStart) -> None:
        self.obs.minion_start()
        if self.present is not None:
            self.present.add(ev.minion)

    def _on_presence(self, ev: Presence) -> None:
        self._held = ev  # handle() applied any earlier one

    def _is_copy(self, event: Event) -> bool:
        """Whether ``event`` is the `syndic/<id>/` copy of the held presence event."""
        if type(event) is not SyndicEvent or event.presence is None:
            return False
        held, copy = self._held, event.presence
        return (
            held is not None
            and held.present == copy.present
            and held.new == copy.new
            and held.lost == copy.lost
        )

    def _apply_presence(self) -> None:
        ev = self._held
        self._held = None
        if ev is None:
            return
        if ev.present is not None:
            self.present = set(ev.present)
            self.obs.presence(len(self.present), 0, 0)
            return
        present = self.present if self.present is not None else set()
        present.update(ev.new)
        present.difference_update(ev.lost)
        self.present = present
        self.obs.presence(len(present), len(ev.new), len(ev.lost))

    def _on_beacon(self, ev: Beacon) -> None:
        self.obs.beacon(ev.beacon)

    def _on_stats(self, ev: MasterStats) -> None:
        self.obs.master_stats(ev.worker, ev.stats)

    # -- 3007+ master cluster ------------------------------------------------------------------------------
    # Every master fires its peers' events too, marked `__peer_id`. A job belongs to the exporter of the
    # master that published it: that one sees every return (its own minions' directly, the peers' minions'
    # as forwarded copies), as that master's CLI does. The others skip the job's returns, so a sum() over
    # the cluster counts each return once.

    def _on_peer_new(self, ev: PeerJobNew) -> None:
        peer_jobs = self.peer_jobs
        peer_jobs[ev.jid] = None
        if len(peer_jobs) > self.cfg.max_peer_jobs:
            del peer_jobs[next(iter(peer_jobs))]
            self.obs.evicted("peer_job")

    def _on_peer_return(self, ev: PeerReturn) -> None:
        jid = ev.jid
        if ev.fun == FIND_JOB:
            if jid in self.probes:
                self._on_answer(ev)
        elif jid in self.open or jid in self.closed:
            self._on_return(ev)

    def _on_syndic(self, ev: SyndicEvent) -> None:
        syndic = ev.syndic
        syndics = self.syndics
        if syndic not in syndics:
            syndics[syndic] = None
            if len(syndics) > self.cfg.max_syndics:
                del syndics[next(iter(syndics))]
                self.obs.evicted("syndic")
        self.obs.syndic_event(syndic)
        if ev.presence is not None:
            self._held = None  # handle() kept it only if this is its copy: the syndic master's presence
            return
        job = self.open.get(ev.jid) if ev.jid is not None else None
        if job is None:
            return
        if syndic in job.pending:
            job.pending.discard(syndic)
            self.pending_total -= 1
            if syndic not in job.relays:
                job.targeted -= 1  # counted as a minion before this syndic was known
        added = announced = 0
        via = job.via
        for minion in ev.minions:
            if minion in via or minion in job.returned or minion in job.no_return:
                continue
            if minion not in job.pending:
                job.pending.add(minion)
                added += 1
            via[minion] = syndic
            announced += 1
        if added:
            self.pending_total += added
            job.targeted += added
            self.obs.minions_targeted(job.fun, added)
        if announced:
            self.obs.syndic_minions(syndic, announced)
        if self._finished(job):
            self._close(job, job.last, CLOSED)
