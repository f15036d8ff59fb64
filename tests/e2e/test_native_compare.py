"""scripts/compare-native-metrics once against a real 3008.4 master: this exporter equals the CLI's truth, and
what was measured about Salt's native metrics still holds, so a Salt release that fixes one of them makes
this test say so (then update docs/native-metrics.md and the README table).

Native metrics exist from Salt 3008 on, so this test runs 3008.4 whatever SALT_E2E_VERSIONS says.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from lab.saltlab import SaltUnavailable, ensure_salt

pytestmark = pytest.mark.e2e

VERSION = "3008.4"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compare-native-metrics"


def load_script() -> ModuleType:
    name = "compare_native_metrics"
    loader = importlib.machinery.SourceFileLoader(name, str(SCRIPT))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_native_metrics_against_the_cli(tmp_path: Path) -> None:
    try:
        ensure_salt(VERSION)
    except SaltUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Salt {VERSION} cannot be installed (CI=true, not skipping): {exc}")
        pytest.skip(f"Salt {VERSION} cannot be installed: {exc}")
    script = load_script()
    result = script.compare(VERSION, tmp_path, quick=True, command="pytest tests/e2e/test_native_compare.py")
    f, facts = result.figures, result.facts
    table = script.table(result)
    truth = result.otlp.truth

    # The workload did what it is for (the CLI's own output says so).
    assert f["probes"].truth >= 1, table
    assert f["silent"].truth == {"not_connected": 1}, table
    assert f["failed"].truth == 3, table
    assert f["returns"].truth == sum(len(j.returned) for j in truth.jobs) > 0

    # This exporter equals the CLI.
    for key in ("jobs", "returns", "failed", "probes"):
        assert f[key].exporter == f[key].truth, f"{f[key].name}\n{table}"
    assert f["silent"].exporter == f["silent"].truth, table
    assert f["auth"].exporter.get("accept") == truth.auth_accepted > 0, table
    assert f["duration"].exporter.startswith(f"yes: {len(truth.jobs)} jobs"), table

    fixed = "Salt's native metrics changed (fixed?): update docs/native-metrics.md and the README table"
    # exporter: prometheus: every MWorker fails to bind the port; no job, return or auth counter is served.
    assert facts["prometheus_bind_errors"] >= 1, f"{fixed}\n{table}"
    for key in ("jobs", "returns", "failed", "probes", "auth"):
        assert f[key].prometheus is None, f"{fixed}: prometheus serves {f[key].name}\n{table}"
    assert "salt_master_workers_queue_depth" in facts["prometheus_metrics_after"], table
    # OTLP: one cumulative stream per worker under the same resource; only their sum is right, and the
    # sum counts every find_job probe as a published job.
    assert facts["streams_requests_handled"] > 1, f"{fixed}\n{table}"
    assert f["jobs"].otlp_summed == f["jobs"].truth + f["probes"].truth, f"{fixed}\n{table}"
    assert f["probes"].otlp_summed == f["probes"].truth, table
    assert f["returns"].otlp_summed == f["returns"].truth, table
    assert f["failed"].otlp_summed == f["failed"].truth, table
    # No did-not-return figure, no job duration (not even minion-side with the minions pushing too).
    assert f["silent"].otlp_summed is None, f"{fixed}\n{table}"
    assert facts["otlp_duration_metrics"] == [], f"{fixed}\n{table}"
    assert f["duration"].otlp_summed == "no", f"{fixed}\n{table}"
    # Successful logins are labelled result="error".
    assert f["auth"].otlp_summed == {"error": truth.auth_accepted}, f"{fixed}\n{table}"
    # What native has that the bus never carries.
    native_only = ("salt.master.requests.handled", "salt.master.workers.queue.depth", "salt.process.open_fds")
    for metric in native_only:
        assert metric in facts["otlp_master_metrics"], table
