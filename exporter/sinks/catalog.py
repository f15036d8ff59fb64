"""The one table that declares every metric the exporter exposes.

Everything else (the metrics sink, the README table test, the dashboard and alert tests) reads this table,
so a metric cannot exist in one place and not the other. Names are stable once released.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

# Return latency: a test.ping on a healthy LAN answers in 20-200 ms, cmd.run and pkg queries take seconds,
# highstates minutes, and the CLI gives up after timeout + gather_job_timeout (15 s by default) unless the
# minion keeps answering find_job; long buckets up to an hour catch highstates and upgrades.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
)
# Job duration is publish to last return or verdict: never shorter than the slowest minion, and jobs with a
# silent minion end at the verdict (~15 s with CLI defaults), so the range is the same as latency.
DURATION_BUCKETS: tuple[float, ...] = LATENCY_BUCKETS
# A single state runs from milliseconds (file.managed without changes) to many minutes (pkg.installed of a
# large set); a whole state run is the sum.
STATE_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Runners mostly answer in well under a second (jobs.active, manage.up) but orchestrations take minutes.
RUNNER_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family: name without the `_total` suffix rules of the client, type, labels, help."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


def _c(name: str, labels: tuple[str, ...], help_: str) -> MetricSpec:
    return MetricSpec(name, "counter", labels, help_)


def _g(name: str, labels: tuple[str, ...], help_: str) -> MetricSpec:
    return MetricSpec(name, "gauge", labels, help_)


def _h(name: str, labels: tuple[str, ...], help_: str, buckets: tuple[float, ...]) -> MetricSpec:
    return MetricSpec(name, "histogram", labels, help_, buckets)


F = ("function",)

METRICS: tuple[MetricSpec, ...] = (
    # Jobs.
    _c(
        "salt_jobs_published_total",
        ("function", "tgt_type"),
        "Jobs published by the master (saltutil.find_job probes excluded).",
    ),
    _c("salt_job_minions_targeted_total", F, "Minions targeted by published jobs."),
    _c(
        "salt_job_returns_total",
        ("function", "outcome"),
        "Minion returns (find_job answers excluded), whether or not the publish was seen; outcome is "
        "success or failure.",
    ),
    _c(
        "salt_job_return_failures_total",
        ("function", "reason"),
        "Failed minion returns by the first failure signal: state (a state result was False), "
        "success (success was False) or retcode (non-zero retcode).",
    ),
    _c(
        "salt_job_returns_unpublished_total",
        ("function", "kind"),
        "Returns without a publish event: scheduled, salt_call (jid req), syndic (a job of a lower master, "
        "relayed by its syndic) or unknown_jid.",
    ),
    _h(
        "salt_job_return_latency_seconds",
        F,
        "Return _stamp minus publish _stamp, per minion return.",
        LATENCY_BUCKETS,
    ),
    _h(
        "salt_job_dispatch_seconds",
        F,
        "Publish _stamp to the minion's start event (jobs published with `salt --start-event`, Salt 3008+): "
        "how long the job waited before it ran.",
        LATENCY_BUCKETS,
    ),
    _h(
        "salt_job_run_seconds",
        F,
        "Start event to return, per minion (jobs published with `salt --start-event`): how long it ran.",
        LATENCY_BUCKETS,
    ),
    _c(
        "salt_job_minions_no_return_started_total",
        ("function", "reason"),
        "Of the minions that did not return, those that had announced the job's start "
        "(`salt --start-event`): accepted but never returned, as opposed to never started.",
    ),
    _h(
        "salt_job_duration_seconds",
        F,
        "Publish to the last return or the did-not-return verdict, per closed job.",
        DURATION_BUCKETS,
    ),
    _c(
        "salt_job_minions_no_return_total",
        ("function", "reason"),
        "Targeted minions that did not return: no_key, not_connected, no_response, deadline, or bus_gap (the "
        "exporter lost events while the job was open, so the return may have been missed).",
    ),
    _c("salt_job_late_returns_total", F, "Returns that arrived after the minion was declared silent."),
    _c(
        "salt_job_duplicate_returns_total",
        F,
        "Repeated returns for the same (jid, minion), not counted again.",
    ),
    _g("salt_jobs_in_flight", (), "Published jobs still waiting for returns or a verdict."),
    _g("salt_job_minions_pending", (), "Targeted minions of in-flight jobs that have not returned yet."),
    # find_job probes.
    _c(
        "salt_find_job_probes_total",
        F,
        "saltutil.find_job probes published by the CLI, by the function of the probed job.",
    ),
    _c(
        "salt_find_job_answers_total",
        ("function", "answer"),
        "Minion answers to find_job probes: running or not_running.",
    ),
    # States.
    _c(
        "salt_state_results_total",
        ("function", "result"),
        "Individual state results in returns of state functions: succeeded, failed or skipped (None).",
    ),
    _c("salt_state_changes_total", F, "Individual states that reported changes."),
    _h(
        "salt_state_run_duration_seconds",
        F,
        "Sum of the per-state durations of one minion's state run.",
        STATE_BUCKETS,
    ),
    # Runners and wheel.
    _c("salt_runner_jobs_total", F, "Runner jobs started."),
    _c("salt_runner_returns_total", ("function", "outcome"), "Runner jobs finished, by outcome."),
    _h("salt_runner_duration_seconds", F, "Runner job duration, new to ret _stamp.", RUNNER_BUCKETS),
    _c("salt_wheel_jobs_total", F, "Wheel jobs started."),
    _c("salt_wheel_returns_total", ("function", "outcome"), "Wheel jobs finished, by outcome."),
    # Minions, keys, presence.
    _c("salt_minion_starts_total", (), "Minion start events (a minion connected or restarted)."),
    _c("salt_auth_total", ("act",), "Minion authentication events by act (accept, pend, reject, ...)."),
    _c("salt_key_events_total", ("act",), "Key management events by act."),
    _g("salt_presence_minions", (), "Minions present at the last presence event (presence_events only)."),
    _c("salt_presence_changes_total", ("change",), "Minions that appeared (new) or disappeared (lost)."),
    _c("salt_beacon_events_total", ("beacon",), "Beacon events by beacon name."),
    _c("salt_events_total", ("category",), "Every event read from the bus, by tag category."),
    # Syndics (on a master of masters).
    _c(
        "salt_syndic_events_total",
        ("syndic",),
        "Events a syndic forwarded to this master of masters (syndic/<id>/ tags), by syndic id.",
    ),
    _c(
        "salt_syndic_minions_targeted_total",
        ("syndic",),
        "Minions a syndic announced it sent this master's jobs to (counted in "
        "salt_job_minions_targeted_total too).",
    ),
    # Master stats (master_stats: True).
    _g("salt_master_command_runs", ("command",), "Runs per master command since worker start, summed."),
    _g("salt_master_command_mean_seconds", ("command",), "Mean master command time, worst worker."),
    # Per-minion (opt-in, capped, expired).
    _g("salt_minion_last_return_timestamp_seconds", ("minion",), "Unix time of the minion's last return."),
    _c("salt_minion_returns_total", ("minion", "outcome"), "Returns per minion by outcome."),
    _c("salt_minion_no_return_total", ("minion",), "Did-not-return verdicts per minion."),
    # The exporter itself.
    _g("salt_exporter_build_info", ("version", "python"), "Always 1; labels carry the build."),
    _g("salt_exporter_bus_connected", (), "1 while connected to the master event bus."),
    _c("salt_exporter_bus_reconnects_total", (), "Connections to the bus after the first."),
    _c("salt_exporter_bus_bytes_total", (), "Bytes read from the bus."),
    _c(
        "salt_exporter_frames_total",
        ("framing",),
        "Frames decoded, by framing (plain, length_prefixed, zmq).",
    ),
    _c("salt_exporter_decode_errors_total", ("reason",), "Frames or events skipped as malformed, by reason."),
    _c(
        "salt_exporter_dropped_bytes_total",
        ("reason",),
        "Bytes read but dropped before decoding, by reason (buffer_full).",
    ),
    _c("salt_exporter_resyncs_total", (), "Times the frame decoder resynchronised after dropped bytes."),
    _c(
        "salt_exporter_bus_gaps_total",
        ("cause",),
        "Times the exporter lost events: disconnect (the connection dropped), buffer_full (bytes dropped "
        "because processing fell behind) or desync (undecodable bytes skipped).",
    ),
    _c(
        "salt_exporter_bus_gap_seconds_total",
        ("cause",),
        "Seconds of bus lost to gaps: disconnected time, or the time between the first dropped chunk and the "
        "next one kept.",
    ),
    _g("salt_exporter_buffer_bytes", (), "Bytes read and waiting for processing."),
    _g("salt_exporter_last_event_timestamp_seconds", (), "Unix time when the last event was processed."),
    _g("salt_exporter_jobs_tracked", ("state",), "Jobs held in memory: open or recently closed."),
    _c("salt_exporter_evictions_total", ("kind",), "State evicted to stay within its bound, by kind."),
    _c(
        "salt_exporter_label_overflow_total",
        ("label",),
        "Samples whose label value was replaced by __other__ because the label's cap was reached.",
    ),
    _c("salt_exporter_spans_exported_total", (), "Spans exported over OTLP."),
    _c(
        "salt_exporter_spans_dropped_total",
        ("reason",),
        "Spans dropped (queue full, export failed, sampled out).",
    ),
    _c(
        "salt_exporter_spans_summarised_total",
        ("reason",),
        "Minion and state spans not sent but summarised on their job span (per-job budget, export backlog).",
    ),
)

BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}


def series_names(spec: MetricSpec) -> tuple[str, ...]:
    """Sample names a family produces in the text exposition (what PromQL can reference)."""
    if spec.kind == "histogram":
        return (spec.name + "_bucket", spec.name + "_sum", spec.name + "_count")
    return (spec.name,)


def markdown_table() -> str:
    """The README's metrics table, generated so a test can hold the README to the catalog."""
    rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for spec in METRICS:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        rows.append(f"| `{spec.name}` | {spec.kind} | {labels} | {spec.help} |")
    return "\n".join(rows)
