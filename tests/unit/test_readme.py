"""The README tells the truth about metrics, settings and commands."""

from __future__ import annotations

import re
from pathlib import Path

from exporter import config
from exporter.sinks import catalog

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")


def section(name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", README, re.S)
    assert match, f"README has no {name} section"
    return match.group(1).strip()


def test_metrics_table_matches_catalog() -> None:
    assert section("metrics-table") == catalog.markdown_table(), (
        "README metrics table is stale: regenerate with "
        "`uv run python -c 'from exporter.sinks.catalog import markdown_table; print(markdown_table())'`"
    )


def test_every_setting_documented() -> None:
    table = section("settings-table")
    for setting in config.SETTINGS:
        assert f"`--{setting.name}`" in table, setting.name
        assert f"`{config.env_name(setting.name)}`" in table, setting.name


def test_readme_commands_exist() -> None:
    root = Path(__file__).parents[2]
    assert "./scripts/demo" in README and (root / "scripts/demo").exists()
    assert "./scripts/test" in README and (root / "scripts/test").exists()
