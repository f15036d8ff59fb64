"""Settings: one table, four layers (defaults < config file < environment < flags).

Every setting has one name used everywhere: the flag `--NAME`, the YAML key `NAME` in `--config.file`, and
the environment variable `SALT_EXPORTER_<NAME>` (upper case, `.` and `-` as `_`). A bad value fails at start
with a message naming the setting, where it came from, and what is accepted.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from exporter.jobs.model import JobsConfig
from exporter.sinks.metrics import MetricsConfig

if TYPE_CHECKING:
    from exporter.sinks.traces import TracesConfig

ENV_PREFIX = "SALT_EXPORTER_"
DEFAULT_BUS = "/var/run/salt/master/master_event_pub.ipc"


class ConfigError(ValueError):
    """A setting is invalid; the message says which, where from, and the fix."""


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a number greater than 0")
    return number


def _non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError("must be a number of 0 or more")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number greater than 0")
    number = int(value)
    if number <= 0 or (isinstance(value, float) and value != number):
        raise ValueError("must be a whole number greater than 0")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _listen(value: Any) -> str:
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9646 or :9646 (all interfaces)")
    if host.startswith("[") != host.endswith("]"):
        raise ValueError("an IPv6 host must be in brackets, e.g. [::1]:9646")
    return text


def _path(value: Any) -> str:
    text = str(value)
    if not text.startswith("/"):
        raise ValueError("must start with /")
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value)
        if text not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return text

    return check


def _bus(value: Any) -> str:
    text = str(value)
    if not text:
        raise ValueError(
            "must be a socket path, tcp://HOST:PORT, zmq+ipc://PATH, zmq+tcp://HOST:PORT or a capture file"
        )
    if text.startswith(("tcp://", "zmq+tcp://")):
        hostport = text.split("://", 1)[1]
        host, sep, port = hostport.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("a TCP bus must be tcp://HOST:PORT, e.g. tcp://127.0.0.1:4512")
    return text


def _str(value: Any) -> str:
    return str(value)


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _patterns(value: Any) -> tuple[str, ...]:
    import re

    items = value.split(",") if isinstance(value, str) else list(value)
    out = tuple(str(i).strip() for i in items if str(i).strip())
    for item in out:
        try:
            re.compile(item)
        except re.error as exc:
            raise ValueError(f"{item!r} is not a regular expression ({exc})") from None
    return out


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    attr: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    is_flag: bool = False  # a boolean flag without a value on the command line


def _setting(name: str, parse: Callable[[Any], Any], default: Any, help: str, is_flag: bool = False) -> Any:
    return field(default=default, metadata={"setting": (name, parse, help, is_flag)})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, typed; one attribute per `--NAME` (dots and dashes as underscores)."""

    bus: str = _setting(
        "bus",
        _bus,
        DEFAULT_BUS,
        (
            "Event bus: socket path, tcp://HOST:PORT (ipc_mode: tcp), zmq+ipc://PATH or "
            "zmq+tcp://HOST:PORT (Salt 2015.8), or a capture file to replay."
        ),
    )
    web_listen_address: str = _setting(
        "web.listen-address",
        _listen,
        "127.0.0.1:9646",
        ("Address for /metrics. Loopback by default: set :9646 or HOST:9646 to let a remote Prometheus in."),
    )
    web_telemetry_path: str = _setting(
        "web.telemetry-path",
        _path,
        "/metrics",
        ("Path of the metrics endpoint."),
    )
    web_config_file: str | None = _setting(
        "web.config.file",
        _opt_str,
        None,
        ("Exporter-toolkit web config (TLS, basic auth)."),
    )
    log_level: str = _setting(
        "log.level",
        _choice("debug", "info", "warning", "error"),
        "info",
        ("Log level."),
    )
    log_format: str = _setting(
        "log.format",
        _choice("auto", "json", "console"),
        "auto",
        ("json, console, or auto (console on a TTY)."),
    )
    log_jobs: bool = _setting(
        "log.jobs",
        _bool,
        False,
        (
            "Log one line per finished job: jid, function, targeted/returned/failed counts, duration, "
            "silent minions with reasons (never payloads)."
        ),
        True,
    )
    timeout: float = _setting(
        "timeout",
        _positive_float,
        5.0,
        ("The master's/CLI's `timeout` in seconds."),
    )
    gather_job_timeout: float = _setting(
        "gather-job-timeout",
        _positive_float,
        10.0,
        ("The master's `gather_job_timeout` in seconds."),
    )
    syndic_wait: float = _setting(
        "syndic-wait",
        _non_negative_float,
        5.0,
        ("A master of masters' `syndic_wait` in seconds: its CLI waits this much longer per find_job round."),
    )
    syndic_master: bool = _setting(
        "syndic-master",
        _bool,
        False,
        (
            "This master runs salt-syndic for a master of masters (its config has `syndic_master`): ids "
            "in a relayed publish's `missing` list are other masters' minions, not no_key."
        ),
        True,
    )
    presence_interval: float = _setting(
        "presence-interval",
        _positive_float,
        60.0,
        (
            "The master's `loop_interval` in seconds (how often it fires presence events); learnt from the "
            "stream once two presence events were seen. A silent minion's reason waits at most this long."
        ),
    )
    job_deadline: float = _setting(
        "job-deadline",
        _positive_float,
        600.0,
        ("Seconds after which minions of a job nobody probes with find_job (--async, API) count as silent."),
    )
    max_jobs: int = _setting(
        "max-jobs",
        _positive_int,
        10_000,
        ("Open jobs kept; the oldest is evicted (counted) beyond it."),
    )
    max_closed_jobs: int = _setting(
        "max-closed-jobs",
        _positive_int,
        10_000,
        ("Closed jobs remembered for late and duplicate returns."),
    )
    metrics_max_functions: int = _setting(
        "metrics.max-functions",
        _positive_int,
        500,
        ("Distinct function label values; more become __other__."),
    )
    metrics_minion_label: bool = _setting(
        "metrics.minion-label",
        _bool,
        False,
        ("Expose per-minion series (salt_minion_*)."),
        True,
    )
    metrics_max_minions: int = _setting(
        "metrics.max-minions",
        _positive_int,
        10_000,
        ("Per-minion series kept (least recently seen go first)."),
    )
    metrics_minion_ttl: float = _setting(
        "metrics.minion-ttl",
        _positive_float,
        3600.0,
        ("Seconds a silent minion's series are kept."),
    )
    buffer_size: int = _setting(
        "buffer.size",
        _positive_int,
        64 * 1024 * 1024,
        ("Bytes buffered between reader and pipeline."),
    )
    reconnect_max_backoff: float = _setting(
        "reconnect.max-backoff",
        _positive_float,
        30.0,
        ("Longest wait between reconnect attempts, seconds."),
    )
    replay_loop: bool = _setting(
        "replay.loop",
        _bool,
        False,
        ("With a capture file as --bus: replay it forever."),
        True,
    )
    master_id: str = _setting(
        "master-id",
        _str,
        "",
        ("This master's identity on spans (default: the host name)."),
    )
    shutdown_timeout: float = _setting(
        "shutdown.timeout",
        _positive_float,
        10.0,
        ("Seconds allowed for flushing spans on shutdown."),
    )
    otlp_endpoint: str | None = _setting(
        "otlp.endpoint",
        _opt_str,
        None,
        (
            "OTLP endpoint for traces; tracing is off unless this or "
            "OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set."
        ),
    )
    otlp_protocol: str = _setting(
        "otlp.protocol",
        _choice("http/protobuf", "grpc"),
        "http/protobuf",
        ("OTLP protocol (OTEL_EXPORTER_OTLP_PROTOCOL also works)."),
    )
    traces_include_args: bool = _setting(
        "traces.include-args",
        _bool,
        False,
        ("Add arg/fun_args/return to spans (redacted, capped). Off: they may carry secrets."),
        True,
    )
    traces_redact: tuple[str, ...] = _setting(
        "traces.redact",
        _patterns,
        ("password", "passwd", "token", "key", "secret"),
        ("Comma-separated regexes; matching keys/values are replaced by [REDACTED]."),
    )
    traces_max_attribute_size: int = _setting(
        "traces.max-attribute-size",
        _positive_int,
        1024,
        ("Cap in characters for opt-in payload attributes."),
    )
    traces_max_state_spans: int = _setting(
        "traces.max-state-spans",
        _positive_int,
        100,
        ("Per-state spans kept per job."),
    )
    traces_max_minion_spans: int = _setting(
        "traces.max-minion-spans",
        _positive_int,
        100,
        (
            "Minion spans per job: failed, late, probed, silent and pending minions always get one, then the "
            "10 slowest and a sample of the rest; the others are counted and summarised on the job span."
        ),
    )
    traces_max_queue: int = _setting(
        "traces.max-queue",
        _positive_int,
        8192,
        ("Spans queued for export; more are dropped (counted)."),
    )
    origin: Mapping[str, str] = field(default_factory=dict, compare=False)  # setting -> where it came from

    def jobs_config(self, tracing: bool, detail: bool = False) -> JobsConfig:
        return JobsConfig(
            timeout=self.timeout,
            gather_job_timeout=self.gather_job_timeout,
            syndic_wait=self.syndic_wait,
            syndic_master=self.syndic_master,
            job_deadline=self.job_deadline,
            presence_interval=self.presence_interval,
            max_jobs=self.max_jobs,
            max_peer_jobs=self.max_jobs,
            max_closed_jobs=self.max_closed_jobs,
            detail=tracing or detail,
            keep_payload=tracing and self.traces_include_args,
            max_state_details=self.traces_max_state_spans,
        )

    def metrics_config(self) -> MetricsConfig:
        return MetricsConfig(
            max_functions=self.metrics_max_functions,
            minion_label=self.metrics_minion_label,
            max_minions=self.metrics_max_minions,
            minion_ttl=self.metrics_minion_ttl,
        )

    def traces_config(self) -> TracesConfig:
        from exporter.sinks.traces import TracesConfig  # OpenTelemetry is imported only when tracing

        return TracesConfig(
            master_id=self.master_id,
            otlp_endpoint=self.otlp_endpoint,
            otlp_protocol=self.otlp_protocol,
            protocol_set=self.origin.get("otlp.protocol", "default") != "default",
            include_args=self.traces_include_args,
            redact=self.traces_redact,
            max_attribute_size=self.traces_max_attribute_size,
            max_state_spans=self.traces_max_state_spans,
            max_minion_spans=self.traces_max_minion_spans,
            max_queue=self.traces_max_queue,
        )

    def replace(self, **values: Any) -> Settings:
        """A copy with some settings changed, by attribute name (tests, the demo, the bench)."""
        return dataclasses.replace(self, **values)


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.metadata["setting"][0], f.name, f.metadata["setting"][1], f.default, *f.metadata["setting"][2:])
    for f in dataclasses.fields(Settings)
    if "setting" in f.metadata
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper().replace(".", "_").replace("-", "_")


def dest(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


def add_arguments(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Add `--NAME` for each setting (all by default); unset flags stay None so lower layers show."""
    parser.add_argument("--config.file", dest="config_file", default=None, help="YAML file with settings.")
    for setting in SETTINGS:
        if names is not None and setting.name not in names:
            continue
        if setting.is_flag:
            parser.add_argument(
                f"--{setting.name}",
                dest=dest(setting.name),
                default=None,
                action=argparse.BooleanOptionalAction,
                help=setting.help,
            )
        else:
            parser.add_argument(f"--{setting.name}", dest=dest(setting.name), default=None, help=setting.help)


def load(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Merge defaults < file < env < flags, parsing and validating each value where it came from."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    origin: dict[str, str] = {s.name: "default" for s in SETTINGS}

    def put(name: str, raw: Any, where: str) -> None:
        setting = BY_NAME[name]
        try:
            values[name] = setting.parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"invalid {name} = {raw!r} (from {where}): {exc}") from None
        origin[name] = where

    config_file = getattr(args, "config_file", None) or environ.get(ENV_PREFIX + "CONFIG_FILE")
    if config_file:
        for name, raw in _read_file(config_file).items():
            put(name, raw, f"config file {config_file}")
    for setting in SETTINGS:
        raw_env = environ.get(env_name(setting.name))
        if raw_env is not None:
            put(setting.name, raw_env, f"environment {env_name(setting.name)}")
    for setting in SETTINGS:
        raw_flag = getattr(args, dest(setting.name), None)
        if raw_flag is not None:
            put(setting.name, raw_flag, f"flag --{setting.name}")
    if not values["master-id"]:
        values["master-id"] = socket.gethostname()
    return Settings(**{BY_NAME[name].attr: value for name, value in values.items()}, origin=origin)


def defaults() -> Settings:
    """Every setting at its default (no file, environment or flags)."""
    return load(argparse.Namespace(), environ={})


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of setting names to values")
    unknown = sorted(str(k) for k in data if k not in BY_NAME)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
            f"known settings: {', '.join(BY_NAME)}"
        )
    return {str(k): v for k, v in data.items()}
