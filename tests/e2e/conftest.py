"""Fixtures for the end-to-end suite: a real Salt master with three minions per Salt version.

Salt is installed from PyPI into its own cached virtualenv on first use (lab.saltlab.ensure_salt), so
the suite runs on a fresh machine. Versions come from SALT_E2E_VERSIONS (comma separated).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.saltlab import SaltLab, SaltLabError, SaltUnavailable, ensure_salt

DEFAULT_VERSIONS = "3008.4,3006.29"
_TIMINGS: list[tuple[str, str, dict[str, float]]] = []


def salt_versions() -> list[str]:
    """The Salt releases to test; a SALT_E2E_VERSIONS that names none is a usage error, not a reason to
    skip every real-master test (an empty parameter set would skip them all without a word)."""
    raw = os.environ.get("SALT_E2E_VERSIONS", DEFAULT_VERSIONS)
    versions = [v.strip() for v in raw.split(",") if v.strip()]
    if not versions:
        raise pytest.UsageError(
            f"SALT_E2E_VERSIONS={raw!r} names no Salt version, so every e2e test would be skipped: unset it "
            f"for the default ({DEFAULT_VERSIONS}), name versions (e.g. 3008.4), or deselect the suite with "
            "-m 'not e2e'"
        )
    return versions


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end tests against real Salt masters")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


def started_lab(version: str, venv: Path, **options: Any) -> SaltLab:
    """Start a lab; a daemon that fails to come up is retried once in a fresh lab (third-party start-up races
    are not what these tests are about), and the first failure is printed."""
    try:
        lab = SaltLab(version, venv=venv, **options)
        lab.start()  # closes the lab itself if start fails
        return lab
    except SaltLabError as exc:
        print(f"salt {version} lab failed to start, retrying once: {str(exc).splitlines()[0]}")
    lab = SaltLab(version, venv=venv, **options)
    lab.start()
    return lab


@pytest.fixture(scope="module", params=salt_versions(), ids=lambda v: f"salt-{v}")
def salt_lab(request: pytest.FixtureRequest) -> Iterator[SaltLab]:
    """A started SaltLab (master + lab-minion-01..03) for one Salt version, torn down after the module."""
    version: str = request.param
    module = request.module.__name__.rsplit(".", 1)[-1]
    started = time.monotonic()
    try:
        venv = ensure_salt(version)
    except SaltUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Salt {version} cannot be installed (CI=true, not skipping): {exc}")
        pytest.skip(f"Salt {version} cannot be installed: {exc}")
    timings = {"install": time.monotonic() - started}
    lab = started_lab(version, venv)
    try:
        timings["setup"] = timings["install"] + lab.timings.get("master", 0.0) + lab.timings["minions"]
        yield lab
    finally:
        lab.close()
        timings.update({k: v for k, v in lab.timings.items() if k != "install"})
        _TIMINGS.append((version, module, timings))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Attach the lab's daemon log tails to a failing e2e test's report."""
    report = yield
    lab = getattr(item, "funcargs", {}).get("salt_lab")
    if report.failed and isinstance(lab, SaltLab) and not lab.closed:
        report.sections.append((f"salt {lab.version} lab logs ({lab.root})", lab.log_tails(40)))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _TIMINGS:
        return
    terminalreporter.write_sep("-", "salt lab timings (seconds)")
    for version, module, t in _TIMINGS:
        parts = " ".join(f"{k}={v:.1f}" for k, v in t.items())
        terminalreporter.write_line(f"salt {version} [{module}]: {parts}")
