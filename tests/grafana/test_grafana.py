"""Dashboards and alert rules: generated and current, valid, tested with promtool, and every query run
against a real Prometheus server scraping real exporters fed by real-master recordings."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.catalog import METRICS, series_names
from tests import wire
from tests.conftest import Receiver
from tests.daemon import RunningDaemon, free_port

ROOT = Path(__file__).parents[2]
GRAFANA = ROOT / "grafana"
RULES = GRAFANA / "alerts" / "salt-event-exporter.rules.yml"
KNOWN = {name for spec in METRICS for name in series_names(spec)} | {"up"}
METRIC_NAME = re.compile(r"\b(salt_[a-z0-9_]+|up)\b(?!\s*\()")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for name, dash in dashboards().items():
        for panel in dash["panels"]:
            for t in panel.get("targets", []):
                out.append((f"{name}: {panel['title']}", t["expr"]))
    return out


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def unknown_metrics(expr: str) -> set[str]:
    return {m for m in METRIC_NAME.findall(expr) if m not in KNOWN}


def test_metric_name_checker_catches_typos() -> None:
    assert unknown_metrics('sum(rate(salt_jobs_publishd_total{job=~"$job"}[5m]))') == {
        "salt_jobs_publishd_total"
    }
    assert (
        unknown_metrics("histogram_quantile(0.9, rate(salt_job_return_latency_seconds_bucket[5m]))") == set()
    )


def test_every_metric_in_grafana_exists_in_the_catalog() -> None:
    exprs = [e for _, e in panel_queries()] + [r["expr"] for r in alert_rules()]
    assert len(exprs) > 40
    problems = {e: unknown_metrics(e) for e in exprs if unknown_metrics(e)}
    assert not problems
    # Anything else in grafana/ that names a salt_ metric (README, provisioning) is held to the same rule.
    for path in GRAFANA.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".yaml", ".yml", ".json"):
            assert not unknown_metrics(path.read_text()), path


def test_dashboards_are_generated_and_current() -> None:
    run = subprocess.run(
        [sys.executable, str(GRAFANA / "build_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout


def test_dashboard_conventions() -> None:
    uids = set()
    for name, dash in dashboards().items():
        assert "__inputs" not in dash
        uids.add(dash["uid"])
        names = {v["name"]: v for v in dash["templating"]["list"]}
        assert names["datasource"]["type"] == "datasource"
        assert {"job", "instance", "traces_datasource"} <= set(names)
        assert any("traces_datasource" in link.get("url", "") for link in dash["links"]), name
        for panel in dash["panels"]:
            if panel["type"] == "row":
                continue
            assert panel.get("description"), f"{name}: {panel['title']} has no description"
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["fieldConfig"]["defaults"].get("unit")
            for t in panel["targets"]:
                assert "$job" in t["expr"] and "$instance" in t["expr"], t["expr"]
    assert uids == {"salt-overview", "salt-jobs", "salt-minions", "salt-exporter"}


def test_every_alert_documented_and_unit_tested() -> None:
    readme = (GRAFANA / "README.md").read_text()
    tests = (GRAFANA / "alerts" / "tests" / "salt-event-exporter.test.yml").read_text()
    for rule in alert_rules():
        name = rule["alert"]
        ann = rule["annotations"]
        assert (
            ann.get("summary") and ann.get("description") and ann["runbook_url"].endswith("#" + name.lower())
        )
        assert f'<a id="{name.lower()}"></a>' in readme, f"no runbook section for {name}"
        # Each alert is tested both firing and not firing.
        block = [
            t for t in yaml.safe_load(tests)["tests"] for a in t["alert_rule_test"] if a["alertname"] == name
        ]
        checks = [a for t in block for a in t["alert_rule_test"] if a["alertname"] == name]
        assert any(a["exp_alerts"] for a in checks) and any(not a["exp_alerts"] for a in checks), name


@pytest.fixture(scope="module")
def promtool() -> str:
    if not shutil.which("promtool") or not shutil.which("prometheus"):
        subprocess.run(["bash", str(ROOT / "scripts/tools/install-prometheus.sh")], check=True)
    path = shutil.which("promtool")
    assert path
    return path


def test_promtool_check_and_unit_tests(promtool: str) -> None:
    check = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in check.stdout
    unit = subprocess.run(
        [promtool, "test", "rules", "salt-event-exporter.test.yml"],
        cwd=GRAFANA / "alerts" / "tests",
        capture_output=True,
        text=True,
        check=False,
    )
    print(unit.stdout)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def edge_capture(path: Path) -> Path:
    """What the recordings lack: beacons, key/auth variety, hostile bytes and a function-label flood."""
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
    ]
    frames += [wire.ret("req", "m1", f"flood.fun{i}", t0) for i in range(20)]
    path.write_bytes(b"".join(wire.wrap(f) for f in frames))
    return path


def test_queries_against_a_real_prometheus(promtool: str, receiver: Receiver, tmp_path: Path) -> None:
    demo = ROOT / "exporter" / "data" / "demo.bin"
    a = RunningDaemon(
        "--bus", str(demo), "--replay.loop", "--metrics.minion-label", "--otlp.endpoint", receiver.http
    )
    b = RunningDaemon(
        "--bus", str(edge_capture(tmp_path / "edge.bin")), "--replay.loop", "--metrics.max-functions", "5"
    )
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "salt-event-exporter",
                        "static_configs": [{"targets": [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]}],
                    }
                ],
            }
        )
    )
    prom = subprocess.Popen(
        [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path}/data",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def query(expr: str) -> list[Any]:
            r = requests.get(f"{api}/query", params={"query": expr}, timeout=10).json()
            assert r["status"] == "success", (expr, r)
            return r["data"]["result"]

        deadline = time.monotonic() + 60
        while True:
            try:
                ready = query('count(up{job="salt-event-exporter"} == 1)')
                if ready and ready[0]["value"][1] == "2" and len(query("salt_exporter_bus_bytes_total")) == 2:
                    break
            except (requests.RequestException, AssertionError, ValueError):
                pass
            assert time.monotonic() < deadline and prom.poll() is None, (
                "prometheus did not scrape both exporters"
            )
            time.sleep(0.5)
        time.sleep(6)  # enough samples for rate() over the substituted rate interval

        def substitute(expr: str) -> str:
            return (
                expr.replace("$__rate_interval", "5s")
                .replace("$__range", "1m")
                .replace("$job", ".+")
                .replace("$instance", ".+")
            )

        empty = []
        for where, expr in panel_queries():
            if not query(substitute(expr)):
                empty.append(f"{where}: {expr}")
        assert not empty, "panel queries without data:\n" + "\n".join(empty)
        for rule in alert_rules():
            query(rule["expr"])  # valid PromQL that Prometheus evaluates; firing or not
            for name in METRIC_NAME.findall(rule["expr"]):
                assert query(f'count({{__name__="{name}"}})'), f"{rule['alert']}: {name} is not exposed"
        rules = requests.get(f"{api}/rules", timeout=10).json()["data"]["groups"]
        assert {r["name"] for g in rules for r in g["rules"]} == {r["alert"] for r in alert_rules()}
        print(f"{len(panel_queries())} panel queries and {len(alert_rules())} alert expressions evaluated")
    finally:
        prom.terminate()
        prom.wait(timeout=20)
        a.stop()
        b.stop()


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
