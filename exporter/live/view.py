"""What the live view shows, as plain rows built from the tracker and the metrics sink.

Everything here runs on the screen's clock (a few times a second), never per event. The pipeline's lock is
held only to copy what a redraw needs (counters of at most `limit` jobs, or one job's dicts); the rows are
built, filtered and sorted after it is released. No payload (`arg`, `fun_args`, `return`) is ever read:
the raw pane shows an event's tag, its field names and a few fields that are not payload.
"""

from __future__ import annotations

import fnmatch
import heapq
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final

import msgpack

from exporter.jobs.model import PENDING, RETURNED, SILENT, Job, MinionResult
from exporter.live.feed import Closed, Feed
from exporter.sinks.catalog import LATENCY_BUCKETS

OUTCOMES: Final = ("all", "running", "silent", "failed", "ok")
JOBS_SHOWN: Final = 300
MINIONS_SHOWN: Final = 200
SILENT_NAMED: Final = 3
# Event fields that are never payload: shown with their values in the raw pane (others by name only).
SAFE_FIELDS: Final = ("fun", "id", "retcode", "success", "act", "tgt_type", "cmd")
RETURNS: Final = "salt_job_returns_total"
LATENCY: Final = "salt_job_return_latency_seconds"
PUBLISHED: Final = "salt_jobs_published_total"
NO_RETURN: Final = "salt_job_minions_no_return_total"
AUTH: Final = "salt_auth_total"
KEYS: Final = "salt_key_events_total"


@dataclass(slots=True)
class Filters:
    function: str = ""  # substring, or a glob with * ? [
    minion: str = ""  # exact id, or a glob
    outcome: str = "all"

    def describe(self) -> str:
        parts = []
        if self.function:
            parts.append(f"function={self.function}")
        if self.minion:
            parts.append(f"minion={self.minion}")
        if self.outcome != "all":
            parts.append(f"outcome={self.outcome}")
        return " ".join(parts) or "none"


def _glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def match_text(pattern: str, value: str) -> bool:
    if not pattern:
        return True
    return fnmatch.fnmatchcase(value, pattern) if _glob(pattern) else pattern in value


def match_minion(pattern: str, minion: str) -> bool:
    if not pattern:
        return True
    return fnmatch.fnmatchcase(minion, pattern) if _glob(pattern) else minion == pattern


@dataclass(slots=True)
class JobRow:
    jid: str
    fun: str
    tgt: str
    start: float
    end: float | None  # None while the job is open
    status: str  # running | closed | evicted | exporter shutdown
    targeted: int
    returned: int
    pending: int
    failed: int
    silent: int
    held: int  # silent, the reason waiting for the next presence event
    probes: int
    named: list[tuple[str, str]]  # the first silent minions with their reasons

    @property
    def outcome(self) -> str:
        if self.end is None:
            return "running"
        if self.silent or self.held:
            return "silent"
        return "failed" if self.failed else "ok"


def job_row(job: Job, closed: Closed | None) -> JobRow:
    """A job's counters, O(1) in its size (called under the lock)."""
    held = len(job.held) if job.held else 0
    return JobRow(
        jid=job.jid,
        fun=job.fun,
        tgt=_target(job.tgt),
        start=job.start,
        end=None if closed is None else max(job.last, job.start),
        status="running" if closed is None else ("closed" if closed.status == "closed" else closed.status),
        targeted=job.targeted,
        returned=len(job.results),
        pending=job.pending,
        failed=job.failed,
        silent=len(job.silent),
        held=held,
        probes=job.probes,
        named=[(m, reason) for m, (_, reason) in islice(job.silent.items(), SILENT_NAMED)],
    )


def _target(tgt: Any) -> str:
    text = ",".join(map(str, tgt)) if isinstance(tgt, list | tuple) else str(tgt)
    return text if len(text) <= 40 else text[:39] + "…"


@dataclass(slots=True)
class Overview:
    now: float
    open_jobs: int
    pending: int
    present: int | None
    connected: bool
    events: int
    rows: list[JobRow]


def overview(feed: Feed, filters: Filters, limit: int = JOBS_SHOWN) -> Overview:
    """Jobs in flight (newest first), then the ones that just finished, filtered."""
    core = feed.core
    tracker = core.tracker
    minion = filters.minion
    exact = minion and not _glob(minion)
    rows: list[JobRow] = []
    with core.pipeline.lock:
        open_jobs = len(tracker.open)
        pending = tracker.pending_total
        present = len(tracker.present) if tracker.present is not None else None
        candidates: list[tuple[Job, Closed | None]] = [(j, None) for j in reversed(tracker.open.values())]
        candidates += [(c.job, c) for c in reversed(feed.recent.jobs)]
        for job, closed in candidates:
            if not match_text(filters.function, job.fun):
                continue
            if minion and (job.minions.get(minion) is None if exact else not _any_minion(job, minion)):
                continue
            row = job_row(job, closed)
            if filters.outcome not in ("all", row.outcome):
                continue
            rows.append(row)
            if len(rows) >= limit:
                break
    return Overview(feed.now(), open_jobs, pending, present, feed.health.connected, feed.tap.events, rows)


def _any_minion(job: Job, pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(m, pattern) for m in job.minions)


# -- one job, one row per minion ---------------------------------------------------------------------------


@dataclass(slots=True)
class MinionRow:
    minion: str
    outcome: str  # ok | failed | late | pending | silent | held
    latency: float | None
    reason: str
    answers: str


@dataclass(slots=True)
class JobDetail:
    row: JobRow
    probes: list[float]  # seconds after the publish
    minions: list[MinionRow]
    total: int  # minion rows before the filter and the cap


ORDER: Final = {"silent": 0, "held": 1, "pending": 2, "failed": 3, "late": 4, "ok": 5}


def job_detail(feed: Feed, jid: str, minion: str = "", limit: int = MINIONS_SHOWN) -> JobDetail | None:
    core = feed.core
    tracker = core.tracker
    with core.pipeline.lock:
        job = tracker.open.get(jid)
        closed: Closed | None = None
        if job is None:
            closed = next((c for c in reversed(feed.recent.jobs) if c.job.jid == jid), None)
            if closed is None:
                return None
            job = closed.job
        row = job_row(job, closed)
        states = dict(job.minions)
        results = dict(job.results)
        silent = dict(job.silent)
        events = list(job.events)
    start = job.start
    answers: dict[str, list[str]] = {}
    probed: set[str] = set()
    probe_times: list[float] = []
    for ev in events:
        if ev.kind == "find_job":
            probe_times.append(ev.stamp - start)
            probed.update(ev.value.split(","))
        else:
            answers.setdefault(ev.minion, []).append(ev.value)
    # Sort keys first (cheap tuples), rows only for the `limit` shown: a job may have 20,000 minions.
    keys: list[tuple[int, float, str]] = []
    for name, state in states.items():
        if minion and not match_minion(minion, name):
            continue
        if state == RETURNED:
            result = results.get(name)
            if result is None:
                keys.append((ORDER["ok"], 0.0, name))
                continue
            order = ORDER["late"] if result.late else ORDER["ok" if result.outcome == "success" else "failed"]
            keys.append((order, start - result.stamp, name))
        elif state == SILENT:
            keys.append((ORDER["silent" if name in silent else "held"], 0.0, name))
        else:
            keys.append((ORDER["pending"], 0.0, name))
    total = len(keys)
    chosen = heapq.nsmallest(limit, keys)
    rows = [_minion_row(name, states[name], results, silent, answers, probed, start) for _, _, name in chosen]
    return JobDetail(row, probe_times, rows, total)


def _minion_row(
    name: str,
    state: int,
    results: dict[str, MinionResult],
    silent: dict[str, tuple[float, str]],
    answers: dict[str, list[str]],
    probed: set[str],
    start: float,
) -> MinionRow:
    result = results.get(name)
    latency = result.stamp - start if result is not None else None
    reason = ""
    if state == RETURNED and result is not None:
        outcome = "late" if result.late else ("ok" if result.outcome == "success" else "failed")
        reason = result.reason or ""
    elif state == SILENT:
        verdict = silent.get(name)
        outcome = "silent" if verdict is not None else "held"
        reason = verdict[1] if verdict is not None else "awaiting presence"
    elif state == PENDING:
        outcome = "pending"
    else:
        outcome = "ok"
    said = answers.get(name)
    text = _answers(said) if said else ("no answer" if name in probed else "")
    return MinionRow(name, outcome, latency, reason, text)


def _answers(said: list[str]) -> str:
    out: list[str] = []
    for value in said:
        if out and out[-1].split(" x")[0] == value:
            head, _, n = out[-1].partition(" x")
            out[-1] = f"{head} x{int(n or 1) + 1}"
        else:
            out.append(value)
    return ", ".join(out)


# -- per-function rates and latency quantiles over a window ------------------------------------------------


@dataclass(slots=True)
class FunctionRow:
    fun: str
    published: float
    returns: float
    rate: float  # returns per second
    failed: float
    silent: float
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(slots=True)
class Sample:
    at: float
    returns: dict[str, tuple[float, float]]  # fun -> (success, failure)
    latency: dict[str, list[int]]
    published: dict[str, float]
    silent: dict[str, float]
    acts: dict[str, float]  # "auth:accept" / "key:delete" -> count


def take_sample(feed: Feed) -> Sample:
    core = feed.core
    with core.pipeline.lock:
        snap = core.sink.snapshot()
    returns: dict[str, tuple[float, float]] = {}
    for (fun, outcome), value in snap.get(RETURNS, []):
        ok, bad = returns.get(fun, (0.0, 0.0))
        returns[fun] = (ok + value, bad) if outcome == "success" else (ok, bad + value)
    # A histogram's value is (bucket counts, sum, ...): only the counts are read.
    latency = {key[0]: list(value[0]) for key, value in snap.get(LATENCY, [])}
    published: dict[str, float] = {}
    for (fun, _), value in snap.get(PUBLISHED, []):
        published[fun] = published.get(fun, 0.0) + value
    silent: dict[str, float] = {}
    for (fun, _), value in snap.get(NO_RETURN, []):
        silent[fun] = silent.get(fun, 0.0) + value
    acts = {f"auth:{k[0]}": v for k, v in snap.get(AUTH, [])}
    acts.update({f"key:{k[0]}": v for k, v in snap.get(KEYS, [])})
    return Sample(feed.now(), returns, latency, published, silent, acts)


def quantile(q: float, counts: list[int], buckets: tuple[float, ...] = LATENCY_BUCKETS) -> float | None:
    """Prometheus' histogram_quantile on non-cumulative bucket counts (the last one is +Inf)."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i >= len(buckets):
                return buckets[-1]
            low = buckets[i - 1] if i else 0.0
            return low + (buckets[i] - low) * (rank - seen) / count
        seen += count
    return buckets[-1]


@dataclass
class Rates:
    """Samples of the sink's counters, once a second; rows are the difference over `window` seconds."""

    window: float = 300.0
    samples: deque[Sample] = field(default_factory=deque)

    def add(self, sample: Sample) -> None:
        if not self.samples:
            self.samples.append(Sample(sample.at, {}, {}, {}, {}, {}))  # since the view started
        self.samples.append(sample)
        while len(self.samples) > 2 and self.samples[1].at <= sample.at - self.window:
            self.samples.popleft()

    def rows(self, filters: Filters) -> list[FunctionRow]:
        if len(self.samples) < 2:
            return []
        old, new = self.samples[0], self.samples[-1]
        span = max(new.at - old.at, 1.0)
        rows: list[FunctionRow] = []
        for fun in set(new.returns) | set(new.published):
            if not match_text(filters.function, fun):
                continue
            ok, bad = new.returns.get(fun, (0.0, 0.0))
            ok0, bad0 = old.returns.get(fun, (0.0, 0.0))
            returns = ok + bad - ok0 - bad0
            published = new.published.get(fun, 0.0) - old.published.get(fun, 0.0)
            silent = new.silent.get(fun, 0.0) - old.silent.get(fun, 0.0)
            if not (returns or published or silent):
                continue
            now_counts = new.latency.get(fun, [])
            then = old.latency.get(fun, [0] * len(now_counts))
            delta = [a - b for a, b in zip(now_counts, then, strict=False)]
            rows.append(
                FunctionRow(
                    fun,
                    published,
                    returns,
                    returns / span,
                    bad - bad0,
                    silent,
                    quantile(0.5, delta),
                    quantile(0.9, delta),
                    quantile(0.99, delta),
                )
            )
        rows.sort(key=lambda r: (-r.returns, r.fun))
        return rows

    def acts(self) -> dict[str, float]:
        if len(self.samples) < 2:
            return {}
        old, new = self.samples[0], self.samples[-1]
        return {k: v - old.acts.get(k, 0.0) for k, v in new.acts.items() if v - old.acts.get(k, 0.0)}


# -- the raw-event pane ------------------------------------------------------------------------------------


@dataclass(slots=True)
class RawRow:
    at: float
    tag: str
    fields: str


def raw_row(at: float, body: bytes) -> RawRow:
    """An event's tag, the values of its non-payload fields and the names of the others."""
    sep = body.find(b"\n\n")
    if sep < 0:
        return RawRow(at, body[:80].decode("utf-8", "replace"), "(malformed)")
    tag = body[:sep].decode("utf-8", "replace")
    try:
        data = msgpack.unpackb(body[sep + 2 :], raw=False, strict_map_key=False)
    except Exception:  # display only: a body the pipeline counts as a decode error
        return RawRow(at, tag, "(undecodable)")
    if not isinstance(data, dict):
        return RawRow(at, tag, f"({type(data).__name__})")
    shown: list[str] = []
    names: list[str] = []
    for key in data:
        name = str(key)
        value = data[key]
        if name in SAFE_FIELDS and isinstance(value, str | int | float | bool) and len(str(value)) <= 64:
            shown.append(f"{name}={value}")
        elif not name.startswith("_"):
            names.append(name)
    return RawRow(at, tag, " ".join(shown) + (" | " if shown and names else "") + " ".join(names))


class RawPane:
    """Renders the tap's newest bodies once each (the tap keeps the bytes, this keeps the rows)."""

    def __init__(self, keep: int = 200) -> None:
        self.rows: deque[RawRow] = deque(maxlen=keep)
        self.seen = 0

    def update(self, feed: Feed, most: int = 60) -> list[RawRow]:
        tap = feed.tap
        new = min(tap.events - self.seen, most, len(tap.raw))
        self.seen = tap.events
        if new > 0:
            for at, body in list(tap.raw)[-new:]:
                self.rows.append(raw_row(at, body))
        return list(self.rows)


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.1f}m"
