"""A real master, the daemon exporting to a real OTLP receiver, and a canary secret in pillar, in a cmd.run
argument and in its return: spans have the job structure, and the canary is nowhere by default."""

from __future__ import annotations

import json
import signal
import subprocess

from lab.saltlab import SaltLab
from tests.conftest import Receiver
from tests.daemon import EXE, RunningDaemon
from tests.helpers import LogTail

CANARY = "CANARY-e2e-5b1d"


def test_real_job_traced_and_secrets_kept_out(salt_lab: SaltLab, receiver: Receiver) -> None:
    salt_lab.write_pillar("top", "base:\n  '*':\n    - secrets\n")
    salt_lab.write_pillar("secrets", f"canary_value: {CANARY}\n")
    salt_lab.salt("*", "saltutil.refresh_pillar", timeout=60)
    receiver.clear()
    daemon = RunningDaemon(
        "--bus",
        salt_lab.bus_path,
        "--log.level",
        "debug",
        "--otlp.endpoint",
        receiver.http,
        "--master-id",
        "lab-master",
    )
    capture = salt_lab.root / "bus.bin"
    recorder = subprocess.Popen(
        [EXE, "record", "--bus", salt_lab.bus_path, "--output", str(capture), "--log.format", "json"],
        stderr=subprocess.PIPE,
        text=True,
    )
    recorder_log = LogTail(recorder.stderr)
    try:
        daemon.wait_for("salt_exporter_bus_connected", 1)
        recorder_log.wait_for('"event": "bus_connected"')  # both subscribed before the first job
        out = salt_lab.salt("*", "cmd.run", f"echo {CANARY}", timeout=60)
        assert out.stdout.count(CANARY) == 3  # the minions really returned it
        salt_lab.salt("*", "pillar.get", "canary_value", timeout=60)  # the CLI masks it; the bus does not
        salt_lab.salt("*", "test.ping", timeout=60)
        metrics = daemon.get("/metrics").text
        receiver.wait(
            lambda s: (
                {"salt.job cmd.run", "salt.job pillar.get", "salt.job test.ping"} <= {x["name"] for x in s}
            )
        )
    finally:
        code, logs = daemon.stop()  # flushes every span it will ever send before it exits
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=20)
        recorder_log.close()
    assert code == 0
    spans = receiver.spans()
    assert capture.read_bytes().count(CANARY.encode()) >= 6, "the canary must really be on the bus"
    root = next(s for s in spans if s["name"] == "salt.job cmd.run")
    children = [s for s in spans if s["parent_span_id"] == root["span_id"]]
    assert sorted(s["name"] for s in children) == sorted(salt_lab.minion_ids)
    assert all(s["trace_id"] == root["trace_id"] for s in children)
    assert root["attributes"]["salt.minions.returned"] == 3
    assert all(root["start"] <= s["start"] and s["end"] <= root["end"] for s in children)
    assert CANARY not in repr(spans)
    assert CANARY not in metrics
    # The log check means something only if there is a log: every line a JSON record, start to stop.
    records = [json.loads(line) for line in logs.splitlines() if line.strip()]
    events = [r["event"] for r in records]
    assert events[0] == "started" and events[-1] == "stopped", events
    assert {"started", "bus_connected", "stopping", "stopped"} <= set(events), events
    started = records[0]
    assert started["bus"] == salt_lab.bus_path and started["tracing"] is True, started
    assert CANARY not in logs
    assert CANARY not in recorder_log.text()
