"""The Textual app of `salt-event-exporter top`: redraws on a timer (4 Hz by default), never per event.

Keys: f function filter, m minion filter, o outcome (all/running/silent/failed/ok), c clear filters,
space freeze, enter open the job under the cursor (one row per minion), escape back, r raw events, q quit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from exporter.live.feed import Feed
from exporter.live.view import (
    OUTCOMES,
    Filters,
    JobRow,
    Rates,
    RawPane,
    fmt_seconds,
    job_detail,
    overview,
    take_sample,
)

JOB_COLUMNS = (
    "age",
    "jid",
    "function",
    "target",
    "returned",
    "pending",
    "failed",
    "silent",
    "probes",
    "state",
    "silent minions (reason)",
)
MINION_COLUMNS = ("minion", "outcome", "latency", "reason", "probe answers")
FUNCTION_COLUMNS = ("function", "jobs", "returns", "ret/s", "failed", "silent", "p50", "p90", "p99")
RAW_COLUMNS = ("time", "tag", "fields (payloads not shown)")
STYLES = {
    "silent": "bold red",
    "held": "red",
    "failed": "yellow",
    "pending": "cyan",
    "running": "cyan",
    "late": "magenta",
}


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at)) if at > 0 else "-"


def _silent_text(row: JobRow) -> str:
    parts = [f"{minion}: {reason}" for minion, reason in row.named]
    more = row.silent - len(row.named)
    if more > 0:
        parts.append(f"+{more}")
    if row.held:
        parts.append(f"{row.held} awaiting presence")
    return ", ".join(parts)


class JobScreen(Screen[None]):
    """One job: its counters and probe rounds, then one row per minion."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "back"),
        Binding("m", "filter_minion", "minion filter"),
        Binding("space", "app.freeze", "freeze"),
        Binding("q", "app.quit", "quit"),
    ]

    def __init__(self, jid: str) -> None:
        super().__init__()
        self.jid = jid
        self.minion_filter = ""

    def compose(self) -> ComposeResult:
        yield Static(id="job-head")
        table: DataTable[Any] = DataTable(id="minions", cursor_type="row", zebra_stripes=True)
        table.add_columns(*MINION_COLUMNS)
        yield table
        yield Input(placeholder="minion id or glob, enter to apply, escape to cancel", id="minion-prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#minion-prompt", Input).display = False
        self.redraw()

    def action_back(self) -> None:
        prompt = self.query_one("#minion-prompt", Input)
        if prompt.display:
            prompt.display = False
            self.query_one("#minions", DataTable).focus()
            return
        self.app.pop_screen()

    def action_filter_minion(self) -> None:
        prompt = self.query_one("#minion-prompt", Input)
        prompt.value = self.minion_filter
        prompt.display = True
        prompt.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.minion_filter = event.value.strip()
        event.input.display = False
        self.query_one("#minions", DataTable).focus()
        self.redraw(force=True)

    def redraw(self, force: bool = False) -> None:
        app = self.app
        if not isinstance(app, LiveApp) or (app.frozen and not force):
            return
        detail = job_detail(app.feed, self.jid, self.minion_filter)
        head = self.query_one("#job-head", Static)
        table: DataTable[Any] = self.query_one("#minions", DataTable)
        if detail is None:
            head.update(Text(f"job {self.jid}: no longer kept"))
            return
        row = detail.row
        probes = ", ".join(f"+{t:.1f}s" for t in detail.probes) or "none"
        end = (
            f"took {fmt_seconds(row.end - row.start)}"
            if row.end is not None
            else f"age {fmt_seconds(app.feed.now() - row.start)}"
        )
        shown = (
            f"{len(detail.minions)} of {detail.total}"
            if detail.total > len(detail.minions)
            else f"{detail.total}"
        )
        head.update(
            Text(
                f"job {row.jid}  {row.fun}  target {row.tgt}  {row.status}  {end}\n"
                f"targeted {row.targeted}  returned {row.returned}  pending {row.pending}  "
                f"failed {row.failed}  "
                f"silent {row.silent + row.held}  find_job probes {row.probes} ({probes})\n"
                f"minion filter: {self.minion_filter or 'none'}  rows: {shown}"
                + ("  [FROZEN]" if app.frozen else "")
            )
        )
        cursor = table.cursor_row
        table.clear()
        for m in detail.minions:
            style = STYLES.get(m.outcome, "")
            table.add_row(
                Text(m.minion),
                Text(m.outcome, style=style),
                fmt_seconds(m.latency),
                Text(m.reason, style=style),
                m.answers,
                key=m.minion,
            )
        if detail.minions:
            table.move_cursor(row=min(cursor, len(detail.minions) - 1))


class LiveApp(App[None]):
    TITLE = "salt-event-exporter top"
    CSS = """
    #status { height: 2; background: $boost; }
    #jobs { height: 1fr; }
    #lower { height: 12; }
    #functions { width: 3fr; }
    #changes { width: 2fr; border-left: solid $primary; padding: 0 1; }
    #raw { height: 12; border-top: solid $primary; }
    #logline { height: 1; color: $text-muted; }
    #job-head { height: 3; background: $boost; }
    #minions { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter_function", "function"),
        Binding("m", "filter_minion", "minion"),
        Binding("o", "cycle_outcome", "outcome"),
        Binding("c", "clear_filters", "clear"),
        Binding("space", "freeze", "freeze"),
        Binding("r", "toggle_raw", "raw events"),
        Binding("q", "quit", "quit"),
        Binding("escape", "cancel_prompt", show=False),
    ]

    def __init__(
        self,
        feed: Feed,
        refresh_hz: float = 4.0,
        window: float = 300.0,
        logs: deque[str] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.feed = feed
        self.stop = stop  # set by someone else (the demo's driver): the view exits
        self.refresh_hz = refresh_hz
        self.filters = Filters()
        self.frozen = False
        self.rates = Rates(window)
        self.raw = RawPane()
        self.logs = logs if logs is not None else deque(maxlen=100)
        self.prompt_for = ""
        self.redraws = 0
        self.redraw_times: deque[tuple[float, float]] = deque(maxlen=10_000)  # (monotonic start, seconds)
        self._last_sample = 0.0

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        jobs: DataTable[Any] = DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        jobs.add_columns(*JOB_COLUMNS)
        yield jobs
        with Horizontal(id="lower"):
            functions: DataTable[Any] = DataTable(id="functions", cursor_type="none", show_cursor=False)
            functions.add_columns(*FUNCTION_COLUMNS)
            yield functions
            yield Static(id="changes")
        raw: DataTable[Any] = DataTable(id="raw", cursor_type="none", show_cursor=False)
        raw.add_columns(*RAW_COLUMNS)
        yield raw
        yield Static(id="logline")
        yield Input(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#raw").display = False
        self.query_one("#prompt").display = False
        self.query_one("#jobs").focus()
        self.set_interval(1.0 / self.refresh_hz, self.tick)
        self.tick()

    # -- the steady redraw ----------------------------------------------------------------------------------

    def tick(self) -> None:
        started = time.monotonic()
        if self.stop is not None and self.stop.is_set():
            self.exit()
            return
        if started - self._last_sample >= 1.0:
            self._last_sample = started
            self.rates.add(take_sample(self.feed))
        if self.frozen:
            return
        if not self.draw():
            return
        self.redraws += 1
        self.redraw_times.append((started, time.monotonic() - started))

    def draw(self, force: bool = False) -> bool:
        """Redraw the screen shown; False when its widgets are gone: a tick or key that lands while a screen
        is popped or the app is closing (seen in CI right after escape) draws nothing, the next tick draws."""
        screen = self.screen
        try:
            if isinstance(screen, JobScreen):
                screen.redraw(force=force)
            else:
                self.redraw()
        except NoMatches:
            return False
        return True

    def redraw(self) -> None:
        feed = self.feed
        view = overview(feed, self.filters)
        mode = "live" if feed.live else (f"recording x{feed.speed:g}" if feed.paced else "recording, unpaced")
        if feed.finished:
            mode += ", finished"
        present = "-" if view.present is None else str(view.present)
        self.query_one("#status", Static).update(
            Text(
                f"{feed.source.description}  {mode}  {'connected' if view.connected else 'NOT CONNECTED'}  "
                f"{_clock(view.now)}Z\n"
                f"jobs in flight {view.open_jobs}  minions pending {view.pending}  present {present}  "
                f"events {view.events}  filter: {self.filters.describe()}"
                + ("  [FROZEN]" if self.frozen else "")
            )
        )
        self._jobs(view.rows, view.now)
        self._functions()
        self._changes()
        if self.query_one("#raw").display:
            self._raw()
        if self.logs:
            self.query_one("#logline", Static).update(Text(self.logs[-1]))

    def _jobs(self, rows: list[JobRow], now: float) -> None:
        table: DataTable[Any] = self.query_one("#jobs", DataTable)
        selected = self.selected_jid()
        table.clear()
        for row in rows:
            style = STYLES.get(row.outcome, "")
            table.add_row(
                fmt_seconds(now - row.start),
                row.jid,
                Text(row.fun),
                Text(row.tgt),
                f"{row.returned}/{row.targeted}",
                str(row.pending),
                Text(str(row.failed), style="yellow" if row.failed else ""),
                Text(str(row.silent + row.held), style="bold red" if row.silent or row.held else ""),
                str(row.probes),
                Text(
                    row.status if row.end is None else f"{row.outcome} {fmt_seconds(row.end - row.start)}",
                    style=style,
                ),
                Text(_silent_text(row), style="red"),
                key=row.jid,
            )
        if selected is not None:
            try:
                table.move_cursor(row=table.get_row_index(selected))
            except Exception:  # the job left the view (filtered out or forgotten)
                table.move_cursor(row=0)

    def _functions(self) -> None:
        table: DataTable[Any] = self.query_one("#functions", DataTable)
        table.clear()
        for r in self.rates.rows(self.filters)[:30]:
            table.add_row(
                Text(r.fun),
                f"{r.published:g}",
                f"{r.returns:g}",
                f"{r.rate:.2f}",
                Text(f"{r.failed:g}", style="yellow" if r.failed else ""),
                Text(f"{r.silent:g}", style="red" if r.silent else ""),
                fmt_seconds(r.p50),
                fmt_seconds(r.p90),
                fmt_seconds(r.p99),
            )

    def _changes(self) -> None:
        lines = [f"presence and keys (last {self.rates.window / 60:g} min)"]
        acts = self.rates.acts()
        if acts:
            lines.append("  ".join(f"{k} {v:g}" for k, v in sorted(acts.items())))
        for change in list(self.feed.tap.changes)[-8:][::-1]:
            lines.append(f"{_clock(change.at)} {change.kind:8} {change.text}")
        self.query_one("#changes", Static).update(Text("\n".join(lines)))

    def _raw(self) -> None:
        table: DataTable[Any] = self.query_one("#raw", DataTable)
        table.clear()
        for row in list(self.raw.update(self.feed))[-50:][::-1]:
            table.add_row(_clock(row.at), Text(row.tag), Text(row.fields))

    def selected_jid(self) -> str | None:
        table: DataTable[Any] = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:  # no cursor yet
            return None
        return None if key.value is None else str(key.value)

    # -- keys -----------------------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "jobs" and event.row_key.value is not None:
            self.push_screen(JobScreen(str(event.row_key.value)))

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        self.draw(force=True)

    def action_cycle_outcome(self) -> None:
        self.filters.outcome = OUTCOMES[(OUTCOMES.index(self.filters.outcome) + 1) % len(OUTCOMES)]
        self.draw()

    def action_clear_filters(self) -> None:
        self.filters = Filters()
        self.draw()

    def action_toggle_raw(self) -> None:
        raw = self.query_one("#raw")
        raw.display = not raw.display
        self.draw()

    def _prompt(self, what: str, value: str) -> None:
        prompt = self.query_one("#prompt", Input)
        self.prompt_for = what
        prompt.placeholder = f"{what}: substring or glob, enter to apply (empty clears), escape to cancel"
        prompt.value = value
        prompt.display = True
        prompt.focus()

    def action_filter_function(self) -> None:
        self._prompt("function", self.filters.function)

    def action_filter_minion(self) -> None:
        self._prompt("minion", self.filters.minion)

    def action_cancel_prompt(self) -> None:
        prompt = self.query_one("#prompt", Input)
        prompt.display = False
        self.query_one("#jobs").focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "prompt":
            return
        value = event.value.strip()
        if self.prompt_for == "function":
            self.filters.function = value
        elif self.prompt_for == "minion":
            self.filters.minion = value
        self.action_cancel_prompt()
        self.draw()
