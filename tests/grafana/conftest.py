"""A real Prometheus and promtool, installed from Debian's packages on first use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="session")
def promtool() -> str:
    if not shutil.which("promtool") or not shutil.which("prometheus"):
        subprocess.run(["bash", str(ROOT / "scripts/tools/install-prometheus.sh")], check=True)
    path = shutil.which("promtool")
    assert path
    return path
