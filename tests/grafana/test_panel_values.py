"""The key panels show the right numbers: a real Prometheus scrapes an exporter fed two real-master recordings
(a minion killed mid-job, a failing state run), and the panels' own queries, as Grafana would run them,
give the returns, the silent minions and the find_job probes that the replay and the `salt` CLI recorded.

The exporter reads a FIFO with `--replay.loop`, so the test decides when each pass of the recording starts.
The first pass creates every label set (Prometheus's increase() cannot see a series' first value); the
panels are read over the second pass only. increase() and rate() extrapolate to the window's edges, so a
count over a window of ~20 one-second scrapes reads up to a few percent high: small counts are compared
rounded, rates integrated over the window within a band that a doubled or a missing count falls outside.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import RunningDaemon
from tests.grafana.test_grafana import JOB, Prometheus, dashboards, first_stamp, grafana_regex_escape
from tests.helpers import samples

FIXTURES = Path(__file__).parents[1] / "fixtures" / "3008.5"
SCENARIOS = ("killed_minion", "state_fail")
KEY_FAMILIES = (
    "salt_job_returns_total",
    "salt_job_minions_no_return_total",
    "salt_find_job_probes_total",
    "salt_find_job_answers_total",
)
SCRAPE = 1.0


def golden() -> dict[str, float]:
    """The replay's counts of the key families for the scenarios, summed (each scenario its own jobs)."""
    out: dict[str, float] = {}
    for name in SCENARIOS:
        for key, value in samples((FIXTURES / f"{name}.prom").read_text()).items():
            if key.split("{")[0] in KEY_FAMILIES and value:
                out[key] = out.get(key, 0.0) + value
    return out


def cli_not_connected() -> int:
    """Minions the `salt` CLI called `[Not connected]` in the same recording session."""
    return sum(
        len(re.findall(r"Minion did not return\. \[Not connected\]", (FIXTURES / f"{n}.cli.txt").read_text()))
        for n in SCENARIOS
    )


def panel(title: str) -> str:
    for dash in dashboards().values():
        for p in dash["panels"]:
            if p.get("title") == title:
                exprs = [t["expr"] for t in p.get("targets", [])]
                assert len(exprs) == 1, (title, exprs)
                return str(exprs[0])
    raise AssertionError(f"no panel titled {title!r}")


class Fifo:
    """The exporter's bus: each write() is one pass of the recording (open, write, close: end of file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)

    def write(self, data: bytes) -> None:
        with self.path.open("wb") as fh:  # blocks until the exporter opens its end
            fh.write(data)


def key_counts(daemon: RunningDaemon) -> dict[str, float]:
    return {k: v for k, v in daemon.metrics().items() if k.split("{")[0] in KEY_FAMILIES and v}


def wait_counts(daemon: RunningDaemon, want: dict[str, float], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := key_counts(daemon)) != want:
        assert time.monotonic() < deadline, f"exporter counts {got}, want {want}"
        time.sleep(0.2)


def by_labels(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1]) for r in result}


@pytest.mark.timeout(240)
def test_key_panels_show_the_recorded_counts(tmp_path: Path) -> None:
    recording = b"".join(
        (FIXTURES / f"{n}.bin").read_bytes()
        for n in sorted(SCENARIOS, key=lambda n: first_stamp(FIXTURES / f"{n}.bin"))
    )
    want = golden()
    assert want, "the goldens hold no key counts"
    not_connected = cli_not_connected()
    assert not_connected == sum(v for k, v in want.items() if 'reason="not_connected"' in k) == 1

    fifo = Fifo(tmp_path / "bus.fifo")
    daemon = RunningDaemon("--bus", f"file://{fifo.path}", "--replay.loop")
    prom = Prometheus(tmp_path, [f"127.0.0.1:{daemon.port}"])
    instance = grafana_regex_escape(f"127.0.0.1:{daemon.port}")
    try:
        fifo.write(recording)
        wait_counts(daemon, want)
        wait_scrapes(prom, "salt_job_returns_total", sum(v for k, v in want.items() if "returns_total" in k))

        second = time.time()
        writer = threading.Thread(target=fifo.write, args=(recording,), daemon=True)
        writer.start()
        wait_counts(daemon, {k: 2 * v for k, v in want.items()})
        writer.join(10)
        wait_scrapes(
            prom, "salt_job_returns_total", 2 * sum(v for k, v in want.items() if "returns_total" in k)
        )
        time.sleep(
            3 * SCRAPE
        )  # flat samples after the pass, so the window's end is not extrapolated from a jump
        start, end = second - 4 * SCRAPE, time.time()
        window = f"{round(end - start)}s"

        def instant(title: str, *labels: str) -> dict[tuple[str, ...], float]:
            expr = substitute(panel(title), instance, window)
            return by_labels(prom.get("query", query=expr, time=end)["result"], *labels)

        def integral(title: str, *labels: str) -> dict[tuple[str, ...], float]:
            """A rate panel's curve over the second pass, summed over time: the count it stands for."""
            expr = substitute(panel(title), instance, window)
            series = prom.get("query_range", query=expr, start=start, end=end, step=SCRAPE)["result"]
            return {
                tuple(s["metric"].get(k, "") for k in labels): sum(float(v) for _, v in s["values"]) * SCRAPE
                for s in series
            }

        def counts(family: str, *labels: str) -> dict[tuple[str, ...], float]:
            out: dict[tuple[str, ...], float] = {}
            for key, value in want.items():
                if key.startswith(family + "{"):
                    pairs = dict(re.findall(r'(\w+)="([^"]*)"', key))
                    k = tuple(pairs.get(label, "") for label in labels)
                    out[k] = out.get(k, 0.0) + value
            return out

        # Count panels over the dashboard range: exact once rounded.
        reasons = instant("Did not return, by reason (range)", "reason")
        assert {k: round(v) for k, v in reasons.items()} == counts(
            "salt_job_minions_no_return_total", "reason"
        )
        assert round(reasons[("not_connected",)]) == not_connected
        table = instant("Did not return, by function and reason", "function", "reason")
        assert {k: round(v) for k, v in table.items()} == counts(
            "salt_job_minions_no_return_total", "function", "reason"
        )
        # A ratio of two increases over the same window: the extrapolation cancels.
        returns = counts("salt_job_returns_total", "outcome")
        ratio = instant("Return success ratio")[()]
        assert ratio == pytest.approx(returns.get(("success",), 0) / sum(returns.values()), abs=1e-9)

        # Rate panels: the curve integrated over the pass is the count, within the extrapolation band.
        for title, family, labels in (
            ("Returns by function and outcome", "salt_job_returns_total", ("function", "outcome")),
            ("find_job probe rate", "salt_find_job_probes_total", ("function",)),
            ("find_job answers", "salt_find_job_answers_total", ("answer",)),
        ):
            got = {k: v for k, v in integral(title, *labels).items() if v}
            expected = counts(family, *labels)
            assert got.keys() == expected.keys(), (title, got, expected)
            for k, v in expected.items():
                assert 0.9 * v <= got[k] <= 1.5 * v, (title, k, got[k], v)
    finally:
        prom.stop()
        daemon.stop()


def substitute(expr: str, instance: str, window: str) -> str:
    """Grafana's variables as a dashboard with this one exporter selected would fill them."""
    expr = expr.replace("$__rate_interval", f"{5 * SCRAPE:.0f}s").replace("$__range", window)
    expr = expr.replace("$job", JOB).replace("$instance", instance).replace("$function", ".*")
    assert "$" not in expr, expr
    return expr


def wait_scrapes(
    prom: Prometheus, family: str, total: float, scrapes: int = 5, timeout: float = 60.0
) -> None:
    """Until Prometheus has scraped `family` summing to `total` and `scrapes` more samples after that time."""
    deadline = time.monotonic() + timeout
    since = time.time()
    while True:
        try:
            value = prom.get("query", query=f'sum({family}{{job="{JOB}"}})')["result"]
            last = prom.get("query", query=f'max(timestamp({family}{{job="{JOB}"}}))')["result"]
            if (
                value
                and float(value[0]["value"][1]) == total
                and float(last[0]["value"][1]) > since + scrapes * SCRAPE
            ):
                return
        except (AssertionError, OSError, ValueError, KeyError, IndexError):
            pass  # Prometheus still starting, or no sample yet
        assert prom.proc.poll() is None, "prometheus exited"
        assert time.monotonic() < deadline, f"Prometheus did not see {family} = {total} for {scrapes} scrapes"
        time.sleep(0.5)
