"""Drive the live view with Textual's headless pilot: helpers shared by the key and burst tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from exporter import config
from exporter.live.feed import Feed
from exporter.live.screen import LiveApp


def feed_for(bus: str, speed: float = 0.0, **overrides: Any) -> Feed:
    return Feed(config.defaults().replace(bus=bus, **overrides), speed=speed)


def rows(app: LiveApp, table_id: str) -> list[list[str]]:
    """The cells of a table on the current screen, as text."""
    table: DataTable[Any] = app.screen.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Let the app run until `predicate()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {result!r})")
        await pilot.pause(0.05)


def drive(
    feed: Feed, script: Callable[[LiveApp, Pilot[Any]], Any], size: tuple[int, int] = (160, 40)
) -> None:
    """Run `script(app, pilot)` against a live view of `feed` (started here, stopped after)."""

    async def main() -> None:
        app = LiveApp(feed)
        feed.start()
        try:
            async with app.run_test(size=size) as pilot:
                await script(app, pilot)
        finally:
            feed.stop()

    asyncio.run(main())
