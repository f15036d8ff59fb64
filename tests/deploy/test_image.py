"""The exporter image, built by scripts/tools/build-images.sh with podman (installed by
scripts/tools/install-podman.sh), run the way an operator runs it next to a real Salt master on the host:
read-only root file system, no capabilities, non-root, the master's sock_dir mounted read-only, the salt
group added. A real ``salt '*' test.ping`` is counted, scraped from the host; ``podman stop`` (SIGTERM to the
exporter as PID 1) ends it cleanly with exit code 0."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).parents[2]
SALT_VERSION = "3008.4"
SALT_GID = 450  # the chart's default saltGroupId; a packaged 3007.2+ master's socket is 0660 group salt
STOP_TIMEOUT = 20


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@functools.cache
def built_images() -> dict[str, str]:
    """Install podman and build both images once per test session (the exporter always from the current
    sources; the base and the salt-master image are reused by tag). Not skipped under CI=true."""
    try:
        subprocess.run(
            ["bash", str(ROOT / "scripts/tools/install-podman.sh")],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        if in_ci():
            pytest.fail(f"podman cannot be installed (CI=true, not skipping): {detail}")
        pytest.skip(f"podman cannot be installed here: {detail}")
    started = time.monotonic()
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/tools/build-images.sh"), "exporter", "salt-master"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "REBUILD": "1", "SALT_VERSION": SALT_VERSION},
    )
    assert out.returncode == 0, out.stderr[-5000:]
    exporter, master = out.stdout.split()
    print(f"images built in {time.monotonic() - started:.1f} s: {exporter} {master}")
    return {"exporter": exporter, "salt-master": master}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=timeout)


def scrape(url: str) -> str:
    return requests.get(url, timeout=3).text


def sample(metrics: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def returned_minions(cli_output: str) -> int:
    """Minions whose ``True`` the salt CLI printed (nested output: ``<id>:`` then an indented ``True``)."""
    lines = cli_output.splitlines()
    return sum(
        1
        for head, value in itertools.pairwise(lines)
        if head.endswith(":") and not head.startswith(" ") and value.strip() == "True"
    )


def wait_for(what: str, ok: object, timeout: float, context: object = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException):
            if callable(ok) and ok():
                return
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}\n{context() if callable(context) else context}"
        )
        time.sleep(0.3)


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    return built_images()


@pytest.fixture(scope="module")
def lab() -> Iterator[object]:
    from lab.saltlab import SaltLab, SaltUnavailable, ensure_salt

    try:
        venv = ensure_salt(SALT_VERSION)
    except SaltUnavailable as exc:
        if in_ci():
            pytest.fail(f"Salt {SALT_VERSION} cannot be installed (CI=true, not skipping): {exc}")
        pytest.skip(f"Salt {SALT_VERSION} cannot be installed: {exc}")
    with SaltLab(SALT_VERSION, venv=venv, minions=2) as started:
        yield started


def test_image_runs_against_a_real_master(images: dict[str, str], lab: object) -> None:
    from lab.saltlab import SaltLab

    assert isinstance(lab, SaltLab)
    image = images["exporter"]
    # The image's metadata: non-root, labels for the version it was built from.
    config = podman("image", "inspect", image, "--format", "{{.Config.User}}|{{json .Config.Labels}}").stdout
    user, labels = config.strip().split("|", 1)
    version = (ROOT / "exporter/__init__.py").read_text().split('"')[1]
    assert user == "10001:10001"
    for key, value in {"version": version, "licenses": "Apache-2.0", "source": "https://"}.items():
        assert f'"org.opencontainers.image.{key}":"{value}' in labels, labels

    # The socket as a packaged 3007.2+ master leaves it: 0660, group salt.
    bus = Path(lab.bus_path)
    os.chown(bus, 0, SALT_GID)
    bus.chmod(0o660)
    port = free_port()
    name = f"see-image-{secrets.token_hex(4)}"
    podman(
        "run", "--detach", "--name", name, "--pull=never",
        "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges",
        "--group-add", str(SALT_GID),
        "-v", f"{lab.master_sock_dir}:/var/run/salt/master:ro",
        "-p", f"127.0.0.1:{port}:9646",
        image, "run", "--bus=/var/run/salt/master/master_event_pub.ipc", "--master-id=lab-master",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def logs() -> str:
            return podman("logs", name, check=False).stderr[-3000:]

        wait_for(
            "the exporter to connect to the bus",
            lambda: sample(scrape(f"{base}/metrics"), "salt_exporter_bus_connected") == 1.0,
            60,
            logs,
        )
        assert requests.get(f"{base}/-/healthy", timeout=3).status_code == 200
        wait_for("/-/ready", lambda: requests.get(f"{base}/-/ready", timeout=3).status_code == 200, 30, logs)
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        assert str(SALT_GID) in podman("exec", name, "id", "-G").stdout.split()

        cli = lab.salt("*", "test.ping", timeout=60)
        returned = returned_minions(cli.stdout)
        assert cli.returncode == 0 and returned == len(lab.minion_ids), cli.stdout + cli.stderr

        def counted() -> float:
            return sample(
                scrape(f"{base}/metrics"), "salt_job_returns_total", function="test.ping", outcome="success"
            )

        wait_for(f"{returned} test.ping returns in /metrics", lambda: counted() == returned, 30, logs)
        time.sleep(1)
        assert counted() == returned, "no return counted twice"

        started = time.monotonic()
        podman("stop", "--time", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 30)
        took = time.monotonic() - started
        state = podman("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
        stderr = podman("logs", name).stderr
        assert state == "0", stderr[-3000:]
        assert took < STOP_TIMEOUT - 5, f"SIGTERM ignored? stop took {took:.1f} s"
        assert '"event": "stopped"' in stderr
        print(f"{returned} returns counted; stopped by SIGTERM in {took:.1f} s, exit code 0")
    finally:
        podman("rm", "--force", "--time", "0", name, check=False)
