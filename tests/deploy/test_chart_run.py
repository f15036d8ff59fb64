"""The Helm chart rendered by a real helm and run for real with ``podman kube play``, with the image
scripts/tools/build-images.sh built from this checkout.

Sidecar mode: the chart's example salt-master StatefulSet (its pod template, with the test's salt-master
image) runs the master and the exporter in one pod sharing sock_dir on an emptyDir, as Kubernetes would; a
salt-minion container joins the pod, a job runs through the master's CLI, the exporter's /metrics counts it.
Node mode: the DaemonSet (as a Deployment) mounts a real host master's sock_dir by hostPath.

What ``kube play`` cannot do is worked around here, never in the chart: DaemonSet and StatefulSet kinds (a
DaemonSet becomes a Deployment, a StatefulSet's template a Pod), ``fieldPath: spec.nodeName`` (masterId is
set), Pod annotations over 63 characters (dropped), Services (ignored: /metrics is published by a
hostPort), probes (not run: /-/healthy and /-/ready are requested here) and fsGroup (ignored: the chart does
not need it).
"""

from __future__ import annotations

import contextlib
import copy
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.deploy.test_image import (
    SALT_GID,
    SALT_VERSION,
    built_images,
    free_port,
    in_ci,
    podman,
    returned_minions,
    sample,
    scrape,
    wait_for,
)

ROOT = Path(__file__).parents[2]
CHART = ROOT / "deploy" / "helm" / "salt-event-exporter"
EXPORTER = "salt-event-exporter"


@pytest.fixture(scope="module")
def helm() -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/tools/install-helm.sh")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return built_images()


def render(helm: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "t", str(CHART), *args], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def image_values(images: dict[str, str], master_id: str) -> list[str]:
    repository, tag = images["exporter"].rsplit(":", 1)
    return [
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never", "--set", f"masterId={master_id}",
    ]  # fmt: skip


def for_kube_play(template: dict[str, Any], port: int) -> dict[str, Any]:
    """A workload's pod template as kube play takes it: long annotations dropped, the exporter's metrics
    port published on a free loopback port (a Service would do that in a cluster)."""
    pod = copy.deepcopy(template)
    annotations = pod.get("metadata", {}).get("annotations") or {}
    pod["metadata"]["annotations"] = {k: v for k, v in annotations.items() if len(str(v)) <= 63}
    exporter = next(c for c in pod["spec"]["containers"] if c["name"] == EXPORTER)
    metrics = next(p for p in exporter["ports"] if p["name"] == "metrics")
    metrics.update(hostPort=port, hostIP="127.0.0.1")
    return pod


@contextlib.contextmanager
def kube_play(docs: list[dict[str, Any]], tmp_path: Path) -> Iterator[str]:
    """Play the manifests; yield the exporter container's name; tear everything down afterwards."""
    manifest = tmp_path / "kube.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    played = podman("kube", "play", str(manifest), check=False)
    try:
        assert played.returncode == 0, played.stdout + played.stderr
        names = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
        pod_names = {f"{d['metadata']['name']}" for d in docs}
        exporter = next(n for n in names if n.endswith(f"-{EXPORTER}") and any(p in n for p in pod_names))
        yield exporter
    finally:
        podman("kube", "play", "--down", str(manifest), check=False)


def wait_healthy_and_ready(base: str, exporter: str) -> None:
    def logs() -> str:
        return podman("logs", exporter, check=False).stderr[-3000:]

    wait_for("/-/healthy", lambda: requests.get(f"{base}/-/healthy", timeout=3).status_code == 200, 60, logs)
    wait_for("/-/ready", lambda: requests.get(f"{base}/-/ready", timeout=3).status_code == 200, 60, logs)


def counted(base: str) -> float:
    return sample(
        scrape(f"{base}/metrics"), "salt_job_returns_total", function="test.ping", outcome="success"
    )


def test_sidecar_beside_a_real_master_container(helm: str, images: dict[str, str], tmp_path: Path) -> None:
    suffix = secrets.token_hex(3)
    docs = render(
        helm, "--set", "mode=sidecar", "--set", "statefulsetExample.enabled=true",
        "--set", f"statefulsetExample.image={images['salt-master']}",
        *image_values(images, f"pod-master-{suffix}"),
    )  # fmt: skip
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    port = free_port()
    pod = for_kube_play(statefulset["spec"]["template"], port)
    pod.update(apiVersion="v1", kind="Pod")
    pod["metadata"]["name"] = name = f"see-sidecar-{suffix}"
    master = next(c for c in pod["spec"]["containers"] if c["name"] == "salt-master")
    master["ports"] = []  # the minion is in the pod: nothing to publish
    # A minion in the same pod (the network namespace is shared: its master is 127.0.0.1).
    pod["spec"]["containers"].append(
        {"name": "salt-minion", "image": images["salt-master"], "command": ["salt-minion", "-l", "info"]}
    )
    base = f"http://127.0.0.1:{port}"
    with kube_play([pod], tmp_path) as exporter:
        master_ctr = f"{name}-salt-master"
        wait_healthy_and_ready(base, exporter)
        # The chart's fix: the master runs with the salt group, so its socket is 0660 group saltGroupId.
        mode = podman("exec", master_ctr, "stat", "-c", "%a %g", "/var/run/salt/master/master_event_pub.ipc")
        assert mode.stdout.split() == ["660", str(SALT_GID)]
        assert podman("exec", exporter, "id", "-u").stdout.strip() == "10001"
        # Wait for the minion with a function the assertion does not count.
        wait_for(
            "the pod's minion to answer",
            lambda: "True" in podman("exec", master_ctr, "salt", "*", "test.echo", "True", "-t", "5").stdout,
            90,
            lambda: podman("logs", f"{name}-salt-minion", check=False).stderr[-2000:],
        )
        cli = podman("exec", master_ctr, "salt", "*", "test.ping", "-t", "10")
        returned = returned_minions(cli.stdout)
        assert returned == 1, cli.stdout
        wait_for(f"{returned} test.ping return in /metrics", lambda: counted(base) == returned, 30)
        metrics = scrape(f"{base}/metrics")
        assert sample(metrics, "salt_exporter_bus_connected") == 1.0
        print(f"sidecar: {returned} test.ping return counted")


@pytest.fixture(scope="module")
def host_lab() -> Iterator[Any]:
    from lab.saltlab import SaltLab, SaltUnavailable, ensure_salt

    try:
        venv = ensure_salt(SALT_VERSION)
    except SaltUnavailable as exc:
        if in_ci():
            pytest.fail(f"Salt {SALT_VERSION} cannot be installed (CI=true, not skipping): {exc}")
        pytest.skip(f"Salt {SALT_VERSION} cannot be installed: {exc}")
    with SaltLab(SALT_VERSION, venv=venv, minions=2) as lab:
        yield lab


def test_node_mode_against_a_host_master(
    helm: str, images: dict[str, str], host_lab: Any, tmp_path: Path
) -> None:
    lab = host_lab
    # The socket as a packaged 3007.2+ master leaves it: 0660 group salt (the chart's saltGroupId).
    bus = Path(lab.bus_path)
    os.chown(bus, 0, SALT_GID)
    bus.chmod(0o660)
    docs = render(
        helm, "-f", str(CHART / "ci" / "daemonset-values.yaml"),
        "--set", f"hostSockDir={lab.master_sock_dir}", *image_values(images, "lab-master"),
    )  # fmt: skip
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    port = free_port()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"see-node-{secrets.token_hex(3)}", "labels": daemonset["metadata"]["labels"]},
        "spec": {
            "replicas": 1,
            "selector": daemonset["spec"]["selector"],
            "template": for_kube_play(daemonset["spec"]["template"], port),
        },
    }
    base = f"http://127.0.0.1:{port}"
    with kube_play([deployment], tmp_path) as exporter:
        wait_healthy_and_ready(base, exporter)
        inspect = podman("inspect", exporter, "--format", "{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}")
        assert inspect.stdout.split() == ["true", "10001:10001"], inspect.stdout
        assert str(SALT_GID) in podman("exec", exporter, "id", "-G").stdout.split()
        cli = lab.salt("*", "test.ping", timeout=60)
        returned = returned_minions(cli.stdout)
        assert returned == len(lab.minion_ids), cli.stdout + cli.stderr
        wait_for(f"{returned} test.ping returns in /metrics", lambda: counted(base) == returned, 30)
        started = time.monotonic()
        podman("stop", "--time", "20", exporter, timeout=60)
        took = time.monotonic() - started
        assert podman("inspect", exporter, "--format", "{{.State.ExitCode}}").stdout.strip() == "0"
        assert took < 15, f"stop took {took:.1f} s"
        print(f"node mode: {returned} test.ping returns counted; SIGTERM stop in {took:.1f} s, exit 0")
