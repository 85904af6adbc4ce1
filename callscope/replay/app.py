"""The replay app: scrubber on top, the live async call tree on the left, the
event list and the details of the selection (or the wait-for view) on the
right, findings below. ``?`` lists every key; every action is also in the
command palette (ctrl+p).

Nothing from a trace, a path or user input is parsed as markup: every label
is a :class:`~rich.text.Text` built from plain strings, notifications are
sent with ``markup=False``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any, Optional

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from .messages import IndexDone, IndexFailed, IndexProgress, Seek
from .screens import FilterScreen, HelpScreen
from .source import ReplaySource
from .waitfor import wait_for_text
from .widgets import (CallTree, EventList, Scrubber, event_details, import_details, plain, request_ref,
                      task_details)

MAX_FINDING_ROWS = 10_000
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)  # events per second while playing
TICK = 0.05  # seconds between play steps

_TIME = re.compile(r"^@?\s*([0-9.]+)\s*(ns|us|µs|ms|s)$")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

# task-scoped kinds: their first field is a task id
_TASK_KINDS = {"task.new", "task.start", "task.return", "task.cancel", "task.exit", "task.resolved",
               "subtask.state", "subtask.cancel", "subtask.drop", "call.queued", "call.admitted",
               "taint.plant"}
# actions that are keys of an input while one has focus
_CURSOR_ACTIONS = {"step", "page", "first", "last", "next", "goto", "search", "filter", "play", "speed",
                   "export", "screenshot", "help", "waitfor", "finding"}


@dataclass(frozen=True)
class Filter:
    """What the view is narrowed to (each None: everything)."""

    inst: Optional[int] = None
    root: Optional[int] = None
    kind: Optional[str] = None
    lint: Optional[str] = None  # None: misattributed first (all lints when there is none)

    @property
    def scoped(self) -> bool:
        return self.inst is not None or self.root is not None or self.kind is not None

    @property
    def active(self) -> bool:
        return self.scoped or self.lint is not None


def _finding_text(line: str) -> Text:
    """A finding's one line as plain text (its ``[lint]`` is not markup),
    the ``severity[lint] #n:`` head coloured."""
    head, sep, rest = line.partition(": ")
    t = Text()
    t.append(head + sep, style="bold red" if "misattributed" in head else "bold yellow")
    t.append(rest)
    return t


def _safe_name(s: str) -> str:
    return _SAFE.sub("_", s).strip("_") or "trace"


def export_view(source: ReplaySource, at: int, instance: Optional[int], path: str) -> str:
    """Write the call graph up to event ``at`` (of ``instance`` when given)
    through the export code (callscope.export.export_view: the format from
    ``path``'s extension, written beside and renamed into place); returns
    ``path``. OSError when it cannot be written."""
    from ..export import ExportError, Selection
    from ..export import export_view as export

    title = os.path.basename(source.path) if source.path else "trace"
    try:
        export(source, Selection(at=at, instance=instance), path, title=title)
    except ExportError as e:
        raise OSError(str(e)) from None
    return path


class ReplayApp(App):
    CSS_PATH = "replay.tcss"
    TITLE = "callscope replay"

    # (binding, help text): the help screen and the palette are made from these
    BINDINGS = [
        Binding("left", "step(-1)", "◀ step", priority=True),
        Binding("right", "step(1)", "step ▶", priority=True),
        Binding("shift+left", "step(-100)", "-100", priority=True, show=False),
        Binding("shift+right", "step(100)", "+100", priority=True, show=False),
        Binding("pageup", "page(-1)", "page up", priority=True, show=False),
        Binding("pagedown", "page(1)", "page down", priority=True, show=False),
        Binding("home", "first", "first", priority=True, show=False),
        Binding("end", "last", "last", priority=True, show=False),
        Binding("space", "play", "play/pause", priority=True),
        Binding("plus,equals_sign", "speed(1)", "faster", priority=True, show=False, key_display="+"),
        Binding("minus", "speed(-1)", "slower", priority=True, show=False, key_display="-"),
        Binding("n", "next(1)", "next", priority=True),
        Binding("N,p", "next(-1)", "prev", priority=True, show=False, key_display="N"),
        Binding("slash", "search", "search", priority=True, key_display="/"),
        Binding("f", "filter", "filter", priority=True),
        Binding("g", "goto", "go to", priority=True),
        Binding("w", "waitfor", "wait-for", priority=True),
        Binding("e", "export", "export", priority=True),
        Binding("s", "screenshot", "screenshot", priority=True),
        Binding("question_mark", "help", "help", priority=True, key_display="?"),
        Binding("escape", "escape", "close / clear", show=False),
        Binding("tab", "focus_next", "focus", show=False),
        Binding("ctrl+c", "quit", "quit", priority=True, show=False),
        Binding("q", "quit", "quit"),
    ]

    HELP = [
        ("← / →", "one event back / forward (within the filter)"),
        ("shift+← / shift+→", "100 events back / forward"),
        ("PgUp / PgDn", "a page of the event list"),
        ("Home / End", "first / last event"),
        ("space", "play / pause (steps forward on its own)"),
        ("+ / -", "play faster / slower"),
        ("n / N (or p)", "next / previous finding (lint filter applied; default: misattributed first); "
                         "inside a search: next / previous match"),
        ("/", "search event kinds, names, arguments, request labels; Enter finds, then n / N"),
        ("f", "filter by instance, root request, event kind or lint (shown in the header chip)"),
        ("Esc", "close the input / the wait-for view, end the search, clear the filters"),
        ("g", "go to an event number, or @time (e.g. @5ms since the start)"),
        ("w", "why is it stuck: the wait-for view at the cursor (opens by itself at a deadlock)"),
        ("e", "export the view (call graph up to the cursor, the filtered instance) as DOT"),
        ("s", "save an SVG screenshot (current directory or --screenshot-dir)"),
        ("?", "this help"),
        ("tab", "move the focus between panels"),
        ("ctrl+p", "command palette: every action by name"),
        ("q / ctrl+c", "quit"),
    ]

    def __init__(self, source: ReplaySource, start_at: int = 0, index: bool = True,
                 screenshot_dir: Optional[str] = None, follow: bool = False, follow_interval: float = 0.25,
                 writer: Any = None, writer_output: Any = None):
        super().__init__()
        self.failure: Optional[BaseException] = None  # what stopped the app, if anything did
        self.writer_output = writer_output  # () -> what the recording process printed so far
        self._output_seen = 0
        self.writer = writer  # run/serve --tui: the recording process (a Popen), shown in the header
        self.source = source
        self.cursor = -1
        self._start_at = start_at
        self._index = index
        self.screenshot_dir = screenshot_dir
        self.follow = follow
        self._follow_interval = follow_interval
        self.filter = Filter()
        self.view = None  # event numbers the scoped filter keeps (None: all)
        self.search_query: Optional[str] = None
        self.playing = False
        self.speed = 3  # index into SPEEDS
        self._acc = 0.0
        self.waitfor = False
        self._auto_waitfor: set = set()  # deadlock events the view already opened itself at
        self._writer_done = False
        self._last_index = 0.0  # monotonic time the last index started (follow)
        self._index_took = 0.0
        self._reindex_pending = False
        self.last_export: Optional[str] = None
        self.last_screenshot: Optional[str] = None

    def _w(self, selector, expect_type=None):
        """A widget of the main screen (also while help or the filter picker
        is on top)."""
        screen = getattr(self, "_main", None) or self.screen
        return screen.query_one(selector, expect_type) if expect_type else screen.query_one(selector)

    @property
    def trace_name(self) -> str:
        return plain(os.path.basename(self.source.path)) if self.source.path else "trace"

    def _fatal_error(self) -> None:
        """An unhandled exception: kept for ``callscope replay`` to report in
        one line (and exit non-zero) instead of Textual's traceback."""
        self.failure = self._exception
        self.bell()
        self._close_messages_no_wait()

    # ------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="header"):
            yield Static(Text(f" callscope replay  {self.trace_name}"), id="title")
            yield Static(id="chips")
        yield Scrubber(self.source, id="scrubber")
        yield ProgressBar(total=max(1, 2 * self.source.total), show_eta=False, id="indexing")
        with Horizontal(id="main"):
            yield CallTree("instances", id="tree")
            with Vertical(id="right"):
                yield EventList(self.source, id="events")
                with VerticalScroll(id="details-box"):
                    yield Static(id="details")
        yield OptionList(id="findings")
        yield Input(placeholder="go to event number, or @time (e.g. @5ms); Enter to go, Esc to close", id="goto")
        yield Input(placeholder="search kinds, names, arguments, request labels; Enter finds, Esc closes",
                    id="search")
        yield Footer()

    def on_mount(self) -> None:
        self._main = self.screen
        self._w(Scrubber).follow = self.follow
        self._sync_size()
        tree = self._w(CallTree)
        tree.show_root = False
        tree.border_title = "async call tree"
        self._w(EventList).border_title = "events"
        self._w("#details-box").border_title = "details"
        findings = self._w("#findings", OptionList)
        findings.border_title = "findings"
        findings.add_option(Option("indexing…", disabled=True))
        self._w("#goto").display = False
        self._w("#search").display = False
        if self.source.truncated and not self.follow:
            self.notify(f"truncated trace: {plain(self.source.truncated)}", title="truncated trace",
                        severity="warning", timeout=15, markup=False)
        if self.source.total == 0 and not self.follow:
            self.notify("the trace has no events", severity="warning")
        self._play_timer = self.set_interval(TICK, self._tick, pause=True)
        if self.follow:
            self.set_interval(self._follow_interval, self._poll_trace)
        self.seek(self._start_at)
        if self._index:
            self.run_index()
        else:
            self._w("#indexing").display = False
        self._w(EventList).focus()
        self._update_chips()

    def on_resize(self, event) -> None:
        self._sync_size()

    def _sync_size(self) -> None:
        w, h = self.size
        main = getattr(self, "_main", None)
        if main is not None:
            main.set_class(w < 120, "narrow")
            main.set_class(h < 32, "short")

    def _update_chips(self) -> None:
        t = Text()
        f = self.filter
        if self.writer is not None:
            rc = self.writer.poll()
            if rc is None:
                t.append(" ● recording ", style="bold white on red")
            else:
                t.append(f" recorded (exit {rc}) ", style="bold black on green")
            t.append(" ")
        elif self.follow:
            t.append(" following ", style="bold black on green")
            t.append(" ")
        if self.playing:
            t.append(f" ▶ {SPEEDS[self.speed]}/s ", style="bold black on cyan")
            t.append(" ")
        if self.search_query is not None:
            t.append(" / " + plain(self.search_query) + " ", style="bold black on yellow")
            t.append(" ")
        if f.active:
            parts = []
            if f.inst is not None:
                parts.append(f"instance {f.inst}")
            if f.root is not None:
                parts.append("request " + request_ref(self.source, f.root, short=True))
            if f.kind is not None:
                parts.append(f.kind)
            if f.lint is not None:
                parts.append(f"lint {f.lint}")
            t.append(" filter: " + ", ".join(parts) + " ", style="bold white on dark_magenta")
            if self.view is not None:
                t.append(f" {len(self.view):,} events", style="magenta")
            t.append(" Esc clears", style="bright_black")
        self._w("#chips", Static).update(t)

    # ------------------------------------------------------------ indexing

    @work(thread=True, exclusive=True, group="index")
    def run_index(self) -> None:
        import time

        worker = get_current_worker()
        t0 = time.monotonic()
        try:
            self.source.index(
                progress=lambda done, total: self.post_message(IndexProgress(done, total)),
                cancelled=lambda: worker.is_cancelled,
                findings_done=lambda: self.post_message(IndexDone(len(self.source.findings))),
            )
        except Exception as e:  # a damaged chunk mid-file
            self.post_message(IndexFailed(str(e)))
            return
        self._index_took = time.monotonic() - t0

    def on_index_progress(self, msg: IndexProgress) -> None:
        bar = self._w("#indexing", ProgressBar)
        bar.update(total=max(1, msg.total), progress=msg.done)
        if msg.done >= msg.total:
            bar.display = False  # snapshots done too

    def on_index_failed(self, msg: IndexFailed) -> None:
        self._w("#indexing").display = False
        self.notify(f"indexing stopped: {plain(msg.message)}", severity="error", timeout=15, markup=False)

    def on_index_done(self, msg: IndexDone) -> None:
        # findings are ready (snapshots may still be coming: the bar stays till then)
        self._fill_findings()
        self.refresh_view()
        if self.source.deadlocks and not self.follow and self.cursor < self.source.deadlocks[0]:
            self.notify(f"the trace records a deadlock at event #{self.source.deadlocks[0]:,}: "
                        "press n to go there, w for the wait-for view", severity="warning", timeout=10)

    def _fill_findings(self) -> None:
        findings = self._w("#findings", OptionList)
        findings.clear_options()
        fs = self._findings()
        if not fs:
            findings.add_option(Option("no findings" + (" for this filter" if self.filter.active else ""),
                                       disabled=True))
        else:
            index = {id(f): i for i, f in enumerate(self.source.findings)}
            findings.add_options(
                Option(_finding_text(self.source.format_finding(f)), id=str(index[id(f)]))
                for f in fs[:MAX_FINDING_ROWS]
            )
            if len(fs) > MAX_FINDING_ROWS:
                findings.add_option(Option(f"… {len(fs) - MAX_FINDING_ROWS} more (use n/N)", disabled=True))
        total = len(self.source.findings)
        title = f"findings ({len(fs)}" + (f" of {total})" if len(fs) != total else ")")
        findings.border_title = title
        cov = self.source.coverage
        if cov is not None:  # which evidence judged the imports (docs/verdicts.md)
            from callscope.model.findings import format_coverage
            findings.border_subtitle = _safe_title(format_coverage(cov).partition(";")[0])

    # ------------------------------------------------------------ findings

    def _lint(self) -> Optional[str]:
        """The lint n/N visit: the filter's, else misattributed when the
        trace has any, else every lint."""
        if self.filter.lint is not None:
            return self.filter.lint
        return "misattributed" if self.source.misattributed else None

    def _finding_in_scope(self, f, flt: Optional[Filter] = None) -> bool:
        flt = flt or self.filter
        d = f.details
        if flt.inst is not None and d.get("inst") not in (None, flt.inst):
            return False
        if flt.root is not None:
            roots = {d.get(k) for k in ("stack_root", "origin", "root", "copied_from")} | set(d.get("origins", ()))
            task = d.get("task")
            if task is not None:
                info = self.source.task_info(task)
                roots.add(info.root if info else task)
            if flt.root not in roots:
                return False
        return True

    def _findings(self, lint: Any = "filter") -> list:
        lint = self.filter.lint if lint == "filter" else lint
        return [f for f in self.source.findings
                if (lint is None or f.lint == lint) and self._finding_in_scope(f)]

    # ---------------------------------------------------------------- seek

    def seek(self, n: int, select: Any = None) -> None:
        total = self.source.total
        if total == 0:
            self.cursor = 0
            self._w(Scrubber).set_cursor(0, "", None)
            return
        self.cursor = max(0, min(n, total - 1))
        self.refresh_view(select)

    def refresh_view(self, select: Any = None) -> None:
        if self.source.total == 0:
            return
        n = self.cursor
        src = self.source
        ev = src.event(n)
        self._w(Scrubber).set_cursor(n, ev[1] if ev else "?", ev[2] if ev else None)
        self._w(EventList).set_cursor(n)
        tree = self._w(CallTree)
        state = src.state_now(n)
        if state is None:  # (far from any state at hand, End on a big trace: computed off the UI thread)
            self._state_pending = (n, select)
            tree.border_title = f"async call tree after event #{n:,} (computing…)"
            self.compute_state(n)
            return
        self._state_pending = None
        tree.rebuild(src, state, self.filter.inst, self.filter.root)
        tree.border_title = f"async call tree after event #{n:,}"
        if ev is not None and ev[1] == "deadlock" and n not in self._auto_waitfor:
            self._auto_waitfor.add(n)  # opens by itself once; w or Esc closes it
            self.waitfor = True
        box = self._w("#details-box")
        if self.waitfor:
            box.border_title = "why is it stuck? (w closes)"
            self._w("#details", Static).update(wait_for_text(state, n))
            if select is not None:
                tree.select_data(select)
            return
        box.border_title = "details"
        # the details follow the event's subject unless the user is in the tree
        if select is None and ev is not None:
            if ev[1] in ("import.call", "import.return"):
                select = ("import", ev[3][0])
            elif ev[1] in _TASK_KINDS and ev[3] and ev[3][0] in state.tasks:
                select = ("task", ev[3][0])
        if select is not None and not tree.has_focus and (tree.select_data(select) or select[0] == "import"):
            self.show_details(select)
        elif not tree.has_focus and ev is not None:
            self._w("#details", Static).update(event_details(src, ev))

    @work(thread=True, exclusive=True, group="state")
    def compute_state(self, n: int) -> None:
        """The state after event ``n`` on a worker thread; the view is
        refreshed with it if the cursor is still there."""
        worker = get_current_worker()
        try:
            state = self.source.compute_state(n, cancelled=lambda: worker.is_cancelled)
        except Exception as e:  # a damaged chunk mid-file
            self.call_from_thread(self.notify, f"cannot compute the state after event #{n:,}: {plain(e)}",
                                  severity="error", timeout=15, markup=False)
            return
        if state is not None and not worker.is_cancelled:
            self.call_from_thread(self._state_done, n, state)

    _state_pending: Optional[tuple] = None  # (event n, select) while its state is being computed

    def _state_done(self, n: int, state: Any) -> None:
        pending = self._state_pending
        if pending is None or pending[0] != n or self.cursor != n:
            return  # (the cursor moved on meanwhile: its own refresh handles it)
        self.source.adopt(state)
        self.refresh_view(pending[1])

    def show_details(self, data: Any) -> None:
        src = self.source
        state = src.state_now(self.cursor)
        details = self._w("#details", Static)
        if data is None or self.waitfor or state is None:  # (None: refresh_view shows it when computed)
            return
        if data[0] == "task":
            details.update(task_details(src, state, data[1], self.cursor))
        elif data[0] == "import":
            details.update(import_details(src, state, data[1]))
        elif data[0] == "inst":
            ev = src.event(self.cursor)
            if ev is not None:
                details.update(event_details(src, ev))

    # --------------------------------------------------------------- events

    def on_seek(self, msg: Seek) -> None:
        self.seek(msg.n)

    def on_tree_node_highlighted(self, event: CallTree.NodeHighlighted) -> None:
        if event.control.has_focus and event.control.is_attached:
            self.show_details(event.node.data)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "findings" or event.option.id is None:
            return
        self.jump_to_finding(self.source.findings[int(event.option.id)])

    def jump_to_finding(self, f) -> None:
        call = f.details.get("call")
        self.seek(f.n, ("import", call) if call is not None else None)
        ol = self._w("#findings", OptionList)
        try:
            ol.highlighted = ol.get_option_index(str(self.source.findings.index(f)))
        except Exception:
            pass

    # --------------------------------------------------------------- actions

    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        # while typing in an input (go to, search), the keys belong to it
        if action in _CURSOR_ACTIONS and isinstance(self.focused, Input):
            return False
        # on a modal screen (help, filter), its own keys first
        if action in _CURSOR_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def _step_in_view(self, k: int) -> int:
        """The event ``k`` steps from the cursor, within the filter's events."""
        if self.view is None:
            return self.cursor + k
        import bisect

        v = self.view
        if not v:
            return self.cursor
        if k > 0:
            i = bisect.bisect_right(v, self.cursor) + k - 1
        else:
            i = bisect.bisect_left(v, self.cursor) + k
        return v[max(0, min(len(v) - 1, i))]

    def action_step(self, k: int) -> None:
        self.seek(self._step_in_view(k))

    def action_page(self, direction: int) -> None:
        h = max(1, self._w(EventList).scrollable_content_region.height - 1)
        self.seek(self._step_in_view(direction * h))

    def action_first(self) -> None:
        self.seek(self.view[0] if self.view else 0)

    def action_last(self) -> None:
        self.seek(self.view[-1] if self.view else self.source.total - 1)

    # play

    def action_play(self) -> None:
        if self.playing:
            self.playing = False
            self._play_timer.pause()
        else:
            if self.cursor >= self._last_n() and not self.follow:
                self.seek(self.view[0] if self.view else 0)
            self.playing = True
            self._acc = 0.0
            self._play_timer.resume()
        self._update_chips()

    def action_speed(self, d: int) -> None:
        self.speed = max(0, min(len(SPEEDS) - 1, self.speed + d))
        self.notify(f"play speed {SPEEDS[self.speed]} events/s", timeout=2)
        self._update_chips()

    def _last_n(self) -> int:
        return self.view[-1] if self.view else self.source.total - 1

    def _tick(self) -> None:
        if not self.playing or not self.is_running:
            return
        self._acc += SPEEDS[self.speed] * TICK
        k = int(self._acc)
        if k < 1:
            return
        self._acc -= k
        if self.cursor >= self._last_n():
            if not self.follow:
                self.playing = False
                self._play_timer.pause()
                self._update_chips()
                self.notify("played to the last event", timeout=3)
            return
        self.seek(self._step_in_view(k))

    # n / N: search matches inside a search, else findings

    def action_next(self, direction: int) -> None:
        if self.search_query is not None:
            self._search_step(direction)
        else:
            self.action_finding(direction)

    def action_finding(self, direction: int) -> None:
        if not self.source.findings_indexed:
            self.notify("still indexing the trace; findings come when it is done")
            return
        lint = self._lint()
        fs = self._findings(lint)
        import bisect

        ns = [f.n for f in fs]
        if direction > 0:
            i = bisect.bisect_right(ns, self.cursor)
            f = fs[i] if i < len(fs) else None
        else:
            i = bisect.bisect_left(ns, self.cursor) - 1
            f = fs[i] if i >= 0 else None
        if f is None:
            # a recorded deadlock is a place to go too
            dl = [d for d in self.source.deadlocks if (d > self.cursor if direction > 0 else d < self.cursor)]
            if dl and not fs:
                self.seek(dl[0] if direction > 0 else dl[-1])
                return
            what = f"{lint} findings" if lint else "findings"
            self.notify(f"no more {what} " + ("after" if direction > 0 else "before") + f" event #{self.cursor:,}",
                        markup=False)
            return
        self.jump_to_finding(f)

    # search

    def action_search(self) -> None:
        box = self._w("#search", Input)
        box.display = True
        box.value = self.search_query or ""
        box.focus()

    def _search_step(self, direction: int) -> None:
        self._run_search(self.search_query, self.cursor, direction)

    @work(thread=True, exclusive=True, group="search")
    def _run_search(self, query: str, start: int, direction: int) -> None:
        worker = get_current_worker()
        n = self.source.search(query, start, direction, self.view, cancelled=lambda: worker.is_cancelled)
        if worker.is_cancelled:
            return
        self.call_from_thread(self._search_done, query, direction, n)

    def _search_done(self, query: str, direction: int, n: Optional[int]) -> None:
        if n is None:
            self.notify(f"{query!r} not found " + ("after" if direction > 0 else "before")
                        + f" event #{self.cursor:,}", severity="warning", markup=False)
            return
        self.seek(n)

    # filter

    def action_filter(self) -> None:
        src = self.source
        choices: list = [(None, None, Text("clear every filter (Esc in the app does it too)", style="italic"))]
        choices[0] = ("clear", None, choices[0][2])
        state = src.state_now(self.cursor)
        if state is None:  # (being computed: the index's task table has the choices)
            from callscope.model import State
            state = State()
        insts = dict(sorted({**{i: None for i in {t.inst for t in src.tasks.values()}},
                             **{i: s.name for i, s in state.instances.items()}}.items()))
        if insts:
            choices.append((None, None, Text("instance", style="bold underline")))
            for i, name in insts.items():
                choices.append(("inst", i, Text(f"  instance {i}" + (f" {name}" if name else ""))))
        roots = [t for t in src.tasks.values() if t.caller is None]
        if not roots:
            roots = [t for t in state.tasks.values() if t.caller is None]
        if roots:
            choices.append((None, None, Text("root request", style="bold underline")))
            for t in roots[:5000]:
                choices.append(("root", t.id, Text(f"  {request_ref(src, t.id, state)} {t.func}")))
        kinds = sorted({k for k in src.reader.kind_names})
        choices.append((None, None, Text("event kind", style="bold underline")))
        for k in kinds:
            choices.append(("kind", k, Text(f"  {k}")))
        lints = sorted({f.lint for f in src.findings})
        if lints:
            choices.append((None, None, Text("lint (for n / N and the findings panel)", style="bold underline")))
            for ln in lints:
                k = sum(1 for f in src.findings if f.lint == ln)
                choices.append(("lint", ln, Text(f"  {ln} ({k})")))
        self.push_screen(FilterScreen(choices), self._filter_picked)

    def _filter_picked(self, picked) -> None:
        if picked is None:
            return
        field, value = picked
        if field == "clear":
            self.set_filter(Filter())
        else:
            self.set_filter(replace(self.filter, **{field: value}))

    def set_filter(self, flt: Filter) -> None:
        old = self.filter
        self.filter = flt
        if (flt.inst, flt.root, flt.kind) != (old.inst, old.root, old.kind):
            self.view = None
            self._w(EventList).set_view(None)
            if flt.scoped:
                self._compute_view(flt)
        self._fill_findings()
        self._update_chips()
        self.refresh_view()

    @work(thread=True, exclusive=True, group="filter")
    def _compute_view(self, flt: Filter) -> None:
        worker = get_current_worker()
        v = self.source.scope_events(flt.inst, flt.root, flt.kind, cancelled=lambda: worker.is_cancelled)
        if v is None or worker.is_cancelled:
            return
        if flt.root is not None and self.source.findings_indexed:
            # the findings about the request (an import it really caused, made on
            # another request's stack) belong to it too
            extra = {f.n for f in self.source.findings
                     if (flt.kind is None or (self.source.event(f.n) or (0, None))[1] == flt.kind)
                     and self._finding_in_scope(f, flt)}
            if extra - set(v):
                from array import array

                v = array("q", sorted(set(v) | extra))
        self.call_from_thread(self._view_done, flt, v)

    def _view_done(self, flt: Filter, v) -> None:
        if flt != self.filter:
            return
        self.view = v
        self._w(EventList).set_view(v)
        if not v:
            self.notify("no events match this filter", severity="warning")
        else:
            # the cursor moves to the nearest kept event at or after it
            import bisect

            i = bisect.bisect_left(v, self.cursor)
            self.cursor = v[min(i, len(v) - 1)]
        self._update_chips()
        self.refresh_view()

    # go to

    def action_goto(self) -> None:
        box = self._w("#goto", Input)
        box.display = True
        box.value = ""
        box.focus()

    def _close_inputs(self) -> bool:
        closed = False
        for name in ("#goto", "#search"):
            box = self._w(name, Input)
            if box.display:
                box.display = False
                closed = True
        if closed:
            self._w(EventList).focus()
        return closed

    def action_close_goto(self) -> None:
        self._close_inputs()

    def action_escape(self) -> None:
        """Esc: close an open input, else the wait-for view, else end the
        search, else clear the filters."""
        if self._close_inputs():
            return
        if self.waitfor:
            self.action_waitfor()
            return
        if self.search_query is not None:
            self.search_query = None
            self._update_chips()
            return
        if self.filter.active:
            self.set_filter(Filter())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            q = event.value.strip()
            self._close_inputs()
            if not q:
                self.search_query = None
                self._update_chips()
                return
            self.search_query = q
            self._update_chips()
            self._run_search(q, self.cursor, 1)
            return
        text = event.value.strip().replace(",", "").replace("_", "").lstrip("#")
        n: Optional[int] = None
        m = _TIME.match(text)
        if text.isdigit():
            n = int(text)
        elif m and text.startswith("@"):
            t = self.source.start_time + int(float(m.group(1)) * _UNITS[m.group(2)])
            n = self.source.reader.first_event_at(t)
        if n is None:
            self.notify(f"not an event number: {event.value!r}", severity="error", markup=False)
            return
        if n >= self.source.total:
            self.notify(f"event {n:,} is past the end (the trace has {self.source.total:,})", severity="warning")
        self._close_inputs()
        self.seek(n)

    # wait-for, export, screenshot, help

    def action_waitfor(self) -> None:
        self.waitfor = not self.waitfor
        self.refresh_view()

    def _out_dir(self) -> str:
        return self.screenshot_dir or os.getcwd()

    def action_export(self) -> None:
        name = f"callscope-{_safe_name(os.path.splitext(self.trace_name)[0])}-at{self.cursor}.dot"
        path = os.path.join(self._out_dir(), name)
        try:
            export_view(self.source, max(0, self.cursor), self.filter.inst, path)
        except OSError as e:
            self.notify(f"export failed: {plain(path)}: {e.strerror or e}", severity="error", markup=False)
            return
        self.last_export = path
        self.notify(f"exported the call graph to {plain(path)}", timeout=6, markup=False)

    def action_screenshot(self) -> None:
        name = f"callscope-replay-{_safe_name(os.path.splitext(self.trace_name)[0])}-at{self.cursor}.svg"
        d = self._out_dir()
        try:
            path = self.save_screenshot(name, d)
        except OSError as e:
            self.notify(f"screenshot failed: {plain(d)}: {e.strerror or e}", severity="error", markup=False)
            return
        self.last_screenshot = path
        self.notify(f"screenshot saved to {plain(path)}", timeout=6, markup=False)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.HELP))

    # command palette: every action by name

    def get_system_commands(self, screen):
        for c in super().get_system_commands(screen):
            if "screenshot" not in c.title.lower():  # Textual's saves to ~/Downloads; ours is below
                yield c
        cmds = [
            ("Play / pause", "step forward on its own (space)", self.action_play),
            ("Play faster", "more events per second (+)", lambda: self.action_speed(1)),
            ("Play slower", "fewer events per second (-)", lambda: self.action_speed(-1)),
            ("Step forward", "one event (→)", lambda: self.action_step(1)),
            ("Step back", "one event (←)", lambda: self.action_step(-1)),
            ("First event", "(Home)", self.action_first),
            ("Last event", "(End)", self.action_last),
            ("Next finding", "or next search match (n)", lambda: self.action_next(1)),
            ("Previous finding", "or previous search match (N)", lambda: self.action_next(-1)),
            ("Search", "event kinds, names, arguments, request labels (/)", self.action_search),
            ("Filter", "by instance, root request, event kind, lint (f)", self.action_filter),
            ("Clear filters", "show everything again (Esc)", lambda: self.set_filter(Filter())),
            ("Go to event", "an event number or @time (g)", self.action_goto),
            ("Why is it stuck", "the wait-for view at the cursor (w)", self.action_waitfor),
            ("Export view", "the call graph up to the cursor as DOT (e)", self.action_export),
            ("Save screenshot", "an SVG of the screen (s)", self.action_screenshot),
            ("Help: every key", "what each key does (?)", self.action_help),
            ("Quit replay", "(q, ctrl+c)", self.exit),
        ]
        for title, help_, cb in cmds:
            yield SystemCommand(title, help_, cb)

    # --------------------------------------------------------------- follow

    def _poll_trace(self) -> None:
        if not self.is_running:
            return
        src = self.source
        was_last = self.cursor >= src.total - 1
        if self.writer_output is not None:
            out = self.writer_output()
            lines = out[self._output_seen:].splitlines(keepends=True)
            done = [ln for ln in lines if ln.endswith("\n")]
            if done:
                self._output_seen += sum(len(ln) for ln in done)
                # the summary's top lines, not every finding it lists (the app shows those)
                top = [ln.rstrip() for ln in done if not ln.startswith("    ")]
                text = "\n".join(top[:6] + (["…"] if len(top) > 6 else [])).strip()
                if text:
                    self.notify(text, title="recording", timeout=12, markup=False)
        if self.writer is not None and self.writer.poll() is not None and not self._writer_done:
            self._writer_done = True
            self._update_chips()
        if not src.grown():
            return
        self._w(EventList).reset_rows()
        if self.filter.scoped:
            self._compute_view(self.filter)
        if was_last:
            self.seek(src.total - 1)  # at the end: follow the new events
        else:
            self.refresh_view()
        self._reindex_soon()

    def _reindex_soon(self) -> None:
        """Findings again for the grown trace, at most every second and never
        more often than twice the last index took (a long live run must not
        spend its time re-reading itself)."""
        import time

        now = time.monotonic()
        wait = max(1.0, 2 * self._index_took)
        if now - self._last_index >= wait:
            self._last_index = now
            self.run_index()
        elif not self._reindex_pending:
            self._reindex_pending = True

            def later() -> None:
                self._reindex_pending = False
                self._last_index = time.monotonic()
                self.run_index()

            self.set_timer(wait - (now - self._last_index), later)


def _safe_title(text: str) -> str:
    """A border title from trace-derived text: no markup, no control characters."""
    return "".join(c for c in text if c.isprintable()).replace("[", "(").replace("]", ")")
