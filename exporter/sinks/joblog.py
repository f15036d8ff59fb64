"""`--log.jobs`: one log record per finished job, for operators who ship logs rather than scrape.

A close listener (exporter.jobs.model.CloseListener): it runs with the pipeline's lock held, once per job,
and reads only the job's counters and verdicts. It never reads `arg`, `fun_args`, `return` or the target
expression, so no payload reaches the log whatever the log level.
"""

from __future__ import annotations

from typing import Any, Final

import structlog

from exporter.jobs.model import CLOSED, PENDING, RETURNED, SILENT, Job

# A job to 20,000 minions may have thousands of silent ones: the record names this many, counts the rest.
MAX_SILENT_NAMED: Final = 50


class JobLog:
    """Logs `job_finished` (or `job_evicted` / `job_unfinished` at shutdown) with counts and verdicts."""

    def __init__(self, logger: Any = None, max_named: int = MAX_SILENT_NAMED) -> None:
        self.log = logger if logger is not None else structlog.get_logger("exporter.jobs")
        self.max_named = max_named

    def __call__(self, job: Job, status: str) -> None:
        self.log.info(self.event_name(status), **self.fields(job, status))

    @staticmethod
    def event_name(status: str) -> str:
        if status == CLOSED:
            return "job_finished"
        return "job_evicted" if status == "evicted" else "job_unfinished"

    def fields(self, job: Job, status: str) -> dict[str, Any]:
        returned, pending, held = _states(job)
        silent: dict[str, str] = {}
        by_reason: dict[str, int] = {}
        for minion, (_, reason) in job.silent.items():
            by_reason[reason] = by_reason.get(reason, 0) + 1
            if len(silent) < self.max_named:
                silent[minion] = reason
        held -= len(job.silent)  # SILENT but without a reason yet: waiting for a presence event
        out: dict[str, Any] = {
            "jid": job.jid,
            "function": job.fun,
            "tgt_type": job.tgt_type,
            "status": status,
            "targeted": job.targeted,
            "returned": returned,
            "failed": job.failed,
            "silent": len(job.silent),
            "duration": round(max(job.last - job.start, 0.0), 3),
            "probes": job.probes,
        }
        if pending:
            out["pending"] = pending
        if held > 0:
            out["held"] = held
        if job.silent:
            out["silent_minions"] = silent
            out["silent_reasons"] = by_reason
            if len(job.silent) > len(silent):
                out["silent_minions_not_named"] = len(job.silent) - len(silent)
        return out


def _states(job: Job) -> tuple[int, int, int]:
    """Minions returned, pending, and SILENT ones (with or without a reason yet)."""
    returned = pending = silent = 0
    for state in job.minions.values():
        if state == RETURNED:
            returned += 1
        elif state == PENDING:
            pending += 1
        elif state == SILENT:
            silent += 1
    return returned, pending, silent
