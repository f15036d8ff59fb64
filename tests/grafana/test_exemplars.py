"""Exemplars: from a slow histogram bucket to the span of the minion that was slow, through a real
Prometheus with exemplar storage scraping the exporter, checked against what a real OTLP receiver got."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.conftest import Receiver
from tests.daemon import RunningDaemon
from tests.grafana.test_grafana import Prometheus

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_exemplars_link_latency_and_duration_buckets_to_the_spans(
    promtool: str, receiver: Receiver, tmp_path: Path
) -> None:
    """`promtool` installs prometheus; the receiver is a real OTLP endpoint."""
    receiver.clear()
    capture = FIXTURES / "3008.4" / "killed_minion.bin"
    exporter = RunningDaemon("--bus", str(capture), "--otlp.endpoint", receiver.http)
    prom = Prometheus(tmp_path, [f"127.0.0.1:{exporter.port}"], ("--enable-feature=exemplar-storage",))
    try:
        spans = receiver.wait(lambda s: any(not x["parent_span_id"] for x in s), 30)
        by_id = {(s["trace_id"], s["span_id"]): s for s in spans}
        found: dict[str, list[dict[str, str]]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for metric in ("salt_job_return_latency_seconds_bucket", "salt_job_duration_seconds_bucket"):
                try:
                    series = prom.get(
                        "query_exemplars", query=metric, start="0", end=str(time.time() + 86400)
                    )
                except (requests.RequestException, AssertionError, ValueError):
                    series = []
                found[metric] = [e["labels"] for s in series for e in s["exemplars"]]
            if all(found.values()):
                break
            time.sleep(0.5)
        latency, duration = (
            found["salt_job_return_latency_seconds_bucket"],
            found["salt_job_duration_seconds_bucket"],
        )
        assert latency and duration, found
        # Every exemplar names a span the receiver got: minion spans for latency, the job span for duration.
        for labels in latency:
            span = by_id[(labels["trace_id"], labels["span_id"])]
            assert span["parent_span_id"] and span["name"].startswith("lab-minion-")
        for labels in duration:
            span = by_id[(labels["trace_id"], labels["span_id"])]
            assert not span["parent_span_id"] and span["name"] == "salt.job cmd.run"
    finally:
        prom.stop()
        exporter.stop()


def test_latency_and_duration_panels_show_exemplars() -> None:
    from tests.grafana.test_grafana import dashboards

    seen = 0
    for name, dash in dashboards().items():
        for panel in dash["panels"]:
            for t in panel.get("targets", []):
                expr = t.get("expr", "")
                if (
                    "salt_job_return_latency_seconds_bucket" in expr
                    or "salt_job_duration_seconds_bucket" in expr
                ):
                    seen += 1
                    assert t.get("exemplar") is True, (name, panel["title"])
    assert seen >= 3
    datasources = (Path(__file__).parents[2] / "grafana/provisioning/datasources/example.yaml").read_text()
    assert "exemplarTraceIdDestinations" in datasources
