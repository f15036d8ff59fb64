"""Settings precedence and errors that name the setting."""

from __future__ import annotations

import argparse

import pytest

from exporter import config
from exporter.cli import main


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return parser.parse_args(argv)


def test_precedence_defaults_file_env_flags(tmp_path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text("timeout: 7\ngather-job-timeout: 20\njob-deadline: 30\n")
    env = {"SALT_EXPORTER_GATHER_JOB_TIMEOUT": "25", "SALT_EXPORTER_JOB_DEADLINE": "40"}
    values = config.load(parse(["--config.file", str(cfg), "--job-deadline", "50"]), environ=env)
    assert values.timeout == 7.0  # file
    assert values.gather_job_timeout == 25.0  # env beats file
    assert values.job_deadline == 50.0  # flag beats env
    assert values.max_jobs == 10_000  # default
    assert values.origin["job-deadline"] == "flag --job-deadline"


def test_boolean_flags_and_env() -> None:
    assert config.load(parse(["--metrics.minion-label"]), environ={}).metrics_minion_label is True
    env = {"SALT_EXPORTER_METRICS_MINION_LABEL": "yes"}
    assert config.load(parse([]), environ=env).metrics_minion_label is True
    assert config.load(parse(["--no-metrics.minion-label"]), environ=env).metrics_minion_label is False


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--timeout", "0"], {}, "invalid timeout = '0' (from flag --timeout)"),
        (
            [],
            {"SALT_EXPORTER_MAX_JOBS": "lots"},
            "invalid max-jobs = 'lots' (from environment SALT_EXPORTER_MAX_JOBS)",
        ),
        (["--web.listen-address", "9646"], {}, "must be HOST:PORT"),
        (["--bus", "tcp://localhost"], {}, "tcp://HOST:PORT"),
        (["--log.level", "loud"], {}, "must be one of debug, info, warning, error"),
        (["--traces.redact", "("], {}, "invalid traces.redact"),
    ],
)
def test_bad_values_name_the_setting(argv, env, message) -> None:
    with pytest.raises(config.ConfigError) as err:
        config.load(parse(argv), environ=env)
    assert message in str(err.value)


def test_config_file_errors(tmp_path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("timeout: 5\ntimeuot: 6\n")
    with pytest.raises(config.ConfigError, match=r"unknown setting.*timeuot"):
        config.load(parse(["--config.file", str(bad)]), environ={})
    with pytest.raises(config.ConfigError, match="cannot read config file"):
        config.load(parse(["--config.file", str(tmp_path / "missing.yml")]), environ={})
    broken = tmp_path / "broken.yml"
    broken.write_text("a: [\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(parse(["--config.file", str(broken)]), environ={})


def test_check_config_cli(capsys) -> None:
    assert main(["--check-config", "--timeout", "3"]) == 0
    out = capsys.readouterr().out
    assert "timeout = 3.0  (flag --timeout)" in out
    assert "configuration OK" in out
    assert main(["run", "--check-config", "--timeout", "-1"]) == 2
    assert "invalid timeout" in capsys.readouterr().err
