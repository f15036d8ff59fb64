"""Each benchmark profile end to end with a small stream: the real daemon must show the exact counts.

This protects the generator (its expected counts) and the daemon's correctness under a fast stream. It
asserts no timing: the figures of a run this small mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.generate import DEFAULT_MAX_JOBS, generate, generate_scale
from bench.run import run_latency, run_throughput


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("profile", "events"),
    [("ping", 132_000), ("mixed", 12_000), ("large-fleet", 5_000), ("flood", 2 * DEFAULT_MAX_JOBS + 4_000)],
)
def test_profile_counts_exact(profile: str, events: int, tmp_path: Path) -> None:
    stream = generate(profile, events)
    result = run_throughput(stream, tmp_path / f"{profile}.log", window=1024 * 1024, poll=0.01)
    assert result.mismatches == []
    assert result.extra["dropped_bytes"] == 0
    if profile == "flood":
        assert result.extra["jobs_in_flight"] == DEFAULT_MAX_JOBS
        assert result.extra["evictions"] == stream.events // 2 - DEFAULT_MAX_JOBS
    if profile == "large-fleet":
        assert result.extra["pending_rss"] > 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("dimension", "step", "amount"),
    [
        ("minions", 5_000, 12_000),
        ("states", 2_000, 20_000),
        ("states", 10, 2_000),
        ("inflight", 2_000, 24_000),
    ],
)
def test_scaling_step_counts_exact(dimension: str, step: int, amount: int, tmp_path: Path) -> None:
    stream = generate_scale(dimension, step, amount)
    result = run_throughput(stream, tmp_path / f"{dimension}.log", window=1024 * 1024, poll=0.01)
    assert result.mismatches == []
    assert result.extra["dropped_bytes"] == 0
    states = stream.expected.get('salt_state_results_total{function="state.apply",result="succeeded"}', 0)
    states += stream.expected.get('salt_state_results_total{function="state.apply",result="failed"}', 0)
    assert states == (amount if dimension == "states" else 0)


def test_prefixed_framing_counts_exact(tmp_path: Path) -> None:
    stream = generate("mixed", 4_000, framing="prefixed")
    assert stream.data[:1] == b"\x00"
    assert run_throughput(stream, tmp_path / "prefixed.log").mismatches == []


def test_latency_mode_counts_exact(tmp_path: Path) -> None:
    stream = generate("mixed", 2_000)
    result = run_latency(stream, tmp_path / "latency.log", rate=4_000)
    assert result.mismatches == []
    assert 0 <= result.extra["p50_ms"] <= result.extra["p99_ms"] <= result.extra["max_ms"]


def test_generator_is_deterministic_and_well_formed() -> None:
    a = generate("mixed", 3_000, start=1_800_000_000.0)
    b = generate("mixed", 3_000, start=1_800_000_000.0)
    assert a.data == b.data
    assert a.expected == b.expected
    assert a.offsets[-1] == len(a.data)
    # Every event is counted once by category.
    total = sum(v for k, v in a.expected.items() if k.startswith("salt_events_total"))
    assert total == a.events
