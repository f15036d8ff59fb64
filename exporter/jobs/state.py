"""The state every room of the job layer shares, and the two moves all of them make: closing a job and
scheduling its next check. The rooms (verdict, topology, runs) are mixins over this base, so the hot path
stays one method call deep; `exporter.jobs.tracker.Tracker` puts them together."""

from __future__ import annotations

import heapq

from exporter.jobs.bounded import BoundedMap
from exporter.jobs.model import (
    CLOSED,
    EVICTED,
    CloseListener,
    Job,
    JobsConfig,
    Observer,
    RunListener,
)
from exporter.salt.events import JobReturn, Presence


class JobsState:
    def __init__(
        self,
        config: JobsConfig,
        observer: Observer,
        listeners: list[CloseListener] | None = None,
        run_listeners: list[RunListener] | None = None,
    ) -> None:
        self.cfg = config
        self.obs = observer
        self.listeners = listeners or []
        self.run_listeners = run_listeners or []
        self.now = 0.0
        evicted = observer.evicted
        self.open: dict[str, Job] = {}  # evicted by _evict_oldest: an open job is closed, not just dropped
        self.closed: BoundedMap[str, Job] = BoundedMap(config.max_closed_jobs, "closed_job", evicted)
        self.probes: BoundedMap[str, str] = BoundedMap(config.max_probes, "probe", evicted)
        self.runs: BoundedMap[str, tuple[str, float]] = BoundedMap(config.max_runs, "run", evicted)
        self.batches: BoundedMap[str, None] = BoundedMap(config.max_runs, "batch", evicted)
        self.unpublished: BoundedMap[tuple[str, str], None] = BoundedMap(
            config.max_unpublished, "unpublished", evicted
        )
        self.syndics: BoundedMap[str, None] = BoundedMap(config.max_syndics, "syndic", evicted)
        self.peer_jobs: BoundedMap[str, None] = BoundedMap(config.max_peer_jobs, "peer_job", evicted)
        self.present: set[str] | None = None  # the master's presence view, once it sent one
        self._held: Presence | None = None  # exporter.jobs.topology: a presence event waiting for its copy
        # exporter.jobs.verdict: jobs whose silent minions wait for the next presence event, by deadline.
        self.held_verdicts: dict[str, float] = {}
        self.presence_interval = config.presence_interval
        self._last_present = 0.0
        self.pending_total = 0
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0

    def _finished(self, job: Job) -> bool:
        return not job.pending and job.held is None and not (job.batch and not job.batch_done)

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

    def _close(self, job: Job, at: float, status: str) -> None:
        job.closed = True
        self.open.pop(job.jid, None)
        self.pending_total -= job.pending
        if status is CLOSED:
            self.obs.job_closed(job.fun, at - job.start)
            self.closed.put(job.jid, job)
        for listener in self.listeners:
            listener(job, status)
        if status is not CLOSED:
            job.pending = 0

    # Moves one room makes and another implements (the Tracker's method order finds the real ones).

    def _verdict(self, job: Job, minion: str, at: float, reason: str) -> None:
        raise NotImplementedError  # exporter.jobs.verdict

    def _on_answer(self, ev: JobReturn) -> None:
        raise NotImplementedError  # exporter.jobs.verdict

    def _on_return(self, ev: JobReturn) -> None:
        raise NotImplementedError  # exporter.jobs.tracker

    def _presence_due(self) -> None:
        raise NotImplementedError  # exporter.jobs.topology

    def _release_held(self, due_only: bool) -> None:
        raise NotImplementedError  # exporter.jobs.verdict

    def _evict_oldest(self) -> None:
        job = next(iter(self.open.values()))
        self.obs.evicted("job")
        self._close(job, self.now, EVICTED)
