"""Deployment artifacts: the Helm chart rendered by a real helm and validated offline, the systemd unit
checked by systemd-analyze and run the way systemd would run it, the Dockerfile's properties."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "salt-event-exporter"
UNIT = ROOT / "deploy" / "systemd" / "salt-event-exporter.service"
ENVFILE = ROOT / "deploy" / "systemd" / "salt-event-exporter.env"
GRAFANA = ROOT / "grafana"
VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
TOOLS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "salt-event-exporter" / "tools"


@pytest.fixture(scope="module")
def helm() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/tools/install-helm.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def render(helm: str, values: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "t", str(CHART), "-f", str(values)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_chart_assets_match_grafana() -> None:
    """Helm only reads files inside the chart: its copies must be exactly what grafana/ holds."""
    for src in sorted((GRAFANA / "dashboards").glob("*.json")):
        copy = CHART / "files" / "dashboards" / src.name
        assert copy.exists() and copy.read_bytes() == src.read_bytes(), (
            f"{copy} drifted: run scripts/sync-chart-assets"
        )
    assert {p.name for p in (CHART / "files" / "dashboards").glob("*.json")} == {
        p.name for p in (GRAFANA / "dashboards").glob("*.json")
    }
    rules = GRAFANA / "alerts" / "salt-event-exporter.rules.yml"
    assert (CHART / "files" / "alerts" / rules.name).read_bytes() == rules.read_bytes()


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_lint_and_validate(helm: str, values: Path, tmp_path: Path) -> None:
    lint = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "-f", str(values)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(helm, values)
    core = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    crds = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    manifest = tmp_path / "core.yaml"
    manifest.write_text(yaml.safe_dump_all(core))
    check = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0 and "ERROR" not in check.stdout, check.stdout + check.stderr
    print(f"{values.stem}: {len(core)} core manifests valid", end="")
    if crds:
        models = TOOLS / "k8s-models"
        models.mkdir(parents=True, exist_ok=True)
        if not (models / "node_modules/@kubernetes-models/prometheus-operator").exists():
            subprocess.run(
                [
                    "npm",
                    "install",
                    "--silent",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    str(models),
                    "@kubernetes-models/prometheus-operator@6.0.0",
                ],
                check=True,
            )
        listing = tmp_path / "crds.json"
        listing.write_text(json.dumps(crds))
        run = subprocess.run(
            ["node", str(Path(__file__).parent / "validate_crds.cjs"), str(models), str(listing)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        print(f", {len(crds)} prometheus-operator resources valid", end="")
    print()


def test_crd_validator_rejects_a_bad_rule(helm: str, tmp_path: Path) -> None:
    docs = [d for d in render(helm, CHART / "ci" / "full-values.yaml") if d["kind"] == "PrometheusRule"]
    docs[0]["spec"]["groups"][0]["rules"][0]["for"] = 5
    listing = tmp_path / "bad.json"
    listing.write_text(json.dumps(docs))
    run = subprocess.run(
        ["node", str(Path(__file__).parent / "validate_crds.cjs"), str(TOOLS / "k8s-models"), str(listing)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1 and "INVALID PrometheusRule" in run.stdout


def test_rendered_rules_and_dashboards_are_grafana_s(helm: str) -> None:
    docs = render(helm, CHART / "ci" / "full-values.yaml")
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    source = yaml.safe_load((GRAFANA / "alerts" / "salt-event-exporter.rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    boards = {
        k: v
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["labels"].get("grafana_dashboard") == "1"
        for k, v in d["data"].items()
    }
    assert boards.keys() == {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    for name, text in boards.items():
        assert json.loads(text) == json.loads((GRAFANA / "dashboards" / name).read_text())


def containers(docs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    out = []
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            spec = d["spec"]["template"]["spec"]
            out += [(spec, c) for c in spec["containers"] if c["name"] == "salt-event-exporter"]
    return out


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_least_privilege_in_every_mode(helm: str, values: Path) -> None:
    docs = render(helm, values)
    found = containers(docs)
    sidecar = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-sidecar")]
    for cm in sidecar:
        found.append(
            (
                {"securityContext": yaml.safe_load(cm["data"]["pod-security-context.yaml"])},
                yaml.safe_load(cm["data"]["container.yaml"]),
            )
        )
    assert found, "every mode yields the exporter container somewhere"
    for pod, c in found:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert 450 in pod["securityContext"]["supplementalGroups"]
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/run/salt/master")
        assert mount["readOnly"] is True
        assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
        assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
        assert "--web.listen-address=:9646" in c["args"]


def test_built_image_contents() -> None:
    """What running the image (test_image.py) does not show by itself, checked on the image built from this
    checkout: the runtime holds the exporter's virtualenv and nothing to build or install with, no tests and
    no lab/; it runs as the uid the chart declares, through an exec-form entrypoint."""
    from tests.deploy.test_image import built_images, podman

    image = built_images()["exporter"]
    fmt = "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}"
    user, entrypoint, cmd = podman("image", "inspect", image, "--format", fmt).stdout.strip().split("|")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert user == f"{values['podSecurityContext']['runAsUser']}:{values['podSecurityContext']['runAsGroup']}"
    assert json.loads(entrypoint) == ["salt-event-exporter"] and json.loads(cmd) == ["run"]
    probe = (
        "import importlib.util as u, pathlib as p, shutil as s; "
        "print(*[t for t in ('gcc', 'cc', 'make', 'pip', 'pip3') if s.which(t)], "
        "*[m for m in ('pip', 'lab', 'tests', 'setuptools') if u.find_spec(m)], "
        "*[d for d in ('/src', '/etc/pip.conf') if p.Path(d).exists()])"
    )
    found = podman("run", "--rm", "--pull=never", "--read-only", "--entrypoint=python3", image, "-c", probe)
    assert found.stdout.strip() == "", f"the runtime image holds {found.stdout.strip()}"


def unit_for_verify(tmp_path: Path) -> Path:
    """systemd-analyze verify wants the ExecStart binary to exist: point it at the project's build."""
    exe = shutil.which("salt-event-exporter") or str(Path(sys.executable).parent / "salt-event-exporter")
    text = UNIT.read_text().replace("/opt/salt-event-exporter/bin/salt-event-exporter", exe)
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if not path:
        subprocess.run(["apt-get", "install", "-y", "-qq", "systemd"], check=True)
        path = shutil.which("systemd-analyze")
    assert path
    return path


def test_systemd_verify_and_security_score(systemd_analyze: str, tmp_path: Path) -> None:
    unit = unit_for_verify(tmp_path)
    verify = subprocess.run(
        [systemd_analyze, "verify", str(unit)], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert verify.returncode == 0 and verify.stdout == "" and verify.stderr == "", (
        verify.stdout + verify.stderr
    )
    security = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    score = float(re.search(r"Overall exposure level for .*?: ([\d.]+)", security.stdout).group(1))  # type: ignore[union-attr]
    print(f"systemd-analyze security exposure: {score}")
    assert score <= 2.0, security.stdout


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_runs_like_the_unit_against_a_real_master(tmp_path: Path) -> None:
    """Same user, supplementary group, environment file and ExecStart as the unit, with the sandboxing that
    holds without systemd as PID 1: setpriv drops to the unit's user with no_new_privs and an empty capability
    bounding set, inside a private mount namespace whose root is read-only (ProtectSystem=strict)."""
    from lab.saltlab import SaltLab, ensure_salt

    unit = unit_settings()
    user, group, extra = unit["User"][0], unit["Group"][0], unit["SupplementaryGroups"][0]
    for name in (group, extra):
        subprocess.run(["groupadd", "--system", "-f", name], check=True)
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--gid", group, "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
        )
    # Install the exporter the way deploy/systemd/README.md says, into a prefix the service user can read.
    prefix = tmp_path / "opt" / "salt-event-exporter"
    subprocess.run(
        ["uv", "venv", "-q", "--python", "/usr/bin/python3", str(prefix)],
        check=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
    )
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(prefix / "bin/python"), str(ROOT)], check=True
    )
    for path in [tmp_path, *tmp_path.parents]:
        if path == Path("/"):
            break
        path.chmod(path.stat().st_mode | 0o055)
    exec_start = unit["ExecStart"][0].replace("/opt/salt-event-exporter", str(prefix))
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    listen = f"127.0.0.1:{port.getsockname()[1]}"
    port.close()
    with SaltLab("3008.4", venv=ensure_salt("3008.4")) as lab:
        # As a packaged 3007.2+ master does: the socket 0660 group salt; its directories traversable.
        bus = Path(lab.bus_path)
        os.chown(bus, 0, grp.getgrnam(extra).gr_gid)
        bus.chmod(0o660)
        for d in [bus.parent, *bus.parents]:
            if d == Path("/"):
                break
            d.chmod(d.stat().st_mode | 0o011)
        env_text = ENVFILE.read_text().replace("/var/run/salt/master/master_event_pub.ipc", str(bus))
        env_text = env_text.replace("127.0.0.1:9646", listen)
        envfile = tmp_path / "salt-event-exporter.env"
        envfile.write_text(env_text)
        lines = [line for line in env_text.splitlines() if line and not line.startswith("#")]
        env = dict(line.split("=", 1) for line in lines)
        argv = [
            a.replace("$SALT_EXPORTER_ARGS", env.get("SALT_EXPORTER_ARGS", ""))
            for a in shlex.split(exec_start)
        ]
        argv = [a for a in argv if a]
        inner = (
            "mount --make-rprivate / && mount --bind / / && mount -o remount,bind,ro / && "
            f"exec setpriv --reuid={user} --regid={group} --groups={extra} --no-new-privs "
            "--bounding-set=-all --inh-caps=-all --reset-env -- "
            f"env {' '.join(shlex.quote(f'{k}={v}') for k, v in env.items())} "
            f"{' '.join(map(shlex.quote, argv))}"
        )
        proc = subprocess.Popen(
            ["unshare", "--mount", "--", "sh", "-c", inner], stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    metrics = requests.get(f"http://{listen}/metrics", timeout=2).text
                    if "salt_exporter_bus_connected 1.0" in metrics:
                        break
                except requests.RequestException:
                    pass
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the sandboxed exporter did not connect to the bus"
                time.sleep(0.3)
            lab.salt("*", "test.ping", timeout=60)
            deadline = time.monotonic() + 20
            while 'salt_job_returns_total{function="test.ping",outcome="success"} 3.0' not in metrics:
                assert time.monotonic() < deadline, metrics[-2000:]
                time.sleep(0.3)
                metrics = requests.get(f"http://{listen}/metrics", timeout=2).text
            # unshare execs sh, which execs setpriv, which execs env, which execs the exporter: one pid.
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert re.search(r"^NoNewPrivs:\s+1", status, re.M)
            assert re.search(r"^CapBnd:\s+0+$", status, re.M)
            assert re.search(r"^Uid:\s+(\d+)", status, re.M).group(1) == str(pwd.getpwnam(user).pw_uid)  # type: ignore[union-attr]
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert '"event": "stopped"' in err


@pytest.mark.parametrize(("setting", "message"), [("mode=bogus", "/mode"), ("tpyo=1", "tpyo")])
def test_values_schema_rejects_mistakes(helm: str, setting: str, message: str) -> None:
    lint = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "--set", setting], capture_output=True, text=True, check=False
    )
    assert lint.returncode != 0 and message in lint.stdout + lint.stderr
