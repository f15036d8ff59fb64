"""Jobs that are not one publish and its returns: batches (`salt -b`), runner and wheel jobs, and the events
that are only counted (auth, key, beacons, master stats).

On 3008 a batch run publishes every sub-batch under one jid: the sub-batches are merged into one job,
which closes on `salt/batch/<jid>/complete` (older releases give each sub-batch a jid of its own).
"""

from __future__ import annotations

from exporter.jobs.model import CLOSED, RunRecord
from exporter.jobs.state import JobsState
from exporter.salt.events import ActEvent, BatchEvent, Beacon, MasterStats, RunEvent
from exporter.salt.results import FAILURE, SUCCESS


class RunsAndBatches(JobsState):
    def _on_batch(self, ev: BatchEvent) -> None:
        if ev.action == "new":
            self.batches.put(ev.jid, None)
            job = self.open.get(ev.jid)
            if job is not None:
                job.batch = True
        elif ev.action in ("complete", "done", "stop"):
            self.batches.pop(ev.jid, None)
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
            self.runs.put(ev.jid, (ev.fun, ev.stamp))
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

    def _on_beacon(self, ev: Beacon) -> None:
        self.obs.beacon(ev.beacon)

    def _on_stats(self, ev: MasterStats) -> None:
        self.obs.master_stats(ev.worker, ev.stats)
