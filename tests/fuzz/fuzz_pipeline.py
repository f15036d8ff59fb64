"""Coverage-guided fuzzing (atheris/libFuzzer) of the frame decoder, event parser and job tracker.

    python -m tests.fuzz.fuzz_pipeline -max_total_time=60 -artifact_prefix=tests/fuzz/crashes/

An input "crashes" when anything in the pipeline raises: the pipeline counts such exceptions as `internal`
instead of dying, so the target turns that count into a failure for the fuzzer to report and minimise.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from exporter import config
    from exporter.app import build_core

SETTINGS = config.defaults().replace(
    max_jobs=50,
    max_closed_jobs=50,
    metrics_max_functions=20,
    metrics_minion_label=True,
    metrics_max_minions=20,
)
CORE = build_core(SETTINGS, None, environ={})
RUNS = [0]


def check(data: bytes) -> None:
    """One input, three ways: a plain stream, a length-prefixed stream, and a bare (ZeroMQ) body."""
    core = CORE
    gen = core.pipeline.generation + 1
    core.pipeline.chunk(gen, False, data)
    core.pipeline.chunk(gen + 1, False, len(data).to_bytes(4, "big") + data)
    core.pipeline.bodies([data])
    tracker = core.tracker
    if core.health.decode_errors.get("internal", 0):
        raise RuntimeError("the pipeline raised on this input (counted as internal)")
    if len(tracker.open) > 50 or len(tracker.closed) > 50 or len(tracker.probes) > 10_000:
        raise RuntimeError("tracker state grew past its bounds")
    RUNS[0] += 1
    if RUNS[0] % 2000 == 0:
        core.exposition()  # the scrape must survive whatever the events did to the label values


def main(argv: list[str]) -> None:
    atheris.Setup(argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
