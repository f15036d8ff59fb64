"""`salt-event-exporter [run|record|replay]`: parse, configure logging, hand over to app."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from exporter import __version__, config

COMMANDS = ("run", "record", "replay", "top")
REPLAY_SETTINGS = (
    "timeout",
    "gather-job-timeout",
    "job-deadline",
    "max-jobs",
    "max-closed-jobs",
    "metrics.max-functions",
    "metrics.minion-label",
    "metrics.max-minions",
    "metrics.minion-ttl",
    "otlp.endpoint",
    "otlp.protocol",
    "master-id",
    "traces.include-args",
    "traces.redact",
    "traces.max-attribute-size",
    "traces.max-state-spans",
    "traces.max-queue",
    "shutdown.timeout",
    "log.level",
    "log.format",
)

# `top` reads the bus like the daemon and judges jobs like it; it serves nothing and exports no spans.
TOP_SETTINGS = (
    "bus",
    "reconnect.max-backoff",
    "buffer.size",
    "replay.loop",
    "timeout",
    "gather-job-timeout",
    "syndic-wait",
    "syndic-master",
    "job-deadline",
    "max-jobs",
    "max-closed-jobs",
    "metrics.max-functions",
    "log.level",
    "log.format",
)


def setup_logging(level: str, fmt: str) -> None:
    """structlog to stderr: JSON by default, console on a TTY; no per-event logs anywhere."""
    import structlog

    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="salt-event-exporter",
        description="Prometheus metrics and OpenTelemetry traces from the Salt master event bus.",
    )
    top.add_argument("--version", action="version", version=f"salt-event-exporter {__version__}")
    sub = top.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the exporter daemon (the default)")
    config.add_arguments(run)
    run.add_argument("--check-config", action="store_true", help="validate the settings, print them, exit")

    rec = sub.add_parser("record", help="write the raw bus bytes to a file, for bug reports and fixtures")
    config.add_arguments(rec, ["bus", "reconnect.max-backoff", "log.level", "log.format"])
    rec.add_argument("--output", "-o", required=True, help="file to write")

    rep = sub.add_parser("replay", help="run a capture through the pipeline and print the final metrics")
    config.add_arguments(rep, REPLAY_SETTINGS)
    rep.add_argument(
        "capture", help="a file written by `record` (tests/fixtures/*/*.bin are real-master ones)"
    )

    live = sub.add_parser(
        "top", help="a live view of jobs in flight, in the terminal (any --bus, or a recording)"
    )
    config.add_arguments(live, TOP_SETTINGS)
    live.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="a recording replays at its recorded pace (1), N times faster, or 0: as fast as it reads",
    )
    live.add_argument("--refresh", type=float, default=4.0, help="redraws per second (default 4)")
    live.add_argument(
        "--window",
        type=float,
        default=300.0,
        help="seconds of per-function rates and quantiles (default 300)",
    )

    return top


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "run")
    args = parser().parse_args(args_list)
    if args.command != "top":
        # structlog renders tracebacks with rich whenever rich is installed (the live view's library brings
        # it): 11 MiB of resident memory and 0.2 s of start-up the daemon never uses.
        sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    try:
        settings = config.load(args)
    except config.ConfigError as exc:
        print(f"salt-event-exporter: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    command = args.command or "run"
    if command == "run":
        return _run(settings, args.check_config)
    if command == "record":
        from exporter.app import record

        return record(settings.bus, args.output, settings.reconnect_max_backoff)
    if command == "replay":
        from exporter.replay import replay

        if not os.path.isfile(args.capture):  # noqa: PTH113
            print(f"salt-event-exporter replay: {args.capture} is not a file", file=sys.stderr)
            return 2
        replay(settings, args.capture, out=sys.stdout)
        return 0
    if command == "top":
        return _top(settings, args)
    raise AssertionError(command)  # argparse allows only COMMANDS


def _top(settings: config.Settings, args: argparse.Namespace) -> int:
    if args.speed < 0 or args.refresh <= 0 or args.window <= 0:
        print(
            "salt-event-exporter top: --speed must be 0 or more, --refresh and --window more than 0",
            file=sys.stderr,
        )
        return 2
    from exporter.live import run as run_top

    return run_top(settings, speed=args.speed, refresh=args.refresh, window=args.window)


def _run(settings: config.Settings, check_only: bool) -> int:
    from exporter.app import Daemon
    from exporter.serving.web import WebConfigError, load_web_config

    if settings.web_config_file:
        try:
            load_web_config(settings.web_config_file)
        except WebConfigError as exc:
            print(f"salt-event-exporter: {exc}", file=sys.stderr)
            return 2
    if check_only:
        origin = settings.origin
        for setting in config.SETTINGS:
            print(f"{setting.name} = {getattr(settings, setting.attr)!r}  ({origin[setting.name]})")
        print("configuration OK")
        return 0
    try:
        daemon = Daemon(settings)
    except OSError as exc:
        print(
            f"salt-event-exporter: cannot listen on {settings.web_listen_address}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    daemon.install_signals()
    return daemon.run()
