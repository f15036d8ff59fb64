"""The live view's keys, driven by Textual's headless pilot against real-master recordings; what the
view shows is compared with what the `salt` CLI printed for the same run (`*.cli.txt`)."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot

from exporter.live.screen import JobScreen, LiveApp
from tests.live.oracle import REASONS, capture, cli_run
from tests.live.pilot import drive, feed_for, rows, wait_for

VERSIONS = ("3008.4", "3006.29")
JID, FUNCTION, STATE, SILENT = 1, 2, 9, 10  # columns of the jobs table


@pytest.mark.parametrize("version", VERSIONS)
def test_open_a_job_one_row_per_minion(version: str) -> None:
    cli = cli_run(version, "killed_minion")
    feed = feed_for(str(capture(version, "killed_minion")))

    async def script(app: LiveApp, pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: feed.finished, 30, "the recording read")
        jobs = await wait_for(pilot, lambda: rows(app, "jobs"), 5, "a job row")
        assert len(jobs) == 1
        ((victim, words),) = cli.silent.items()
        assert f"{victim}: {REASONS[words]}" in jobs[0][SILENT]
        assert jobs[0][STATE].startswith("silent")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen), 5, "the job screen")
        minions = await wait_for(pilot, lambda: rows(app, "minions"), 5, "minion rows")
        by_minion = {r[0]: r for r in minions}
        assert set(by_minion) == cli.returned | set(cli.silent)
        assert by_minion[victim][1:4] == ["silent", "-", REASONS[words]]
        assert by_minion[victim][4] == "no answer"  # probed, never answered: it was dead
        for minion in cli.returned:
            assert by_minion[minion][1] == "ok"
            assert by_minion[minion][2].endswith("s")
            assert by_minion[minion][4].startswith("running")  # it answered the probes while running
        assert minions[0][0] == victim  # silent minions first
        await pilot.press("m")
        await pilot.press(*victim)
        await pilot.press("enter")
        await wait_for(pilot, lambda: [r[0] for r in rows(app, "minions")] == [victim], 5, "minion filter")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, JobScreen), 5, "back to the jobs")

    drive(feed, script)


@pytest.mark.parametrize("version", VERSIONS)
def test_filter_by_function_minion_and_outcome(version: str) -> None:
    feed = feed_for(str(capture(version, "async_batch")))

    async def script(app: LiveApp, pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: feed.finished, 30, "the recording read")
        closed = len(feed.recent.jobs)
        jobs = await wait_for(
            pilot, lambda: len(rows(app, "jobs")) == closed and rows(app, "jobs"), 5, "jobs"
        )
        # salt --async test.sleep, then salt -b 1 test.ping (the batch pings the targets first).
        assert {r[FUNCTION] for r in jobs} == {"test.ping", "test.sleep"}
        await pilot.press("f", *"test.sl*", "enter")
        await wait_for(pilot, lambda: [r[FUNCTION] for r in rows(app, "jobs")] == ["test.sleep"], 5, "f")
        assert "function=test.sl*" in str(app.query_one("#status").render())
        await pilot.press("c")
        await wait_for(pilot, lambda: len(rows(app, "jobs")) == closed, 5, "cleared")
        await pilot.press("o")  # running: every job has finished
        await wait_for(pilot, lambda: app.filters.outcome == "running" and not rows(app, "jobs"), 5, "o")
        await pilot.press("o")  # silent: none in this run
        await wait_for(pilot, lambda: app.filters.outcome == "silent" and not rows(app, "jobs"), 5, "o")
        await pilot.press("o", "o")  # failed, then ok: all of them
        await wait_for(
            pilot, lambda: app.filters.outcome == "ok" and len(rows(app, "jobs")) == closed, 5, "ok"
        )
        await pilot.press("c", "m", *"nosuch", "enter")
        await wait_for(pilot, lambda: app.filters.minion == "nosuch" and not rows(app, "jobs"), 5, "m")
        await pilot.press("m", *["backspace"] * 6, *"lab-minion-0[1-3]", "enter")
        await wait_for(pilot, lambda: len(rows(app, "jobs")) == closed, 5, "minion glob")
        assert app.filters.minion == "lab-minion-0[1-3]"  # the keys f, o, c... went into the prompt

    drive(feed, script)


def test_outcome_filter_finds_the_silent_job() -> None:
    cli = cli_run("3008.4", "no_key")
    feed = feed_for(str(capture("3008.4", "no_key")))

    async def script(app: LiveApp, pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: feed.finished, 30, "the recording read")
        await pilot.press("o", "o")
        jobs = await wait_for(
            pilot, lambda: app.filters.outcome == "silent" and rows(app, "jobs"), 5, "silent"
        )
        ((missing, words),) = cli.silent.items()
        assert words == "No response"  # the CLI's words for an id without a key
        assert f"{missing}: no_key" in jobs[0][SILENT]
        await pilot.press("c", "m", *missing, "enter")
        await wait_for(pilot, lambda: len(rows(app, "jobs")) == 1, 5, "the job targeting it")

    drive(feed, script)


def test_freeze_stops_redraws_while_the_feed_goes_on() -> None:
    # Paced: the recording plays for ~45 s at its own pace, so events keep arriving while frozen.
    feed = feed_for(str(capture("3008.4", "killed_minion")), speed=1.0)

    async def script(app: LiveApp, pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: rows(app, "jobs"), 15, "the job row")
        await pilot.press("space")
        assert app.frozen
        status = str(app.query_one("#status").render())
        assert "[FROZEN]" in status
        frozen_rows, frozen_redraws, fed = rows(app, "jobs"), app.redraws, feed.events_fed
        await wait_for(pilot, lambda: feed.events_fed > fed, 20, "more events while frozen")
        await pilot.pause(0.6)
        assert app.redraws == frozen_redraws
        assert rows(app, "jobs") == frozen_rows
        await pilot.press("space")
        await wait_for(pilot, lambda: app.redraws > frozen_redraws, 5, "redraws again")
        assert "[FROZEN]" not in str(app.query_one("#status").render())

    drive(feed, script)


def test_raw_pane_shows_tags_and_field_names_only() -> None:
    feed = feed_for(str(capture("3008.4", "killed_minion")))

    async def script(app: LiveApp, pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: feed.finished, 30, "the recording read")
        assert not app.query_one("#raw").display
        await pilot.press("r")
        raw = await wait_for(pilot, lambda: rows(app, "raw"), 5, "raw rows")
        tags = [r[1] for r in raw]
        assert any(t.startswith("salt/job/") and t.endswith("/new") for t in tags)
        assert any("/ret/lab-minion-01" in t for t in tags)
        text = " ".join(" ".join(r) for r in raw)
        assert "fun=cmd.run" in text
        assert "sleep 20" not in text and "done" not in text  # the arg and the return never shown
        assert "arg" in text and "return" in text  # by name only

    drive(feed, script)


def test_a_tick_while_widgets_are_gone_draws_nothing_and_keeps_running() -> None:
    """CI once caught a redraw tick landing while a screen was being taken down (right after escape): the
    widgets it draws on were gone and the view crashed. Take them away on purpose and tick."""
    feed = feed_for(str(capture("3008.4", "killed_minion")))

    async def script(app: LiveApp, pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: feed.finished, 30, "the recording read")
        before = app.redraws
        await app.query_one("#status").remove()
        app.tick()  # raised NoMatches before the guard
        assert app.redraws == before
        await pilot.press("space")  # the app still takes keys
        assert app.frozen

    drive(feed, script)
