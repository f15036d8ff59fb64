"""Who answers for a minion: syndics (master of masters), 3007+ cluster peers, and the presence view.

* Syndics. The top master's `new` lists a syndic's id as if it were a minion; the syndic then announces
  the minions it reached (`syndic/<id>/<jid>`), and their returns arrive under the plain return tag. A
  syndic is a relay: pending until it announces, never targeted, never silent. A list target names the
  syndics' minions as `missing` (the top has no keys for them): `no_key` only if no syndic announces them.
* Cluster peers. Every master fires its peers' events too, marked `__peer_id`. A job belongs to the
  exporter of the master that published it: that one sees every return (its own minions' directly, the
  peers' minions' as forwarded copies), as that master's CLI does. The others skip the job's returns, so
  a sum() over the cluster counts each return once.
* Presence. `salt/presence/present|change` (with `presence_events: True`) is the master's view of who is
  connected, which the verdict's reasons use. A master of masters also fires its syndics' presence events
  under the plain tags, each followed at once by a `syndic/<id>/` copy: a presence event is held until the
  next event (at most PRESENCE_HOLD seconds) to tell which it is.
"""

from __future__ import annotations

from typing import Final

from exporter.jobs.model import CLOSED, NO_KEY, PENDING, Job
from exporter.jobs.state import JobsState
from exporter.salt.events import (
    FIND_JOB,
    Event,
    JobNew,
    JobReturn,
    MinionStart,
    PeerJobNew,
    Presence,
    SyndicEvent,
)

# How long a presence event waits for its `syndic/<id>/` copy (the master fires both back to back).
PRESENCE_HOLD: Final = 1.0


class Topology(JobsState):
    # -- targets of a publish -----------------------------------------------------------------------------

    def _target(self, job: Job, ev: JobNew) -> int:
        """Add the publish's minions to the job; returns how many count as targeted (the caller keeps
        `pending_total` in step with `job.pending`)."""
        added = 0
        minions = job.minions
        syndics = self.syndics
        for minion in ev.minions:
            if minion not in minions:
                minions[minion] = PENDING
                job.pending += 1
                if minion in syndics:
                    job.relays += (minion,)  # a relay: the job waits for its announcement
                else:
                    added += 1
        for minion in ev.missing if not self.cfg.syndic_master else ():
            state = minions.get(minion)
            if state is not None and state != PENDING:
                continue
            if syndics:
                # A master of masters has no keys for its syndics' minions, yet a syndic may announce and
                # run them: no_key only if nobody does.
                if state is None:
                    minions[minion] = PENDING
                    job.pending += 1
                    added += 1
                job.unkeyed += (minion,)
                continue
            if state == PENDING:
                job.pending -= 1
            else:
                added += 1
            self._verdict(job, minion, ev.stamp, NO_KEY)
        return added

    # -- syndics ------------------------------------------------------------------------------------------

    def _on_syndic(self, ev: SyndicEvent) -> None:
        syndic = ev.syndic
        if syndic not in self.syndics:
            self.syndics.put(syndic, None)
        self.obs.syndic_event(syndic)
        if ev.presence is not None:
            self._held = None  # handle() kept it only if this is its copy: the syndic master's presence
            return
        job = self.open.get(ev.jid) if ev.jid is not None else None
        if job is None:
            return
        minions = job.minions
        if minions.get(syndic) == PENDING:
            del minions[syndic]
            job.pending -= 1
            self.pending_total -= 1
            if syndic not in job.relays:
                job.targeted -= 1  # counted as a minion before this syndic was known
        added, announced = self._announce(job, syndic, ev.minions)
        if added:
            job.pending += added
            self.pending_total += added
            job.targeted += added
            self.obs.minions_targeted(job.fun, added)
        if announced:
            self.obs.syndic_minions(syndic, announced)
        if self._finished(job):
            self._close(job, job.last, CLOSED)

    @staticmethod
    def _announce(job: Job, syndic: str, announced_minions: list[str]) -> tuple[int, int]:
        """Minions a syndic says it reached: pending through it. Returns (new to the job, announced)."""
        added = announced = 0
        minions = job.minions
        via = job.via
        if via is None:
            via = job.via = {}
        for minion in announced_minions:
            if minion in via:
                continue
            state = minions.get(minion)
            if state is not None and state != PENDING:
                continue
            if state is None:
                minions[minion] = PENDING
                added += 1
            via[minion] = syndic
            announced += 1
        return added, announced

    # -- 3007+ master cluster ----------------------------------------------------------------------------

    def _on_peer_new(self, ev: PeerJobNew) -> None:
        self.peer_jobs.put(ev.jid, None)

    def _on_peer_return(self, ev: JobReturn) -> None:
        jid = ev.jid
        if ev.fun == FIND_JOB:
            if jid in self.probes:
                self._on_answer(ev)
        elif jid in self.open or jid in self.closed:
            self._on_return(ev)

    # -- presence -----------------------------------------------------------------------------------------

    def _on_minion_start(self, ev: MinionStart) -> None:
        self.obs.minion_start()
        if self.present is not None:
            self.present.add(ev.minion)

    def _on_presence(self, ev: Presence) -> None:
        self._held = ev  # handle() applied any earlier one

    def _presence_due(self) -> None:
        held = self._held
        if held is not None and self.now >= held.stamp + PRESENCE_HOLD:
            self._apply_presence()

    def _learn_interval(self, stamp: float) -> None:
        """`salt/presence/present` comes every loop_interval: the gap between two is the hold's bound."""
        last = self._last_present
        if last and 0 < stamp - last < 3600:
            self.presence_interval = stamp - last
        self._last_present = stamp

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
            self._learn_interval(ev.stamp)
            self.present = set(ev.present)
            self.obs.presence(len(self.present), 0, 0)
        else:
            present = self.present if self.present is not None else set()
            present.update(ev.new)
            present.difference_update(ev.lost)
            self.present = present
            self.obs.presence(len(present), len(ev.new), len(ev.lost))
        if self.held_verdicts:
            self._release_held(due_only=False)
