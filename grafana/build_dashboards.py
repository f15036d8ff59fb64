"""Generates grafana/dashboards/*.json: the dashboards are code, versioned with the metric catalog.

    uv run python grafana/build_dashboards.py        # rewrite the JSON files
    uv run python grafana/build_dashboards.py --check  # exit 1 if the committed JSON is stale

Every panel has a description; every query uses the `$datasource`, `$job` and `$instance` variables.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
SEL = 'job=~"$job",instance=~"$instance"'
# Per-function panels of the Jobs dashboard also follow its `function` variable.
FSEL = SEL + ',function=~"$function"'
RI = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}


def q(expr: str) -> str:
    """Expands the placeholders FSEL, SEL (label selectors) and RI (the rate interval) in a query."""
    return expr.replace("FSEL", FSEL).replace("SEL", SEL).replace("RI", RI)


def trace_link(title: str, traceql: str) -> dict[str, Any]:
    """A data link that opens the traces datasource in Explore with a TraceQL query.

    The exporter's job spans carry `salt.function`, minion spans `salt.outcome` and `salt.no_return.reason`
    (one trace per jid). `${__field.labels.X}` is the clicked series' label, `${__from}`/`${__to}` the range.
    """
    panes = {
        "traces": {
            "datasource": "${traces_datasource}",
            "queries": [
                {
                    "refId": "A",
                    "datasource": {"type": "tempo", "uid": "${traces_datasource}"},
                    "queryType": "traceql",
                    "query": traceql,
                }
            ],
            "range": {"from": "${__from}", "to": "${__to}"},
        }
    }
    encoded = urllib.parse.quote(json.dumps(panes, separators=(",", ":")), safe="${}_.:,[]")
    return {"title": title, "url": f"/explore?schemaVersion=1&panes={encoded}", "targetBlank": True}


FUNCTION_TRACES = trace_link(
    "Traces of ${__field.labels.function}", '{ span.salt.function = "${__field.labels.function}" }'
)


def target(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series") -> dict[str, Any]:
    out: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "legendFormat": legend or "__auto"}
    if fmt != "time_series":
        out["format"] = fmt
    if any(f"{name}_bucket" in expr for name in EXEMPLAR_HISTOGRAMS):
        # With tracing on, these buckets carry exemplars: a dot per sampled observation, linking to its span
        # through the datasource's exemplarTraceIdDestinations (grafana/provisioning/datasources/).
        out["exemplar"] = True
    return out


EXEMPLAR_HISTOGRAMS = ("salt_job_return_latency_seconds", "salt_job_duration_seconds")


class Layout:
    """Places panels left to right, 24 columns wide."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def panel(
        self,
        kind: str,
        title: str,
        description: str,
        targets: list[dict[str, Any]],
        unit: str = "short",
        w: int = 12,
        h: int = 8,
        links: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        panel: dict[str, Any] = {
            "id": self.next_id,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": self.place(w, h),
            "targets": [dict(t, refId=chr(65 + i)) for i, t in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
        }
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = {
                "drawStyle": "line",
                "fillOpacity": 10,
                "lineWidth": 1,
            }
            panel["options"] = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        elif kind == "stat":
            panel["options"] = {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto",
            }
        elif kind == "heatmap":
            panel["options"] = {
                "calculate": False,
                "yAxis": {"unit": unit},
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Spectral", "steps": 64},
            }
        elif kind == "bargauge":
            panel["options"] = {
                "displayMode": "gradient",
                "orientation": "horizontal",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            }
        elif kind == "table":
            panel["options"] = {"showHeader": True}
        if links:
            panel["fieldConfig"]["defaults"]["links"] = links
        panel.update(extra)
        self.next_id += 1
        return panel

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {
            "id": self.next_id,
            "type": "row",
            "title": title,
            "collapsed": False,
            "panels": [],
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
        }
        self.y += 1
        self.next_id += 1
        return panel


def variables(*extra: tuple[str, str, str]) -> dict[str, Any]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".+",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1,
            "options": [],
        }

    return {
        "list": [
            {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "hide": 0,
                "refresh": 1,
                "options": [],
            },
            {
                "name": "traces_datasource",
                "label": "Traces",
                "type": "datasource",
                "query": "tempo",
                "hide": 0,
                "refresh": 1,
                "options": [],
                "description": "Tempo (or Jaeger) datasource receiving the exporter's OTLP spans; optional.",
            },
            query_var("job", "Job", "label_values(salt_exporter_build_info, job)"),
            query_var(
                "instance", "Instance", 'label_values(salt_exporter_build_info{job=~"$job"}, instance)'
            ),
            *(query_var(name, label, query) for name, label, query in extra),
        ]
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict[str, Any]],
    templating: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["salt", "salt-event-exporter"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "templating": templating or variables(),
        "links": [
            {
                "title": "Salt dashboards",
                "type": "dashboards",
                "tags": ["salt-event-exporter"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            },
            {
                "title": "Job traces",
                "type": "link",
                "icon": "external link",
                "targetBlank": True,
                "tooltip": "Traces of Salt jobs (one trace per jid) in the traces datasource",
                "url": "/explore?left=%7B%22datasource%22:%22${traces_datasource}%22%7D",
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "tags": [],
            },
        ],
        "panels": panels,
    }


def overview() -> dict[str, Any]:
    g = Layout()
    panels = [
        g.row("Jobs"),
        g.panel(
            "timeseries",
            "Jobs per second by function",
            "Jobs published by the master (find_job probes excluded), per second, by Salt function.",
            [target(q("sum by (function) (rate(salt_jobs_published_total{SEL}[RI]))"), "{{function}}")],
            "ops",
        ),
        g.panel(
            "stat",
            "Return success ratio",
            "Share of minion returns that succeeded (retcode 0, success "
            "not False, no failed state) over the selected range.",
            [
                target(
                    q(
                        'sum(increase(salt_job_returns_total{SEL,outcome="success"}[$__range])) / '
                        "sum(increase(salt_job_returns_total{SEL}[$__range]))"
                    )
                )
            ],
            "percentunit",
            w=6,
        ),
        g.panel(
            "stat",
            "Jobs in flight",
            "Published jobs still waiting for returns or a did-not-return verdict.",
            [target(q("sum(salt_jobs_in_flight{SEL})"))],
            "short",
            w=6,
        ),
        g.panel(
            "timeseries",
            "Return latency quantiles",
            "Return _stamp minus publish _stamp, all functions: p50, p95, p99.",
            [
                target(
                    q(
                        f"histogram_quantile({p}, sum by (le) (rate(salt_job_return_latency_seconds_bucket"
                        "{SEL}[RI])))"
                    ),
                    f"p{int(p * 100)}",
                )
                for p in (0.5, 0.95, 0.99)
            ],
            "s",
        ),
        g.panel(
            "timeseries",
            "Pending minions",
            "Targeted minions of in-flight jobs that have not returned.",
            [target(q("sum(salt_job_minions_pending{SEL})"), "pending")],
            "short",
        ),
        g.row("Silent minions and probes"),
        g.panel(
            "timeseries",
            "Minions that did not return",
            "Did-not-return verdicts per second by reason "
            "(no_key, not_connected, no_response, deadline), as the salt CLI would report them.",
            [target(q("sum by (reason) (rate(salt_job_minions_no_return_total{SEL}[RI]))"), "{{reason}}")],
            "ops",
            links=[
                trace_link(
                    "Traces with ${__field.labels.reason} minions",
                    '{ span.salt.no_return.reason = "${__field.labels.reason}" }',
                )
            ],
        ),
        g.panel(
            "bargauge",
            "Did not return, by reason (range)",
            "Did-not-return verdicts over the selected range by reason.",
            [
                target(
                    q("sum by (reason) (increase(salt_job_minions_no_return_total{SEL}[$__range]))"),
                    "{{reason}}",
                )
            ],
            "short",
        ),
        g.panel(
            "timeseries",
            "find_job probe rate",
            "saltutil.find_job probes per second, by the function of "
            "the probed job: the CLI probes when minions are slower than its timeout.",
            [target(q("sum by (function) (rate(salt_find_job_probes_total{SEL}[RI]))"), "{{function}}")],
            "ops",
            links=[FUNCTION_TRACES],
        ),
        g.panel(
            "timeseries",
            "find_job answers",
            "Minion answers to find_job probes per second: running (the minion is still working on the job, "
            "the CLI extends its wait) or not_running (the job is gone without a return: it will be reported "
            "as did-not-return).",
            [target(q("sum by (answer) (rate(salt_find_job_answers_total{SEL}[RI]))"), "{{answer}}")],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Presence",
            "Minions present at the master's last presence event (needs "
            "presence_events: True on the master), and minions appearing or disappearing.",
            [
                target(q("sum(salt_presence_minions{SEL})"), "present"),
                target(q("sum by (change) (increase(salt_presence_changes_total{SEL}[RI]))"), "{{change}}"),
            ],
            "short",
            w=24,
        ),
    ]
    return dashboard(
        "salt-overview",
        "Salt / Overview",
        "Jobs, returns, latency, silent minions and find_job "
        "probes on the Salt masters watched by salt-event-exporter.",
        panels,
    )


def jobs() -> dict[str, Any]:
    g = Layout()

    def quantiles(metric: str) -> list[dict[str, Any]]:
        return [
            target(
                q(f"histogram_quantile({p}, sum by (function, le) (rate({metric}_bucket{{FSEL}}[RI])))"),
                f"{{{{function}}}} p{int(p * 100)}",
            )
            for p in (0.5, 0.95, 0.99)
        ]

    panels = [
        g.row("Latency and duration"),
        g.panel(
            "heatmap",
            "Return latency heatmap",
            "Distribution of per-minion return latency (return _stamp minus publish _stamp) for the selected "
            "functions: where most returns land, and the long tail.",
            [
                target(
                    q("sum by (le) (increase(salt_job_return_latency_seconds_bucket{FSEL}[RI]))"),
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            "s",
        ),
        g.panel(
            "timeseries",
            "Return latency quantiles by function",
            "p50, p95 and p99 of per-minion return latency, per function. Click a series to open the "
            "traces of that function.",
            quantiles("salt_job_return_latency_seconds"),
            "s",
            links=[FUNCTION_TRACES],
        ),
        g.panel(
            "heatmap",
            "Job duration heatmap",
            "Publish to the last return or the did-not-return verdict, per closed job, for the selected "
            "functions. Jobs with a silent minion end at the verdict (~15 s with CLI defaults).",
            [
                target(
                    q("sum by (le) (increase(salt_job_duration_seconds_bucket{FSEL}[RI]))"),
                    "{{le}}",
                    fmt="heatmap",
                )
            ],
            "s",
        ),
        g.panel(
            "timeseries",
            "Job duration quantiles by function",
            "p50, p95 and p99 of job duration (publish to last return or verdict), per function.",
            quantiles("salt_job_duration_seconds"),
            "s",
            links=[FUNCTION_TRACES],
        ),
        g.row("Outcomes"),
        g.panel(
            "timeseries",
            "Returns by function and outcome",
            "Minion returns per second (find_job answers excluded), by function and outcome (success or "
            "failure), whether or not the publish was seen.",
            [
                target(
                    q("sum by (function, outcome) (rate(salt_job_returns_total{FSEL}[RI]))"),
                    "{{function}} {{outcome}}",
                )
            ],
            "ops",
            links=[FUNCTION_TRACES],
        ),
        g.panel(
            "timeseries",
            "Failures by reason",
            "Failed returns per second by the first failure signal: state (a state result was False), "
            "success (success was False) or retcode (non-zero retcode).",
            [
                target(
                    q("sum by (function, reason) (rate(salt_job_return_failures_total{FSEL}[RI]))"),
                    "{{function}} {{reason}}",
                )
            ],
            "ops",
            links=[FUNCTION_TRACES],
        ),
        g.panel(
            "timeseries",
            "Minions targeted by function",
            "Minions targeted per second by published jobs (find_job probes excluded): the fan-out the "
            "master and the minions carry, next to the job rate on the Overview.",
            [
                target(
                    q("sum by (function) (rate(salt_job_minions_targeted_total{FSEL}[RI]))"), "{{function}}"
                )
            ],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Returns without a publish",
            "Returns per second with no publish event: scheduled jobs, salt-call (jid req), and returns of "
            "jobs the exporter never saw published (unknown_jid, e.g. published before it started). They "
            "have no latency.",
            [
                target(
                    q("sum by (kind) (rate(salt_job_returns_unpublished_total{FSEL}[RI]))"),
                    "{{kind}}",
                )
            ],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Late and duplicate returns",
            "Returns after the did-not-return verdict, and repeated returns for the same jid and minion "
            "(minion retries, syndic forwarding), per second.",
            [
                target(q("sum(rate(salt_job_late_returns_total{FSEL}[RI]))"), "late"),
                target(q("sum(rate(salt_job_duplicate_returns_total{FSEL}[RI]))"), "duplicate"),
            ],
            "ops",
            w=24,
        ),
        g.row("Syndics"),
        g.panel(
            "timeseries",
            "Events forwarded by syndic",
            "Events per second each syndic forwarded to this master of masters (syndic/<id>/ tags). A syndic "
            "whose line drops to zero while jobs still target its minions has stopped forwarding. Empty "
            "on a master without syndics.",
            [
                target(q("sum by (syndic) (rate(salt_syndic_events_total{SEL}[RI]))"), "{{syndic}}"),
            ],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Minions targeted via syndic",
            "Minions per second each syndic announced it sent this master's jobs to: the fan-out below each "
            "syndic (also counted in Minions targeted by function).",
            [
                target(
                    q("sum by (syndic) (rate(salt_syndic_minions_targeted_total{SEL}[RI]))"), "{{syndic}}"
                ),
            ],
            "ops",
        ),
        g.row("States"),
        g.panel(
            "timeseries",
            "State results",
            "Individual state results per second in returns of state functions (succeeded, failed, skipped), "
            "and states that reported changes.",
            [
                target(q("sum by (result) (rate(salt_state_results_total{FSEL}[RI]))"), "{{result}}"),
                target(q("sum(rate(salt_state_changes_total{FSEL}[RI]))"), "changed"),
            ],
            "ops",
        ),
        g.panel(
            "timeseries",
            "State run duration p95",
            "95th percentile of one minion's state run: the sum of its per-state durations, per function.",
            [
                target(
                    q(
                        "histogram_quantile(0.95, sum by (function, le) "
                        "(rate(salt_state_run_duration_seconds_bucket{FSEL}[RI])))"
                    ),
                    "{{function}}",
                )
            ],
            "s",
            links=[FUNCTION_TRACES],
        ),
        g.row("Runners and wheel"),
        g.panel(
            "timeseries",
            "Runner and wheel jobs",
            "Runner (salt-run) and wheel (salt-key, API) jobs started per second by function.",
            [
                target(q("sum by (function) (rate(salt_runner_jobs_total{SEL}[RI]))"), "runner {{function}}"),
                target(q("sum by (function) (rate(salt_wheel_jobs_total{SEL}[RI]))"), "wheel {{function}}"),
            ],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Runner and wheel outcomes",
            "Finished runner and wheel jobs per second by outcome.",
            [
                target(
                    q("sum by (outcome) (rate(salt_runner_returns_total{SEL}[RI]))"), "runner {{outcome}}"
                ),
                target(q("sum by (outcome) (rate(salt_wheel_returns_total{SEL}[RI]))"), "wheel {{outcome}}"),
            ],
            "ops",
            w=6,
        ),
        g.panel(
            "timeseries",
            "Runner duration p95",
            "95th percentile of runner job duration (new to ret _stamp), per runner function.",
            [
                target(
                    q(
                        "histogram_quantile(0.95, sum by (function, le) "
                        "(rate(salt_runner_duration_seconds_bucket{SEL}[RI])))"
                    ),
                    "{{function}}",
                )
            ],
            "s",
            w=6,
        ),
    ]
    return dashboard(
        "salt-jobs",
        "Salt / Jobs and latency",
        "Latency and duration distributions and quantiles per function, outcomes and failure reasons, "
        "state results, returns without a publish, runners and wheel jobs.",
        panels,
        variables(
            (
                "function",
                "Function",
                'label_values(salt_job_returns_total{job=~"$job",instance=~"$instance"}, function)',
            )
        ),
    )


def minions() -> dict[str, Any]:
    g = Layout()
    panels = [
        g.row("Silent minions"),
        g.panel(
            "table",
            "Did not return, by function and reason",
            "Did-not-return verdicts over the range.",
            [
                target(
                    q(
                        "sum by (function, reason) "
                        "(increase(salt_job_minions_no_return_total{SEL}[$__range]))"
                    ),
                    fmt="table",
                )
            ],
            "short",
            w=24,
        ),
        g.row("Per minion (needs --metrics.minion-label)"),
        g.panel(
            "bargauge",
            "Minions with most no-returns",
            "Top 20 minions by did-not-return verdicts over "
            "the range. Empty unless the exporter runs with --metrics.minion-label.",
            [
                target(
                    q("topk(20, sum by (minion) (increase(salt_minion_no_return_total{SEL}[$__range])))"),
                    "{{minion}}",
                )
            ],
            "short",
        ),
        g.panel(
            "table",
            "Seconds since last return",
            "Per minion, time since its last return. Empty unless "
            "the exporter runs with --metrics.minion-label.",
            [
                target(
                    q("time() - max by (minion) (salt_minion_last_return_timestamp_seconds{SEL})"),
                    fmt="table",
                )
            ],
            "s",
        ),
        g.panel(
            "timeseries",
            "Failed returns per minion",
            "Top 10 minions by failed returns per second.",
            [
                target(
                    q(
                        "topk(10, sum by (minion) "
                        '(rate(salt_minion_returns_total{SEL,outcome="failure"}[RI])))'
                    ),
                    "{{minion}}",
                )
            ],
            "ops",
            w=24,
        ),
        g.row("Keys, auth, starts, beacons"),
        g.panel(
            "timeseries",
            "Authentication by act",
            "salt/auth events per second by act (accept, pend, reject, denied, full).",
            [target(q("sum by (act) (rate(salt_auth_total{SEL}[RI]))"), "{{act}}")],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Key events by act",
            "salt/key events per second by act.",
            [target(q("sum by (act) (rate(salt_key_events_total{SEL}[RI]))"), "{{act}}")],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Minion starts",
            "Minion (re)connections per second.",
            [target(q("sum(rate(salt_minion_starts_total{SEL}[RI]))"), "starts")],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Beacon events",
            "Beacon events per second by beacon.",
            [target(q("sum by (beacon) (rate(salt_beacon_events_total{SEL}[RI]))"), "{{beacon}}")],
            "ops",
        ),
    ]
    return dashboard(
        "salt-minions",
        "Salt / Minions",
        "Silent minions, per-minion series, keys, auth, starts and beacons.",
        panels,
    )


def exporter_health() -> dict[str, Any]:
    g = Layout()
    panels = [
        g.row("Bus"),
        g.panel(
            "stat",
            "Bus connected",
            "1 while the exporter is connected to the master event bus.",
            [target(q("min(salt_exporter_bus_connected{SEL})"))],
            "bool",
            w=6,
        ),
        g.panel(
            "stat",
            "Scrape up",
            "Whether Prometheus can scrape the exporter.",
            [target('min(up{job=~"$job",instance=~"$instance"})')],
            "bool",
            w=6,
        ),
        g.panel(
            "stat",
            "Seconds since last event",
            "Age of the last processed bus event.",
            [target(q("time() - max(salt_exporter_last_event_timestamp_seconds{SEL})"))],
            "s",
            w=6,
        ),
        g.panel(
            "stat",
            "Reconnects (range)",
            "Connections to the bus after the first, over the range.",
            [target(q("sum(increase(salt_exporter_bus_reconnects_total{SEL}[$__range]))"))],
            "short",
            w=6,
        ),
        g.panel(
            "timeseries",
            "Bytes, frames and events",
            "Bus throughput: bytes read, frames by framing, events by category.",
            [
                target(q("sum(rate(salt_exporter_bus_bytes_total{SEL}[RI]))"), "bytes/s"),
                target(
                    q("sum by (framing) (rate(salt_exporter_frames_total{SEL}[RI]))"), "frames {{framing}}"
                ),
                target(q("sum by (category) (rate(salt_events_total{SEL}[RI]))"), "{{category}}"),
            ],
            "short",
        ),
        g.panel(
            "timeseries",
            "Decode errors, drops and resyncs",
            "Malformed frames by reason, bytes dropped "
            "because processing fell behind, and frame resynchronisations.",
            [
                target(
                    q("sum by (reason) (rate(salt_exporter_decode_errors_total{SEL}[RI]))"),
                    "error {{reason}}",
                ),
                target(
                    q("sum by (reason) (rate(salt_exporter_dropped_bytes_total{SEL}[RI]))"),
                    "dropped bytes {{reason}}",
                ),
                target(q("sum(rate(salt_exporter_resyncs_total{SEL}[RI]))"), "resyncs"),
            ],
            "short",
        ),
        g.row("State"),
        g.panel(
            "timeseries",
            "Tracked jobs and buffer",
            "Jobs held in memory (open, closed), and bytes waiting between reader and pipeline.",
            [
                target(q("sum by (state) (salt_exporter_jobs_tracked{SEL})"), "jobs {{state}}"),
                target(q("sum(salt_exporter_buffer_bytes{SEL})"), "buffer bytes"),
            ],
            "short",
        ),
        g.panel(
            "timeseries",
            "Evictions and label overflow",
            "State evicted to stay within bounds, and label values replaced by __other__.",
            [
                target(q("sum by (kind) (rate(salt_exporter_evictions_total{SEL}[RI]))"), "evicted {{kind}}"),
                target(
                    q("sum by (label) (rate(salt_exporter_label_overflow_total{SEL}[RI]))"),
                    "overflow {{label}}",
                ),
            ],
            "ops",
        ),
        g.panel(
            "timeseries",
            "Spans",
            "Spans exported over OTLP, and spans dropped by reason.",
            [
                target(q("sum(rate(salt_exporter_spans_exported_total{SEL}[RI]))"), "exported"),
                target(
                    q("sum by (reason) (rate(salt_exporter_spans_dropped_total{SEL}[RI]))"),
                    "dropped {{reason}}",
                ),
            ],
            "ops",
        ),
        g.panel(
            "table",
            "Build",
            "Exporter version and Python per instance.",
            [target(q("max by (instance, version, python) (salt_exporter_build_info{SEL})"), fmt="table")],
            "short",
        ),
    ]
    return dashboard(
        "salt-exporter",
        "Salt / Exporter health",
        "The salt-event-exporter daemon itself: bus "
        "connection, decode errors, drops, bounded state and span export.",
        panels,
    )


DASHBOARDS = {
    "salt-overview.json": overview,
    "salt-jobs.json": jobs,
    "salt-minions.json": minions,
    "salt-exporter.json": exporter_health,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    OUT.mkdir(exist_ok=True)
    stale = [
        name
        for name, text in render().items()
        if not (OUT / name).exists() or (OUT / name).read_text() != text
    ]
    if "--check" in argv:
        for name in stale:
            print(f"stale: grafana/dashboards/{name} (run grafana/build_dashboards.py)")
        return 1 if stale else 0
    for name, text in render().items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
