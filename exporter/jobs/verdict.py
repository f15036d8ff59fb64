"""The `salt` CLI's "did not return" verdict, replayed from the bus.

It follows `salt.client.LocalClient.get_iter_returns`: after `timeout` the CLI probes the pending minions
with `saltutil.find_job` (a publish whose `arg[0]` is the probed jid); a minion answering "running" gets
`timeout` more; the CLI probes again every `gather_job_timeout` (plus `syndic_wait` on a master of
masters) while anyone answers "running", and gives up on the rest once a round has no running answer and
every extension has run out. Jobs nobody probes (`--async`, the API) get `job_deadline` instead.

The reason for each silent minion is the one the CLI prints: `no_key` (in the publish's `missing`),
`not_connected` (gone from the master's presence view, or, without presence events, it answered no probe)
and `no_response`; `exporter.jobs.topology` refines it for syndics' minions. The CLI asks the publish
port who is connected at the moment it gives up, while the bus only tells the presence view of the last
`loop_interval`: a minion that is in that view but answered no probe may have died since, so its verdict
is held until the next presence event (at most one presence interval) and then counted with the reason
that event implies.
"""

from __future__ import annotations

import heapq
from typing import Final

from exporter.jobs.model import (
    BUS_GAP,
    CLOSED,
    DEADLINE,
    NO_KEY,
    NO_RESPONSE,
    NOT_CONNECTED,
    PENDING,
    SILENT,
    Job,
    SpanEvent,
)
from exporter.jobs.state import JobsState
from exporter.salt.events import JobNew, JobReturn
from exporter.salt.results import find_job_running

HOLD: Final = "hold"  # not a reason: the reason waits for the next presence event
PRESENCE_WAIT: Final = 1.0  # a presence event is itself held up to a second (exporter.jobs.topology)


class FindJobVerdicts(JobsState):
    def advance(self, now: float) -> None:
        """Move time forward and fire every check that is due."""
        self.now = max(self.now, now)
        self._presence_due()
        if self.held_verdicts:
            self._release_held(due_only=True)
        heap = self._heap
        while heap and heap[0][0] <= self.now:
            at, _, jid = heapq.heappop(heap)
            job = self.open.get(jid)
            if job is not None and job.check_at == at:
                self._check(job)

    def _on_probe(self, ev: JobNew) -> None:
        if ev.jid in self.probes:
            return  # a 2015.8 master fires every publish twice (`new_job` and `salt/job/<jid>/new`)
        target = ev.probed_jid or ""
        self.probes.put(ev.jid, target)
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
            job.events.append(SpanEvent(ev.stamp, "find_job", "", ",".join(ev.minions)))
        self._schedule(job, ev.stamp + self._round() + self.cfg.grace)

    def _round(self) -> float:
        """Length of one find_job round: a master of masters' CLI (order_masters) adds `syndic_wait`."""
        cfg = self.cfg
        return cfg.gather_job_timeout + cfg.syndic_wait if self.syndics else cfg.gather_job_timeout

    def _on_answer(self, ev: JobReturn) -> None:
        if ev.jid in self.peer_jobs:
            return  # a cluster peer's probe: its exporter counts the answer
        target = self.probes.get(ev.jid) or ev.probed_jid or ""
        job = self.open.get(target)
        running = find_job_running(ev)
        answer = "running" if running else "not_running"
        if job is None:
            old = self.closed.get(target)
            self.obs.probe_answer(old.fun if old is not None else "unknown", answer)
            return
        self.obs.probe_answer(job.fun, answer)
        minion = ev.minion
        if job.answered is None:
            job.answered = set()
        job.answered.add(minion)
        if self.cfg.detail:
            job.events.append(SpanEvent(ev.stamp, "find_job_answer", minion, answer))
        if running and job.minions.get(minion) == PENDING:
            job.round_running = True
            if job.extended is None:
                job.extended = {}
            job.extended[minion] = ev.stamp + (job.first_probe_delay or self.cfg.timeout)

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
            if now < round_end + round_length:
                self._schedule(job, round_end + round_length)
            elif now >= deadline:
                self._give_up(job, deadline, DEADLINE)
            else:
                self._schedule(job, deadline)
            return
        verdict_at = round_end
        minions = job.minions
        for minion, extended in (job.extended or {}).items():
            if extended > verdict_at and minions.get(minion) == PENDING:
                verdict_at = extended
        if now < verdict_at + cfg.grace:
            self._schedule(job, verdict_at + cfg.grace)
            return
        self._give_up(job, verdict_at, None)

    def _give_up(self, job: Job, at: float, reason: str | None) -> None:
        for minion in job.pending_minions():
            if minion in self.syndics:
                del job.minions[minion]  # the CLI does not report syndics as silent minions either
                continue
            why = BUS_GAP if job.gap else reason or self._reason(job, minion)
            if why is HOLD:
                job.minions[minion] = SILENT  # the CLI has given up on it: a return now is late
                if job.held is None:
                    job.held = {}
                job.held[minion] = at
            else:
                self._verdict(job, minion, at, why)
        self.pending_total -= job.pending
        job.pending = 0
        job.last = max(job.last, at)
        if job.held is not None:
            job.check_at = -1.0  # no more find_job rounds: the next presence event decides
            self.held_verdicts[job.jid] = at + self.presence_interval + 2 * self.cfg.grace + PRESENCE_WAIT
            return
        self._close(job, job.last, CLOSED)

    def _release_held(self, due_only: bool) -> None:
        """Give the held verdicts their reasons from the presence view now (a presence event came, the
        hold ran out, or the exporter stops), and close their jobs."""
        now = self.now
        for jid, deadline in list(self.held_verdicts.items()):
            if due_only and deadline > now:
                continue
            del self.held_verdicts[jid]
            job = self.open.get(jid)
            if job is None or job.held is None:
                continue
            present = self.present or set()
            for minion, at in job.held.items():
                self._verdict(job, minion, at, NO_RESPONSE if minion in present else NOT_CONNECTED)
            job.held = None
            if self._finished(job):
                self._close(job, job.last, CLOSED)

    def _reason(self, job: Job, minion: str) -> str:
        """Why the CLI calls this minion silent: what the master knows of its key and connection."""
        if job.via is not None and minion in job.via:
            # This master has no connection or minion data of its own for a syndic's minion: the CLI says
            # [No response] for it (seen on a real 3006.29 master of masters).
            return NO_RESPONSE
        if minion in job.unkeyed:
            return NO_KEY
        present = self.present
        if present is not None:
            if minion not in present:
                return NOT_CONNECTED
            if job.probes and (job.answered is None or minion not in job.answered):
                # Present at the last presence event but silent to every probe: it may have died since,
                # and the CLI asks the publish port right now. The next presence event tells.
                return HOLD
            return NO_RESPONSE
        return NO_RESPONSE if job.answered is not None and minion in job.answered else NOT_CONNECTED

    def _verdict(self, job: Job, minion: str, at: float, reason: str) -> None:
        job.minions[minion] = SILENT
        job.silent[minion] = (at, reason)
        self.obs.no_return(job.fun, reason, minion)
        if job.started is not None and minion in job.started:
            self.obs.no_return_started(job.fun, reason)  # accepted the job, then went silent
