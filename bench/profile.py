"""Where the time goes per event: `exporter.pipeline.Pipeline.chunk` over a generated stream, in-process.

    python -m bench.profile --profile mixed --events 200000 --top 25

First an uninstrumented pass (events/s and microseconds per event of `chunk` alone, next to the msgpack
floor of the same bytes), then a cProfile pass on a fresh core: functions by own time, in microseconds per
event. cProfile inflates the cost of small Python calls, so read the shares, not the absolute numbers.
msgpack's Cython functions are invisible to cProfile: their time is in their callers' own time (the inner
data decode in `events.parse`, the outer frames in `frames._feed_plain`).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from typing import Any

from bench.generate import PROFILES, Stream, generate
from bench.run import READ_CHUNK, floor_rate


def build(stream: Stream) -> Any:
    from exporter import config
    from exporter.app import build_core

    settings = config.load(argparse.Namespace(), environ={})
    settings = settings.replace(max_jobs=stream.max_jobs)
    return build_core(settings, time.time, environ={})


def feed_all(core: Any, data: bytes) -> float:
    chunk = core.pipeline.chunk
    t = time.perf_counter()
    for i in range(0, len(data), READ_CHUNK):
        chunk(1, False, data[i : i + READ_CHUNK])
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", choices=PROFILES, default="mixed")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--framing", choices=("plain", "prefixed"), default="plain")
    args = p.parse_args(argv)
    stream = generate(args.profile, args.events, framing=args.framing)
    data = stream.data
    n = stream.events
    floor = floor_rate(data, stream.framing, n)
    plain = feed_all(build(stream), data)
    print(f"{args.profile}: {n:,} events, {len(data) / n:.0f} B/event")
    print(f"  Pipeline.chunk  {n / plain:>10,.0f} ev/s  {plain / n * 1e6:6.2f} us/event")
    print(
        f"  msgpack floor   {floor:>10,.0f} ev/s  {1e6 / floor:6.2f} us/event  "
        f"(ratio {n / plain / floor:.1%})"
    )
    core = build(stream)
    profiler = cProfile.Profile()
    profiler.enable()
    profiled = feed_all(core, data)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{file.rsplit('/', 2)[-1] if '/' in file else file}:{line}({func})"
        rows.append((tottime, cumtime, ncalls, where))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    print(f"\ncProfile: {profiled / n * 1e6:.2f} us/event under the profiler; own time per event:")
    print(f"  {'own us/ev':>9} {'share':>6} {'cum us/ev':>9} {'calls/ev':>8}  function")
    for tottime, cumtime, ncalls, where in rows[: args.top]:
        print(
            f"  {tottime / n * 1e6:9.3f} {tottime / total:6.1%} {cumtime / n * 1e6:9.3f} "
            f"{ncalls / n:8.2f}  {where}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
