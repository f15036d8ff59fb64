"""The metrics sink: tracker observations kept in plain dicts, exposed by a collector at scrape time.

prometheus_client's labelled children cost a lock and several dict lookups per increment; at hundreds of
thousands of events per second that is most of the budget. Here an increment is one dict update under a
lock the pipeline takes once per batch, and the collector builds the families from a snapshot when
Prometheus scrapes. Every family comes from `catalog.METRICS`. Label values from the bus are capped per
label (overflow becomes `__other__` and is counted) so a hostile or buggy minion cannot create series.
"""

from __future__ import annotations

import platform
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from threading import Lock
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar

from exporter import __version__
from exporter.health import Health
from exporter.jobs.tracker import Tracker
from exporter.salt.results import FAILURE, SUCCESS
from exporter.sinks.catalog import METRICS, MetricSpec

OTHER = "__other__"
MAX_LABEL_LEN = 128


@dataclass(slots=True)
class MetricsConfig:
    max_functions: int = 500
    max_label_values: int = 200  # act, beacon, command, tgt_type, reason-like labels from the bus
    minion_label: bool = False
    max_minions: int = 10_000
    minion_ttl: float = 3600.0


def _clean(value: str) -> str:
    """Make a bus string safe for the exposition (valid UTF-8, bounded length)."""
    if len(value) > MAX_LABEL_LEN:
        value = value[:MAX_LABEL_LEN]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


class _Hist:
    """Non-cumulative bucket counts (cumulated at scrape), sum and count; with tracing, the latest
    exemplar (trace id, span id, value, time) per bucket."""

    __slots__ = ("buckets", "counts", "exemplars", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.exemplars: list[Exemplar | None] | None = None

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value


class _FunctionSlot:
    """Per function label: the keys of its return counters and its latency histogram, built once."""

    __slots__ = ("failure", "key", "label", "latency", "success")

    def __init__(self, label: str) -> None:
        self.label = label
        self.key = (label,)
        self.success = (label, SUCCESS)
        self.failure = (label, FAILURE)
        self.latency: _Hist | None = None


class _MinionRow:
    """One minion's series (`--metrics.minion-label`)."""

    __slots__ = ("failed", "last_return", "no_return", "seen", "succeeded")

    def __init__(self) -> None:
        self.last_return = 0.0
        self.succeeded = 0
        self.failed = 0
        self.no_return = 0
        self.seen = 0.0  # last update, for the TTL


class MetricsSink:
    """Implements `exporter.jobs.model.Observer`; called with the pipeline's lock held, as is `snapshot`."""

    def __init__(self, config: MetricsConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = config
        self.clock = clock
        self.counters: dict[str, dict[tuple[str, ...], float]] = {}
        self.hists: dict[str, dict[tuple[str, ...], _Hist]] = {}
        self.gauges: dict[str, dict[tuple[str, ...], float]] = {}
        self.specs: dict[str, MetricSpec] = {}
        for spec in METRICS:
            self.specs[spec.name] = spec
            if spec.kind == "counter":
                self.counters[spec.name] = {}
            elif spec.kind == "histogram":
                self.hists[spec.name] = {}
            else:
                self.gauges[spec.name] = {}
        c, h = self.counters, self.hists
        self._published = c["salt_jobs_published_total"]
        self._targeted = c["salt_job_minions_targeted_total"]
        self._returns = c["salt_job_returns_total"]
        self._failures = c["salt_job_return_failures_total"]
        self._unpublished = c["salt_job_returns_unpublished_total"]
        self._no_return = c["salt_job_minions_no_return_total"]
        self._late = c["salt_job_late_returns_total"]
        self._dupes = c["salt_job_duplicate_returns_total"]
        self._probes = c["salt_find_job_probes_total"]
        self._answers = c["salt_find_job_answers_total"]
        self._state_results = c["salt_state_results_total"]
        self._state_changes = c["salt_state_changes_total"]
        self._events = c["salt_events_total"]
        self._overflow = c["salt_exporter_label_overflow_total"]
        self._evictions = c["salt_exporter_evictions_total"]
        self._latency = h["salt_job_return_latency_seconds"]
        self._duration = h["salt_job_duration_seconds"]
        self._state_duration = h["salt_state_run_duration_seconds"]
        self._runner_duration = h["salt_runner_duration_seconds"]
        for kind in (
            "job",
            "closed_job",
            "probe",
            "run",
            "syndic",
            "peer_job",
            "batch",
            "unpublished",
            "minion_series",
            "minion_expired",
        ):
            self._evictions[(kind,)] = 0
        for label in ("function", "act", "beacon", "tgt_type", "command", "worker", "syndic"):
            self._overflow[(label,)] = 0
        self._buckets = {id(fam): self.specs[name].buckets for name, fam in h.items()}
        self._latency_buckets = self.specs["salt_job_return_latency_seconds"].buckets
        self._slots: dict[str, _FunctionSlot] = {}  # raw function -> slot (overflowed functions not kept)
        self._slots_by_label: dict[str, _FunctionSlot] = {}
        self._functions: dict[str, str] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._minions: OrderedDict[str, _MinionRow] = OrderedDict()
        self._presence_present: float | None = None
        self._stats: dict[str, dict[str, tuple[float, float]]] = {}

    # -- label caps ---------------------------------------------------------------------------------------

    def fn(self, fun: str) -> str:
        label = self._functions.get(fun)
        if label is None:
            if len(self._functions) >= self.cfg.max_functions:
                self._inc(self._overflow, ("function",))
                return OTHER
            label = self._functions[fun] = _clean(fun)
        return label

    def label(self, name: str, value: str) -> str:
        values = self._labels.get(name)
        if values is None:
            values = self._labels[name] = {}
        label = values.get(value)
        if label is None:
            if len(values) >= self.cfg.max_label_values:
                self._inc(self._overflow, (name,))
                return OTHER
            label = values[value] = _clean(value)
        return label

    @staticmethod
    def _inc(family: dict[tuple[str, ...], float], key: tuple[str, ...], amount: float = 1) -> None:
        family[key] = family.get(key, 0) + amount

    def _observe(self, family: dict[tuple[str, ...], _Hist], key: tuple[str, ...], value: float) -> None:
        hist = family.get(key)
        if hist is None:
            hist = family[key] = _Hist(self._buckets[id(family)])
        hist.observe(value)

    # -- events and the Observer protocol ----------------------------------------------------------------

    def job_published(self, fun: str, tgt_type: str) -> None:
        self._inc(self._published, (self.fn(fun), self.label("tgt_type", tgt_type)))

    def minions_targeted(self, fun: str, count: int) -> None:
        self._inc(self._targeted, (self.fn(fun),), count)

    def job_return(
        self, fun: str, outcome: str, reason: str | None, latency: float | None, minion: str, stamp: float
    ) -> None:
        slot = self._slots.get(fun) or self._slot(fun)
        key = slot.success if outcome is SUCCESS else slot.failure
        returns = self._returns
        returns[key] = returns.get(key, 0) + 1
        if reason is not None:
            self._inc(self._failures, (slot.label, reason))
        if latency is not None:
            hist = slot.latency
            if hist is None:
                hist = self._latency_hist(slot)
            if latency < 0:
                latency = 0.0
            hist.counts[bisect_left(self._latency_buckets, latency)] += 1
            hist.sum += latency
        if self.cfg.minion_label:
            row = self._minion(minion)
            if stamp:
                row.last_return = stamp
            if outcome is SUCCESS:
                row.succeeded += 1
            else:
                row.failed += 1

    def _slot(self, fun: str) -> _FunctionSlot:
        """The label keys of one function, resolved once (the function label cap applies here)."""
        label = self.fn(fun)
        slot = self._slots_by_label.get(label)
        if slot is None:
            slot = self._slots_by_label[label] = _FunctionSlot(label)
        if label != OTHER:
            self._slots[fun] = slot
        return slot

    def _latency_hist(self, slot: _FunctionSlot) -> _Hist:
        hist = slot.latency = self._latency.get(slot.key)
        if hist is None:
            hist = slot.latency = self._latency[slot.key] = _Hist(self._latency_buckets)
        return hist

    def events_seen(self, counts: dict[str, int]) -> None:
        events = self._events
        for category, n in counts.items():
            key = (category,)
            events[key] = events.get(key, 0) + n

    def unpublished_return(self, fun: str, kind: str) -> None:
        self._inc(self._unpublished, (self.fn(fun), kind))

    def state_results(
        self, fun: str, succeeded: int, failed: int, skipped: int, changed: int, seconds: float | None
    ) -> None:
        label = self.fn(fun)
        if succeeded:
            self._inc(self._state_results, (label, "succeeded"), succeeded)
        if failed:
            self._inc(self._state_results, (label, "failed"), failed)
        if skipped:
            self._inc(self._state_results, (label, "skipped"), skipped)
        if changed:
            self._inc(self._state_changes, (label,), changed)
        if seconds is not None:
            self._observe(self._state_duration, (label,), seconds)

    def duplicate_return(self, fun: str) -> None:
        self._inc(self._dupes, (self.fn(fun),))

    def late_return(self, fun: str) -> None:
        self._inc(self._late, (self.fn(fun),))

    def no_return(self, fun: str, reason: str, minion: str) -> None:
        self._inc(self._no_return, (self.fn(fun), reason))
        if self.cfg.minion_label:
            self._minion(minion).no_return += 1

    def exemplar(self, metric: str, fun: str, value: float, trace_id: str, span_id: str, at: float) -> None:
        """A sampled span for an observation of `metric` (latency or duration) of `fun`: the bucket it fell
        in links to that span (OpenMetrics exemplars, served when the scraper asks for OpenMetrics)."""
        family = self.hists[metric]
        hist = family.get((self.fn(fun),))
        if hist is None:
            return
        if hist.exemplars is None:
            hist.exemplars = [None] * len(hist.counts)
        value = max(value, 0.0)
        hist.exemplars[bisect_left(hist.buckets, value)] = Exemplar(
            {"trace_id": trace_id, "span_id": span_id}, value, at
        )

    def job_started(self, fun: str, dispatch: float) -> None:
        self._observe(self.hists["salt_job_dispatch_seconds"], (self.fn(fun),), max(dispatch, 0.0))

    def job_ran(self, fun: str, run: float) -> None:
        self._observe(self.hists["salt_job_run_seconds"], (self.fn(fun),), max(run, 0.0))

    def no_return_started(self, fun: str, reason: str) -> None:
        self._inc(self.counters["salt_job_minions_no_return_started_total"], (self.fn(fun), reason))

    def job_closed(self, fun: str, duration: float) -> None:
        self._observe(self._duration, (self.fn(fun),), duration if duration > 0 else 0.0)

    def probe(self, fun: str) -> None:
        self._inc(self._probes, (self.fn(fun),))

    def probe_answer(self, fun: str, answer: str) -> None:
        self._inc(self._answers, (self.fn(fun), answer))

    def run_started(self, kind: str, fun: str) -> None:
        self._inc(self.counters[f"salt_{kind}_jobs_total"], (self.fn(fun),))

    def run_finished(self, kind: str, fun: str, outcome: str, duration: float | None) -> None:
        label = self.fn(fun)
        self._inc(self.counters[f"salt_{kind}_returns_total"], (label, outcome))
        if kind == "runner" and duration is not None:
            self._observe(self._runner_duration, (label,), max(duration, 0.0))

    def act(self, kind: str, act: str) -> None:
        name = "salt_auth_total" if kind == "auth" else "salt_key_events_total"
        self._inc(self.counters[name], (self.label("act", act),))

    def minion_start(self) -> None:
        self._inc(self.counters["salt_minion_starts_total"], ())

    def presence(self, present: int | None, new: int, lost: int) -> None:
        if present is not None:
            self._presence_present = float(present)
        changes = self.counters["salt_presence_changes_total"]
        if new:
            self._inc(changes, ("new",), new)
        if lost:
            self._inc(changes, ("lost",), lost)

    def beacon(self, beacon: str) -> None:
        self._inc(self.counters["salt_beacon_events_total"], (self.label("beacon", beacon),))

    def master_stats(self, worker: str, stats: dict[str, tuple[float, float]]) -> None:
        self._stats[self.label("worker", worker)] = {self.label("command", k): v for k, v in stats.items()}

    def syndic_event(self, syndic: str) -> None:
        self._inc(self.counters["salt_syndic_events_total"], (self.label("syndic", syndic),))

    def syndic_minions(self, syndic: str, count: int) -> None:
        self._inc(self.counters["salt_syndic_minions_targeted_total"], (self.label("syndic", syndic),), count)

    def evicted(self, kind: str) -> None:
        self._inc(self._evictions, (kind,))

    def _minion(self, minion: str) -> _MinionRow:
        minion = _clean(minion)
        minions = self._minions
        row = minions.get(minion)
        if row is None:
            if len(minions) >= self.cfg.max_minions:
                minions.popitem(last=False)
                self._inc(self._evictions, ("minion_series",))
            row = minions[minion] = _MinionRow()
        else:
            minions.move_to_end(minion)
        row.seen = self.clock()
        return row

    def expire_minions(self) -> None:
        """Drop per-minion series not updated within the TTL (called at scrape time)."""
        cutoff = self.clock() - self.cfg.minion_ttl
        minions = self._minions
        while minions:
            name, row = next(iter(minions.items()))
            if row.seen >= cutoff:
                break
            del minions[name]
            self._inc(self._evictions, ("minion_expired",))

    # -- snapshot for the collector -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, list[tuple[tuple[str, ...], Any]]]:
        """Copy every family (the collector holds the pipeline's lock, and formats outside it)."""
        if self.cfg.minion_label:
            self.expire_minions()
        out: dict[str, list[tuple[tuple[str, ...], Any]]] = {}
        for name, fam in self.counters.items():
            out[name] = list(fam.items())
        for name, hfam in self.hists.items():
            out[name] = [
                (k, (list(v.counts), v.sum, v.exemplars and list(v.exemplars))) for k, v in hfam.items()
            ]
        if self._presence_present is not None:
            out["salt_presence_minions"] = [((), self._presence_present)]
        runs: dict[str, float] = {}
        means: dict[str, float] = {}
        for stats in self._stats.values():
            for cmd, (n, mean) in stats.items():
                runs[cmd] = runs.get(cmd, 0.0) + n
                means[cmd] = max(means.get(cmd, 0.0), mean)
        out["salt_master_command_runs"] = [((k,), v) for k, v in runs.items()]
        out["salt_master_command_mean_seconds"] = [((k,), v) for k, v in means.items()]
        if self.cfg.minion_label:
            rows = list(self._minions.items())
            out["salt_minion_last_return_timestamp_seconds"] = [
                ((m,), r.last_return) for m, r in rows if r.last_return
            ]
            ok: list[tuple[tuple[str, ...], Any]] = [
                ((m, SUCCESS), r.succeeded) for m, r in rows if r.succeeded
            ]
            out["salt_minion_returns_total"] = ok + [((m, FAILURE), r.failed) for m, r in rows if r.failed]
            out["salt_minion_no_return_total"] = [((m,), r.no_return) for m, r in rows if r.no_return]
        return out


class SaltCollector(Collector):
    """Builds every catalog family at scrape time from the sink, the tracker and the health counters."""

    def __init__(self, sink: MetricsSink, tracker: Tracker, health: Health, lock: Lock) -> None:
        self.sink = sink
        self.lock = lock  # the pipeline's: held while the job layer and the sink are read
        self.tracker = tracker
        self.health = health

    def _self_values(self) -> dict[str, list[tuple[tuple[str, ...], Any]]]:
        h = self.health
        tr = self.tracker
        with self.lock:
            in_flight = float(len(tr.open))
            pending = float(tr.pending_total)
            closed = float(len(tr.closed))
        return {
            "salt_exporter_build_info": [((__version__, platform.python_version()), 1.0)],
            "salt_exporter_bus_connected": [((), 1.0 if h.connected else 0.0)],
            "salt_exporter_bus_reconnects_total": [((), float(max(h.connections - 1, 0)))],
            "salt_exporter_bus_bytes_total": [((), float(h.bytes_read))],
            "salt_exporter_frames_total": [((k,), float(v)) for k, v in list(h.frames.items())],
            "salt_exporter_decode_errors_total": [((k,), float(v)) for k, v in list(h.decode_errors.items())],
            "salt_exporter_dropped_bytes_total": [((k,), float(v)) for k, v in list(h.dropped_bytes.items())],
            "salt_exporter_resyncs_total": [((), float(h.resyncs))],
            "salt_exporter_bus_gaps_total": [((k,), float(v)) for k, v in list(h.gaps.items())],
            "salt_exporter_bus_gap_seconds_total": [((k,), v) for k, v in list(h.gap_seconds.items())],
            "salt_exporter_buffer_bytes": [((), float(h.buffer_bytes))],
            "salt_exporter_last_event_timestamp_seconds": [((), h.last_event)],
            "salt_exporter_jobs_tracked": [(("open",), in_flight), (("closed",), closed)],
            "salt_exporter_spans_exported_total": [((), float(h.spans_exported))],
            "salt_exporter_spans_dropped_total": [((k,), float(v)) for k, v in list(h.spans_dropped.items())],
            "salt_exporter_spans_summarised_total": [
                ((k,), float(v)) for k, v in list(h.spans_summarised.items())
            ],
            "salt_jobs_in_flight": [((), in_flight)],
            "salt_job_minions_pending": [((), pending)],
        }

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            values = self.sink.snapshot()
        values.update(self._self_values())
        for spec in METRICS:
            rows = values.get(spec.name)
            if not rows:
                if spec.kind == "counter" and not spec.labels:
                    rows = [((), 0.0)]  # an unlabelled counter exists from the start, at 0
                elif rows is None and not spec.labels:
                    continue  # an unlabelled gauge with no value yet (presence before its first event)
                else:
                    rows = []
            yield _family(spec, rows)


def _family(spec: MetricSpec, rows: list[tuple[tuple[str, ...], Any]]) -> Metric:
    labels = list(spec.labels)
    if spec.kind == "counter":
        fam: Metric = CounterMetricFamily(spec.name, spec.help, labels=labels)
        for key, value in rows:
            fam.add_metric(list(key), value)  # type: ignore[attr-defined]
        return fam
    if spec.kind == "gauge":
        gauge = GaugeMetricFamily(spec.name, spec.help, labels=labels)
        for key, value in rows:
            gauge.add_metric(list(key), value)
        return gauge
    hist = HistogramMetricFamily(spec.name, spec.help, labels=labels)
    bounds = [*(repr(float(b)) if b != int(b) else f"{float(b)}" for b in spec.buckets), "+Inf"]
    for key, (counts, total, exemplars) in rows:
        cumulative = 0
        buckets: list[Any] = []
        for i, (bound, n) in enumerate(zip(bounds, counts, strict=True)):
            cumulative += n
            exemplar = exemplars[i] if exemplars else None
            buckets.append((bound, float(cumulative), exemplar) if exemplar else (bound, float(cumulative)))
        hist.add_metric(list(key), buckets, total)
    return hist
