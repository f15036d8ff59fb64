"""Dashboards and alert rules: generated and current, valid, tested with promtool, and every query run
against a real Prometheus server scraping real exporters fed by real-master recordings."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import msgpack
import pytest
import requests
import yaml

from exporter.sinks.catalog import METRICS, series_names
from tests import wire
from tests.conftest import Receiver
from tests.daemon import RunningDaemon, free_port

ROOT = Path(__file__).parents[2]
GRAFANA = ROOT / "grafana"
RULES = GRAFANA / "alerts" / "salt-event-exporter.rules.yml"
ALERT_TESTS = sorted((GRAFANA / "alerts" / "tests").glob("*.yml"))
KNOWN = {name for spec in METRICS for name in series_names(spec)} | {"up"}
# Prose (README, annotations) may name a histogram family by its base name.
KNOWN_IN_PROSE = KNOWN | {spec.name for spec in METRICS}
PROSE_NAME = re.compile(r"\b(salt_[a-z0-9_]+)\b")
# Captures recorded from real masters: the project's own fixtures only (tests/fixtures/README.md).
CAPTURE_DIRS = (ROOT / "tests" / "fixtures",)
SYNDIC_FIXTURES = ROOT / "tests" / "fixtures" / "syndic"

# PromQL (Prometheus 2.x): everything an identifier can be besides a metric name.
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "atan2", "inf", "nan",
}  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
IDENTIFIER = re.compile(r"(?<![\w$.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects: bare names and `{__name__="..."}` matchers.

    Not a full parser, but it discards everything that is not a metric name: strings (label values),
    label matchers, grouping label lists, range and subquery brackets, durations, numbers, function and
    aggregation names (followed by `(`), keywords, and Grafana variables (`$job`, `${x}`).
    """
    names = set(NAME_MATCHER.findall(expr))
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers (their values are already blank)
    text = GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)  # [5m], [$__rate_interval], [1h:5m]
    text = re.sub(r"\$\w+", " ", text)
    text = re.sub(r"(?<![\w.])\d[\w.]*", " ", text)  # numbers, 1e3, 0x1f, durations after offset
    names |= {m for m in IDENTIFIER.findall(text) if m.lower() not in PROMQL_KEYWORDS}
    return names


def unknown_metrics(expr: str) -> set[str]:
    return {m for m in metric_names(expr) if m not in KNOWN}


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for name, dash in dashboards().items():
        for panel in dash["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{name}: {panel['title']}", t["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard, variable, query) for every query variable."""
    return [
        (name, v["name"], v["query"]["query"])
        for name, dash in dashboards().items()
        for v in dash["templating"]["list"]
        if v["type"] == "query"
    ]


LABEL_VALUES = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$")


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_metric_name_checker() -> None:
    """The checker finds every metric name, flags unknown ones, and ignores what is not a metric name."""
    assert metric_names(
        'sum by (function, le) (rate(salt_job_return_latency_seconds_bucket{job=~"$job",'
        'function="salt_fake_total"}[$__rate_interval] offset 5m)) / on (instance) group_left (version) '
        "max by (instance, version) (salt_exporter_build_info) > bool 0.5 and up == 1e3"
    ) == {"salt_job_return_latency_seconds_bucket", "salt_exporter_build_info", "up"}
    # A typo, a name outside the catalog, a histogram family used without a suffix, a __name__ matcher.
    assert unknown_metrics('sum(rate(salt_jobs_publishd_total{job=~"$job"}[5m]))') == {
        "salt_jobs_publishd_total"
    }
    assert unknown_metrics("process_resident_memory_bytes / 2") == {"process_resident_memory_bytes"}
    assert unknown_metrics("rate(salt_job_return_latency_seconds[5m])") == {"salt_job_return_latency_seconds"}
    assert unknown_metrics('count({__name__="salt_nope", job="x"})') == {"salt_nope"}
    assert (
        unknown_metrics("histogram_quantile(0.9, rate(salt_job_return_latency_seconds_bucket[5m]))") == set()
    )
    assert unknown_metrics('label_replace(up, "dst", "$1", "src", "(.*)")') == set()


def test_every_metric_in_grafana_exists_in_the_catalog() -> None:
    exprs = [e for _, e in panel_queries()] + [r["expr"] for r in alert_rules()]
    assert len(exprs) > 40
    problems = {e: unknown_metrics(e) for e in exprs if unknown_metrics(e)}
    assert not problems
    for dash, var, query in variable_queries():
        selector = LABEL_VALUES.match(query)
        assert selector, f"{dash}: ${var}: not label_values(selector, label): {query}"
        assert not unknown_metrics(selector.group(1)), (dash, var, query)
    # Anything else in grafana/ that names a salt_ metric (README, annotations, provisioning) is held to
    # the same rule.
    for path in GRAFANA.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".yaml", ".yml", ".json"):
            stray = set(PROSE_NAME.findall(path.read_text())) - KNOWN_IN_PROSE
            assert not stray, (path, stray)


def test_dashboards_are_generated_and_current() -> None:
    run = subprocess.run(
        [sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout


def trace_links(panel: dict[str, Any]) -> list[dict[str, Any]]:
    """The Explore panes of a panel's data links, decoded."""
    out = []
    for link in panel["fieldConfig"]["defaults"].get("links", []):
        url = urllib.parse.urlsplit(link["url"])
        assert url.path == "/explore", link
        panes = json.loads(urllib.parse.parse_qs(url.query)["panes"][0])
        out.extend(panes.values())
    return out


def test_dashboard_conventions() -> None:
    uids = set()
    linked = 0
    for name, dash in dashboards().items():
        assert "__inputs" not in dash
        uids.add(dash["uid"])
        names = {v["name"]: v for v in dash["templating"]["list"]}
        assert names["datasource"]["type"] == "datasource"
        assert names["traces_datasource"]["type"] == "datasource"
        assert {"job", "instance", "traces_datasource"} <= set(names)
        assert any("traces_datasource" in link.get("url", "") for link in dash["links"]), name
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dash["panels"]:
            assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, (name, panel["title"])
            if panel["type"] == "row":
                continue
            assert panel["type"] in {"timeseries", "stat", "heatmap", "bargauge", "table"}, panel["type"]
            assert panel.get("description"), f"{name}: {panel['title']} has no description"
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["fieldConfig"]["defaults"].get("unit")
            for t in panel["targets"]:
                assert "$job" in t["expr"] and "$instance" in t["expr"], t["expr"]
                used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__range", "__interval"}
                assert used <= set(names), f"{name}: {panel['title']}: undefined {used - set(names)}"
            # Trace data links: the traces datasource variable, TraceQL on a label every query keeps.
            for pane in trace_links(panel):
                linked += 1
                assert pane["datasource"] == "${traces_datasource}"
                (query,) = pane["queries"]
                assert (
                    query["queryType"] == "traceql" and query["datasource"]["uid"] == "${traces_datasource}"
                )
                for label in re.findall(r"\$\{__field\.labels\.(\w+)\}", query["query"]):
                    for t in panel["targets"]:
                        assert re.search(rf"by \([^)]*\b{label}\b", t["expr"]), (panel["title"], label)
    assert uids == {"salt-overview", "salt-jobs", "salt-minions", "salt-exporter"}
    assert linked >= 5


def test_every_alert_documented_and_unit_tested() -> None:
    readme = (GRAFANA / "README.md").read_text()
    tests = [t for f in ALERT_TESTS for t in yaml.safe_load(f.read_text())["tests"]]
    for rule in alert_rules():
        name = rule["alert"]
        ann = rule["annotations"]
        assert ann.get("summary") and ann.get("description"), name
        assert ann["runbook_url"] == f"grafana/README.md#{name.lower()}", name
        assert f'<a id="{name.lower()}"></a>' in readme, f"no runbook section for {name}"
        # Each alert is tested both firing and not firing.
        checks = [a for t in tests for a in t["alert_rule_test"] if a["alertname"] == name]
        assert any(a["exp_alerts"] for a in checks), f"{name} is never tested firing"
        assert any(not a["exp_alerts"] for a in checks), f"{name} is never tested not firing"


def promtool_test(promtool: str, alerts_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "test", "rules", *(f.name for f in sorted((alerts_dir / "tests").glob("*.yml")))],
        cwd=alerts_dir / "tests",
        capture_output=True,
        text=True,
        check=False,
    )


def test_promtool_check_and_unit_tests(promtool: str) -> None:
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in check.stdout
    unit = promtool_test(promtool, GRAFANA / "alerts")
    print(unit.stdout)
    assert unit.returncode == 0, unit.stdout + unit.stderr
    groups = sum(len(yaml.safe_load(f.read_text())["tests"]) for f in ALERT_TESTS)
    cases = sum(
        len(t["alert_rule_test"]) for f in ALERT_TESTS for t in yaml.safe_load(f.read_text())["tests"]
    )
    print(f"promtool: {len(alert_rules())} rules, {groups} test groups, {cases} alert_rule_test cases")


@pytest.mark.parametrize("mutation", ["never_fires", "always_fires"])
def test_promtool_unit_tests_catch_a_broken_alert(promtool: str, tmp_path: Path, mutation: str) -> None:
    """Replace one alert's expression at a time by one that never (always) fires: the unit tests must fail
    each time, so every alert really has an effective firing (not-firing) case."""
    expr = "vector(1) < 0" if mutation == "never_fires" else "vector(1)"
    survived = []
    for i, rule in enumerate(alert_rules()):
        alerts = tmp_path / rule["alert"]
        shutil.copytree(GRAFANA / "alerts", alerts)
        doc = yaml.safe_load(RULES.read_text())
        flat = [r for g in doc["groups"] for r in g["rules"]]
        flat[i]["expr"] = expr
        (alerts / RULES.name).write_text(yaml.safe_dump(doc))
        if promtool_test(promtool, alerts).returncode == 0:
            survived.append(rule["alert"])
    assert not survived, f"unit tests pass although these alerts {mutation.replace('_', ' ')}: {survived}"


def edge_capture(path: Path) -> Path:
    """What the recordings lack: beacons, key/auth variety, hostile bytes, a duplicate return and a
    function-label flood."""
    t0 = 1_800_000_000.0
    stamp = wire.stamp(t0)
    frames = [
        wire.body("salt/beacon/m1/diskusage/", {"id": "m1", "_stamp": stamp}),
        wire.body("salt/auth", {"act": "reject", "id": "bad", "_stamp": stamp}),
        wire.body("salt/key", {"act": "delete", "id": "old", "_stamp": stamp}),
        b"salt/job/1/ret/m1\n\n\xc1",
        wire.body("salt/wheel/20270115080000000009/new", {"fun": "wheel.key.list_all", "_stamp": stamp}),
        wire.body(
            "salt/wheel/20270115080000000009/ret",
            {"fun": "wheel.key.list_all", "success": True, "_stamp": stamp},
        ),
        wire.body("salt/minion/m1/start", {"id": "m1", "_stamp": stamp}),
        # A minion without a key is declared silent at once; its later return is a late one.
        wire.new("20270115080000000010", "test.ping", ["m1"], t0, missing=["m9"]),
        wire.ret("20270115080000000010", "m9", "test.ping", t0 + 1),
        # A minion retry: the same return twice is one return and one duplicate.
        wire.ret("20270115080000000010", "m1", "test.ping", t0 + 0.2),
        wire.ret("20270115080000000010", "m1", "test.ping", t0 + 0.3),
    ]
    # Returns of 20 distinct functions (jobs published before the exporter started) overflow a cap of 5.
    frames += [wire.ret(f"202701150800000001{i:02d}", "m1", f"flood.fun{i}", t0) for i in range(20)]
    path.write_bytes(b"".join(wire.wrap(f) for f in frames))
    return path


def first_stamp(capture: Path) -> str:
    """`_stamp` of a capture's first event (ISO-8601, so strings of one master sort by time)."""
    raw = capture.read_bytes()
    if not 0x80 <= raw[0] <= 0x8F:
        raw = raw[4:]  # 3006.26+ length prefix
    frame = next(msgpack.Unpacker(io.BytesIO(raw), raw=True))
    data = msgpack.unpackb(frame[b"body"].split(b"\n\n", 1)[1], raw=False, strict_map_key=False)
    return str(data.get("_stamp", ""))


def real_master_capture(series: str, out: Path) -> Path:
    """Every recorded scenario of the newest Salt `series` (e.g. "3008") in tests/fixtures, in recording
    order, as one capture."""
    for base in CAPTURE_DIRS:
        versions = sorted(
            (d for d in base.glob(f"{series}.*") if any(d.glob("*.bin"))),
            key=lambda d: tuple(int(x) for x in d.name.split(".") if x.isdigit()),
        )
        if versions:
            files = sorted(versions[-1].glob("*.bin"), key=first_stamp)
            out.write_bytes(b"".join(f.read_bytes() for f in files))
            return out
    pytest.fail(f"no capture of a Salt {series} master in {[str(d) for d in CAPTURE_DIRS]}")


def syndic_top_capture(out: Path) -> Path:
    """The master of masters' bus from the newest syndic recordings: events forwarded by a real syndic."""
    newest = max(SYNDIC_FIXTURES.iterdir(), key=lambda d: tuple(int(x) for x in d.name.split(".")))
    files = sorted((f for f in newest.glob("*.bin") if not f.name.endswith(".lower.bin")), key=first_stamp)
    out.write_bytes(b"".join(f.read_bytes() for f in files))
    return out


class Prometheus:
    """The real prometheus server on a free port, temporary storage, 1 s scrape and rule evaluation."""

    def __init__(self, tmp: Path, targets: list[str], flags: tuple[str, ...] = ()) -> None:
        port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
                }
            )
        )
        self.proc = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.api = f"http://127.0.0.1:{port}/api/v1"

    def get(self, path: str, **params: Any) -> Any:
        r = requests.get(f"{self.api}/{path}", params=params, timeout=10).json()
        assert r["status"] == "success", (path, params, r)
        return r["data"]

    def query(self, expr: str) -> list[Any]:
        result: list[Any] = self.get("query", query=expr)["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


JOB = "salt-event-exporter"
# Grafana's $__rate_interval is at least four scrape intervals (1 s here); $__range is the dashboard range.
RATE_INTERVAL = "5s"


def grafana_regex_escape(value: str) -> str:
    """A variable value as Grafana puts it into a Prometheus regex matcher: regex metacharacters escaped
    with a backslash that is itself escaped for the PromQL string literal."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def with_bool(expr: str) -> str:
    """An alert expression with `bool` on its comparisons against numbers: the same PromQL, but it returns
    0/1 for every series instead of only the firing ones, so "returns data" can be asserted."""
    return re.sub(r"(==|!=|>=|<=|>|<)\s*(?=[-+]?\d)", r"\1 bool ", expr)


def test_with_bool() -> None:
    assert with_bool('up{job=~"x"} == 0') == 'up{job=~"x"} == bool 0'
    assert (
        with_bool('sum(rate(a{r!="x"}[5m])) > 0.2\nand b >= 5')
        == 'sum(rate(a{r!="x"}[5m])) > bool 0.2\nand b >= bool 5'
    )


def test_queries_against_a_real_prometheus(promtool: str, receiver: Receiver, tmp_path: Path) -> None:
    """Every panel query, template variable query and alert expression, run by a real Prometheus scraping
    real exporters: two replay real-master recordings in a loop (3008 plain framing with per-minion labels
    and OTLP export; 3006 length-prefixed framing), one a real master of masters above a syndic, one the
    edge cases the recordings lack."""
    exporters = {
        "3008": RunningDaemon(
            "--bus",
            str(real_master_capture("3008", tmp_path / "3008.bin")),
            "--replay.loop",
            "--metrics.minion-label",
            "--otlp.endpoint",
            receiver.http,
        ),
        "3006": RunningDaemon(
            "--bus", str(real_master_capture("3006", tmp_path / "3006.bin")), "--replay.loop"
        ),
        "edge": RunningDaemon(
            "--bus", str(edge_capture(tmp_path / "edge.bin")), "--replay.loop", "--metrics.max-functions", "5"
        ),
        "syndic": RunningDaemon("--bus", str(syndic_top_capture(tmp_path / "syndic.bin")), "--replay.loop"),
    }
    instances = {name: f"127.0.0.1:{d.port}" for name, d in exporters.items()}
    prom = Prometheus(tmp_path, list(instances.values()))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                up = prom.query(f'sum(up{{job="{JOB}"}})')
                scraped = prom.query(
                    f'count(count_over_time(salt_exporter_bus_bytes_total{{job="{JOB}"}}[1m]) >= 5)'
                )
                n = str(len(instances))
                if up and up[0]["value"][1] == n and scraped and scraped[0]["value"][1] == n:
                    break  # five scrapes of each: rate() over RATE_INTERVAL has samples everywhere
            except (requests.RequestException, AssertionError, ValueError):
                pass
            assert prom.proc.poll() is None, "prometheus exited"
            assert time.monotonic() < deadline, "prometheus did not scrape every exporter"
            time.sleep(0.5)

        # Template variables, evaluated as Grafana does (label_values -> the series API), then used as
        # Grafana substitutes them: a multi-value regex of every value the variable offers.
        values: dict[str, list[str]] = {}
        for dash, var, query in variable_queries():
            m = LABEL_VALUES.match(query)
            assert m, query
            selector = m.group(1).replace("$job", JOB).replace("$instance", "|".join(instances.values()))
            found = prom.get(f"label/{m.group(2)}/values", **{"match[]": selector})
            assert found, f"{dash}: ${var} offers nothing ({query})"
            values.setdefault(var, found)
        assert values["job"] == [JOB]
        assert sorted(values["instance"]) == sorted(instances.values())

        def substitute(expr: str, **fixed: str) -> str:
            expr = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", "1m")
            for var, vals in sorted(values.items(), key=lambda kv: -len(kv[0])):
                chosen = fixed.get(var, "(" + "|".join(grafana_regex_escape(v) for v in vals) + ")")
                expr = expr.replace(f"${var}", chosen)
            assert "$" not in expr, expr
            return expr

        queries = panel_queries()
        empty = [f"{where}: {expr}" for where, expr in queries if not prom.query(substitute(expr))]
        assert not empty, "panel queries without data:\n" + "\n".join(empty)
        # A real master alone (no edge cases) lights up every Overview panel, on either framing.
        overview = [(w, e) for w, e in queries if w.startswith("salt-overview.json")]
        for version in ("3008", "3006"):
            instance = grafana_regex_escape(instances[version])
            dark = [w for w, e in overview if not prom.query(substitute(e, instance=instance))]
            assert not dark, f"Salt {version} capture: Overview panels without data: {dark}"

        # Alerts: Prometheus loads and evaluates the rules file without errors; each expression, with
        # `bool` comparisons, returns series; each metric it names is exposed by the exporters.
        deadline = time.monotonic() + 10
        while True:
            rules = [r for g in prom.get("rules")["groups"] for r in g["rules"]]
            if all(r.get("lastEvaluation", "").startswith("2") and r["health"] != "unknown" for r in rules):
                break
            assert time.monotonic() < deadline, rules
            time.sleep(0.5)
        assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
        assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        for rule in alert_rules():
            assert with_bool(rule["expr"]) != rule["expr"], rule["alert"]
            assert prom.query(with_bool(rule["expr"])), f"{rule['alert']}: no series"
            for name in metric_names(rule["expr"]):
                assert prom.query(f'count({{__name__="{name}"}})'), f"{rule['alert']}: {name} is not exposed"
        panels = sum(1 for d in dashboards().values() for p in d["panels"] if p["type"] != "row")
        print(
            f"{panels} panels, {len(queries)} panel queries, {len(variable_queries())} variable queries and "
            f"{len(alert_rules())} alert expressions evaluated by a real Prometheus"
        )
    finally:
        prom.stop()
        for d in exporters.values():
            d.stop()


def typecheck(
    dashboards_by_name: dict[str, dict[str, Any]], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """Type-check dashboards against Grafana's published `Dashboard` type (@grafana/schema) with tsc."""
    cache = (
        subprocess.run(
            ["bash", str(ROOT / "scripts/tools/install-grafana-schema.sh")],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    (workdir / "node_modules").symlink_to(Path(cache) / "node_modules")
    files = []
    for i, dash in enumerate(dashboards_by_name.values()):
        name = f"dash{i}.ts"
        (workdir / name).write_text(
            "import type { Dashboard } from '@grafana/schema';\n"
            f"export const dashboard: Dashboard = {json.dumps(dash, indent=1)};\n"
        )
        files.append(name)
    (workdir / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "module": "nodenext",
                    "moduleResolution": "nodenext",
                    "target": "es2020",
                    "skipLibCheck": True,
                },
                "files": files,
            }
        )
    )
    return subprocess.run(
        [str(Path(cache) / "node_modules/.bin/tsc"), "-p", str(workdir)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_dashboards_match_grafana_schema(tmp_path: Path) -> None:
    if not shutil.which("npm"):
        pytest.fail("npm is needed to fetch @grafana/schema (Node.js and npm are on the project's machines)")
    good = tmp_path / "good"
    good.mkdir()
    run = typecheck(dashboards(), good)
    assert run.returncode == 0, run.stdout + run.stderr
    broken = json.loads(json.dumps(dashboards()["salt-overview.json"]))
    broken["panels"][1]["gridPos"]["x"] = "left"
    broken["templating"]["list"][2]["bogus"] = True
    bad = tmp_path / "bad"
    bad.mkdir()
    run = typecheck({"broken": broken}, bad)
    assert run.returncode != 0, "a broken dashboard must fail the type check"
    assert "bogus" in run.stdout and "x" in run.stdout, run.stdout
