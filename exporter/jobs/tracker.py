"""Per-jid job state from publish to close: the only stateful layer of the exporter.

Events arrive in stamp order; `advance(now)` in live mode lets verdicts fire while the bus is quiet. Time
is whatever the caller says it is (event `_stamp`s, plus wall-clock ticks in live mode), so replays are
deterministic and tests never sleep. What happened is reported to an `Observer` (the metrics sink) and
closed jobs go to close listeners (the trace sink).

The rooms: `verdict` (the CLI's find_job rounds and did-not-return reasons), `topology` (syndics, cluster
peers, presence), `runs` (batches, runners, wheel, counted-only events), `state` (what they share).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exporter.jobs.model import CLOSED, PENDING, RETURNED, SHUTDOWN, SILENT, Job, MinionResult, lean_job
from exporter.jobs.runs import RunsAndBatches
from exporter.jobs.state import JobsState
from exporter.jobs.topology import Topology
from exporter.jobs.verdict import FindJobVerdicts
from exporter.salt.events import (
    FIND_JOB,
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
    RunEvent,
    SyndicEvent,
)
from exporter.salt.results import FAILURE, STATE_PREFIX, SUCCESS, StateRun, classify


class Tracker(FindJobVerdicts, Topology, RunsAndBatches, JobsState):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._detail = self.cfg.detail
        self._dispatch: dict[type, Callable[[Any], None]] = {
            JobReturn: self._on_return,
            JobNew: self._on_new,
            JobStart: self._on_start,
            Presence: self._on_presence,
            RunEvent: self._on_run,
            ActEvent: self._on_act,
            MinionStart: self._on_minion_start,
            BatchEvent: self._on_batch,
            Beacon: self._on_beacon,
            MasterStats: self._on_stats,
            SyndicEvent: self._on_syndic,
            PeerJobNew: self._on_peer_new,
        }

    def handle(self, event: Event) -> None:
        if self._held is not None and not self._is_copy(event):
            self._apply_presence()
        stamp = event.stamp
        if stamp > self.now:
            self.now = stamp
            heap = self._heap
            if heap and heap[0][0] <= stamp:
                self.advance(stamp)
        if type(event) is JobReturn:  # most events: skip the table
            if event.peer:
                self._on_peer_return(event)
            else:
                self._on_return(event)
        else:
            self._dispatch[type(event)](event)

    def close_all(self, status: str = SHUTDOWN) -> None:
        """Hand every open job to the listeners (shutdown); metrics are not touched, except that verdicts
        waiting for a presence event are given with what the master last said."""
        self._release_held(due_only=False)
        for job in list(self.open.values()):
            self._close(job, self.now, status)

    def bus_gap(self) -> None:
        """Events were lost (reconnect, dropped bytes, undecodable bytes): every open job may have missed
        returns, so its minions that stay silent are not called silent but `bus_gap`."""
        for job in self.open.values():
            job.gap = True

    def settle(self) -> None:
        """Give every held verdict its reason now (the end of a recording)."""
        self._release_held(due_only=False)

    def reset(self) -> None:
        """A recording starts over (`--replay.loop`): close what is open and forget every jid."""
        self.close_all(SHUTDOWN)
        for remembered in (self.closed, self.probes, self.runs, self.unpublished, self.peer_jobs):
            remembered.clear()

    # -- publishes ----------------------------------------------------------------------------------------

    def _on_new(self, ev: JobNew) -> None:
        if ev.fun == FIND_JOB:
            self._on_probe(ev)
            return
        job = self._job_for_publish(ev)
        if job is None:
            return
        before = job.pending
        added = self._target(job, ev)
        self.pending_total += job.pending - before
        if added:
            job.targeted += added
            self.obs.minions_targeted(job.fun, added)
        if self._finished(job):
            self._close(job, max(job.last, ev.stamp), CLOSED)
        else:
            cfg = self.cfg
            self._schedule(job, ev.stamp + cfg.timeout + cfg.gather_job_timeout + cfg.grace)

    def _job_for_publish(self, ev: JobNew) -> Job | None:
        """The job a publish opens, or the open or batch job it adds to; None for a repeated publish."""
        jid = ev.jid
        job = self.open.get(jid)
        if job is not None:
            return job
        old = self.closed.get(jid)
        if old is not None:
            if not (old.batch or jid in self.batches):
                return None  # a repeated publish (syndic, retry): one job, not two
            del self.closed[jid]
            old.closed = False
            self.open[jid] = old
            return old
        job = (Job if self._detail else lean_job)(
            jid, ev.fun, ev.tgt, ev.tgt_type, ev.user, ev.stamp, ev.traceparent
        )
        job.is_state = ev.fun.startswith(STATE_PREFIX)
        job.last = ev.stamp
        job.batch = jid in self.batches
        if self.cfg.detail:
            job.raw_arg = ev.raw_arg
        self.open[jid] = job
        self.obs.job_published(ev.fun, ev.tgt_type)
        if len(self.open) > self.cfg.max_jobs:
            self._evict_oldest()
        return job

    def _on_start(self, ev: JobStart) -> None:
        """The minion accepted the job: publish to start is its dispatch time, start to return its run."""
        job = self.open.get(ev.jid)
        if job is None or job.minions.get(ev.minion) != PENDING:
            return
        if job.started is None:
            job.started = {}
        if ev.minion not in job.started:
            job.started[ev.minion] = ev.stamp
            self.obs.job_started(job.fun, ev.stamp - job.start)

    # -- returns: the hot path ----------------------------------------------------------------------------

    def _on_return(self, ev: JobReturn) -> None:  # noqa: C901, PLR0912 (the hot path, inlined on purpose)
        fun = ev.fun
        if fun == FIND_JOB:
            self._on_answer(ev)
            return
        minion = ev.minion
        job = self.open.get(ev.jid) or self.closed.get(ev.jid)
        if job is None:
            if ev.jid not in self.peer_jobs:
                self._on_unpublished(ev)
            return
        fun = job.fun
        minions = job.minions
        state = minions.get(minion)
        if state == RETURNED:
            self.obs.duplicate_return(fun)
            return
        run: StateRun | None = None
        detail = self._detail
        if job.is_state:
            outcome, reason, run = classify(ev, minion if detail else None)
        else:
            # classify() without the state part, inlined: this runs for almost every event.
            retcode = ev.retcode
            if ev.success is False:
                outcome, reason = FAILURE, "success"
            elif (retcode != 0) if type(retcode) is int else (retcode is not None):
                outcome, reason = FAILURE, "retcode"
            else:
                outcome, reason = SUCCESS, None
        minions[minion] = RETURNED
        if state == PENDING:
            job.pending -= 1
            self.pending_total -= 1
        elif state == SILENT:
            self.obs.late_return(fun)
        if outcome is FAILURE:
            job.failed += 1
        stamp = ev.stamp
        self.obs.job_return(fun, outcome, reason, stamp - job.start, minion, stamp)
        if job.started is not None and minion in job.started:
            self.obs.job_ran(fun, stamp - job.started[minion])
        if run is not None:
            self.obs.state_results(
                fun, run.succeeded, run.failed, run.skipped, run.changed, run.duration_ms / 1000.0
            )
        if detail:
            self._keep_detail(job, ev, outcome, reason, state == SILENT, run)
        if job.closed:
            return
        if stamp > job.last:
            job.last = stamp
        if not job.pending and job.held is None and not (job.batch and not job.batch_done):
            self._close(job, job.last, CLOSED)

    def _keep_detail(
        self, job: Job, ev: JobReturn, outcome: str, reason: str | None, late: bool, run: StateRun | None
    ) -> None:
        minion = ev.minion
        job.results[minion] = MinionResult(ev.stamp, outcome, reason, ev.retcode_int, ev.success_bool, late)
        if self.cfg.keep_payload:
            job.fun_args[minion] = ev.fun_args
            job.returns[minion] = ev.ret
        if run is not None:
            room = self.cfg.max_state_details - len(job.states)
            job.states.extend(run.details[: max(room, 0)])
            job.states_dropped += max(len(run.details) - max(room, 0), 0)

    def _on_unpublished(self, ev: JobReturn) -> None:
        key = (ev.jid, ev.minion)
        if key in self.unpublished:
            self.obs.duplicate_return(ev.fun)
            return
        self.unpublished.put(key, None)
        if not ev.cmd:
            kind = "syndic"  # relayed by a syndic (salt.master._syndic_return): a job of a lower master
        elif ev.schedule:
            kind = "scheduled"
        elif ev.jid in ("req", "nocache") or not ev.user:
            kind = "salt_call"
        else:
            kind = "unknown_jid"
        outcome, reason, run = classify(ev)
        self.obs.unpublished_return(ev.fun, kind)
        self.obs.job_return(ev.fun, outcome, reason, None, ev.minion, ev.stamp)
        if run is not None:
            self.obs.state_results(
                ev.fun, run.succeeded, run.failed, run.skipped, run.changed, run.duration_ms / 1000.0
            )
