"""Bounded coverage-guided fuzzing in CI (FUZZ_SECONDS, default 20), seeded with real-master frames, plus the
replay of every input the fuzzer ever found crashing (tests/fuzz/crashes/)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.bus.frames import FrameDecoder

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CRASHES = sorted(p for p in (HERE / "crashes").iterdir() if p.name != ".keep")


def seed_corpus(directory: Path) -> int:
    n = 0
    for capture in sorted((ROOT / "tests" / "fixtures").glob("*/*.bin")):
        data = capture.read_bytes()
        for i, body in enumerate(FrameDecoder(lambda r: None).feed(data)):
            if len(body) < 4096:
                (directory / f"{capture.parent.name}-{capture.stem}-{i}").write_bytes(body)
                n += 1
        (directory / f"{capture.parent.name}-{capture.stem}-stream").write_bytes(data[:4096])
    return n


def test_fuzz_pipeline(tmp_path: Path) -> None:
    seconds = int(os.environ.get("FUZZ_SECONDS", "20"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = seed_corpus(corpus)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.fuzz_pipeline",
            str(corpus),
            f"-max_total_time={seconds}",
            f"-artifact_prefix={HERE / 'crashes'}/",
            "-max_len=8192",
            "-print_final_stats=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    runs = re.search(r"Done (\d+) runs in (\d+) second", run.stderr)
    print(
        f"fuzz: {seeds} seeds from real-master fixtures, {runs.group(1) if runs else '?'} executions "
        f"in {runs.group(2) if runs else '?'} s"
    )
    assert run.returncode == 0, "crash input written to tests/fuzz/crashes/: commit it\n" + run.stderr[-3000:]
    assert runs and int(runs.group(1)) > 1000


@pytest.mark.parametrize("crash", CRASHES, ids=lambda p: p.name)
def test_crash_inputs_stay_fixed(crash: Path) -> None:
    from tests.fuzz import fuzz_pipeline

    fuzz_pipeline.check(crash.read_bytes())
