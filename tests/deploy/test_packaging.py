"""The wheel and the sdist as `uv build` makes them, and the wheel installed the way a user installs it:
pip into a fresh virtualenv, nothing from the checkout. The version comes from one place,
exporter/__init__.py (pyproject's [tool.hatch.version])."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.test_image import returned_minions

ROOT = Path(__file__).parents[2]
VERSION = (ROOT / "exporter" / "__init__.py").read_text().split('"')[1]
FIXTURES = ROOT / "tests" / "fixtures" / "3008.4"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(["uv", "build", "--quiet", "-o", str(out), str(ROOT)], check=True)
    return out


def test_both_built_with_the_one_version(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir() if not p.name.startswith("."))
    assert names == [
        f"salt_event_exporter-{VERSION}-py3-none-any.whl",
        f"salt_event_exporter-{VERSION}.tar.gz",
    ]


def test_wheel_holds_only_the_package(dist: Path) -> None:
    with zipfile.ZipFile(next(dist.glob("*.whl"))) as whl:
        names = whl.namelist()
        metadata = whl.read(f"salt_event_exporter-{VERSION}.dist-info/METADATA").decode()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"exporter", f"salt_event_exporter-{VERSION}.dist-info"}, tops
    assert "exporter/py.typed" in names and "exporter/cli.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert f"salt_event_exporter-{VERSION}.dist-info/licenses/LICENSE" in names
    assert f"\nVersion: {VERSION}\n" in metadata and "License: Apache-2.0" in metadata


def test_sdist_contents(dist: Path) -> None:
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for required in ("LICENSE", "README.md", "pyproject.toml", "PKG-INFO", "exporter/__init__.py"):
        assert required in names, required
    # Tests are in the sdist on purpose (pyproject's [tool.hatch.build.targets.sdist]): a packager can run the
    # suite from it; that needs their fixtures and the lab harness the e2e tests import.
    assert "tests/deploy/test_packaging.py" in names and "tests/fixtures/3008.4/ping.bin" in names
    assert "lab/saltlab.py" in names
    # Not the deployment files, dashboards, bench or local state.
    for excluded in ("deploy/", "grafana/", "bench/", ".venv/", "dist/", ".git/"):
        assert not any(n.startswith(excluded) for n in names), excluded
    assert not any("__pycache__" in n for n in names)


def test_wheel_installed_by_pip_runs(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheel = next(dist.glob("*.whl"))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    install = subprocess.run(
        [*pip, "install", "--quiet", str(wheel)], capture_output=True, text=True, check=False
    )
    assert install.returncode == 0, install.stdout + install.stderr
    exe = str(venv / "bin" / "salt-event-exporter")
    # Run outside the checkout, so nothing can be imported from it.
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert version.stdout.strip() == f"salt-event-exporter {VERSION}"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)
    replay = subprocess.run(
        [exe, "replay", str(FIXTURES / "ping.bin")], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    oracle = returned_minions((FIXTURES / "ping.cli.txt").read_text())
    assert oracle == 3
    returns = {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(replay.stdout)
        for s in family.samples
        if s.name == "salt_job_returns_total" and s.labels.get("function") == "test.ping"
    }
    assert returns == {"success": oracle}, replay.stdout[-3000:]
