"""Salt event-bus streams for benchmarks, in the exact wire format, with the metric counts they must produce.

Every event is framed the way a 3008 master frames it (docs/design.md, "The wire"): an outer msgpack map
`{"head": {}, "body": tag + b"\\n\\n" + msgpack(data)}` packed with `use_bin_type=True` (so the body is bin),
back to back ("plain", 2016.3-3006.25, 3007, 3008) or behind a 4-byte big-endian length ("prefixed",
3006.26+). The event data copies the SHAPE of the real 3008.5 captures in `tests/fixtures/3008.5/`: the
job `new` event and its 3007+ `publish` twin, returns with cmd/id/success/return/retcode/jid/fun/fun_args/
user/_stamp/ts, state.apply returns with per-state dicts, find_job probes answered with the running job's
data, and presence events every `loop_interval` (10 s). `_stamp`s are 3008-style (`+00:00`, no fraction
when the microseconds are 0) and advance like a busy master's: jobs start every 10-30 ms, minions answer
after a realistic latency per function, and events go out in master receive order.

Profiles:

- `ping`: `test.ping` to 10 minions, all return (12 events per job).
- `mixed`: a third each of test.ping, cmd.run (short string return) and state.apply (three state results);
  about 3% of cmd.run and state.apply returns fail; 5% of cmd.run jobs are slow, so the CLI probes them
  with `saltutil.find_job` at publish + 5 s (answered "running" by every target) before they return;
  `salt/presence/present` every 10 s of event time and a `salt/presence/change` (one minion lost, then
  back) every 60 s.
- `large-fleet`: a warm-up test.ping, then one `test.version` job to N (default 100,000) minions (the
  `new` event carries all N ids, about 1.2 MB: a master needs `max_event_size` above that to publish it
  untrimmed), then the N returns spread over 60 s. Three segments, so a runner can measure memory while
  all N are pending.
- `flood`: jobs to 5 minions each, published every 2 ms, that never return: the tracker must stay under
  its job cap and count the evictions.

Event time starts `lead` seconds (default one hour) AFTER the wall clock at generation. The daemon runs in
live mode and also advances its clock from the wall clock, so a stream whose early stamps fell behind the
wall clock (generation time, a second or third run of the same bytes) could see wall-clock verdicts
instead of returns, and the counts would no longer be exact. A lead keeps the event clock ahead.

`generate()` returns a `Stream`: the bytes (in segments), the byte offset after every event (for flow
control and latency marking) and `expected`: the exact samples the daemon's `/metrics` must show after it
has processed the whole stream, for the families listed in `exact_families` (any other non-zero sample in
those families is a mismatch too).
"""

from __future__ import annotations

import heapq
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Final

import msgpack

PROFILES: Final = ("ping", "mixed", "large-fleet", "flood")
DEFAULT_EVENTS: Final = {"ping": 1_000_000, "mixed": 1_100_000, "large-fleet": 100_000, "flood": 400_000}
FLOOD_MINIONS_PER_JOB: Final = 5
DEFAULT_MAX_JOBS: Final = 10_000  # the daemon's default --max-jobs
DEFAULT_MAX_CLOSED_JOBS: Final = 10_000  # the daemon's default --max-closed-jobs
MAX_PROBES: Final = 10_000  # probe jids the tracker remembers (TrackerConfig.max_probes)
FIND_JOB: Final = "saltutil.find_job"

# Families whose non-zero samples must equal `Stream.expected` exactly after a run.
EXACT_FAMILIES: Final = (
    "salt_events_total",
    "salt_jobs_published_total",
    "salt_job_minions_targeted_total",
    "salt_job_returns_total",
    "salt_job_return_failures_total",
    "salt_job_returns_unpublished_total",
    "salt_job_return_latency_seconds_count",
    "salt_job_duration_seconds_count",
    "salt_job_minions_no_return_total",
    "salt_job_late_returns_total",
    "salt_job_duplicate_returns_total",
    "salt_find_job_probes_total",
    "salt_find_job_answers_total",
    "salt_state_results_total",
    "salt_state_changes_total",
    "salt_state_run_duration_seconds_count",
    "salt_presence_changes_total",
    "salt_presence_minions",
    "salt_jobs_in_flight",
    "salt_job_minions_pending",
    "salt_exporter_decode_errors_total",
    "salt_exporter_dropped_bytes_total",
    "salt_exporter_evictions_total",
    "salt_exporter_label_overflow_total",
)

US: Final = 1_000_000


def sample_key(name: str, **labels: str) -> str:
    """`name{a="x",b="y"}` with labels sorted: the form `bench.run` parses `/metrics` into."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


@dataclass
class Stream:
    profile: str
    framing: str
    segments: list[bytes]
    segment_events: list[int]
    offsets: array[int]  # offsets[i]: bytes before event i; offsets[events] = total
    expected: dict[str, float]
    exact_families: tuple[str, ...] = EXACT_FAMILIES
    max_jobs: int = DEFAULT_MAX_JOBS
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return len(self.offsets) - 1

    @property
    def data(self) -> bytes:
        return b"".join(self.segments)

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1])


# ---------------------------------------------------------------------------------------------------------
# Time formats


class _Clock:
    """3008 `_stamp`s and jids from integer microseconds, with the minute prefix cached."""

    def __init__(self) -> None:
        self._minute = -1
        self._stamp_prefix = ""
        self._jid_prefix = ""

    def _prefix(self, sec: int) -> None:
        minute = sec - sec % 60
        if minute != self._minute:
            self._minute = minute
            tm = time.gmtime(minute)
            self._stamp_prefix = time.strftime("%Y-%m-%dT%H:%M", tm)
            self._jid_prefix = time.strftime("%Y%m%d%H%M", tm)

    def stamp(self, t_us: int) -> str:
        sec, us = divmod(t_us, US)
        self._prefix(sec)
        if us:
            return f"{self._stamp_prefix}:{sec % 60:02d}.{us:06d}+00:00"
        return f"{self._stamp_prefix}:{sec % 60:02d}+00:00"

    def jid(self, t_us: int) -> str:
        sec, us = divmod(t_us, US)
        self._prefix(sec)
        return f"{self._jid_prefix}{sec % 60:02d}{us:06d}"

    @staticmethod
    def clock_time(t_us: int) -> str:
        """A state's `start_time`: the minion's local wall-clock time of day (UTC here)."""
        sec, us = divmod(t_us, US)
        return time.strftime("%H:%M:%S", time.gmtime(sec)) + f".{us:06d}"


# ---------------------------------------------------------------------------------------------------------
# The writer: frames, offsets, segments, expected counts


class _Writer:
    def __init__(self, framing: str) -> None:
        if framing not in ("plain", "prefixed"):
            raise ValueError("framing must be plain or prefixed")
        self.prefixed = framing == "prefixed"
        self.framing = framing
        self._packer = msgpack.Packer(use_bin_type=True)
        self._parts: list[bytes] = []
        self.segments: list[bytes] = []
        self.segment_events: list[int] = []
        self._seg_start = 0
        self.offsets = array("Q", [0])
        self.pos = 0
        self.expected: dict[str, float] = {}
        self.clock = _Clock()
        self.jobs_closed = 0  # jobs that close (every minion returned); the tracker keeps the last 10,000
        self.probes = 0

    @property
    def events(self) -> int:
        return len(self.offsets) - 1

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        key = sample_key(name, **labels)
        self.expected[key] = self.expected.get(key, 0) + amount

    def emit(self, t_us: int, tag: str, data: dict[str, Any], category: str) -> None:
        data["_stamp"] = self.clock.stamp(t_us)
        pack = self._packer.pack
        body = tag.encode() + b"\n\n" + pack(data)
        frame = pack({"head": {}, "body": body})
        if self.prefixed:
            frame = len(frame).to_bytes(4, "big") + frame
        self._parts.append(frame)
        self.pos += len(frame)
        self.offsets.append(self.pos)
        self.count("salt_events_total", category=category)

    def cut(self) -> None:
        """End the current segment (the runner may pause between segments)."""
        self.segments.append(b"".join(self._parts))
        self._parts = []
        self.segment_events.append(self.events - self._seg_start)
        self._seg_start = self.events

    def stream(self, profile: str, max_jobs: int = DEFAULT_MAX_JOBS, **notes: Any) -> Stream:
        if self._parts or not self.segments:
            self.cut()
        # Bounded memory of closed jobs and probe jids: the oldest go, each eviction counted.
        if self.jobs_closed > DEFAULT_MAX_CLOSED_JOBS:
            self.count(
                "salt_exporter_evictions_total", self.jobs_closed - DEFAULT_MAX_CLOSED_JOBS, kind="closed_job"
            )
        if self.probes > MAX_PROBES:
            self.count("salt_exporter_evictions_total", self.probes - MAX_PROBES, kind="probe")
        expected = {k: float(v) for k, v in self.expected.items() if v}
        return Stream(
            profile,
            self.framing,
            self.segments,
            self.segment_events,
            self.offsets,
            expected,
            max_jobs=max_jobs,
            notes=notes,
        )


# ---------------------------------------------------------------------------------------------------------
# Event shapes (as in the 3008.5 captures)


def _new(jid: str, fun: str, arg: list[Any], tgt: Any, tgt_type: str, minions: list[str]) -> dict[str, Any]:
    return {
        "jid": jid,
        "tgt_type": tgt_type,
        "tgt": tgt,
        "user": "root",
        "fun": fun,
        "arg": arg,
        "minions": minions,
        "missing": [],
    }


def _publish(jid: str, fun: str, arg: list[Any], tgt: Any, tgt_type: str) -> dict[str, Any]:
    return {"fun": fun, "arg": arg, "tgt": tgt, "jid": jid, "ret": "", "tgt_type": tgt_type, "user": "root"}


def _ret(
    jid: str, minion: str, fun: str, fun_args: list[Any], ret: Any, retcode: int, success: bool, t_us: int
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cmd": "_return",
        "id": minion,
        "success": success,
        "return": ret,
        "retcode": retcode,
        "jid": jid,
        "fun": fun,
        "fun_args": fun_args,
        "user": "root",
    }
    if fun.startswith("state."):
        data["out"] = "highstate"
    data["ts"] = t_us // US
    return data


UPTIME: Final = " 18:15:05 up 41 days,  3:04,  0 users,  load average: 0.08, 0.03, 0.01"


def _state_return(minion: str, t_us: int, rng: random.Random, fail: bool, changed: bool) -> dict[str, Any]:
    """Three states (file.managed, pkg.installed, service.running) as a state.apply return carries them."""
    path = f"/etc/app/{minion}.conf"
    d1, d2, d3 = round(rng.uniform(2, 15), 3), round(rng.uniform(20, 900), 3), round(rng.uniform(5, 60), 3)
    s1, s2 = t_us + 5_000, t_us + 5_000 + int(d1 * 1000)
    s3 = s2 + int(d2 * 1000)
    return {
        f"file_|-app_config_|-{path}_|-managed": {
            "changes": {"diff": "New file"} if changed else {},
            "comment": f"File {path} updated" if changed else f"File {path} is in the correct state",
            "name": path,
            "result": True,
            "__sls__": "app",
            "__run_num__": 0,
            "start_time": _Clock.clock_time(s1),
            "duration": d1,
            "__id__": "app_config",
        },
        "pkg_|-app_pkg_|-app_|-installed": {
            "name": "app",
            "changes": {},
            "result": True,
            "comment": "All specified packages are already installed",
            "__sls__": "app",
            "__run_num__": 1,
            "start_time": _Clock.clock_time(s2),
            "duration": d2,
            "__id__": "app_pkg",
        },
        "service_|-app_service_|-app_|-running": {
            "name": "app",
            "changes": {},
            "result": not fail,
            "comment": "Job for app.service failed because the control process exited with error code."
            if fail
            else "The service app is already running",
            "__sls__": "app",
            "__run_num__": 2,
            "start_time": _Clock.clock_time(s3),
            "duration": d3,
            "__id__": "app_service",
        },
    }


def _find_job_answer(jid: str, fun: str, arg: list[Any], tgt: Any, tgt_type: str, pid: int) -> dict[str, Any]:
    return {
        "pid": pid,
        "fun": fun,
        "arg": arg,
        "tgt": tgt,
        "jid": jid,
        "ret": "",
        "tgt_type": tgt_type,
        "user": "root",
        "resource_targets": [],
        "pure_resource_target": False,
        "minion_is_target": True,
    }


# ---------------------------------------------------------------------------------------------------------
# Profiles


class _Timeline:
    """Events scheduled ahead of time, emitted in stamp order (the master's receive order)."""

    def __init__(self, writer: _Writer) -> None:
        self.w = writer
        self._heap: list[tuple[int, int, str, dict[str, Any], str]] = []
        self._seq = 0

    def at(self, t_us: int, tag: str, data: dict[str, Any], category: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t_us, self._seq, tag, data, category))

    def until(self, t_us: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= t_us:
            t, _, tag, data, category = heapq.heappop(heap)
            self.w.emit(t, tag, data, category)

    def drain(self) -> None:
        self.until(1 << 62)

    @property
    def scheduled(self) -> int:
        return len(self._heap)


def _fleet(n: int, width: int = 5) -> list[str]:
    return [f"minion-{i:0{width}d}" for i in range(n)]


def _job_events(
    tl: _Timeline,
    w: _Writer,
    rng: random.Random,
    t: int,
    fun: str,
    arg: list[Any],
    tgt: Any,
    tgt_type: str,
    minions: list[str],
    slow: bool = False,
) -> None:
    """A job as the bus shows it: new, publish, (find_job probe and answers), one return per minion."""
    jid = w.clock.jid(t)
    tl.at(t, f"salt/job/{jid}/new", _new(jid, fun, arg, tgt, tgt_type, list(minions)), "job_new")
    tl.at(
        t + rng.randint(2_500, 4_500),
        f"salt/job/{jid}/publish",
        _publish(jid, fun, arg, tgt, tgt_type),
        "job_publish",
    )
    w.count("salt_jobs_published_total", function=fun, tgt_type=tgt_type)
    w.count("salt_job_minions_targeted_total", len(minions), function=fun)
    w.count("salt_job_duration_seconds_count", function=fun)
    w.jobs_closed += 1
    if slow:
        # The CLI's timeout (5 s) passes: it probes every minion that has not returned; all say "running".
        probe_t = t + 5 * US + rng.randint(20_000, 40_000)
        pjid = w.clock.jid(probe_t)
        pargs = [jid]
        tl.at(
            probe_t,
            f"salt/job/{pjid}/new",
            _new(pjid, FIND_JOB, pargs, list(minions), "list", list(minions)),
            "job_new",
        )
        tl.at(
            probe_t + 4_000,
            f"salt/job/{pjid}/publish",
            _publish(pjid, FIND_JOB, pargs, list(minions), "list"),
            "job_publish",
        )
        w.count("salt_find_job_probes_total", function=fun)
        w.probes += 1
        for minion in minions:
            at = probe_t + rng.randint(50_000, 150_000)
            answer = _find_job_answer(jid, fun, arg, tgt, tgt_type, rng.randint(2_000, 60_000))
            tl.at(
                at,
                f"salt/job/{pjid}/ret/{minion}",
                _ret(pjid, minion, FIND_JOB, pargs, answer, 0, True, at),
                "job_return",
            )
            w.count("salt_find_job_answers_total", function=fun, answer="running")
    for minion in minions:
        if fun == "test.ping":
            at = t + rng.randint(20_000, 200_000)
            ret: Any = True
            retcode, success, reason = 0, True, None
        elif fun == "cmd.run":
            at = t + (rng.randint(6 * US, 7_500_000) if slow else rng.randint(50_000, 500_000))
            if rng.random() < 0.03:
                ret, retcode, success, reason = "/bin/sh: 1: uptime: not found", 127, False, "success"
            else:
                ret, retcode, success, reason = UPTIME, 0, True, None
        elif fun == "state.apply":
            at = t + rng.randint(1 * US, 5 * US)
            fail = rng.random() < 0.03
            changed = rng.random() < 0.25
            ret = _state_return(minion, t + 300_000, rng, fail, changed)
            retcode, success, reason = (2, False, "state") if fail else (0, True, None)
            w.count("salt_state_results_total", 2 if fail else 3, function=fun, result="succeeded")
            if fail:
                w.count("salt_state_results_total", function=fun, result="failed")
            if changed:
                w.count("salt_state_changes_total", function=fun)
            w.count("salt_state_run_duration_seconds_count", function=fun)
        else:  # test.version and friends
            at = t + rng.randint(50_000, 2 * US)
            ret, retcode, success, reason = "3008.5", 0, True, None
        tl.at(
            at,
            f"salt/job/{jid}/ret/{minion}",
            _ret(jid, minion, fun, arg, ret, retcode, success, at),
            "job_return",
        )
        w.count("salt_job_returns_total", function=fun, outcome="failure" if reason else "success")
        if reason:
            w.count("salt_job_return_failures_total", function=fun, reason=reason)
        w.count("salt_job_return_latency_seconds_count", function=fun)


MIXED_FUNS: Final[tuple[tuple[str, list[str]], ...]] = (
    ("test.ping", []),
    ("cmd.run", ["uptime"]),
    ("state.apply", ["app"]),
)


def _jobs_profile(w: _Writer, events: int, start: int, rng: random.Random, mixed: bool) -> None:
    tl = _Timeline(w)
    fleet = _fleet(1000)
    groups = len(fleet) // 10
    present = set(fleet)
    t = start
    next_presence = start
    next_change = start + 60 * US
    lost: str | None = None
    job = 0
    while w.events + tl.scheduled < events:
        if mixed and t >= next_presence:
            tl.until(next_presence)
            # salt/presence/present every loop_interval; the set changes only with a change event.
            tl.at(next_presence, "salt/presence/present", {"present": sorted(present)}, "presence")
            next_presence += 10 * US
        if mixed and t >= next_change:
            tl.until(next_change)
            if lost is None:
                lost = fleet[rng.randrange(len(fleet))]
                present.discard(lost)
                tl.at(next_change, "salt/presence/change", {"new": [], "lost": [lost]}, "presence")
                w.count("salt_presence_changes_total", change="lost")
            else:
                present.add(lost)
                tl.at(next_change, "salt/presence/change", {"new": [lost], "lost": []}, "presence")
                w.count("salt_presence_changes_total", change="new")
                lost = None
            next_change += 60 * US
        tl.until(t)
        group = job % groups
        minions = fleet[group * 10 : group * 10 + 10]
        tgt = f"minion-{group:04d}*"
        if mixed:
            fun, arg = MIXED_FUNS[job % 3]
            slow = fun == "cmd.run" and rng.random() < 0.05
            if slow:
                arg = ["sleep 6; uptime"]
        else:
            fun, arg, slow = "test.ping", [], False
        _job_events(tl, w, rng, t, fun, list(arg), tgt, "glob", minions, slow)
        job += 1
        t += rng.randint(10_000, 30_000)
    tl.drain()
    if mixed and w.expected.get(sample_key("salt_events_total", category="presence")):
        # The gauge shows the present set after the last presence event.
        w.count("salt_presence_minions", len(present))


def _large_fleet(w: _Writer, minions: int, start: int, rng: random.Random) -> None:
    tl = _Timeline(w)
    fleet = _fleet(minions, 6)
    # Segment 0: warm-up, so the runner can take a baseline after the code paths have run once.
    _job_events(tl, w, rng, start, "test.ping", [], "minion-00000*", "glob", fleet[:10])
    tl.drain()
    w.cut()
    # Segment 1: the publish of one job to the whole fleet; segment 2: its returns over 60 s.
    t = start + 2 * US
    jid = w.clock.jid(t)
    fun = "test.version"
    w.emit(t, f"salt/job/{jid}/new", _new(jid, fun, [], "*", "glob", fleet), "job_new")
    w.emit(t + 3_000, f"salt/job/{jid}/publish", _publish(jid, fun, [], "*", "glob"), "job_publish")
    w.cut()
    w.count("salt_jobs_published_total", function=fun, tgt_type="glob")
    w.count("salt_job_minions_targeted_total", minions, function=fun)
    w.count("salt_job_duration_seconds_count", function=fun)
    w.jobs_closed += 1
    offsets = sorted(rng.randint(50_000, 60 * US) for _ in range(minions))
    order = list(fleet)
    rng.shuffle(order)
    for minion, off in zip(order, offsets, strict=True):
        at = t + off
        w.emit(
            at,
            f"salt/job/{jid}/ret/{minion}",
            _ret(jid, minion, fun, [], "3008.5", 0, True, at),
            "job_return",
        )
    w.count("salt_job_returns_total", minions, function=fun, outcome="success")
    w.count("salt_job_return_latency_seconds_count", minions, function=fun)


FLOOD_FUNS: Final[tuple[tuple[str, list[str]], ...]] = (
    ("cmd.run", ["systemctl restart app"]),
    ("state.apply", ["app"]),
    ("test.ping", []),
)


def _flood(w: _Writer, events: int, start: int, rng: random.Random, max_jobs: int) -> None:
    fleet = _fleet(1000)
    jobs = max(events // 2, 1)
    t = start
    for job in range(jobs):
        fun, arg = FLOOD_FUNS[job % 3]
        first = rng.randrange(len(fleet) - FLOOD_MINIONS_PER_JOB)
        minions = fleet[first : first + FLOOD_MINIONS_PER_JOB]
        jid = w.clock.jid(t)
        w.emit(t, f"salt/job/{jid}/new", _new(jid, fun, list(arg), list(minions), "list", minions), "job_new")
        w.emit(
            t + 1_200,
            f"salt/job/{jid}/publish",
            _publish(jid, fun, list(arg), list(minions), "list"),
            "job_publish",
        )
        w.count("salt_jobs_published_total", function=fun, tgt_type="list")
        w.count("salt_job_minions_targeted_total", FLOOD_MINIONS_PER_JOB, function=fun)
        t += 2_000 + rng.randint(0, 400)
    # Open jobs past the cap are evicted (counted), never closed: no duration, no verdict (event time spans
    # jobs * ~2.2 ms, and an evicted job is gone long before its 600 s deadline).
    kept = min(jobs, max_jobs)
    if jobs > max_jobs:
        w.count("salt_exporter_evictions_total", jobs - max_jobs, kind="job")
    w.count("salt_jobs_in_flight", kept)
    w.count("salt_job_minions_pending", kept * FLOOD_MINIONS_PER_JOB)


# ---------------------------------------------------------------------------------------------------------
# Scaling profiles: one dimension grows, everything else stays as small as the mixed stream's

SCALING: Final[dict[str, tuple[int, ...]]] = {
    "minions": (10, 100, 1_000, 10_000, 100_000),  # minions per job
    "states": (10, 100, 500, 2_000),  # states per state run
    "inflight": (10, 100, 1_000, 10_000),  # jobs in flight at once
}
SCALE_EVENTS: Final = 200_000  # events per step (minions, inflight)
SCALE_STATES: Final = 1_000_000  # states per step (states): the work grows with the states, not the events


def _state_run(n: int, fail: bool, changed: bool) -> dict[str, Any]:
    """A state run of n file.managed states: the first changed (when `changed`), the last failed (`fail`)."""
    out: dict[str, Any] = {}
    for i in range(n):
        path = f"/etc/app/conf.d/{i:05d}.conf"
        bad = fail and i == n - 1
        out[f"file_|-conf_{i}_|-{path}_|-managed"] = {
            "changes": {"diff": "New file"} if changed and i == 0 else {},
            "comment": "Unable to manage file: Permission denied"
            if bad
            else f"File {path} is in the correct state",
            "name": path,
            "result": not bad,
            "__sls__": "app",
            "__run_num__": i,
            "start_time": "18:15:05.000000",
            "duration": 1.5 + (i % 7) * 0.25,
            "__id__": f"conf_{i}",
        }
    return out


def _scale_minions(w: _Writer, per_job: int, events: int, start: int, rng: random.Random) -> None:
    """Jobs to `per_job` minions, one after the other: new, publish, every minion's return."""
    fleet = _fleet(per_job, 6)
    fun = "test.version"
    t = start
    while w.events < events:
        jid = w.clock.jid(t)
        w.emit(t, f"salt/job/{jid}/new", _new(jid, fun, [], "*", "glob", fleet), "job_new")
        w.emit(t + 3_000, f"salt/job/{jid}/publish", _publish(jid, fun, [], "*", "glob"), "job_publish")
        offsets = sorted(rng.randint(50_000, 60 * US) for _ in range(per_job))
        order = list(fleet)
        rng.shuffle(order)
        for minion, off in zip(order, offsets, strict=True):
            at = t + off
            w.emit(
                at,
                f"salt/job/{jid}/ret/{minion}",
                _ret(jid, minion, fun, [], "3008.5", 0, True, at),
                "job_return",
            )
        w.count("salt_jobs_published_total", function=fun, tgt_type="glob")
        w.count("salt_job_minions_targeted_total", per_job, function=fun)
        w.count("salt_job_duration_seconds_count", function=fun)
        w.count("salt_job_returns_total", per_job, function=fun, outcome="success")
        w.count("salt_job_return_latency_seconds_count", per_job, function=fun)
        w.jobs_closed += 1
        t += 61 * US


def _scale_states(w: _Writer, per_run: int, states: int, start: int, rng: random.Random) -> None:
    """state.apply jobs to 10 minions, each return a run of `per_run` states, until `states` states were sent;
    3% of the runs fail their last state, 25% change their first."""
    fleet = _fleet(10)
    fun = "state.apply"
    runs = {
        (fail, changed): _state_run(per_run, fail, changed)
        for fail in (False, True)
        for changed in (False, True)
    }
    t = start
    sent = 0
    while sent < states:
        jid = w.clock.jid(t)
        w.emit(t, f"salt/job/{jid}/new", _new(jid, fun, ["app"], "minion-000*", "glob", fleet), "job_new")
        w.emit(
            t + 3_000,
            f"salt/job/{jid}/publish",
            _publish(jid, fun, ["app"], "minion-000*", "glob"),
            "job_publish",
        )
        for i, minion in enumerate(fleet):
            at = t + 1 * US + i * 10_000
            fail, changed = rng.random() < 0.03, rng.random() < 0.25
            retcode, success = (2, False) if fail else (0, True)
            data = _ret(jid, minion, fun, ["app"], runs[fail, changed], retcode, success, at)
            w.emit(at, f"salt/job/{jid}/ret/{minion}", data, "job_return")
            w.count("salt_job_returns_total", function=fun, outcome="failure" if fail else "success")
            if fail:
                w.count("salt_job_return_failures_total", function=fun, reason="state")
                w.count("salt_state_results_total", function=fun, result="failed")
            w.count("salt_state_results_total", per_run - fail, function=fun, result="succeeded")
            if changed:
                w.count("salt_state_changes_total", function=fun)
            w.count("salt_state_run_duration_seconds_count", function=fun)
            sent += per_run
        w.count("salt_jobs_published_total", function=fun, tgt_type="glob")
        w.count("salt_job_minions_targeted_total", len(fleet), function=fun)
        w.count("salt_job_duration_seconds_count", function=fun)
        w.count("salt_job_return_latency_seconds_count", len(fleet), function=fun)
        w.jobs_closed += 1
        t += 2 * US


def _scale_inflight(w: _Writer, in_flight: int, events: int, start: int, rng: random.Random) -> None:
    """Rounds of `in_flight` test.ping jobs (10 minions each) all published before any returns, then every
    return of the round in random order: `in_flight` jobs are open at once."""
    fleet = _fleet(10 * in_flight, 6)
    fun = "test.ping"
    t = start
    while w.events < events:
        returns: list[tuple[str, str]] = []
        for j in range(in_flight):
            minions = fleet[j * 10 : j * 10 + 10]
            jid = w.clock.jid(t)
            w.emit(t, f"salt/job/{jid}/new", _new(jid, fun, [], list(minions), "list", minions), "job_new")
            w.emit(
                t + 500,
                f"salt/job/{jid}/publish",
                _publish(jid, fun, [], list(minions), "list"),
                "job_publish",
            )
            returns.extend((jid, m) for m in minions)
            t += 1_000
        rng.shuffle(returns)
        for jid, minion in returns:
            t += 100
            w.emit(
                t, f"salt/job/{jid}/ret/{minion}", _ret(jid, minion, fun, [], True, 0, True, t), "job_return"
            )
        w.count("salt_jobs_published_total", in_flight, function=fun, tgt_type="list")
        w.count("salt_job_minions_targeted_total", 10 * in_flight, function=fun)
        w.count("salt_job_duration_seconds_count", in_flight, function=fun)
        w.count("salt_job_returns_total", len(returns), function=fun, outcome="success")
        w.count("salt_job_return_latency_seconds_count", len(returns), function=fun)
        w.jobs_closed += in_flight
        t += 1 * US


def generate_scale(
    dimension: str,
    step: int,
    amount: int | None = None,
    framing: str = "plain",
    seed: int = 1,
    lead: float = 3600.0,
) -> Stream:
    """One step of a scaling profile. `amount` is events per step (minions, inflight) or states per step
    (states); the defaults are SCALE_EVENTS and SCALE_STATES."""
    if dimension not in SCALING:
        raise ValueError(f"unknown scaling dimension {dimension!r}; known: {', '.join(SCALING)}")
    if step <= 0:
        raise ValueError("step must be positive")
    rng = random.Random(seed)
    t0 = round((time.time() + lead) * US)
    w = _Writer(framing)
    states = 0
    if dimension == "minions":
        _scale_minions(w, step, amount or SCALE_EVENTS, t0, rng)
    elif dimension == "states":
        states = amount or SCALE_STATES
        _scale_states(w, step, states, t0, rng)
    else:
        _scale_inflight(w, step, amount or SCALE_EVENTS, t0, rng)
    w.count("salt_jobs_in_flight", 0)
    w.count("salt_job_minions_pending", 0)
    return w.stream(
        f"scale-{dimension}",
        max_jobs=max(step, DEFAULT_MAX_JOBS),
        dimension=dimension,
        step=step,
        states=states,
    )


def generate(
    profile: str,
    events: int | None = None,
    framing: str = "plain",
    seed: int = 1,
    start: float | None = None,
    lead: float = 3600.0,
    max_jobs: int = DEFAULT_MAX_JOBS,
) -> Stream:
    """Build a stream. `events` is approximate for ping/mixed (whole jobs), the minion count for large-fleet.

    `start` is the first event's Unix time (default: now + `lead`). `max_jobs` is the daemon's --max-jobs,
    which the flood expectations depend on (the other profiles never reach it).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    n = DEFAULT_EVENTS[profile] if events is None else events
    if n <= 0:
        raise ValueError("events must be positive")
    rng = random.Random(seed)
    t0 = round(((time.time() + lead) if start is None else start) * US)
    w = _Writer(framing)
    if profile in ("ping", "mixed"):
        _jobs_profile(w, n, t0, rng, profile == "mixed")
        w.count("salt_jobs_in_flight", 0)
        w.count("salt_job_minions_pending", 0)
        return w.stream(profile, max_jobs=max(max_jobs, DEFAULT_MAX_JOBS))
    if profile == "large-fleet":
        _large_fleet(w, n, t0, rng)
        w.count("salt_jobs_in_flight", 0)
        w.count("salt_job_minions_pending", 0)
        return w.stream(profile, max_jobs=max(max_jobs, DEFAULT_MAX_JOBS), minions=n)
    _flood(w, n, t0, rng, max_jobs)
    return w.stream(profile, max_jobs=max_jobs, minions_per_job=FLOOD_MINIONS_PER_JOB)


def main() -> None:
    """`python -m bench.generate PROFILE [EVENTS] > stream.bin`: write a stream, print its counts."""
    import json
    import sys

    profile = sys.argv[1] if len(sys.argv) > 1 else "mixed"
    events = int(sys.argv[2]) if len(sys.argv) > 2 else None
    t = time.perf_counter()
    stream = generate(profile, events)
    took = time.perf_counter() - t
    if not sys.stdout.isatty():
        sys.stdout.buffer.write(stream.data)
    info = {"profile": profile, "events": stream.events, "bytes": stream.nbytes, "seconds": round(took, 2)}
    print(json.dumps({**info, "expected": stream.expected}, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
