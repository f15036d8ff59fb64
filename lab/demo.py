"""`./scripts/demo` (`python -m lab.demo`): a real Salt master, three minions, the exporter on its bus.

Salt is installed from PyPI into a cached virtual environment of its own (never into the exporter's).
Without network, it says so and replays a bundled real capture in a loop instead.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from exporter.app import Daemon
from exporter.config import Settings

log = structlog.get_logger("lab.demo")

FAILING_STATE = """\
demo_ok:
  test.succeed_with_changes: []
demo_file:
  file.managed:
    - name: {root}/demo-file.txt
    - contents: hello from salt-event-exporter
demo_broken:
  cmd.run:
    - name: exit 3
"""

BUNDLED = Path(__file__).parent / "data" / "demo.bin"


_QUIET = False  # --top: the live view owns the terminal, so lines go to its log line instead


def _say(text: str) -> None:
    if _QUIET:
        import structlog

        for line in text.strip().splitlines():
            structlog.get_logger("demo").info(line.strip())
        return
    print(text, flush=True)


def _total(daemon: Daemon, name: str, by: str | None = None, **match: str) -> dict[str, int]:
    """A counter summed over the labels that match, split by the label `by` (one "" key without)."""
    sink = daemon.core.sink
    spec = sink.specs[name]
    out: dict[str, int] = {}
    with daemon.core.pipeline.lock:
        for key, val in sink.counters[name].items():
            labels = dict(zip(spec.labels, key, strict=True))
            if all(labels.get(k) == v for k, v in match.items()):
                part = labels[by] if by else ""
                out[part] = out.get(part, 0) + int(val)
    return out


def _summary(daemon: Daemon) -> str:
    def total(name: str, **match: str) -> int:
        return sum(_total(daemon, name, **match).values())

    reasons = _total(daemon, "salt_job_minions_no_return_total", by="reason")
    why = ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items()))
    return (
        f"jobs={total('salt_jobs_published_total')} "
        f"returns={total('salt_job_returns_total')} "
        f"failed={total('salt_job_returns_total', outcome='failure')} "
        f"find_job_probes={total('salt_find_job_probes_total')} "
        f"no_return={sum(reasons.values())}{f' ({why})' if why else ''} "
        f"in_flight={len(daemon.core.tracker.open)} "
        f"connected={'yes' if daemon.core.health.connected else 'no'}"
    )


def _await_verdict(daemon: Daemon, before: int, stop: threading.Event, timeout: float = 60.0) -> None:
    """The CLI prints its verdict as it gives up; the exporter gives the same one once the job's deadline
    passes and, for a minion that answered no probe, the next presence event tells "not connected" from
    "no response" (loop_interval is 5 s here). Wait for it, so the summary shows what the CLI said."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if sum(_total(daemon, "salt_job_minions_no_return_total").values()) > before:
            return
        stop.wait(0.5)


def _start_daemon(settings: Settings, bus: str, loop: bool = False) -> tuple[Daemon, threading.Thread]:
    demo_settings = settings.replace(bus=bus, replay_loop=loop)
    daemon = Daemon(demo_settings)
    thread = threading.Thread(target=daemon.run, name="exporter", daemon=True)
    thread.start()
    host = daemon.web.host if daemon.web.host != "0.0.0.0" else "127.0.0.1"
    _say(f"\n  metrics: http://{host}:{daemon.web.port}{settings.web_telemetry_path}\n")
    return daemon, thread


def run_demo(settings: Settings, version: str, duration: float, replay_only: bool, top: bool = False) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    deadline = time.monotonic() + duration if duration else None
    if not replay_only:
        from lab.saltlab import SaltLab, SaltUnavailable, ensure_salt

        _say(f"salt-event-exporter demo: installing Salt {version} from PyPI into a cached venv (once)...")
        try:
            venv = ensure_salt(version)
        except SaltUnavailable as exc:
            _say(f"Salt {version} could not be installed ({str(exc).splitlines()[0]}).")
            _say("Falling back to replaying a bundled capture from a real master, in a loop.")
            replay_only = True
        else:
            _say("starting a salt-master and 3 minions on loopback (private root_dir, free ports)...")
            with SaltLab(version, venv=venv, loop_interval=5) as lab:
                if top:
                    return _with_top(
                        settings, lab.bus_path, lambda: _live(settings, lab, stop, deadline), stop
                    )
                return _live(settings, lab, stop, deadline)
    if top:
        return _with_top(settings, str(BUNDLED), lambda: _replay(settings, stop, deadline), stop, loop=True)
    return _replay(settings, stop, deadline)


def _with_top(settings: Settings, bus: str, driver: Any, stop: threading.Event, loop: bool = False) -> int:
    """`--top`: the jobs run in a thread (their lines go to the view's log line), the live view in front;
    quitting the view stops the jobs, and the end of `--duration` closes the view."""
    from exporter.live import run as run_top

    global _QUIET
    _QUIET = True

    def drive() -> None:
        try:
            driver()
        finally:
            stop.set()

    thread = threading.Thread(target=drive, name="demo-jobs", daemon=True)
    thread.start()
    run_top(settings.replace(bus=bus, replay_loop=loop), speed=1.0, stop=stop)
    stop.set()
    thread.join(timeout=150)
    return 0


def _replay(settings: Settings, stop: threading.Event, deadline: float | None) -> int:
    if not BUNDLED.is_file():
        _say(f"no bundled capture at {BUNDLED}")
        return 1
    daemon, thread = _start_daemon(settings, str(BUNDLED), loop=True)
    while not stop.wait(5):
        _say("  " + _summary(daemon))
        if deadline and time.monotonic() > deadline:
            break
    daemon.stop.set()
    thread.join(timeout=15)
    return 0


def _live(settings: Settings, lab: Any, stop: threading.Event, deadline: float | None) -> int:
    lab.write_state("demo", FAILING_STATE.format(root=lab.root))
    daemon, thread = _start_daemon(settings, lab.bus_path)
    minions = list(lab.minion_ids)
    victim = minions[-1]
    lab.salt("*", "schedule.add", "demo_ping", "function=test.ping", "seconds=20")
    jobs: list[tuple[str, list[str]]] = [
        ("salt '*' test.ping", ["*", "test.ping"]),
        (
            "salt '*' cmd.run 'sleep 7; echo hello' -t 3   (find_job probes)",
            ["*", "cmd.run", "sleep 7; echo hello", "-t", "3"],
        ),
        ("salt '*' state.apply demo   (one failing state)", ["*", "state.apply", "demo"]),
    ]
    cycle = 0
    try:
        while not stop.is_set():
            cycle += 1
            for title, args in jobs:
                if stop.is_set():
                    break
                _say(f"$ {title}")
                lab.salt(*args, timeout=120)
                _say("  " + _summary(daemon))
            if stop.is_set():
                break
            _say("$ salt-run jobs.active")
            lab.salt_run("jobs.active", timeout=60)
            if cycle % 2 == 1:
                _say(f"$ salt '*' cmd.run 'sleep 10' -t 5   with {victim} killed: expect a did-not-return")
                silent_before = sum(_total(daemon, "salt_job_minions_no_return_total").values())
                proc = lab.popen("salt", "*", "cmd.run", "sleep 10", "-t", "5")
                time.sleep(2)
                lab.stop_minion(victim, kill=True)
                proc.wait(timeout=120)
                _await_verdict(daemon, silent_before, stop)
                _say("  " + _summary(daemon))
                lab.start_minion(victim)
            if deadline and time.monotonic() > deadline:
                break
    finally:
        _say("stopping: exporter, then the Salt lab")
        daemon.stop.set()
        thread.join(timeout=15)
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from exporter import config
    from exporter.cli import setup_logging

    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.splitlines()[0])
    config.add_arguments(parser, ("web.listen-address", "log.level", "log.format", "otlp.endpoint"))
    parser.add_argument("--salt-version", default="3008.4", help="Salt release from PyPI (default 3008.4)")
    parser.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: Ctrl-C)")
    parser.add_argument("--replay", action="store_true", help="skip Salt; loop a bundled real capture")
    parser.add_argument(
        "--top",
        action="store_true",
        help="show the live job view (salt-event-exporter top) instead of summaries",
    )
    args = parser.parse_args(argv)
    try:
        settings = config.load(args)
    except config.ConfigError as exc:
        print(f"scripts/demo: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    return run_demo(settings, args.salt_version, args.duration, args.replay, top=args.top)


if __name__ == "__main__":
    raise SystemExit(main())
