"""Shared test helpers: a core built from default settings, and parsed exposition samples."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter import config
from exporter.app import Core, build_core


def settings(**overrides: Any) -> config.Settings:
    """Defaults with some settings changed, by attribute name (`metrics_max_functions=5`)."""
    return config.defaults().replace(**overrides)


def make_core(clock: Any = None, **overrides: Any) -> Core:
    return build_core(settings(**overrides), clock, environ={})


def samples(exposition: bytes | str) -> dict[str, float]:
    """`name{a="x",b="y"}` (labels sorted) -> value. Override keys: `__` for `.`, `_` for `-`."""
    text = exposition.decode() if isinstance(exposition, bytes) else exposition
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def value(core_or_text: Core | bytes | str, key: str) -> float:
    text = core_or_text.exposition() if isinstance(core_or_text, Core) else core_or_text
    return samples(text).get(key, 0.0)
